"""`edge run --sim`: the real runtime, a virtual board on a pty and SUMO in wall-clock time."""

from __future__ import annotations

import asyncio
import io

from sim.realtime import simulate


def test_realtime_single_reaches_run_and_sumo_sees_greens() -> None:
    out = io.StringIO()
    summary = asyncio.run(
        simulate("single", speed=4.0, duration_s=20.0, out=out, view_every_s=2.0, signals=False)
    )
    assert summary.code == 0, out.getvalue()
    assert summary.modes[:3] == ["startup_flash", "startup_all_red", "run"], summary.modes
    assert summary.green_steps > 0
    assert summary.conflicts == []
    assert summary.sim_s >= 70.0  # 20 s wall at x4, less start-up and the last sleep
    view = out.getvalue().splitlines()
    assert any(" run " in line and "board RUN" in line for line in view), out.getvalue()
    assert "\033[" not in out.getvalue()  # no colour when not a terminal
