"""Coordination: the coordinated phases are green at every local zero, force-offs
hold, and an out-of-step timer is pulled into step by the transition method."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path
from typing import Any

import pytest
from edge.config import ConfigError, site_from_dict
from edge.control import coordination
from edge.control.controller import Controller
from edge.control.messages import Inputs, Lamp, SetMode, SetPlan

FOUR_LEG = Path(__file__).resolve().parents[2] / "examples" / "four_leg_protected.toml"


def raw() -> dict[str, Any]:
    return tomllib.loads(FOUR_LEG.read_text())


def drive(transition: str, seed: int, minutes: int = 15) -> tuple[Controller, list[Any]]:
    cfg = raw()
    cfg["patterns"]["arterial"]["transition"] = transition
    site = site_from_dict(cfg)
    ctl = Controller(site)  # free on the day plan, then coordinated from 60 s
    rng = random.Random(seed)
    dets = [d.id for d in site.detectors]
    occ: frozenset[int] = frozenset()
    outs = []
    for now in range(0, minutes * 60_000, 100):
        if rng.random() < 0.05:
            occ = frozenset(d for d in dets if rng.random() < 0.3)
        cmds = (SetPlan("peak"),) if now == 60_000 else ()
        outs.append(ctl.step(now, Inputs(occupied=occ, commands=cmds)))
    return ctl, outs


@pytest.mark.parametrize("transition", ["best", "shortway", "longway", "dwell"])
@pytest.mark.parametrize("seed", [1, 2])
def test_comes_into_step_then_coordinated_phases_green_at_local_zero(
    transition: str, seed: int
) -> None:
    _, outs = drive(transition, seed)
    in_step = [o.t_ms for o in outs for e in o.events if e.name == "offset_in_step"]
    assert in_step, "never came into step"
    cycle, offset = 100_000, 20_000
    # Short or long way moves at most 20 % of a cycle per cycle: in step within 6 cycles.
    assert in_step[0] <= 60_000 + 6 * cycle
    p2, p6 = 1, 5  # phase indexes of the coordinated phases 2 and 6
    after = [o for o in outs if o.t_ms > in_step[-1] and (o.t_ms - offset) % cycle == 0]
    assert len(after) >= 3
    for o in after:
        assert o.phases[p2] == Lamp.GREEN and o.phases[p6] == Lamp.GREEN, o.t_ms


def test_non_coordinated_phases_end_by_their_force_off() -> None:
    ctl, outs = drive("best", 5)
    assert ctl.coord is not None
    pts = ctl.coord
    start = next(o.t_ms for o in outs for e in o.events if e.name == "offset_in_step")
    greens: dict[int, int] = {}
    for o in outs:
        if o.t_ms <= start:
            continue
        c = (o.t_ms - 20_000) % 100_000
        for i, lamp in enumerate(o.phases):
            if lamp == Lamp.GREEN and not pts.coord[i]:
                greens.setdefault(i, o.t_ms)
                # Green past its force-off only for as long as its minimums need.
                late = (c - pts.force_off[i]) % 100_000
                held = o.t_ms - greens[i]
                assert late > 50_000 or held <= 21_000 or late == 0, (o.t_ms, i, c)
            else:
                greens.pop(i, None)


def test_free_mode_ignores_the_pattern() -> None:
    site = site_from_dict(raw())
    ctl = Controller(site, plan="peak")
    out = ctl.step(0, Inputs(commands=(SetMode("free"),)))
    assert ctl.coord is None and "mode_coordination" in [e.name for e in out.events]
    out = ctl.step(100, Inputs(commands=(SetMode("turbo"),)))
    assert [e.name for e in out.events] == ["command_rejected"]


def test_step_shift_rates() -> None:
    assert coordination.step_shift(10_000, 1_000, 100_000, "shortway", False) == 9_800
    assert coordination.step_shift(90_000, 1_000, 100_000, "longway", False) == 90_200
    assert coordination.step_shift(90_000, 1_000, 100_000, "best", False) == 90_200
    assert coordination.step_shift(10_000, 1_000, 100_000, "dwell", False) == 10_000
    assert coordination.step_shift(10_000, 1_000, 100_000, "dwell", True) == 11_000
    assert coordination.step_shift(99_500, 1_000, 100_000, "dwell", True) == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cycle_s": 90}, "ring 1 splits add up to 100 s, not the 90 s cycle"),
        ({"coord_phases": [2, 3]}, "must be in one barrier group"),
        (
            {"splits": {"1": 14, "2": 40, "3": 14, "4": 32, "5": 14, "6": 45, "7": 14, "8": 27}},
            "barrier group 1 splits differ",
        ),
        (
            {"splits": {"1": 10, "2": 44, "3": 14, "4": 32, "5": 10, "6": 44, "7": 14, "8": 32}},
            "phase 1 split 10 s is below its minimum service 10.5 s",
        ),
        ({"offset_s": 100}, "offset 100 s is not below the cycle"),
    ],
)
def test_pattern_errors(change: dict[str, Any], message: str) -> None:
    cfg = raw()
    cfg["patterns"]["arterial"].update(change)
    with pytest.raises(ConfigError) as err:
        site_from_dict(cfg)
    assert any(message in p for p in err.value.problems), err.value.problems
