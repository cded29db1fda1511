"""Scripted random traffic for the demo and the benchmark, without a simulator.

Each vehicle detector that calls a phase gets Poisson arrivals into a queue.
While the phase is red the first queued vehicle sits on the stop-bar loop;
while it is green the queue discharges one vehicle per saturation headway,
each pulsing the loop. Push buttons are pressed at random. Deterministic
for a seed. The simulator (sim/) replaces this with SUMO traffic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from edge.control.messages import Inputs, Lamp, Outputs
from edge.control.site import Site

SAT_HEADWAY_MS = 2000  # one vehicle per 2 s from a standing queue
OCCUPANCY_MS = 400  # time a moving vehicle spends on the loop


@dataclass
class _Lane:
    detector: int
    phase_index: int
    rate_per_s: float
    queue: int = 0
    next_departure: int = 0
    on_until: int = -1


class RandomDemand:
    def __init__(
        self, site: Site, seed: int = 0, veh_per_hour: float = 400, ped_per_hour: float = 30
    ) -> None:
        self.rng = random.Random(seed)
        index = {p.id: i for i, p in enumerate(site.phases)}
        self.lanes = []
        self.buttons: list[tuple[int, float]] = []
        for d in site.detectors:
            if d.ped:
                self.buttons.append((d.id, ped_per_hour / 3600))
            elif d.calls:
                # Main-street phases (those with recalls in the default plan) get more traffic.
                plan = site.plans[site.default_plan]
                main = any(plan.timings[p].recall for p in d.calls)
                rate = veh_per_hour / 3600 * (1.8 if main else 0.7)
                self.lanes.append(_Lane(d.id, index[d.calls[0]], rate))
        self.extenders = [d.id for d in site.detectors if not d.ped and not d.calls]
        self.pressed: set[int] = set()

    def inputs(self, now: int, step_ms: int, last: Outputs | None) -> Inputs:
        occupied = set()
        dt = step_ms / 1000
        for lane in self.lanes:
            if self.rng.random() < lane.rate_per_s * dt:
                lane.queue += 1
            green = last is not None and last.phases[lane.phase_index] == Lamp.GREEN
            if green and lane.queue and now >= lane.next_departure:
                lane.queue -= 1
                lane.next_departure = now + SAT_HEADWAY_MS
                lane.on_until = now + OCCUPANCY_MS
            if now < lane.on_until or (lane.queue and not green):
                occupied.add(lane.detector)
        for det, rate in self.buttons:
            if self.rng.random() < rate * dt:
                occupied.add(det)
        for det in self.extenders:
            if self.rng.random() < 0.03:
                occupied.add(det)
        return Inputs(occupied=frozenset(occupied))

    def queues(self) -> dict[int, int]:
        return {lane.detector: lane.queue for lane in self.lanes}
