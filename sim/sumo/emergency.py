"""Emergency vehicles in SUMO as the preemption receiver sees them.

An optical or radio receiver at the junction picks up an emergency vehicle
(SUMO vClass `emergency`) once it is within `DETECT_RANGE_M` of the stop line
on an approach, and drops it when the vehicle has passed the stop line (the
signal is no longer the next one on its route). Each signal's preempt for
that approach is then requested: as a Preempt command for the in-process
controller (what edge.board.inputs makes of the receiver's input), or as the
preempt's board input bit for a board. SUMO's `getNextTLS` gives the next
signal, its link index and the distance, whatever edges lie in between.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edge.control.messages import Preempt

from sim.sumo.derive import Derivation

DETECT_RANGE_M = 250.0  # typical optical/radio receiver range on a straight approach


def _edge_of(lane: str) -> str:
    return lane.rsplit("_", 1)[0]


@dataclass(slots=True)
class _Signal:
    preempt_of_link: dict[int, int]  # TLS link index -> preempt id of its approach
    input_of: dict[int, int]  # preempt id -> board input (1..16), where wired
    on: frozenset[int] = frozenset()  # preempt ids requested now
    commands: list[Preempt] = field(default_factory=list)  # changes not yet taken


class EmergencyFeed:
    """Tracks emergency vehicles each SUMO step; says which preempts are requested."""

    def __init__(self, derivations: Iterable[Derivation], range_m: float = DETECT_RANGE_M) -> None:
        self.range_m = range_m
        self.signals: dict[str, _Signal] = {}
        for d in derivations:
            approach = {e: a.id for a in d.arms for e in a.in_edges}
            pre_of_arm = {p.approach: p.id for p in d.site.preempts if p.approach is not None}
            links = {
                b.index: pre_of_arm[arm]
                for b in d.links
                if b.from_lane
                and (arm := approach.get(_edge_of(b.from_lane))) is not None
                and arm in pre_of_arm
            }
            inputs = {p.id: p.input for p in d.site.preempts if p.input is not None}
            self.signals[d.tls] = _Signal(links, inputs)
        self.vehicles: set[str] = set()
        self.requests = 0  # preempt requests raised (rising edges), for the report

    def update(self, sim: Any) -> None:
        """After a SUMO step: new and gone emergency vehicles, then each signal's requests."""
        for vid in sim.simulation.getDepartedIDList():
            if sim.vehicle.getVehicleClass(vid) == "emergency":
                self.vehicles.add(vid)
        for vid in sim.simulation.getArrivedIDList():
            self.vehicles.discard(vid)
        wanted: dict[str, set[int]] = {tls: set() for tls in self.signals}
        for vid in sorted(self.vehicles):
            ahead = sim.vehicle.getNextTLS(vid)
            if not ahead:
                continue
            tls, link, dist, _state = ahead[0]
            sig = self.signals.get(tls)
            if sig is None or dist > self.range_m:
                continue
            pid = sig.preempt_of_link.get(int(link))
            if pid is not None:
                wanted[tls].add(pid)
        for tls, sig in self.signals.items():
            now = frozenset(wanted[tls])
            if now == sig.on:
                continue
            for pid in sorted(now - sig.on):
                sig.commands.append(Preempt(pid, True))
                self.requests += 1
            for pid in sorted(sig.on - now):
                sig.commands.append(Preempt(pid, False))
            sig.on = now

    def take(self, tls: str) -> tuple[Preempt, ...]:
        """The Preempt commands for this signal since the last take."""
        sig = self.signals.get(tls)
        if sig is None or not sig.commands:
            return ()
        out = tuple(sig.commands)
        sig.commands.clear()
        return out

    def input_mask(self, tls: str) -> int:
        """Board input bits of the receiver outputs that are on (wired preempts only)."""
        sig = self.signals.get(tls)
        if sig is None:
            return 0
        mask = 0
        for pid in sig.on:
            n = sig.input_of.get(pid)
            if n is not None:
                mask |= 1 << (n - 1)
        return mask
