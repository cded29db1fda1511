"""Emergency vehicles in SUMO preempt the edge controller: lockstep, board and real time.

A small 4-leg junction (netconvert) with a steady north-south stream and one
emergency vehicle from the west: the receiver (within 250 m of the stop line)
requests the west preempt, it clears when the vehicle has passed the stop
line, and the vehicle loses less time than with preemption off.
"""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

import pytest
from sim.realtime import simulate
from sim.sumo.derive import derive
from sim.sumo.lockstep import run
from sim.sumo.network import signal_junctions
from sim.sumo.scenarios import resolve

from tests.sim.netbuild import build_net, four_leg

ROUTES = """
<vType id="car" accel="2.6" decel="4.5" sigma="0" length="5" minGap="2.5" maxSpeed="13.9"/>
<vType id="ev" vClass="emergency" accel="2.6" decel="4.5" sigma="0" length="6.5" maxSpeed="16.7"/>
<route id="NS" edges="N_in C_S"/>
<route id="SN" edges="S_in C_N"/>
<route id="WE" edges="W_in C_E"/>
<route id="EW" edges="E_in C_W"/>
<flow id="ns" type="car" route="NS" begin="0" end="{end}" period="3"/>
<flow id="sn" type="car" route="SN" begin="0" end="{end}" period="4"/>
<flow id="we" type="car" route="WE" begin="0" end="{end}" period="20"/>
<flow id="ew" type="car" route="EW" begin="0" end="{end}" period="20"/>
<vehicle id="ambulance" type="ev" route="WE" depart="{ev_at}" departSpeed="max"/>
"""


def _scenario(tmp: Path, ev_at: float, end: float = 300) -> Path:
    nodes, edges = four_leg()
    routes = ROUTES.format(end=end, ev_at=ev_at)
    return build_net(tmp, "evx", nodes, edges, routes=routes)


def test_derived_site_has_a_preempt_per_approach_on_a_board_input(tmp_path: Path) -> None:
    cfg = _scenario(tmp_path, 60)
    d = derive(signal_junctions(resolve(str(cfg)).net)[0])
    pre = {p.approach or "": p for p in d.site.preempts if p.turn is None}
    assert sorted(pre) == ["E", "N", "S", "W"]
    inputs = {det.input for det in d.site.detectors}
    for p in pre.values():
        assert p.input is not None and p.input not in inputs
        served = {m.approach for pid in p.dwell_phases for m in d.site.phase(pid).movements}
        assert served == {p.approach}


def test_derived_preempts_never_cut_a_minimum_green_or_a_walk(tmp_path: Path) -> None:
    """Issue 17's rule: the entry ends a green only past its own minimum, a walk only when
    it is done (the preempt's minimums were the site's 5 s and no walk at all)."""
    d = derive(signal_junctions(resolve(str(_scenario(tmp_path, 60))).net)[0])
    timing = [t for plan in d.site.plans.values() for t in plan.timings.values()]
    assert d.site.preempts
    for p in d.site.preempts:
        assert p.min_green_ms >= max(t.min_green_ms for t in timing)
        assert p.min_walk_ms >= max(t.walk_ms for t in timing)


def test_a_through_vehicle_dwells_with_the_opposing_through(tmp_path: Path) -> None:
    """Protected lefts: central's request for a through vehicle keeps the street moving."""
    cfg = _scenario(tmp_path, 60)
    d = derive(signal_junctions(resolve(str(cfg)).net)[0])
    opposite = {"N": "S", "S": "N", "E": "W", "W": "E"}
    whole = {p.approach or "": p for p in d.site.preempts if p.turn is None}
    through = {p.approach or "": p for p in d.site.preempts if p.turn == "T"}
    # where the approach's dwell runs its own protected left, and only there
    protected_left = {
        arm
        for arm, p in whole.items()
        if any(m.name == f"{arm}.L" for pid in p.dwell_phases for m in d.site.phase(pid).movements)
    }
    assert protected_left and sorted(through) == sorted(protected_left)
    for arm, p in through.items():
        assert p.input is None  # a receiver cannot tell the turn
        served = {m.name for pid in p.dwell_phases for m in d.site.phase(pid).movements}
        assert {f"{arm}.T", f"{opposite[arm]}.T"} <= served
        assert f"{arm}.L" not in served


@pytest.mark.parametrize("controller", ["edge", "edge-board"])
def test_emergency_vehicle_preempts_and_loses_less_time(controller: str, tmp_path: Path) -> None:
    # An arrival that meets red without priority on both controllers (at 95 s the board
    # path's extra tick of latency let it meet green, and the test then showed nothing).
    sc = resolve(str(_scenario(tmp_path, 105)))
    on = run(sc, controller, 1, 240)
    off = run(sc, controller, 1, 240, preemption=False)
    assert on["preemption"] and not off["preemption"]
    assert on["ev_count"] == off["ev_count"] == 1
    assert on["preempt_requests"] == 1  # one vehicle, one approach, cleared once past
    assert off["preempt_requests"] == 0
    assert on["ev_mean_delay_s"] < off["ev_mean_delay_s"]
    assert on["teleports"] == 0 and on["collisions"] == 0


def test_realtime_runtime_is_preempted_through_the_board_input(tmp_path: Path) -> None:
    cfg = _scenario(tmp_path, 25, end=120)
    out = io.StringIO()
    # x5, not x10: the virtual board's clock runs at the same speed, so its 50 ms slack on
    # every minimum interval is 10 ms of wall-clock delay of one frame here (5 ms at x10,
    # where one full test run saw the board flash, INTERGREEN, and 19 reruns did not)
    summary = asyncio.run(
        simulate(str(cfg), speed=5.0, duration_s=14.0, out=out, view_every_s=5, signals=False)
    )
    assert summary.code == 0, out.getvalue()
    assert summary.conflicts == []
    assert summary.preempt_inputs == 1, out.getvalue()
    assert summary.preempted_s > 0, out.getvalue()


def test_bench_commands_quick_smoke() -> None:
    """`edge bench traffic|preemption --quick --json`: one JSON object with unit-named keys."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, EDGE_BENCH_TRAFFIC_CONTROLLERS="edge,sumo-static,webster")
    env["EDGE_BENCH_TRAFFIC_JOBS"] = "1"
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "bench", "traffic", "--quick", "--json"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    doc = json.loads(done.stdout)
    assert doc["bench"] == "traffic" and doc["seeds"] == 1 and doc["end_s"] == 600
    rows = {(r["scenario"], r["controller"]): r for r in doc["results"]}
    assert set(rows) == {
        (s, c) for s in ("single", "tee") for c in ("edge", "sumo-static", "webster")
    }
    for r in rows.values():
        assert r["runs"] == 1 and r["mean_delay_s"] > 0 and r["mean_travel_time_s"] > 0
    env["EDGE_BENCH_TRAFFIC_CONTROLLERS"] = "nope"
    bad = subprocess.run(
        [sys.executable, "-m", "edge.cli", "bench", "traffic", "--quick"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "unknown ['nope']" in bad.stderr


def test_preemption_bench_quick_json(tmp_path: Path) -> None:
    """`edge bench preemption --quick --json`: a generated arterial with and without
    priority, per-scenario figures and the three goal figures, keys with units."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, EDGE_BENCH_TRAFFIC_JOBS="1", EDGE_BENCH_SUITE_CACHE=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-m", "edge.cli", "bench", "preemption", "--quick", "--json"],
        capture_output=True, text=True, timeout=300, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert "arterial-1-moderate edge (no priority) seed 1" in done.stderr  # progress lines
    doc = json.loads(done.stdout)
    assert doc["bench"] == "preemption" and doc["seeds"] == 1
    (row,) = doc["results"]
    assert row["scenario"] == "arterial-1-moderate" and row["group"] == "tune"
    for side in ("with", "without"):
        assert row[side]["ev_count"] > 0 and row[side]["ev_passages"] > 0
        assert row[side]["general_mean_delay_s"] > 0
    assert row["ev_delay_ratio"] < 1.0
    goal = doc["goals"]["tune"]
    assert set(goal["met"]) == {"ev_delay_ratio", "ev_at_signal_median_s", "general_delay_ratio"}
    assert goal["ev_at_signal_median_s"] < goal["ev_at_signal_median_without_s"]
    env["EDGE_BENCH_PREEMPT_SCENARIOS"] = "grid-x-peak"
    bad = subprocess.run(
        [sys.executable, "-m", "edge.cli", "bench", "preemption"],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert bad.returncode == 1 and "FAMILY-SEED-LEVEL" in bad.stderr


CORRIDOR_ROUTES = """
<vType id="car" accel="2.6" decel="4.5" sigma="0" length="5" minGap="2.5" maxSpeed="13.9"/>
<vType id="ev" vClass="emergency" accel="2.6" decel="4.5" sigma="0" length="6.5" maxSpeed="16.7"/>
<route id="N1" edges="N1_J1 J1_S1"/>
<route id="N2" edges="N2_J2 J2_S2"/>
<route id="WE" edges="W_J1 J1_J2 J2_E"/>
<flow id="n1" type="car" route="N1" begin="0" end="200" period="4"/>
<flow id="n2" type="car" route="N2" begin="0" end="200" period="4"/>
<vehicle id="ambulance" type="ev" route="WE" depart="40" departSpeed="max"/>
"""


def _corridor(tmp: Path, routes: str = CORRIDOR_ROUTES) -> Path:
    """Two signals 200 m apart on an east-west road, a cross street at each."""
    nodes: list[tuple[str, float, float, str]] = [
        ("W", -500, 0, "priority"), ("J1", 0, 0, "traffic_light"),
        ("J2", 200, 0, "traffic_light"), ("E", 600, 0, "priority"),
        ("N1", 0, 200, "priority"), ("S1", 0, -200, "priority"),
        ("N2", 200, 200, "priority"), ("S2", 200, -200, "priority"),
    ]  # fmt: skip
    edges = [("W_J1", "W", "J1", 2), ("J1_J2", "J1", "J2", 2), ("J2_E", "J2", "E", 2)]
    for j in ("1", "2"):
        edges += [(f"N{j}_J{j}", f"N{j}", f"J{j}", 1), (f"J{j}_S{j}", f"J{j}", f"S{j}", 1)]
    return build_net(tmp, "corr", nodes, edges, routes=routes)


def _first_requests(sc_path: Path, central: bool) -> dict[str, float]:
    """Drive SUMO with the feed alone: when each signal's preempt was first requested,
    as the ambulance's distance to that signal's stop line then."""
    from sim.sumo import engine
    from sim.sumo.emergency import EmergencyFeed

    sc = resolve(str(sc_path))
    derivations = [derive(j) for j in signal_junctions(sc.net)]
    feed = EmergencyFeed(derivations, central=central)
    sim = engine.start(["-c", str(sc.sumocfg), "--no-step-log", "true", "--no-warnings", "true"])
    first: dict[str, float] = {}
    try:
        for _ in range(200):
            sim.simulationStep()
            feed.update(sim)
            for d in derivations:
                if any(c.on for c in feed.take(d.tls)) and d.tls not in first:
                    ahead = {t: dist for t, _, dist, _ in sim.vehicle.getNextTLS("ambulance")}
                    first[d.tls] = ahead[d.tls]
                    first[f"{d.tls} eta"] = ahead[d.tls] / sim.vehicle.getAllowedSpeed("ambulance")
                    first[f"{d.tls} signals ahead"] = len(ahead)
    finally:
        engine.close(sim)
    assert feed.requests == len(first) // 3
    return first


def test_central_requests_every_signal_ahead_by_eta_the_receiver_only_the_next(
    tmp_path: Path,
) -> None:
    cfg = _corridor(tmp_path)
    told = _first_requests(cfg, central=True)
    heard = _first_requests(cfg, central=False)
    assert {k for k in told if " " not in k} == {k for k in heard if " " not in k} == {"J1", "J2"}
    # Central: the preempt's 20 s lead before the ETA (within one 1 s SUMO step), J2's
    # while J1 is still ahead of the ambulance; the receiver: 250 m, next signal only.
    for tls in ("J1", "J2"):
        assert 19.0 <= told[f"{tls} eta"] <= 20.0 and told[tls] > heard[tls]
    assert told["J2 signals ahead"] == 2 and heard["J2 signals ahead"] == 1
    assert 230 < heard["J1"] <= 250


def _queued_routes(per_lane: int, end_pos: float, until: float) -> str:
    """The corridor's routes with `per_lane` cars a lane stopped on J1's approach at
    `end_pos` until `until` s, departed before the ambulance."""
    stops = "".join(
        f'<vehicle id="q{lane}_{k}" type="car" route="WE" depart="{k}" departLane="{lane}">'
        f'<stop lane="W_J1_{lane}" endPos="{end_pos:g}" until="{until:g}"/></vehicle>\n'
        for k in range(per_lane)
        for lane in (0, 1)
    )
    return CORRIDOR_ROUTES.replace('<vehicle id="ambulance"', stops + '<vehicle id="ambulance"')


def test_central_requests_earlier_where_a_queue_stands_ahead(tmp_path: Path) -> None:
    """Eight cars a lane stand at J1's stop line: central's request falls due early enough
    to end the conflicting greens and then discharge them (2 s each after 2 s), not at
    the 20 s lead; J2, with nothing ahead, at the lead."""
    routes = _queued_routes(8, end_pos=-1, until=400)
    told = _first_requests(_corridor(tmp_path, routes), central=True)
    assert told["J1 eta"] > 25.0
    assert 19.0 <= told["J2 eta"] <= 20.0


def test_centrals_request_stays_due_while_the_queue_ahead_discharges(tmp_path: Path) -> None:
    """Ten cars a lane stand 250 m before J1 as the ambulance departs (central's request
    falls due early, for them) and drive off 8 s later: the request stays until the
    ambulance has passed, it is not dropped and raised again at the 20 s lead."""
    from sim.sumo import engine
    from sim.sumo.emergency import EmergencyFeed

    routes = _queued_routes(10, end_pos=250, until=48)
    sc = resolve(str(_corridor(tmp_path, routes)))
    derivations = [derive(j) for j in signal_junctions(sc.net)]
    feed = EmergencyFeed(derivations)
    sim = engine.start(["-c", str(sc.sumocfg), "--no-step-log", "true", "--no-warnings", "true"])
    ons: dict[int, list[float]] = {}
    queue_gone = None
    try:
        for _ in range(200):
            sim.simulationStep()
            feed.update(sim)
            t = float(sim.simulation.getTime())
            if queue_gone is None and t > 48 and sim.edge.getLastStepHaltingNumber("W_J1") == 0:
                queue_gone = t
            for c in feed.take("J1"):
                if c.on:
                    ons.setdefault(c.preempt, []).append(t)
    finally:
        engine.close(sim)
    assert queue_gone is not None
    told = min(ons, key=lambda p: ons[p][0])  # central's, before the receiver's 250 m
    assert ons[told][0] < 48.0 < queue_gone and ons[told] == ons[told][:1], (ons, queue_gone)


def test_compare_traces_each_signal_passed_with_and_without_preemption(tmp_path: Path) -> None:
    sc = resolve(str(_corridor(tmp_path)))
    on = run(sc, "edge", 1, 200)
    off = run(sc, "edge-no-preempt", 1, 200)
    assert on["controller"] == "edge" and off["controller"] == "edge-no-preempt"
    assert on["preemption"] and not off["preemption"] and off["preempt_requests"] == 0
    for r in (on, off):
        assert r["ev_passages"] == 2  # one ambulance, two stop lines
        assert r["ev_free_flow_ratio"] >= 1.0
        assert set(r["cycle_s"]) == {"J1", "J2"}
    assert on["ev_signal_delay_median_s"] < off["ev_signal_delay_median_s"]
    # at each signal, from 150 m before its stop line to leaving its junction
    for r in (on, off):
        assert len(r["ev_at_signal_s"]) == len(r["ev_halted_at_signal_s"]) == 2
    assert sum(on["ev_at_signal_s"]) < sum(off["ev_at_signal_s"])
    assert sum(on["ev_halted_at_signal_s"]) < sum(off["ev_halted_at_signal_s"])
    from sim.sumo.compare import format_table

    text = format_table([on, off], ["edge", "edge-no-preempt"])
    ev_rows = text.split("emergency vehicles\n", 1)[1].splitlines()
    assert ev_rows[2].startswith("edge ") and ev_rows[3].startswith("edge-no-preempt")
    assert f"{on['ev_free_flow_ratio']:.2f}" in ev_rows[2]  # the ratio with two decimals
    # per signal: docs/priority.md's (approach to junction exit), not between stop lines
    header = re.split(r"\s{2,}", ev_rows[0])
    for row, r in ((ev_rows[2], on), (ev_rows[3], off)):
        cells = re.split(r"\s{2,}", row)
        assert cells[header.index("per signal: median s")] == f"{r['ev_at_signal_median_s']:.1f}"
        halted = sum(r["ev_halted_at_signal_s"]) / 2
        assert cells[header.index("halted s")] == f"{halted:.1f}"
