"""Buses in SUMO as central's transit priority requests see them.

Central follows each bus (SUMO vClass `bus`) along its route, as a city's
AVL does, and asks the next signal ahead for transit priority on the bus's
approach once the bus is within `CHECK_IN_M` of the stop line (a check-in);
the request ends when the bus has passed the stop line (the check-out). The
device makes the requests in force the core's TransitRequest for their
approach, on from the first bus and off after the last
(edge/link/priority.py); here it reaches the in-process controller as that
command. Early green and green extension, and their limits, are the core's
(edge/control/priority.py).

With `enabled=False` nothing is requested, so runs with and without priority
see the same buses.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from edge.control.messages import TransitRequest

from sim.sumo.derive import Derivation
from sim.sumo.emergency import edge_of

# About 15 s out at 50 km/h: room for an early green to time out the phases
# before it (a minimum green and its clearances) or for an extension to hold.
CHECK_IN_M = 200.0


class TransitFeed:
    """Tracks buses each SUMO step; says which approaches want transit priority."""

    def __init__(
        self, derivations: Iterable[Derivation], range_m: float = CHECK_IN_M, enabled: bool = True
    ) -> None:
        self.range_m = range_m
        self.enabled = enabled
        self.approach_of_link: dict[str, dict[int, str]] = {}
        for d in derivations:
            approach = {e: a.id for a in d.arms for e in a.in_edges}
            self.approach_of_link[d.tls] = {
                b.index: arm
                for b in d.links
                if b.from_lane and (arm := approach.get(edge_of(b.from_lane))) is not None
            }
        self.on: dict[str, frozenset[str]] = {tls: frozenset() for tls in self.approach_of_link}
        self.commands: dict[str, list[TransitRequest]] = {tls: [] for tls in self.on}
        self.buses: set[str] = set()
        self.requests = 0  # approaches asked for (buses together share one), for the report

    def update(self, sim: Any) -> None:
        """After a SUMO step: new and gone buses, then each signal's requests."""
        for vid in sim.simulation.getDepartedIDList():
            if sim.vehicle.getVehicleClass(vid) == "bus":
                self.buses.add(vid)
        for vid in sim.simulation.getArrivedIDList():
            self.buses.discard(vid)
        wanted: dict[str, set[str]] = {tls: set() for tls in self.on}
        for vid in sorted(self.buses):
            ahead = sim.vehicle.getNextTLS(vid)
            if not ahead:
                continue
            tls, link, dist, _state = ahead[0]
            arm = self.approach_of_link.get(tls, {}).get(int(link))
            if arm is not None and dist <= self.range_m:
                wanted[tls].add(arm)
        if not self.enabled:
            return
        for tls, before in self.on.items():
            now = frozenset(wanted[tls])
            self.commands[tls] += [TransitRequest(a, True) for a in sorted(now - before)]
            self.commands[tls] += [TransitRequest(a, False) for a in sorted(before - now)]
            self.requests += len(now - before)
            self.on[tls] = now

    def take(self, tls: str) -> tuple[TransitRequest, ...]:
        """The TransitRequest commands for this signal since the last take."""
        out = tuple(self.commands.get(tls, ()))
        if out:
            self.commands[tls].clear()
        return out
