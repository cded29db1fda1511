"""Signal controllers the runner drives, by name (`edge sim run --controller NAME`)."""

from __future__ import annotations

from sim.sumo.controller_names import (
    CAMERA_NAMES,
    NAMES,
    NO_PREEMPT,
    NO_TSP,
    PREEMPTING,
    SUMO_TYPES,
    known,
)
from sim.sumo.controllers.base import SignalControl
from sim.sumo.controllers.edge_board import EdgeBoardControl
from sim.sumo.controllers.edge_control import EdgeControl
from sim.sumo.controllers.max_pressure import MaxPressure
from sim.sumo.controllers.sumo_programs import SumoProgram
from sim.sumo.controllers.webster import webster_site
from sim.sumo.demand import read_demand
from sim.sumo.derive import PLAN_ID, Derivation, derive_all
from sim.sumo.emergency import EmergencyFeed
from sim.sumo.errors import SimError
from sim.sumo.neighbours import Neighbours
from sim.sumo.network import read_net, signal_junctions
from sim.sumo.scenarios import Scenario
from sim.sumo.transit import TransitFeed


def link_clearances(d: Derivation) -> dict[int, tuple[float, float]]:
    """Each SUMO link's yellow and red clearance as the derived site times its phase."""
    timings = d.site.plans[PLAN_ID].timings
    return {
        b.index: (timings[b.phase].yellow_ms / 1000, timings[b.phase].red_clear_ms / 1000)
        for b in d.links
        if b.phase is not None and b.phase in timings
    }


def make_controller(
    name: str, scenario: Scenario, preemption: bool = True, scale: float = 1.0
) -> SignalControl:
    """Build a controller for every signal of the scenario; SimError when it cannot.

    With `preemption`, emergency vehicles request the edge controllers' preempts
    (the other controllers have none). `scale` is the demand factor the Webster
    baseline plans for.
    """
    if not known(name):
        raise SimError(
            f"unknown controller {name!r}: choose from {', '.join(NAMES + CAMERA_NAMES)}"
            f" (an edge controller + {NO_PREEMPT!r}: without emergency preemption;"
            f" + {NO_TSP!r}: without transit priority)"
        )
    if name.endswith(NO_PREEMPT):
        name, preemption = name.removesuffix(NO_PREEMPT), False
    transit = not name.endswith(NO_TSP)
    name = name.removesuffix(NO_TSP)
    junctions = signal_junctions(scenario.net)
    if name in SUMO_TYPES:
        clearances = (
            {d.tls: link_clearances(d) for d in derive_all(junctions)}
            if name == "sumo-actuated-ite"
            else None
        )
        return SumoProgram(name, junctions, clearances)
    derivations = derive_all(junctions)
    if name in PREEMPTING:
        ctl: EdgeControl | EdgeBoardControl
        if name == "edge-board":
            ctl = EdgeBoardControl(derivations)
        elif name == "edge-adaptive":
            ctl = EdgeControl(derivations, name=name, mode="adaptive")
        elif name == "edge-neighbours":  # `edge` plus the neighbours' predicted arrivals
            ctl = EdgeControl(derivations, name=name)
            ctl.neighbours = Neighbours.build(read_net(scenario.net), derivations)
        else:
            ctl = EdgeControl(derivations)
        ctl.emergency = EmergencyFeed(derivations, preempt=preemption)
        if isinstance(ctl, EdgeControl):
            ctl.transit = TransitFeed(derivations, enabled=transit)
        return ctl
    if name in CAMERA_NAMES:  # rendered frames -> model -> zones
        from sim.sumo.controllers.edge_camera import EdgeCameraControl

        cam = EdgeCameraControl(
            derivations,
            labels=name == "edge-camera-labels",
            mode="adaptive" if name == "edge-camera-adaptive" else None,
        )
        if preemption:
            cam.emergency = EmergencyFeed(derivations)
        return cam
    if name == "max-pressure":
        return MaxPressure(derivations)
    demand = read_demand(scenario, scale)
    sites = []
    summaries = []
    for d in derivations:
        site, summary = webster_site(d, demand)
        sites.append(site)
        summaries.append(f"{d.tls}: {summary}")
    skipped = [f"demand not counted: {s}" for s in demand.skipped[:5]]
    return EdgeControl(derivations, sites=sites, name="webster", notes=summaries + skipped)


__all__ = [
    "CAMERA_NAMES",
    "NAMES",
    "NO_PREEMPT",
    "NO_TSP",
    "SignalControl",
    "known",
    "make_controller",
]
