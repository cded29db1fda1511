"""Inputs the core cannot use are reported as events; the intersection keeps running."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.config import load_site
from edge.control.controller import Controller
from edge.control.messages import Inputs, Lamp

FOUR_LEG = Path(__file__).resolve().parents[2] / "examples" / "four_leg_protected.toml"


def test_garbage_inputs_give_events_and_no_fault() -> None:
    ctl = Controller(load_site(FOUR_LEG))
    bad: list[Any] = [
        Inputs(occupied=None),  # type: ignore[arg-type]
        Inputs(occupied=frozenset(["x", 999])),  # type: ignore[list-item]
        Inputs(actuations=((1, "a"), (99, 1), "q")),  # type: ignore[arg-type]
        Inputs(commands=(object(), None, "flash")),
    ]
    names = []
    for k, inp in enumerate(bad * 3):
        out = ctl.step(k * 100, inp)
        names += [e.name for e in out.events]
        assert out.fault is None
    assert names.count("input_error") >= 5 and names.count("command_rejected") == 9
    # Still a working controller afterwards: start-up completes and greens come up.
    for now in range(1200, 12000, 100):
        out = ctl.step(now, Inputs())
    assert out.mode == "run" and Lamp.GREEN in out.phases
