"""Per-tick extensions (the page's recorder, the event log, the central link's counts),
kept off the control tick.

The rules this module keeps:

- The control tick only builds one immutable `Tick` (the time, the outputs with this
  step's events, the inputs it stepped on, and the core's `tick_view()`: copies of the
  few controller fields the extensions read) and appends it to each hook's bounded
  queue: O(1), never waiting on a hook. The queue's lock is held by a worker only to
  pop, never while a hook runs.
- Each hook runs in its own thread and sees snapshots, never the live controller.
- A hook that falls behind (a stall, a slow disk): its queue drops the OLDEST tick;
  the drops are counted, logged (`tick_hook_behind hook=NAME dropped=N`, at most every
  BEHIND_LOG_EVERY_S) and handed to the hook's `on_dropped(n)` before its next tick, so
  an extension whose data must not vanish silently (central's counts) can report the gap.
- A hook that raises: logged with its name (`tick_hook_failed hook=NAME`); it goes on
  with the next tick. After MAX_FAILURES failures in a row it is disabled
  (`tick_hook_disabled`), its `on_disabled()` is told, and it gets no more ticks.
- A hook stuck inside one tick is seen from outside: `check()` (the runtime's
  supervisor, once a second) logs `tick_hook_stalled hook=NAME for_s=...` when ticks
  wait and none was taken for STALLED_S.
- On shutdown each worker drains what is queued, within a timeout, and ends; a hook
  hung for good cannot hold the process (its thread is a daemon).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge.board.driver import BoardDriver
    from edge.control.messages import Inputs, Outputs

# Under edge.runtime: the page's event log shows these lines as the runtime's.
log = logging.getLogger("edge.runtime.hooks")

QUEUE_TICKS = 50  # 5 s of ticks at 10 Hz
MAX_FAILURES = 5  # in a row; then the hook is disabled
BEHIND_LOG_EVERY_S = 10.0
STALLED_S = 2.0  # ticks waiting and none taken for this long: the hook is stalled
HOOK_DRAIN_S = 1.0  # at shutdown, the tick hooks' queued ticks are handled within this


@dataclass(frozen=True, slots=True)
class Tick:
    """What one control tick hands to the extensions; immutable, safe in any thread."""

    n: int  # the runtime's tick count
    mono_s: float  # when the tick ran (time.monotonic, wall seconds)
    now_ms: int  # the controller's clock at its last step
    outputs: Outputs | None  # the step's outputs, its events included (frozen)
    stepped: tuple[int, Inputs] | None  # the controller's last step: its time and Inputs
    intervals: tuple[int, ...]  # per phase, the controller's interval (GREEN, YELLOW, ...)
    calls: tuple[bool, ...]  # per phase, a vehicle call
    present: tuple[bool, ...]  # per detector, occupied
    # For the NTCIP agent (edge/ntcip/core.py): per phase a pedestrian call; per ring the
    # index of the phase that times next (-1: none); the plan in force; where the local
    # cycle timer stands (ms; None when not coordinated).
    ped_calls: tuple[bool, ...] = ()
    nexts: tuple[int, ...] = ()
    plan: str = ""
    cycle_ms: int | None = None
    # For J2735 (edge/j2735/signals.py ped_ends): per phase when its walk or pedestrian
    # clearance ends (the controller's ms; None: don't walk).
    ped_ends: tuple[int | None, ...] = ()

    @staticmethod
    def of(n: int, mono_s: float, driver: BoardDriver) -> Tick:
        v = driver.controller.tick_view()  # the core's documented per-tick read
        return Tick(
            n, mono_s, v.t_ms, driver.outputs, driver.stepped, v.intervals, v.calls,
            v.present, v.ped_calls, v.nexts, v.plan, v.cycle_ms, v.ped_ends,
        )  # fmt: skip


class TickHook:
    """One extension: its queue, its worker thread and its health."""

    def __init__(
        self,
        name: str,
        fn: Callable[[Tick], None],
        *,
        queue_ticks: int = QUEUE_TICKS,
        on_dropped: Callable[[int], None] | None = None,
        on_disabled: Callable[[], None] | None = None,
        max_failures: int = MAX_FAILURES,
    ) -> None:
        if queue_ticks < 1:
            raise ValueError(f"tick hook {name}: queue_ticks must be >= 1, not {queue_ticks}")
        self.name = name
        self.fn = fn
        self.on_dropped = on_dropped
        self.on_disabled = on_disabled
        self.max_failures = max_failures
        self._queue: deque[Tick] = deque(maxlen=queue_ticks)
        self._cond = threading.Condition(threading.Lock())
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.dropped = 0  # ticks lost to a full queue, in all
        self._unreported = 0  # dropped but not yet handed to on_dropped
        self.failures = 0  # in all
        self._in_a_row = 0
        self.disabled = False
        self._behind_logged_s = -BEHIND_LOG_EVERY_S
        self._progress_s = time.monotonic()  # the worker last took a tick
        self._stall_logged = False

    # -- the control tick's side: O(1), never waits on the hook ---------------------------

    def put(self, tick: Tick) -> None:
        if self.disabled:
            return
        with self._cond:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
                self._unreported += 1
            self._queue.append(tick)  # a full deque drops its oldest
            self._cond.notify()

    # -- the worker ------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name=f"tick-hook-{self.name}", daemon=True
            )
            self._thread.start()

    def request_stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()

    def stop(self, timeout_s: float) -> None:
        """Drain what is queued (within timeout_s) and end the worker."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error(
                    "tick_hook_stuck hook=%s: not done within %.1f s of the stop; left behind",
                    self.name,
                    timeout_s,
                )

    def take_one(self, block: bool = True) -> bool:
        """Hand the oldest queued tick to the hook (drops first reported); False when there
        is none (stopping, or not blocking). The worker's step; tests call it directly."""
        with self._cond:
            while block and not self._queue and not self._stopping:
                self._cond.wait()
            dropped, self._unreported = self._unreported, 0
            self._progress_s = time.monotonic()
            tick = self._queue.popleft() if self._queue else None
        if dropped:
            self._behind(dropped)
        if tick is None:
            return False
        self.run_one(tick)
        return True

    def _work(self) -> None:
        while not self.disabled and self.take_one():
            pass

    def _behind(self, dropped: int) -> None:
        now = time.monotonic()
        if now - self._behind_logged_s >= BEHIND_LOG_EVERY_S:
            self._behind_logged_s = now
            log.warning(
                "tick_hook_behind hook=%s dropped=%d total_dropped=%d: it fell behind the "
                "control tick; its oldest ticks were dropped",
                self.name,
                dropped,
                self.dropped,
            )
        if self.on_dropped is not None:
            self._call("on_dropped", self.on_dropped, dropped)

    def run_one(self, tick: Tick) -> None:
        """Hand one tick to the hook: a failure is logged, counted, and disables it after
        max_failures in a row."""
        if self.disabled:
            return
        try:
            self.fn(tick)
        except Exception as exc:
            self.failures += 1
            self._in_a_row += 1
            if self._in_a_row == 1:
                log.exception("tick_hook_failed hook=%s tick=%d error=%r", self.name, tick.n, exc)
            else:
                log.error(
                    "tick_hook_failed hook=%s tick=%d in_a_row=%d error=%r",
                    self.name,
                    tick.n,
                    self._in_a_row,
                    exc,
                )
            if self._in_a_row >= self.max_failures:
                self._disable()
        else:
            self.delivered += 1
            self._in_a_row = 0

    def _disable(self) -> None:
        self.disabled = True
        with self._cond:
            self._queue.clear()
        log.error(
            "tick_hook_disabled hook=%s after %d failures in a row: it gets no more ticks; "
            "the intersection runs on",
            self.name,
            self._in_a_row,
        )
        if self.on_disabled is not None:
            self._call("on_disabled", self.on_disabled)

    def _call(self, what: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:
            log.exception("tick_hook_failed hook=%s in=%s error=%r", self.name, what, exc)

    def check(self, now_s: float) -> None:
        """Log a hook stuck in one tick (ticks waiting, none taken for STALLED_S), once."""
        stuck_s = now_s - self._progress_s
        if self.disabled or not self._queue or stuck_s < STALLED_S:
            self._stall_logged = False
            return
        if not self._stall_logged:
            self._stall_logged = True
            log.warning(
                "tick_hook_stalled hook=%s for_s=%.1f queued=%d: the hook has not come back; "
                "the control tick runs on, its oldest ticks are dropped when the queue is full",
                self.name,
                stuck_s,
                len(self._queue),
            )

    def health(self) -> dict[str, Any]:
        return {
            "delivered": self.delivered,
            "dropped": self.dropped,
            "failures": self.failures,
            "disabled": self.disabled,
            "queued": len(self._queue),
        }


class TickHooks:
    """The runtime's hooks, by name."""

    def __init__(self) -> None:
        self.hooks: dict[str, TickHook] = {}
        self._started = False

    def add(self, name: str, fn: Callable[[Tick], None], **kw: Any) -> TickHook:
        if name in self.hooks:
            raise ValueError(f"tick hook {name!r} is already added")
        hook = TickHook(name, fn, **kw)
        self.hooks[name] = hook
        if self._started:
            hook.start()
        return hook

    def remove(self, name: str) -> TickHook | None:
        """Forget a hook and ask its worker to end after what it has queued (no wait:
        hook.stop(timeout_s) waits for it)."""
        hook = self.hooks.pop(name, None)
        if hook is not None:
            hook.request_stop()
        return hook

    def __bool__(self) -> bool:
        return bool(self.hooks)

    def __getitem__(self, name: str) -> TickHook:
        return self.hooks[name]

    def publish(self, tick: Tick) -> None:
        for hook in self.hooks.values():
            hook.put(tick)

    def start(self) -> None:
        self._started = True
        for hook in self.hooks.values():
            hook.start()

    def check(self) -> None:
        now = time.monotonic()
        for hook in self.hooks.values():
            hook.check(now)

    def request_stop(self) -> None:
        for hook in self.hooks.values():
            hook.request_stop()

    def stop(self, timeout_s: float) -> None:
        """Drain and end every worker; timeout_s for all of them together."""
        deadline = time.monotonic() + timeout_s
        self.request_stop()
        for hook in self.hooks.values():
            hook.stop(max(0.0, deadline - time.monotonic()))

    def health(self) -> dict[str, dict[str, Any]]:
        return {name: hook.health() for name, hook in self.hooks.items()}
