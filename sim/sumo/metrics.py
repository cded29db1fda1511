"""What a run measures: queues while it runs, trips and totals from SUMO's outputs after.

Delay is SUMO's timeLoss (time lost against driving the route at desired
speed), averaged over every vehicle that entered the network, those still
in it at the end included (tripinfo write-unfinished). Queues are halting
vehicles (speed < 0.1 m/s) on each approach edge, sampled every second.
Pedestrians' mean time loss (waiting at crossings included) is SUMO's
pedestrianStatistics, so a gain for cars is not a hidden loss for walkers.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_LAST_STEP_VEHICLE_HALTING_NUMBER = 0x14  # traci constant, same for libsumo
BIN_S = 60


@dataclass(slots=True)
class QueueSampler:
    approaches: dict[str, str]  # report key -> SUMO edge id
    samples: int = 0
    total: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    peak: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bins: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))

    def start(self, sim: Any) -> None:
        for edge in sorted(set(self.approaches.values())):
            sim.edge.subscribe(edge, [_LAST_STEP_VEHICLE_HALTING_NUMBER])

    def sample(self, sim: Any, t_s: float) -> None:
        res = sim.edge.getAllSubscriptionResults()
        all_ = 0
        for key, edge in self.approaches.items():
            n = int(res.get(edge, {}).get(_LAST_STEP_VEHICLE_HALTING_NUMBER, 0))
            self.total[key] += n
            if n > self.peak[key]:
                self.peak[key] = n
            all_ += n
        self.samples += 1
        self.bins[int(t_s // BIN_S)].append(all_)

    def per_approach(self) -> dict[str, dict[str, float]]:
        n = max(self.samples, 1)
        return {
            key: {"mean": round(self.total[key] / n, 3), "max": self.peak[key]}
            for key in sorted(self.approaches)
        }


@dataclass(frozen=True, slots=True)
class Trip:
    depart_s: float
    arrival_s: float  # -1 when still running at the end
    duration_s: float
    time_loss_s: float
    stops: int
    vtype: str


def read_trips(path: Path) -> list[Trip]:
    trips: list[Trip] = []
    if not path.is_file():
        return trips
    for _, el in ET.iterparse(path):
        if el.tag != "tripinfo":
            continue
        depart = float(el.get("depart", "-1"))
        if depart >= 0:
            trips.append(
                Trip(
                    depart_s=depart,
                    arrival_s=float(el.get("arrival", "-1")),
                    duration_s=float(el.get("duration", "0")),
                    time_loss_s=float(el.get("timeLoss", "0")),
                    stops=int(el.get("waitingCount", "0")),
                    vtype=el.get("vType", ""),
                )
            )
        el.clear()
    return trips


def read_statistics(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    root = ET.parse(path).getroot()
    return {child.tag: dict(child.attrib) for child in root}


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _spread(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    m = sum(values) / len(values)
    return round(math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1)), 3)


def build_report(
    *,
    controller: str,
    seed: int,
    scenario: str,
    step_length_s: float,
    simulated_s: float,
    wall_s: float,
    trips: list[Trip],
    stats: dict[str, dict[str, str]],
    queues: QueueSampler,
    emergency_types: set[str],
    bus_types: set[str],
    notes: list[str],
) -> dict[str, Any]:
    ev = [t for t in trips if t.vtype in emergency_types]
    buses = [t for t in trips if t.vtype in bus_types]
    arrived = [t for t in trips if t.arrival_s >= 0]
    by_bin: dict[int, list[float]] = defaultdict(list)
    for t in arrived:
        by_bin[int(t.arrival_s // BIN_S)].append(t.time_loss_s)
    last_bin = max([*queues.bins, *by_bin], default=-1)
    series_t = list(range(0, last_bin + 1))
    vehicles = stats.get("vehicles", {})
    safety = stats.get("safety", {})
    peds = stats.get("pedestrianStatistics", {})
    return {
        "controller": controller,
        "seed": seed,
        "scenario": scenario,
        "step_length_s": step_length_s,
        "simulated_s": round(simulated_s, 1),
        "inserted": int(vehicles.get("inserted", len(trips))),
        "arrived": len(arrived),
        "running_at_end": len(trips) - len(arrived),
        "mean_delay_s": _mean([t.time_loss_s for t in trips]),
        "mean_travel_time_s": _mean([t.duration_s for t in trips]),
        "stops_per_vehicle": _mean([float(t.stops) for t in trips]),
        "teleports": int(stats.get("teleports", {}).get("total", 0)),
        "collisions": int(safety.get("collisions", 0)),
        "emergency_braking": int(safety.get("emergencyBraking", 0)),
        # every vehicle but the emergency ones (what priority costs the others)
        "general_mean_delay_s": _mean(
            [t.time_loss_s for t in trips if t.vtype not in emergency_types]
        ),
        "ev_count": len(ev),
        "ev_mean_delay_s": _mean([t.time_loss_s for t in ev]),
        "ev_mean_travel_time_s": _mean([t.duration_s for t in ev]),
        # travel time over free-flow travel time (SUMO: duration less time loss), arrived EVs
        "ev_free_flow_ratio": _mean(
            [
                t.duration_s / ft
                for t in ev
                if t.arrival_s >= 0 and (ft := t.duration_s - t.time_loss_s) > 0
            ]
        ),
        # SUMO's pedestrianStatistics: walks and their mean time loss (waiting at crossings)
        "ped_count": int(peds.get("number", 0)),
        "ped_mean_time_loss_s": round(float(peds["timeLoss"]), 3)
        if int(peds.get("number", 0))
        else None,
        "bus_count": len(buses),
        "bus_mean_delay_s": _mean([t.time_loss_s for t in buses]),
        "bus_mean_travel_time_s": _mean([t.duration_s for t in buses]),
        "queues": queues.per_approach(),
        "timeseries": {
            "t_s": [b * BIN_S for b in series_t],
            "queue_veh": [_mean([float(x) for x in queues.bins.get(b, [])]) for b in series_t],
            "delay_s": [_mean(by_bin.get(b, [])) for b in series_t],
        },
        "notes": notes,
        "wall_s": round(wall_s, 3),
        "sim_speedup": round(simulated_s / wall_s, 1) if wall_s > 0 else None,
    }


def summarise(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (None when not defined)."""
    return _mean(values), _spread(values)
