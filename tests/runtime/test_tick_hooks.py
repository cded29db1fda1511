"""Tick hooks (edge/tickhooks.py) on their own: a failing hook is logged by name, goes on,
and is disabled after repeated failures; a stalled one loses its oldest ticks, counted,
logged and reported; every tick published is accounted for (handed over, failed,
dropped and reported, or still queued); the control tick's side never waits on a hook."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from edge.tickhooks import MAX_FAILURES, STALLED_S, Tick, TickHook, TickHooks
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.hypothesis_profiles import examples

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "four_leg_protected.toml"


def tick(n: int) -> Tick:
    return Tick(n, float(n) / 10, n * 100, None, None, (), (), ())


def test_a_failing_hook_is_logged_goes_on_and_is_disabled_after_repeated_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[int] = []
    failing = {1, 2, 5, 6, 7, 8, 9, 10, 11}
    disabled: list[bool] = []

    def fn(t: Tick) -> None:
        if t.n in failing:
            raise ZeroDivisionError(f"bug at tick {t.n}")
        seen.append(t.n)

    hook = TickHook("page", fn, queue_ticks=100, on_disabled=lambda: disabled.append(True))
    with caplog.at_level(logging.INFO, logger="edge.runtime.hooks"):
        for n in range(1, 13):
            hook.put(tick(n))
        while hook.take_one(block=False):
            pass
    # two failures, then it goes on; five in a row (5..9) disable it: 10, 11, 12 never run
    assert seen == [3, 4]
    assert hook.disabled and disabled == [True]
    assert hook.failures == 2 + MAX_FAILURES and hook.delivered == 2
    text = caplog.text
    assert "tick_hook_failed hook=page tick=1 error=ZeroDivisionError('bug at tick 1')" in text
    assert "Traceback" in text  # the first of a run of failures is logged with its traceback
    assert f"tick_hook_disabled hook=page after {MAX_FAILURES} failures in a row" in text
    hook.put(tick(13))  # a disabled hook takes nothing more
    assert hook.health()["queued"] == 0


def test_a_stalled_hook_drops_its_oldest_ticks_counted_logged_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inside, release = threading.Event(), threading.Event()
    seen: list[int] = []
    reported: list[int] = []

    def fn(t: Tick) -> None:
        if t.n == 1:
            inside.set()
            release.wait(10)
        seen.append(t.n)

    hooks = TickHooks()
    hook = hooks.add("slow", fn, queue_ticks=5, on_dropped=reported.append)
    hooks.start()
    with caplog.at_level(logging.INFO, logger="edge.runtime.hooks"):
        hooks.publish(tick(1))
        assert inside.wait(10)
        t0 = time.monotonic()
        for n in range(2, 21):  # the hook is stuck in tick 1: these never wait on it
            hooks.publish(tick(n))
        publish_s = time.monotonic() - t0
        hook.check(time.monotonic() + STALLED_S + 0.1)  # the supervisor's look, later
        release.set()
        hooks.stop(10)
    assert seen == [1, 16, 17, 18, 19, 20]  # the newest five were kept
    assert reported == [14] and hook.dropped == 14
    assert "tick_hook_stalled hook=slow" in caplog.text
    assert "tick_hook_behind hook=slow dropped=14" in caplog.text
    assert publish_s < 1.0  # generous: 19 appends to a deque


def test_stop_drains_what_is_queued() -> None:
    seen: list[int] = []
    hooks = TickHooks()
    hooks.add("log", lambda t: seen.append(t.n), queue_ticks=50)
    for n in range(30):
        hooks.publish(tick(n))
    hooks.start()
    hooks.stop(10)
    assert seen == list(range(30))


def test_a_hook_name_is_added_once_and_a_queue_holds_a_tick() -> None:
    hooks = TickHooks()
    hooks.add("a", lambda t: None)
    with pytest.raises(ValueError, match="'a' is already added"):
        hooks.add("a", lambda t: None)
    with pytest.raises(ValueError, match="queue_ticks must be >= 1, not 0"):
        hooks.add("b", lambda t: None, queue_ticks=0)


def test_the_snapshot_is_a_copy_of_the_controller() -> None:
    from edge.config import load_config
    from edge.runtime import Runtime

    rt = Runtime(load_config(EXAMPLE), "/nonexistent-port")
    now = rt.board.clock_ms()
    for _ in range(50):
        now += 100
        rt.driver.tick(now)
    snap = rt.tick_snapshot()
    ctl = rt.driver.controller
    assert snap.now_ms == ctl.last_now and snap.outputs is rt.driver.outputs
    assert list(snap.intervals) == list(ctl.iv) and list(snap.calls) == list(ctl.vcall)
    for _ in range(100):
        now += 100
        rt.driver.tick(now)
    assert snap.now_ms != ctl.last_now  # the controller moved on; the snapshot did not
    with pytest.raises(AttributeError):
        snap.now_ms = 0  # type: ignore[misc]


# What a hook's worker does, step by step: the tick publishes, the worker takes one
# (the hook returning or raising), in any order.
OPS = st.lists(st.sampled_from(["put", "ok", "raise"]), max_size=200)


@settings(max_examples=examples(200), deadline=None)
@given(ops=OPS, queue_ticks=st.integers(1, 8))
@example(ops=["put"] * 10 + ["ok"], queue_ticks=3)
@example(ops=["put", "raise"] * 6, queue_ticks=1)
def test_every_tick_is_handed_over_or_reported_dropped(ops: list[str], queue_ticks: int) -> None:
    handled: list[int] = []
    reported: list[int] = []
    outcome = ["ok"]

    def fn(t: Tick) -> None:
        handled.append(t.n)
        if outcome[0] == "raise":
            raise RuntimeError("injected")

    hook = TickHook("h", fn, queue_ticks=queue_ticks, on_dropped=reported.append)
    published = 0
    for op in ops:
        if op == "put":
            published += 1
            hook.put(tick(published))
        else:
            outcome[0] = op
            hook.take_one(block=False)
    queued = hook.health()["queued"]
    assert handled == sorted(set(handled))  # in order, none twice
    if hook.disabled:
        assert queued == 0 and hook.failures >= MAX_FAILURES
        return
    # every tick was handed over, or dropped (and reported once the worker came back),
    # or is still queued; drops not yet reported are the ones since the last take
    assert len(handled) + hook.dropped + queued == published
    assert sum(reported) <= hook.dropped
    hook.take_one(block=False)
    assert sum(reported) == hook.dropped


def test_central_reports_the_ticks_its_counts_miss(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The central link's hook fell behind by more than its queue: central is told how many
    ticks its counts miss (a `counts_gap` event in its event stream), and it is logged."""
    import asyncio

    from edge.config import load_config
    from edge.device.central import CENTRAL_QUEUE_TICKS, Central
    from edge.link.config import load_device_config
    from edge.runtime import Runtime

    from tests.board.procs import CROSSING
    from tests.link.harness import make_keys

    keys = make_keys(tmp_path / "keys")
    device = tmp_path / "device.toml"
    device.write_text(
        f'[device]\nid = "hz-gap-1"\nsite = "{CROSSING}"\nstore = "{tmp_path / "edge.db"}"\n'
        f'trusted_keys = ["{keys.central_pub}"]\n\n[broker]\nhost = "127.0.0.1"\nport = 1\n'
    )

    async def main() -> list[tuple[str, str]]:
        rt = Runtime(load_config(CROSSING), "/nonexistent-port")
        central = Central(load_device_config(device))
        rt.add(central)
        link = central.new_link()  # built, never connected
        try:
            hook = rt.hook_for(central)  # as its task's start adds it
            now = rt.board.clock_ms()
            for _ in range(CENTRAL_QUEUE_TICKS + 100):  # the hook's thread never ran
                now += 100
                rt.driver.tick(now)
                hook.put(rt.tick_snapshot())
            while hook.take_one(block=False):
                pass
            link._on_core_events()
            return [(e.name, e.detail) for e in link.events if e.source == "link"]
        finally:
            link.db.shutdown(wait=True)
            link.store.close()

    with caplog.at_level(logging.INFO):
        link_events = asyncio.run(main())
    assert link_events == [
        ("counts_gap", "100 ticks not counted: the link's tick hook fell behind")
    ]
    assert "central_counts_gap ticks=100" in caplog.text
    assert "tick_hook_behind hook=central dropped=100" in caplog.text


def test_the_event_log_marks_where_events_may_be_missing(tmp_path: Path) -> None:
    from edge.config import load_config
    from edge.device.eventlog import EventLog, EventLogExtension
    from edge.runtime import Runtime
    from edge.tickhooks import QUEUE_TICKS

    rt = Runtime(load_config(EXAMPLE), "/nonexistent-port")
    ext = rt.add(EventLogExtension(tmp_path / "log.db"))
    log = EventLog(tmp_path / "log.db", rt, ext)
    hook = rt.hook_for(ext)
    ext.log = log  # as its task's start does
    try:
        now = rt.board.clock_ms()
        for _ in range(QUEUE_TICKS + 10):
            now += 100
            rt.driver.tick(now)
            hook.put(rt.tick_snapshot())
        while hook.take_one(block=False):
            pass
        rows = log._take()
    finally:
        log.store.close()
    gaps = [r for r in rows if r[1] == "event_log_gap"]
    assert [r[3] for r in gaps] == ["10 ticks' events were not logged"]
    assert rows.index(gaps[0]) == 0  # before the events of the ticks that were kept
