"""SUMO's actuated program at the device's clearances (`sumo-actuated-ite`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest
from sim.sumo import scenarios
from sim.sumo.controllers import link_clearances
from sim.sumo.controllers.sumo_programs import with_clearances
from sim.sumo.derive import derive_all
from sim.sumo.errors import SimError
from sim.sumo.lockstep import run
from sim.sumo.network import signal_junctions


def _logic(*phases: tuple[float, str], jump: bool = False) -> ET.Element:
    logic = ET.Element("tlLogic", id="J", type="actuated", programID="0", offset="0")
    for n, (duration, state) in enumerate(phases):
        ph = ET.SubElement(logic, "phase", duration=f"{duration:g}", state=state)
        if jump:
            ph.set("next", str((n + 1) % len(phases)))
    return logic


def _phases(logic: ET.Element) -> list[tuple[float, str]]:
    return [(float(p.get("duration", "")), p.get("state", "")) for p in logic.iter("phase")]


def test_each_yellow_takes_its_links_clearances_and_is_followed_by_an_all_red() -> None:
    logic = _logic((30, "GGrr"), (3, "yyrr"), (30, "rrGG"), (3, "rryy"))
    with_clearances(logic, {0: (3.5, 2.0), 1: (4.0, 1.5), 2: (3.0, 3.0), 3: (3.0, 2.5)})
    assert _phases(logic) == [
        (30, "GGrr"),
        (4.0, "yyrr"),  # the longest yellow of the links it ends
        (2.0, "rrrr"),  # and their longest red clearance
        (30, "rrGG"),
        (3.0, "rryy"),
        (3.0, "rrrr"),
    ]


def test_a_green_that_runs_on_through_the_change_stays_green_in_the_all_red() -> None:
    logic = _logic((30, "GGg"), (3, "yyg"), (6, "rrG"), (3, "rry"))
    with_clearances(logic, {0: (3.5, 2.5), 1: (3.5, 2.5), 2: (3.0, 3.0)})
    assert _phases(logic)[2] == (2.5, "rrg")


def test_a_link_the_device_keeps_red_takes_the_longest_clearance() -> None:
    logic = _logic((30, "Gr"), (3, "yr"), (30, "rG"), (3, "ry"))
    with_clearances(logic, {1: (4.5, 3.0)})
    assert _phases(logic)[1:3] == [(4.5, "yr"), (3.0, "rr")]


def test_a_program_that_jumps_by_index_is_refused_untouched() -> None:
    logic = _logic((30, "Gr"), (3, "yr"), jump=True)
    with pytest.raises(SimError, match=r"signal J: .*next="):
        with_clearances(logic, {0: (3.5, 2.0)})
    assert _phases(logic) == [(30, "Gr"), (3, "yr")]


def test_the_clearances_are_the_derived_sites_and_sumo_runs_them() -> None:
    """Every yellow SUMO shows lasts its links' yellow; nothing new turns green for their red."""
    scenario = scenarios.resolve("single")
    (d,) = derive_all(signal_junctions(scenario.net))
    clear = link_clearances(d)
    assert clear and all(y >= 3.0 and r >= 1.0 for y, r in clear.values())

    states: list[str] = []

    def observe(sim: Any, t_ms: int) -> None:
        states.append(sim.trafficlight.getRedYellowGreenState("C"))

    report = run(
        scenario, "sumo-actuated-ite", seed=1, end_s=600, step_length_s=0.1, observer=observe
    )
    assert report["collisions"] == 0
    assert len(states) == 6000
    yellow_from: dict[int, int] = {}
    clearing_until = 0.0  # no link may turn green before this (tenths of a second)
    changes = 0
    for k in range(1, len(states)):
        before, now = states[k - 1], states[k]
        for i, (a, b) in enumerate(zip(before, now, strict=True)):
            if b == "y" and a != "y":
                yellow_from[i] = k
            elif a == "y" and b == "r":
                changes += 1
                assert k - yellow_from.get(i, 0) >= clear[i][0] * 10 - 1e-6, f"link {i} at {k}"
                clearing_until = max(clearing_until, k + clear[i][1] * 10)
            elif b in "Gg" and a not in "Gg":
                assert k >= clearing_until - 1e-6, f"link {i} green at {k}, clearing"
    assert changes > 20
