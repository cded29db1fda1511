"""A real Runtime in the test's own process, driving the virtual IO board
(`python -m sim.virtual_board`, its own process, tests/board/procs.py) over a real pty.

For tests that reach into the running runtime (its tick hooks, its page) while its
real loop runs: the test's scenario is one more runtime task, started once the board
runs; the tick's start times come from a tick hook of the test's own.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from edge.extensions import Task
from edge.runtime import Runtime
from edge.tickhooks import Tick

from hw import codec
from tests.board.procs import BoardProcess

START_S = 20.0


class TickTimes:
    """Every tick's start time (its snapshot's mono_s), from a hook whose queue never fills."""

    def __init__(self, rt: Runtime) -> None:
        self.times: list[float] = []
        rt.add_tick_hook("test-probe", self._on_tick, queue_ticks=100_000)

    def _on_tick(self, tick: Tick) -> None:
        self.times.append(tick.mono_s)

    def rate_hz(self, since_s: float, until_s: float) -> float:
        """Ticks per second of wall time in [since_s, until_s]."""
        n = sum(1 for t in self.times if since_s <= t <= until_s)
        return n / (until_s - since_s)

    def max_gap_s(self, since_s: float, until_s: float) -> float:
        """The longest time between two ticks in [since_s, until_s] (wall seconds)."""
        ts = [t for t in self.times if since_s <= t <= until_s]
        return max((b - a for a, b in itertools.pairwise(ts)), default=float("inf"))


@dataclass
class LiveRun:
    code: int = -1
    running_s: float = 0.0  # when the board first ran (monotonic)
    done_s: float = 0.0  # when the scenario ended
    failure: Exception | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def run_live(
    rt: Runtime, scenario: Callable[[LiveRun], Awaitable[None]], start_s: float = START_S
) -> LiveRun:
    """rt.run() with the scenario as task `test`, from the board's first RUNNING to a
    stop request; an assertion in the scenario is raised here, after the shutdown."""
    res = LiveRun()

    async def drive() -> None:
        try:
            deadline = time.monotonic() + start_s
            while rt.driver.session.board_state != codec.STATE_RUNNING:
                assert time.monotonic() < deadline, f"the board did not run within {start_s} s"
                await asyncio.sleep(0.05)
            res.running_s = time.monotonic()
            await scenario(res)
        except Exception as exc:  # handed to the test after the shutdown
            res.failure = exc
        finally:
            res.done_s = time.monotonic()
            rt.request_stop("test_done")

    rt.add(Task("test", drive))
    res.code = asyncio.run(rt.run())
    if res.failure is not None:
        raise res.failure
    return res


def watchdog_flashes(board: BoardProcess) -> list[dict[str, Any]]:
    """Every lamp change the board made because the host went quiet (its watchdog)."""
    board.next_event("none-such", 0.3)  # take in what the board has reported so far
    return [
        ev for ev in board.events if ev["event"] == "lamps" and ev["fault"] == codec.FAULT_WATCHDOG
    ]


async def wait_until(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        await asyncio.sleep(0.02)
