"""What the runtime runs beside the control core: its extensions.

An extension (the central link, the event log, the technician's page, the cameras, the
systemd watchdog, a simulator's or a test's driver) is one `Extension`; the runtime
takes a list of them (`Runtime(extensions=[...])`, or `add` before `run`) and knows
none by name. The rules it keeps, the runtime enforcing them (edge/runtime.py):

- `start(rt)` wires it in when it is added (its views on the runtime, a sensing
  function in the board driver's input path); it may raise, before anything runs.
- `on_tick(tick)`, when `ticks` is set, gets every control tick as a read-only
  `Tick` in the extension's own thread (edge/tickhooks.py): it can never delay or
  stop the tick; a slow one loses its oldest ticks (`ticks_dropped(n)`), a failing
  one is disabled after repeated failures (`ticks_stopped()`). The hook is added
  each time the task starts, just before `run()` (no await between: no tick is
  missed), and removed when it ends; `rt.end_ticks(self)` ends it earlier, after
  the queued ticks are handled (to hand them on before a store closes).
- `run()` is its task, named `name`. With `restarts` (the default) a failure or an
  end is logged and the task started again after a capped backoff (edge/backoff.py);
  the intersection runs on meanwhile. Without it, a failure or an end is the
  runtime's own: the one shutdown path.
- `stop()` is called once after the runtime's tasks have ended.

Nothing here imports the runtime: extensions see it through `Host` (type-only).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from edge.tickhooks import QUEUE_TICKS

if TYPE_CHECKING:
    from edge.runtime import Runtime
    from edge.tickhooks import Tick


class Extension:
    """One extension; subclasses override what they use."""

    name: str = ""
    restarts: bool = True  # False: a failure or an end of run() stops the runtime
    ticks: bool = False  # True: on_tick gets every control tick
    queue_ticks: int = QUEUE_TICKS  # ticks held for a slow on_tick

    def start(self, rt: Runtime) -> None:
        """Wire into the runtime (called when added)."""

    def on_tick(self, tick: Tick) -> None:
        """Every control tick, in the extension's own thread (with ticks)."""

    def ticks_dropped(self, ticks: int) -> None:
        """on_tick fell behind: this many ticks were dropped (oldest first)."""

    def ticks_stopped(self) -> None:
        """on_tick failed repeatedly and gets no more ticks."""

    async def run(self) -> None:
        """The extension's task; by default none (waits for the shutdown's cancel)."""
        await asyncio.Event().wait()

    def stop(self) -> None:
        """After the runtime's tasks have ended."""

    def status_fields(self) -> dict[str, Any]:
        """Fields merged into the runtime's status snapshot."""
        return {}


class Task(Extension):
    """A bare task (a simulator's or a test's driver): by default its failure or end
    is the runtime's own, as for the runtime's own tasks."""

    def __init__(
        self, name: str, fn: Callable[[], Coroutine[Any, Any, None]], *, restarts: bool = False
    ) -> None:
        self.name = name
        self.fn = fn
        self.restarts = restarts

    async def run(self) -> None:
        await self.fn()
