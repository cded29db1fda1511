"""The simulator's loops (sim/sumo/loops.py) see what a real presence loop sees.

With 1 s SUMO steps a loop read once a step missed every vehicle that crossed
it between two reads (80 km/h over a 3 m loop: most of them). Here the loops
the controller reads must count every vehicle that drove over them, hold a
standing vehicle on every tick, and never show a tick what came after it.
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

from sim.sumo import lockstep, scenarios
from sim.sumo.controllers.edge_control import EdgeControl
from sim.sumo.loops import TICK_MS, slices

from tests.sim.netbuild import build_raw

_SPEED = 22.22  # 80 km/h: a 5 m car crosses a 3 m loop in 0.36 s
_FLOW = 60  # vehicles west -> east, one every 4 s
_VEHICLES = _FLOW + 2  # and the first and the stopper


def _net(tmp: Path) -> Path:
    nodes = (
        '<node id="C" x="0" y="0" type="traffic_light"/>'
        '<node id="N" x="0" y="300"/><node id="E" x="300" y="0"/>'
        '<node id="S" x="0" y="-300"/><node id="W" x="-300" y="0"/>'
    )
    edges = "".join(
        f'<edge id="{a}_in" from="{a}" to="C" numLanes="1" speed="{_SPEED}"/>'
        f'<edge id="C_{a}" from="C" to="{a}" numLanes="1" speed="{_SPEED}"/>'
        for a in "NESW"
    )
    # A first car calls the west approach's green, where it then rests for the flow.
    # One car stops on the west stop-bar loop (which ends 1 m before the stop line)
    # for 40 s after the flow has passed: it stands there, occupied throughout.
    routes = (
        '<vType id="car" length="5" minGap="2.5" sigma="0"/>'
        '<vehicle id="first" type="car" depart="20"><route edges="W_in C_E"/></vehicle>'
        f'<flow id="we" type="car" from="W_in" to="C_E" begin="60" end="{60 + 4 * _FLOW}"'
        f' period="4" departSpeed="max"/>'
        '<vehicle id="stopper" type="car" depart="360" departSpeed="max">'
        '<route edges="W_in C_E"/><stop lane="W_in_0" endPos="-3" duration="40"/></vehicle>'
    )
    return build_raw(tmp, "loops", nodes, edges, routes=routes)


def test_every_vehicle_is_seen_and_a_standing_one_throughout(tmp_path: Path) -> None:
    scenario = scenarios.resolve(str(_net(tmp_path)))
    seen: dict[int, list[tuple[int, bool]]] = {}
    built: list[EdgeControl] = []
    stopped: list[int] = []  # step ends (ms) at which the stopper stood still

    def attach(ctl: Any) -> None:
        built.append(ctl)

        def on_step(sig: Any, t_ms: int, out: Any) -> None:
            for k, det in enumerate(sig.site.detectors):
                seen.setdefault(det.id, []).append((t_ms, sig.controller.det_present[k]))

        ctl.on_step = on_step

    def observer(sim: Any, t_ms: int) -> None:
        if "stopper" in sim.vehicle.getIDList() and sim.vehicle.isStopped("stopper"):
            stopped.append(t_ms)

    report = lockstep.run(scenario, "edge", seed=1, attach=attach, observer=observer)
    assert report["arrived"] == _VEHICLES
    (d,) = built[0].derivations
    west = {det.kind: det.id for det in d.detectors if det.lane == "W_in_0"}
    assert set(west) == {"stop-bar", "setback"}
    for kind, det_id in west.items():
        ticks = seen[det_id]
        assert [t for t, _ in ticks] == sorted({t for t, _ in ticks})  # every tick once
        rises = sum(1 for (_, a), (_, b) in pairwise(ticks) if b and not a)
        assert rises == _VEHICLES, f"{kind} loop: {rises} rising edges, {_VEHICLES} vehicles"
    # Standing on the stop-bar loop: every tick of every step it stood through is on.
    on = dict(seen[west["stop-bar"]])
    assert len(stopped) >= 30
    inside = [t for t in stopped if t - 1000 in stopped]
    for t in inside:
        assert all(on[t - 1000 + k * TICK_MS] for k in range(1, 11)), t


def test_slices_cut_a_step_into_ticks_without_a_look_ahead() -> None:
    # A step (10 s, 11 s]: slice k is (10 s + k*100 ms, 10 s + (k+1)*100 ms].
    assert slices([], 10_000, 1000) == 0
    assert slices([(9.0, -1.0)], 10_000, 1000) == 0b11_1111_1111  # on all along
    assert slices([(10.25, 10.29)], 10_000, 1000) == 0b100  # a short pass, one slice
    assert slices([(10.25, 10.31)], 10_000, 1000) == 0b1100
    assert slices([(10.95, -1.0)], 10_000, 1000) == 0b10_0000_0000  # arrived last slice
    assert slices([(9.5, 10.0)], 10_000, 1000) == 0  # left at the step's start
    assert slices([(9.5, 10.05)], 10_000, 1000) == 0b1
    assert slices([(10.0, 10.1)], 10_000, 1000) == 0b1  # exactly one slice
    assert slices([(10.1, 10.2)], 10_000, 1000) == 0b11  # on at 10.1 s, in slice 0's end
    assert slices([(10.05, 10.08), (10.83, 10.9)], 10_000, 1000) == 0b01_0000_0001
    assert slices([(10.03, -1.0)], 10_000, 100) == 0b1  # 0.1 s steps: one slice
