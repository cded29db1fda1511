"""Webster fixed-time plans from the scenario's demand, run by the edge controller.

Per signal: each phase's flow ratio y is its busiest lane's flow over a
saturation flow of 1800 veh/h/lane; each barrier group counts its critical
ring (largest sum of y); lost time per phase is its yellow plus red
clearance. Cycle C = (1.5 L + 5) / (1 - Y), clamped to 40..150 s (150 when
Y >= 0.9); the effective green C - L is split over groups by their critical
y, then within each ring by y. The plan is max recall with min = max green,
so the dual-ring controller runs it as a fixed-time plan (ring-barrier and
clearances unchanged).
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any

from edge.config import site_from_dict
from edge.control.site import PhaseTiming, Site

from sim.sumo.demand import Demand
from sim.sumo.derive import Derivation

SAT_FLOW_VPH_PER_LANE = 1800.0
MIN_CYCLE_S = 40.0
MAX_CYCLE_S = 150.0
PLAN_ID = "webster"


def webster_site(d: Derivation, demand: Demand) -> tuple[Site, str]:
    """The derived site with a Webster fixed-time plan as its default; and a summary line."""
    site = d.site
    timing = site.plans[site.default_plan].timings
    min_green_s = site.safety.min_green_ms / 1000
    # Lane flows at this junction from the movement (edge pair) demand.
    links_by_move: dict[tuple[str, str], set[str]] = defaultdict(set)
    for b in d.links:
        if b.phase is not None and b.from_lane:
            links_by_move[(b.from_lane.rsplit("_", 1)[0], b.to_lane.rsplit("_", 1)[0])].add(
                b.from_lane
            )
    lane_flow: dict[str, float] = defaultdict(float)
    for move, lanes in links_by_move.items():
        vph = demand.per_hour.get(move, 0.0)
        for lane in lanes:
            lane_flow[lane] += vph / len(lanes)
    y: dict[int, float] = defaultdict(float)
    for b in d.links:
        if b.phase is not None and b.from_lane:
            y[b.phase] = max(y[b.phase], lane_flow[b.from_lane] / SAT_FLOW_VPH_PER_LANE)
    groups: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for p in site.phases:
        groups[p.group][p.ring].append(p.id)

    def lost(pid: int) -> float:
        t = timing[pid]
        return (t.yellow_ms + t.red_clear_ms) / 1000

    y_group: dict[int, float] = {}
    lost_group: dict[int, float] = {}
    for g, rings in groups.items():
        critical = max(rings.values(), key=lambda ids: (sum(y[i] for i in ids), len(ids)))
        y_group[g] = sum(y[i] for i in critical)
        lost_group[g] = max(sum(lost(i) for i in ids) for ids in rings.values())
    y_total = sum(y_group.values())
    lost_total = sum(lost_group.values())
    if y_total >= 0.9:
        cycle = MAX_CYCLE_S
    else:
        cycle = min(max((1.5 * lost_total + 5) / (1 - y_total), MIN_CYCLE_S), MAX_CYCLE_S)
    effective = cycle - lost_total
    green: dict[int, float] = {}
    for g, rings in groups.items():
        share = y_group[g] / y_total if y_total > 0 else 1 / len(groups)
        group_green = effective * share
        for ids in rings.values():
            ring_green = group_green - (sum(lost(i) for i in ids) - lost_group[g])
            ring_y = sum(y[i] for i in ids)
            for i in ids:
                part = y[i] / ring_y if ring_y > 0 else 1 / len(ids)
                green[i] = max(round(ring_green * part, 1), min_green_s)
    raw = copy.deepcopy(d.site_dict)
    raw["site"]["default_plan"] = PLAN_ID
    raw["plans"] = {
        PLAN_ID: {
            "defaults": {"passage_s": 2.0, "recall": ["max"]},
            "phase": {
                str(pid): {
                    "min_green_s": green[pid],
                    "max_green_s": green[pid],
                    "yellow_s": timing[pid].yellow_ms / 1000,
                    "red_clear_s": timing[pid].red_clear_ms / 1000,
                    "red_revert_s": timing[pid].red_revert_ms / 1000,
                    **_ped(timing[pid]),
                }
                for pid in sorted(green)
            },
        }
    }
    splits = " ".join(f"{pid}:{green[pid]:g}" for pid in sorted(green))
    summary = (
        f"Webster cycle {cycle:.0f} s (Y {y_total:.2f}, lost {lost_total:.1f} s), greens {splits}"
    )
    return site_from_dict(raw, f"<webster {d.tls}>"), summary


def _ped(t: PhaseTiming) -> dict[str, Any]:
    """A phase with a crosswalk keeps the derived walk and clearance, walking every cycle."""
    if not t.walk_ms:
        return {}
    return {
        "walk_s": t.walk_ms / 1000,
        "ped_clear_s": t.ped_clear_ms / 1000,
        "recall": ["max", "ped"],
    }
