"""Buses in SUMO get transit priority from the edge controller (lockstep).

A small 4-leg junction (netconvert) with a steady north-south stream and a
bus from the west every 60 s: central checks each bus in 200 m before the
stop line and out once it has passed it (sim/sumo/transit.py); the core
gives early green or extension within its limits (edge/control/priority.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sim.sumo.derive import derive_all
from sim.sumo.lockstep import run
from sim.sumo.network import signal_junctions
from sim.sumo.scenarios import resolve
from sim.sumo.transit import CHECK_IN_M, TransitFeed

from tests.sim.link_monitor import LinkMonitor
from tests.sim.netbuild import build_net, four_leg

ROUTES = """
<vType id="car" accel="2.6" decel="4.5" sigma="0" length="5" minGap="2.5" maxSpeed="13.9"/>
<vType id="bus" vClass="bus" accel="1.2" decel="4.0" sigma="0" length="12" maxSpeed="13.9"/>
<route id="NS" edges="N_in C_S"/>
<route id="SN" edges="S_in C_N"/>
<route id="WE" edges="W_in C_E"/>
<flow id="ns" type="car" route="NS" begin="0" end="600" period="3"/>
<flow id="sn" type="car" route="SN" begin="0" end="600" period="4"/>
<flow id="we" type="car" route="WE" begin="0" end="600" period="15"/>
<flow id="bus" type="bus" route="WE" begin="20" end="600" period="60"/>
"""


def _scenario(tmp: Path) -> Path:
    nodes, edges = four_leg()
    return build_net(tmp, "busx", nodes, edges, routes=ROUTES)


def test_a_bus_checks_in_before_the_stop_line_and_out_past_it(tmp_path: Path) -> None:
    sc = resolve(str(_scenario(tmp_path)))
    (d,) = derive_all(signal_junctions(sc.net))
    feed = TransitFeed([d])
    seen: list[tuple[str, bool, float]] = []  # approach, on, the nearest bus's distance

    def observe(sim: Any, t_ms: int) -> None:
        feed.update(sim)
        for c in feed.take(d.tls):
            dists = [
                ahead[0][2]
                for v in sim.vehicle.getIDList()
                if sim.vehicle.getVehicleClass(v) == "bus" and (ahead := sim.vehicle.getNextTLS(v))
            ]
            seen.append((c.approach, c.on, min(dists, default=-1.0)))

    report = run(sc, "edge-no-tsp", 1, 600, observer=observe)
    check_ins = [x for x in seen if x[1]]
    # buses on the approach together share one request: in with the first, out after the last
    assert report["bus_count"] >= 9
    assert report["bus_count"] >= len(check_ins) == feed.requests >= report["bus_count"] // 2
    assert {a for a, _, _ in seen} == {"W"}  # the buses come from the west
    assert all(on == (k % 2 == 0) for k, (_, on, _) in enumerate(seen))  # in, then out
    assert all(0 < dist <= CHECK_IN_M for _, _, dist in check_ins)


@pytest.mark.parametrize("controller", ["edge", "edge-adaptive"])
def test_buses_lose_less_time_with_transit_priority(controller: str, tmp_path: Path) -> None:
    sc = resolve(str(_scenario(tmp_path)))
    monitor = LinkMonitor.from_net(str(sc.net))
    on = run(sc, controller, 1, 600, observer=monitor)
    off = run(sc, f"{controller}-no-tsp", 1, 600)
    assert monitor.violations == [] and monitor.greens_seen > 0
    assert on["bus_count"] == off["bus_count"] >= 9
    assert off["transit_requests"] == 0 and not off["transit_priority"]
    assert on["bus_mean_delay_s"] < 0.8 * off["bus_mean_delay_s"]
    assert on["teleports"] == 0 and on["collisions"] == 0
