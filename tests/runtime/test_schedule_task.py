"""The runtime's schedule task: a SetPlan when the local-clock plan changes, none otherwise."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from edge.config import load_config
from edge.control.messages import SetPlan
from edge.runtime import Runtime, jitter_of

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "four_leg_protected.toml"


def test_schedule_issues_setplan_when_the_plan_changes() -> None:
    config = load_config(EXAMPLE)
    now = [dt.datetime(2026, 11, 25, 6, 59)]  # a Wednesday: "day" until 07:00, then "peak"

    async def main() -> list[object]:
        rt = Runtime(config, "/nonexistent-port", wall_clock=lambda: now[0])
        task = asyncio.create_task(rt._schedule())
        await asyncio.sleep(0.05)
        issued = list(rt.driver._commands)
        now[0] = dt.datetime(2026, 11, 25, 7, 0)
        await asyncio.sleep(1.2)  # one schedule poll
        rt.request_stop("test")
        await asyncio.wait_for(task, 2.0)
        return [*issued, "|", *rt.driver._commands]

    got = asyncio.run(main())
    split = got.index("|")
    before, after = got[:split], got[split + 1 :]
    assert SetPlan("peak") not in before
    assert after[-1] == SetPlan("peak")
    assert after.count(SetPlan("peak")) == 1


def test_jitter_percentiles() -> None:
    j = jitter_of([float(x) for x in range(100)])
    assert (j.ticks, j.p50_ms, j.p99_ms, j.max_ms) == (100, 49.5, 99.0, 99.0)
    assert jitter_of([]).ticks == 0
