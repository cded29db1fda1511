"""Derivation with pedestrian crossings: small netconvert networks, real SUMO.

Each crosswalk walks with a phase that (with the phases beside it) sends no
protected stream across it; walk 7 s, clearance from the crossing's length;
turning vehicles that SUMO makes yield to the walkers show 'g'; the runs
keep every pedestrian and vehicle moving without a collision.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from edge.control.geometry import Service, Stream, ped_conflict
from edge.control.site import Recall
from sim.sumo.derive import PED_SPEED_MPS, WALK_S, derive
from sim.sumo.lockstep import run
from sim.sumo.network import signal_junctions
from sim.sumo.scenarios import resolve

from tests.sim.netbuild import build_raw

PEDS = ("--sidewalks.guess", "--crossings.guess")


def _four_leg(tmp: Path, *, one_way_east: bool = False, lanes: int = 2) -> Path:
    nodes = (
        '<node id="C" x="0" y="0" type="traffic_light"/>'
        '<node id="N" x="0" y="200"/><node id="E" x="200" y="0"/>'
        '<node id="S" x="0" y="-200"/><node id="W" x="-200" y="0"/>'
    )
    edges = f'<edge id="W_in" from="W" to="C" numLanes="{lanes}" speed="13.89"/>'
    edges += f'<edge id="C_E" from="C" to="E" numLanes="{lanes}" speed="13.89"/>'
    if not one_way_east:
        edges += f'<edge id="E_in" from="E" to="C" numLanes="{lanes}" speed="13.89"/>'
        edges += f'<edge id="C_W" from="C" to="W" numLanes="{lanes}" speed="13.89"/>'
    for arm in ("N", "S"):
        edges += f'<edge id="{arm}_in" from="{arm}" to="C" numLanes="2" speed="13.89"/>'
        edges += f'<edge id="C_{arm}" from="C" to="{arm}" numLanes="1" speed="13.89"/>'
    routes = """
    <vType id="car" sigma="0"/>
    <flow id="we" type="car" from="W_in" to="C_E" begin="0" end="300" period="6"/>
    <flow id="ns" type="car" from="N_in" to="C_S" begin="0" end="300" period="9"/>
    <flow id="wn" type="car" from="W_in" to="C_S" begin="0" end="300" period="15"/>
    <personFlow id="p1" begin="0" end="300" period="12"><walk from="S_in" to="C_N"/></personFlow>
    <personFlow id="p2" begin="0" end="300" period="15"><walk from="W_in" to="C_E"/></personFlow>
    """
    return build_raw(tmp, "ped4", nodes, edges, PEDS, routes)


def _tee(tmp: Path) -> Path:
    nodes = (
        '<node id="C" x="0" y="0" type="traffic_light"/>'
        '<node id="E" x="200" y="0"/><node id="S" x="0" y="-200"/><node id="W" x="-200" y="0"/>'
    )
    edges = "".join(
        f'<edge id="{a}" from="{f}" to="{t}" numLanes="1" speed="13.89"/>'
        for a, f, t in (
            ("W_in", "W", "C"), ("C_W", "C", "W"), ("E_in", "E", "C"),
            ("C_E", "C", "E"), ("S_in", "S", "C"), ("C_S", "C", "S"),
        )
    )  # fmt: skip
    return build_raw(tmp, "pedtee", nodes, edges, PEDS)


def _check_crosswalks(cfg: Path) -> None:
    sc = resolve(str(cfg))
    (junction,) = signal_junctions(sc.net)
    assert junction.crossings, "netconvert made no crossings"
    d = derive(junction)
    site = d.site
    walking = {p.ped_crossing: p for p in site.phases if p.ped_crossing}
    crossed = {b.movement.removeprefix("ped ") for b in d.links if b.crossing}
    assert crossed == set(walking)  # every crossing walks with a phase
    for arm, p in walking.items():
        t = site.plans[site.default_plan].timings[p.id]
        # No ped recall: a push button (a ped detector on a board input of its
        # own, right after the stop-bar loops) calls the walk, as at a real junction.
        assert t.walk_ms == WALK_S * 1000 and Recall.PED not in t.recall
        (button,) = [det for det in site.detectors if det.ped and p.id in det.calls]
        assert not button.extends and button.input not in {
            det.input for det in site.detectors if det is not button
        }
        assert [b.id for b in d.buttons if b.phase == p.id] == [button.id]
        length = next(c.length_m for c in junction.crossings if c.links[0] in _links_of(d, arm))
        assert t.ped_clear_ms >= length / PED_SPEED_MPS * 1000
        beside = [
            q for q in site.phases if q.id == p.id or (q.ring != p.ring and q.group == p.group)
        ]
        for q in beside:  # no protected stream across the walkers
            for m in q.movements:
                assert not ped_conflict(Stream(m, Service.BALL), arm)
    for b in d.links:
        if b.crossing:
            assert b.channel is not None and b.phase == walking[b.movement.removeprefix("ped ")].id


def _links_of(d: object, arm: str) -> set[int]:
    return {b.index for b in d.links if b.crossing and b.movement == f"ped {arm}"}  # type: ignore[attr-defined]


def test_four_leg_with_crossings_walks_each_with_a_parallel_phase(tmp_path: Path) -> None:
    _check_crosswalks(_four_leg(tmp_path))


def test_tee_with_crossings(tmp_path: Path) -> None:
    # The west crosswalk is crossed by the eastbound through and the side road's
    # protected left: it walks in an exclusive pedestrian phase.
    _check_crosswalks(_tee(tmp_path))
    d = derive(signal_junctions(resolve(str(tmp_path / "pedtee.net.xml")).net)[0])
    alone = [p for p in d.site.phases if not p.movements and not p.permissive]
    assert [p.ped_crossing for p in alone] == ["W"]
    assert all(q.group != alone[0].group for q in d.site.phases if q is not alone[0])


def test_one_way_street_with_crossings(tmp_path: Path) -> None:
    _check_crosswalks(_four_leg(tmp_path, one_way_east=True))


def test_shared_lanes_with_crossings(tmp_path: Path) -> None:
    _check_crosswalks(_four_leg(tmp_path, lanes=1))


@pytest.mark.parametrize(
    "controller", ["edge", "edge-board", "webster", "max-pressure", "sumo-actuated"]
)
def test_pedestrians_and_vehicles_get_through(controller: str, tmp_path: Path) -> None:
    sc = resolve(str(_four_leg(tmp_path)))
    walked = [0]

    def count(sim: Any, _t_ms: int) -> None:
        walked[0] += sim.simulation.getArrivedPersonNumber()

    r = run(sc, controller, 1, 700, observer=count)
    # Of 45 walkers (400 m each, the last leave at 300 s). Max-pressure weighs vehicle
    # queues only, so a walk comes when its stage wins: fewer have arrived by then.
    assert walked[0] >= (10 if controller == "max-pressure" else 40), walked
    assert r["collisions"] == 0 and r["teleports"] == 0, r["notes"]
    assert r["running_at_end"] <= 10
    assert not [n for n in r["notes"] if "fault" in n], r["notes"]
