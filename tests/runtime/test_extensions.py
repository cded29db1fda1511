"""The runtime's extensions (edge/extensions.py) against a real Runtime and the virtual board.

One extension's task fails at every start: it is started again after the project's
backoff (edge/backoff.py: each wait within [floor, ceiling], the ceiling doubling), and
its tick hook comes back with it. Another's per-tick work sleeps 1 s on every tick: it
loses its oldest ticks (counted, reported to it) and the tick keeps 10 Hz, well
under the board's 500 ms watchdog, which never fires.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from pathlib import Path

import pytest
from edge import runtime
from edge.config import load_config
from edge.extensions import Extension
from edge.runtime import Runtime
from edge.tickhooks import Tick

from tests.board.procs import CROSSING, BoardProcess
from tests.runtime.live import LiveRun, TickTimes, run_live, wait_until, watchdog_flashes

MAX_GAP_S = 0.45  # a tick is due every 0.1 s; the board flashes after 0.5 s without one
SLOW_S = 1.0  # the slow extension's work on each tick


class Failing(Extension):
    """Its task fails at every start; its per-tick work counts the ticks of each start."""

    name = "failing"
    ticks = True

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.ticks_seen: list[int] = []  # per start

    async def run(self) -> None:
        self.starts.append(time.monotonic())
        self.ticks_seen.append(0)
        await asyncio.sleep(0.5)
        raise RuntimeError(f"injected failure, start {len(self.starts)}")

    def on_tick(self, tick: Tick) -> None:
        self.ticks_seen[-1] += 1


class Slow(Extension):
    """Its per-tick work takes SLOW_S; its task only waits."""

    name = "slow"
    ticks = True
    queue_ticks = 5

    def __init__(self) -> None:
        self.handled = 0
        self.dropped = 0
        self.in_tick = threading.Event()

    def on_tick(self, tick: Tick) -> None:
        self.in_tick.set()
        time.sleep(SLOW_S)
        self.handled += 1

    def ticks_dropped(self, ticks: int) -> None:
        self.dropped += ticks


def test_failing_task_restarts_with_backoff_and_slow_tick_work_never_delays_the_tick(
    board: BoardProcess, caplog: pytest.LogCaptureFixture
) -> None:
    failing, slow = Failing(), Slow()
    rt = Runtime(load_config(CROSSING), board.path, extensions=[failing, slow])
    ticks = TickTimes(rt)

    async def scenario(run: LiveRun) -> None:
        await wait_until(lambda: len(failing.starts) >= 4, 15, "four starts of `failing`")
        await wait_until(lambda: slow.dropped > 0, 5, "`slow` fell behind")

    with caplog.at_level(logging.INFO):
        run = run_live(rt, scenario)
    assert run.code == 0 and rt.reason == "test_done", caplog.text[-3000:]
    # restarted with the backoff: every wait is logged and lies in [floor, ceiling]
    waits = [float(s) for s in re.findall(r"task_restart task=failing in_s=([\d.]+)", caplog.text)]
    assert len(waits) >= 3
    floor = runtime.RESTART_MIN_S / 2
    for k, wait in enumerate(waits[:4]):
        assert floor - 0.05 <= wait <= runtime.RESTART_MIN_S * 2**k + 0.05, waits
    gaps = [b - a for a, b in zip(failing.starts, failing.starts[1:], strict=False)]
    assert all(g >= floor - 0.05 for g in gaps), gaps
    assert caplog.text.count("task_failed task=failing") >= len(failing.starts) - 1
    # its tick hook came back with every start (the last one may be cut by the stop)
    assert all(n > 0 for n in failing.ticks_seen[:-1]), failing.ticks_seen
    # the slow per-tick work: ticks dropped, reported to it; the tick never waited on it
    assert slow.in_tick.is_set() and slow.handled >= 1 and slow.dropped > 0
    assert rt.hooks["slow"].dropped >= slow.dropped
    gap = ticks.max_gap_s(run.running_s, run.done_s)
    print(f"max tick gap with a {SLOW_S} s per-tick extension and a failing one: {gap:.3f} s")
    assert gap < MAX_GAP_S
    assert ticks.rate_hz(run.running_s, run.done_s) > 9.0
    assert not watchdog_flashes(board)


def test_an_extension_name_cannot_take_another_task(tmp_path: Path) -> None:
    rt = Runtime(load_config(CROSSING), "/nonexistent-port", extensions=[Slow()])
    for name in ("slow", "control-tick", ""):
        ext = Slow()
        ext.name = name
        with pytest.raises(runtime.ExtensionError, match="taken"):
            rt.add(ext)
