"""Turning-movement demand from a scenario's route files, in vehicles per hour.

Counts every routed vehicle and flow by the consecutive edge pairs of its
route, so each pair is a movement through the junction between them. Trips
and flows given only as from/to (routed by SUMO at run time) are not
counted and are reported, as are route distributions.
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from sim.sumo.errors import SimError
from sim.sumo.scenarios import Scenario


@dataclass(slots=True)
class Demand:
    per_hour: dict[tuple[str, str], float] = field(default_factory=dict)  # (from, to edge)
    skipped: list[str] = field(default_factory=list)


def _flow_count(el: ET.Element, begin: float, end: float) -> float:
    b = float(el.get("begin", begin))
    e = float(el.get("end", end))
    span = max(e - b, 0.0)
    if el.get("number") is not None:
        return float(el.get("number", 0))
    if el.get("vehsPerHour") is not None:
        return float(el.get("vehsPerHour", 0)) * span / 3600
    period = el.get("period")
    if period is not None:
        if period.startswith("exp(") and period.endswith(")"):
            return float(period[4:-1]) * span
        return span / float(period) if float(period) > 0 else 0.0
    if el.get("probability") is not None:
        return float(el.get("probability", 0)) * span
    return 0.0


def read_demand(scenario: Scenario, scale: float = 1.0) -> Demand:
    """Movement demand in veh/h, times `scale` (SUMO's --scale, as the run uses)."""
    begin = scenario.begin_s
    end = scenario.end_s if scenario.end_s is not None else begin + 3600.0
    hours = max(end - begin, 1.0) / 3600
    demand = Demand()
    routes: dict[str, list[str]] = {}
    counts: dict[tuple[str, str], float] = {}
    for path in scenario.routes:
        try:
            root = ET.parse(path).getroot()
        except (ET.ParseError, OSError) as exc:
            raise SimError(f"{path}: cannot read routes: {exc}") from None
        for r in root.iter("route"):
            if r.get("id"):
                routes[r.get("id", "")] = r.get("edges", "").split()
        for el in root:
            if el.tag not in ("vehicle", "flow", "trip"):
                continue
            inner = el.find("route")
            edges = (
                inner.get("edges", "").split()
                if inner is not None
                else routes.get(el.get("route", ""), [])
            )
            if not edges:
                demand.skipped.append(f"{el.tag} {el.get('id')}: no explicit route")
                continue
            n = 1.0 if el.tag != "flow" else _flow_count(el, begin, end)
            for a, b in itertools.pairwise(edges):
                counts[(a, b)] = counts.get((a, b), 0.0) + n
    for key, n in counts.items():
        demand.per_hour[key] = round(n * scale / hours, 1)
    return demand
