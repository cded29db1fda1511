"""SPaT in the outputs: each phase's display and its min/max/likely end times."""

from __future__ import annotations

from pathlib import Path

from edge.config import load_site
from edge.control.controller import Controller
from edge.control.messages import Inputs, Lamp

FOUR_LEG = Path(__file__).resolve().parents[2] / "examples" / "four_leg_protected.toml"


def test_spat_follows_the_phases() -> None:
    site = load_site(FOUR_LEG)
    ctl = Controller(site)
    out = ctl.step(0, Inputs())
    assert [t.lamp for t in out.spat] == [Lamp.FLASH_RED, Lamp.FLASH_YELLOW] + [
        Lamp.FLASH_RED
    ] * 3 + [Lamp.FLASH_YELLOW, Lamp.FLASH_RED, Lamp.FLASH_RED]
    # Start-up: 6 s flash + 3 s all red, then 2 and 6 green with a 10 s minimum.
    for now in range(0, 9100, 100):
        out = ctl.step(now, Inputs())
    p2 = out.spat[1]
    assert (p2.phase, p2.lamp, p2.min_end_ms) == (2, Lamp.GREEN, 19000)
    # Start-up placed calls on every phase, so the max timer (45 s) runs from 9.0 s.
    assert p2.max_end_ms == 9000 + 45000
    assert out.spat[0].lamp == Lamp.RED and out.spat[0].min_end_ms is None
    # Yellow: all three ends are the end of the yellow.
    for now in range(9100, 60000, 100):
        out = ctl.step(now, Inputs())
        if out.phases[1] == Lamp.YELLOW:
            break
    y = out.spat[1]
    assert y.lamp == Lamp.YELLOW
    assert y.min_end_ms == y.max_end_ms == y.likely_end_ms == now + 4000
    assert out.spat == tuple(out.spat)  # frozen, comparable
