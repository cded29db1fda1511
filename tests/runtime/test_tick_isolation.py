"""Nothing outside the control core delays or stops the control tick.

The real runtime loop, in this process, drives the virtual IO board on a real pty with
all three of its tick hooks: the page's recorder (`web`, a real uvicorn on loopback),
the event log (`event-log`, SQLite) and the central link (`central`, against a real
Mosquitto). Each hook is made to raise three times and then to stall for 2 s
(time.sleep) in the middle of the run: the tick keeps 10 Hz (its longest gap stays
well under the board's 500 ms watchdog, which never fires), every failure is logged
with the hook's name, every hook goes on afterwards, and central's counts lose no tick.
On the old code an exception in `on_tick` stopped `control-tick` (task_failed, the
board to flash) and a 2 s stall in it was a 2 s gap: the board flashed by watchdog.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from edge.config import load_config
from edge.device.central import Central, load_central
from edge.device.eventlog import EventLogExtension
from edge.runtime import Runtime
from edge.store import Store
from edge.tickhooks import Tick, TickHook
from edge.web.server import WebPage

from tests.board.procs import CROSSING, BoardProcess
from tests.link.harness import make_keys, running_broker
from tests.runtime.live import LiveRun, TickTimes, run_live, wait_until, watchdog_flashes

HOOKS = ("web", "event-log", "central")
RAISES = 3  # fewer than MAX_FAILURES: each hook goes on afterwards
STALL_S = 2.0
MAX_GAP_S = 0.45  # a tick is due every 0.1 s; the board flashes after 0.5 s without one


class Fault:
    """Stands in for a hook's function: raises RAISES times, stalls STALL_S once, then
    hands the ticks to the hook's own function again."""

    def __init__(self, hook: TickHook) -> None:
        self.hook, self.own = hook, hook.fn
        self.raises, self.stalled, self.after, self.events_after = RAISES, False, 0, 0
        hook.fn = self

    def __call__(self, tick: Tick) -> None:
        if self.raises:
            self.raises -= 1
            raise RuntimeError(f"injected into {self.hook.name}")
        if not self.stalled:
            self.stalled = True
            time.sleep(STALL_S)
        self.after += 1
        self.events_after += len(tick.outputs.events) if tick.outputs is not None else 0
        self.own(tick)


def test_failing_and_stalled_hooks_never_delay_the_tick(
    tmp_path: Path, board: BoardProcess, caplog: pytest.LogCaptureFixture
) -> None:
    keys = make_keys(tmp_path / "keys")
    with running_broker(tmp_path / "broker") as broker:
        b = broker.client_config("hz-iso-1")
        device = tmp_path / "device.toml"
        device.write_text(
            f'[device]\nid = "hz-iso-1"\nsite = "{CROSSING}"\nstore = "{tmp_path / "edge.db"}"\n'
            f'trusted_keys = ["{keys.central_pub}"]\n\n[broker]\nhost = "{b.host}"\n'
            f'port = {b.port}\ncafile = "{b.cafile}"\ncertfile = "{b.certfile}"\n'
            f'keyfile = "{b.keyfile}"\n'
        )
        cfg = load_central(str(device))
        assert cfg is not None
        rt = Runtime(
            load_config(CROSSING),
            board.path,
            extensions=[Central(cfg), EventLogExtension(tmp_path / "log.db"), WebPage(0)],
        )
        ticks = TickTimes(rt)
        faults: dict[str, Fault] = {}

        async def scenario(run: LiveRun) -> None:
            # the central link adds its hook when its task starts; let it connect
            await wait_until(lambda: rt.link is not None and rt.link.link_status()["connected"],
                             15, "the central link connected")  # fmt: skip
            await asyncio.sleep(1.0)
            run.extra["faults_s"] = time.monotonic()
            run.extra["faults_ms"] = time.time_ns() // 1_000_000
            for name in HOOKS:
                faults[name] = Fault(rt.hooks[name])
            await asyncio.sleep(STALL_S + 2.0)
            await wait_until(lambda: all(f.after > 5 for f in faults.values()), 5,
                             "every hook going on after its faults")  # fmt: skip
            await wait_until(lambda: faults["event-log"].events_after > 0, 10,
                             "a controller event after the event log's stall")  # fmt: skip
            await asyncio.sleep(1.5)  # the event log writes once a second

        with caplog.at_level("INFO"):
            run = run_live(rt, scenario)
    assert run.code == 0 and rt.reason == "test_done", caplog.text[-3000:]
    gap = ticks.max_gap_s(run.running_s, run.done_s)
    print(f"max tick gap with {len(HOOKS)} hooks raising and stalling {STALL_S} s: {gap:.3f} s")
    assert gap < MAX_GAP_S
    assert ticks.max_gap_s(run.extra["faults_s"], run.done_s) < MAX_GAP_S
    rate = ticks.rate_hz(run.extra["faults_s"], run.done_s)
    print(f"ticks per second from the faults on: {rate:.2f}")
    assert rate > 9.0  # 10 Hz, deadline to deadline
    assert not watchdog_flashes(board)
    for name in HOOKS:
        assert f"tick_hook_failed hook={name} tick=" in caplog.text
        assert f"RuntimeError('injected into {name}')" in caplog.text
        health = faults[name].hook.health()  # the hook as it ran (a link's ends with it)
        assert not health["disabled"] and health["failures"] == RAISES, (name, health)
    assert faults["central"].hook.dropped == 0  # a 2 s stall is within its queue: no count lost
    assert "tick_hook_disabled" not in caplog.text and "task_failed" not in caplog.text
    # the event log went on: the controller's events after the stall are in SQLite
    store = Store(tmp_path / "log.db")
    try:
        after = [r for r in store.recent_events(1000) if r[0] > run.extra["faults_ms"]]
    finally:
        store.close()
    assert after, "no event logged after the event log's faults"
