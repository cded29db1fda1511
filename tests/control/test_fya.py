"""Flashing-yellow-arrow left turns: green arrow, steady yellow, flashing yellow, red."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from edge.config import ConfigError, site_from_dict
from edge.control.controller import Controller
from edge.control.messages import Inputs, Lamp, Outputs
from edge.control.monitor import Monitor

T_JUNCTION = Path(__file__).resolve().parents[2] / "examples" / "t_junction.toml"


def raw() -> dict:  # type: ignore[type-arg]
    return tomllib.loads(T_JUNCTION.read_text())


def displays(detector_on: dict[int, tuple[int, int]], end_ms: int) -> list[tuple[int, Lamp]]:
    """(time, overlap B display) at every change."""
    site = site_from_dict(raw())
    ctl = Controller(site)
    b = [o.id for o in site.overlaps].index("B")
    seen: list[tuple[int, Lamp]] = []
    for now in range(0, end_ms, 100):
        occ = frozenset(d for d, (on, off) in detector_on.items() if on <= now < off)
        out = ctl.step(now, Inputs(occupied=occ))
        assert out.fault is None
        if not seen or seen[-1][1] != out.overlaps[b]:
            seen.append((now, out.overlaps[b]))
    return seen


def test_fya_sequence_follows_protected_then_permissive() -> None:
    # Start-up: 6 s flash, 3 s all red; 2+6 green at 9.0 (min green 12 s) with
    # every phase called, so 2 then yields to 1 via the barrier round trip.
    seq = displays({}, 120_000)
    lamps = [lamp for _, lamp in seq]
    assert lamps[:2] == [Lamp.FLASH_RED, Lamp.RED]
    # While 2 is green the westbound left turns permissively behind the flashing arrow.
    assert (9000, Lamp.FLASH_YELLOW) in seq
    i = lamps.index(Lamp.FLASH_YELLOW)
    # It ends through a steady yellow as long as phase 2's yellow (4.0 s), then red.
    (t_y, y), (t_r, r) = seq[i + 1], seq[i + 2]
    assert (y, r) == (Lamp.YELLOW, Lamp.RED) and t_r - t_y == 4000
    # Later the protected phase 1 shows a green arrow, then its own yellow (3.0 s).
    j = lamps.index(Lamp.GREEN)
    (t_g, _), (t_y2, y2), (t_r2, r2) = seq[j], seq[j + 1], seq[j + 2]
    assert (y2, r2) == (Lamp.YELLOW, Lamp.RED) and t_r2 - t_y2 == 3000
    assert t_y2 - t_g >= 6000  # phase 1's min green


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"permissive_parents": []}, "needs permissive_parents"),
        ({"permissive_parents": [1]}, "both a parent and a permissive parent"),
        ({"permissive_parents": [6]}, "must be in one ring"),
        ({"trail_green_s": 2.0}, "has no trailing green"),
        ({"type": "normal"}, "permissive_parents needs type"),
    ],
)
def test_fya_config_errors(change: dict, message: str) -> None:  # type: ignore[type-arg]
    cfg = raw()
    cfg["overlaps"][1].update(change)
    with pytest.raises(ConfigError) as err:
        site_from_dict(cfg)
    assert any(message in p for p in err.value.problems), err.value.problems


def _outputs(site_phases: tuple[Lamp, ...], ovs: tuple[Lamp, ...]) -> Outputs:
    return Outputs(0, "run", (), site_phases, (Lamp.DARK,) * len(site_phases), ovs)


def test_monitor_catches_fya_display_errors() -> None:
    site = site_from_dict(raw())
    phases_red = (Lamp.RED,) * len(site.phases)
    p2_green = tuple(Lamp.GREEN if p.id == 2 else Lamp.RED for p in site.phases)
    mon = Monitor(site)
    assert mon.check(0, _outputs(phases_red, (Lamp.RED, Lamp.RED))) is None
    assert mon.check(2000, _outputs(p2_green, (Lamp.RED, Lamp.FLASH_YELLOW))) is None
    reason = mon.check(9000, _outputs(p2_green, (Lamp.RED, Lamp.RED)))
    assert reason == "overlap B: flashing yellow arrow ended without yellow"
    mon = Monitor(site)
    mon.check(0, _outputs(phases_red, (Lamp.RED, Lamp.RED)))
    reason = mon.check(2000, _outputs(p2_green, (Lamp.RED, Lamp.GREEN)))
    assert reason == "overlap B: green arrow without its protected phase green"
