"""LoadSite: new timing for the same intersection, applied at a safe point."""

from __future__ import annotations

import tomllib
from pathlib import Path

from edge.config import site_from_dict
from edge.control.controller import Controller
from edge.control.messages import Inputs, Lamp, LoadSite, SetPlan

FOUR_LEG = Path(__file__).resolve().parents[2] / "examples" / "four_leg_protected.toml"


def test_new_timing_waits_for_the_clearance_and_then_applies() -> None:
    raw = tomllib.loads(FOUR_LEG.read_text())
    ctl = Controller(site_from_dict(raw))
    raw["plans"]["day"]["phase"]["2"]["yellow_s"] = 5.0
    raw["detectors"][3]["locking"] = False
    new = site_from_dict(raw)
    yellow_at = None
    names: list[tuple[int, str]] = []
    for now in range(0, 120_000, 100):
        occupied = frozenset({4}) if 30_000 <= now < 30_500 else frozenset[int]()
        out = ctl.step(now, Inputs(occupied=occupied))
        if yellow_at is None and out.phases[1] == Lamp.YELLOW:
            yellow_at = now
            out = ctl.step(now + 50, Inputs(commands=(LoadSite(new, "day"),)))
        names += [(e.t_ms, e.name) for e in out.events]
    assert yellow_at is not None
    loaded = next(t for t, n in names if n == "site_loaded")
    # The running yellow (4.0 s) kept its length; the new timing came after the clearance.
    assert loaded >= yellow_at + 4000 + 1500
    assert ctl.site is new and ctl.plan.timings[2].yellow_ms == 5000


def test_a_plan_change_before_the_safe_point_keeps_the_new_timing() -> None:
    """`edge run`'s schedule changes the plan (SetPlan) while central's new timing waits
    for its safe point: the new timing applies, with the schedule's plan; it used to be
    dropped, the core running the old timing while central was told it applied."""
    raw = tomllib.loads(FOUR_LEG.read_text())
    ctl = Controller(site_from_dict(raw))
    raw["plans"]["night"]["defaults"]["max_green_s"] = 27
    new = site_from_dict(raw)
    sent = False
    for now in range(0, 120_000, 100):
        out = ctl.step(now, Inputs())
        if out.phases[1] == Lamp.YELLOW and not sent:  # not a safe point: both wait
            ctl.step(now + 50, Inputs(commands=(LoadSite(new, "day"), SetPlan("night"))))
            sent = True
    assert sent and ctl.site is new and ctl.plan.id == "night"
    assert ctl.plan.timings[4].max_green_ms == 27_000


def test_a_different_intersection_or_unknown_plan_is_refused() -> None:
    raw = tomllib.loads(FOUR_LEG.read_text())
    ctl = Controller(site_from_dict(raw))
    moved = tomllib.loads(FOUR_LEG.read_text())
    moved["detectors"][0]["input"] = 40
    cmds = (LoadSite(site_from_dict(moved), "day"), LoadSite(site_from_dict(raw), "evening"))
    out = ctl.step(0, Inputs(commands=cmds))
    assert [e.detail for e in out.events if e.name == "command_rejected"] == [
        "new timing changes the detector wiring",
        "unknown plan 'evening'",
    ]
