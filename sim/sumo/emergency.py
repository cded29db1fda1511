"""Emergency vehicles in SUMO as the preemption receiver and central see them.

Two sources request a signal's preempt for the approach an emergency vehicle
(SUMO vClass `emergency`) arrives on, and both drop it when the vehicle has
passed the stop line:
- the receiver: an optical or radio receiver at the junction picks the
  vehicle up once it is within `DETECT_RANGE_M` of the stop line, next
  signal only;
- central (with `central=True`): the city brain tracks the vehicle along its
  route and sends every signal ahead an `ev_priority` request with the ETA;
  the request acts its request lead before the arrival (edge/link/priority.py's
  `request_lead_s`, the device's own formula: the preempt's `lead_ms`, or the
  time to end the conflicting greens and discharge the queue ahead of the
  vehicle, SUMO's halting count standing in for the device's estimate) and,
  once due, stays until the vehicle has passed. Here the ETA is the distance
  over the speed the vehicle may drive (its lane's limit times its speed
  factor), and central names the vehicle's turn (from its route), so a
  through vehicle gets its approach's through preempt where the site has one.
The request reaches the in-process controller as a Preempt command (what
edge.board.inputs and edge.link.priority make of either source), or a board
as the preempt's input bit. SUMO's `getNextTLS` gives the signals ahead,
their link indices and distances, whatever edges lie in between.

With `preempt=False` nothing is requested, but the vehicles are traced the
same way (sim/sumo/ev_trace.py), so runs with and without are measured alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edge.control.messages import Preempt
from edge.control.site import Preempt as SitePreempt
from edge.link.priority import entry_s, preempts_for, request_lead_s

from sim.sumo.derive import Derivation
from sim.sumo.ev_trace import EvTrace

DETECT_RANGE_M = 250.0  # typical optical/radio receiver range on a straight approach


def edge_of(lane: str) -> str:
    return lane.rsplit("_", 1)[0]


@dataclass(slots=True)
class _Signal:
    preempt_of_link: dict[int, int]  # TLS link index -> preempt id of its approach
    told_of_link: dict[int, int]  # TLS link index -> the preempt central's request asks for
    pre: dict[int, SitePreempt]  # preempt id -> the site's preempt
    entry_s: dict[int, float]  # preempt id -> longest conflicting minimum green + clearances
    lane_of_link: dict[int, str]  # TLS link index -> the lane it leaves the stop line from
    input_of: dict[int, int]  # preempt id -> board input (1..16), where wired
    on: frozenset[int] = frozenset()  # preempt ids requested now
    commands: list[Preempt] = field(default_factory=list)  # changes not yet taken


class EmergencyFeed:
    """Tracks emergency vehicles each SUMO step; says which preempts are requested."""

    def __init__(
        self,
        derivations: Iterable[Derivation],
        range_m: float = DETECT_RANGE_M,
        central: bool = True,
        preempt: bool = True,
    ) -> None:
        self.range_m = range_m
        self.central = central
        self.preempt = preempt
        self.signals: dict[str, _Signal] = {}
        edges: dict[str, tuple[str, ...]] = {}
        for d in derivations:
            edges[d.tls] = tuple(e for a in d.arms for e in a.in_edges)
            approach = {e: a.id for a in d.arms for e in a.in_edges}
            links: dict[int, int] = {}
            told: dict[int, int] = {}
            for b in d.links:
                arm = approach.get(edge_of(b.from_lane)) if b.from_lane else None
                if arm is None or not (pres := preempts_for(d.site, arm, None)):
                    continue
                links[b.index] = pres[0].id
                turn = b.movement.split(".")[-1] if b.movement else None
                told[b.index] = preempts_for(d.site, arm, turn)[0].id
            inputs = {p.id: p.input for p in d.site.preempts if p.input is not None}
            by_id = {p.id: p for p in d.site.preempts}
            entry = {p.id: entry_s(d.site, p) for p in d.site.preempts}
            lanes = {b.index: b.from_lane for b in d.links if b.from_lane}
            self.signals[d.tls] = _Signal(links, told, by_id, entry, lanes, inputs)
        self.vehicles: set[str] = set()
        # (vehicle, signal, link) central's request fell due for: it stays due until the
        # vehicle has passed (the queue it discharges shrinks; the preempt must not lapse)
        self.due: set[tuple[str, str, int]] = set()
        self.requests = 0  # preempt requests raised (rising edges), for the report
        self.trace = EvTrace(edges)
        self.stop_edges = {e for es in edges.values() for e in es}  # end at a signal's stop line

    def update(self, sim: Any) -> None:
        """After a SUMO step: new and gone emergency vehicles, then each signal's requests."""
        t_s = float(sim.simulation.getTime())
        self.trace.sample(sim, t_s)
        for vid in sim.simulation.getDepartedIDList():
            if sim.vehicle.getVehicleClass(vid) == "emergency":
                self.vehicles.add(vid)
        for vid in sim.simulation.getArrivedIDList():
            if vid in self.vehicles:
                self.vehicles.discard(vid)
                self.trace.gone(vid)
        wanted: dict[str, set[int]] = {tls: set() for tls in self.signals}
        due: set[tuple[str, str, int]] = set()
        for vid in sorted(self.vehicles):
            ahead = sim.vehicle.getNextTLS(vid)
            self.trace.ahead(
                sim, vid, ahead[0][0] if ahead else None, ahead[0][2] if ahead else 0.0, t_s
            )
            if not ahead:
                continue
            speed = max(sim.vehicle.getAllowedSpeed(vid), 1.0) if self.central else 0.0
            for n, (tls, link, dist, _state) in enumerate(ahead):
                sig = self.signals.get(tls)
                pid = sig.preempt_of_link.get(int(link)) if sig is not None else None
                if sig is None or pid is None:
                    continue
                told_pid = sig.told_of_link[int(link)]
                heard = n == 0 and dist <= self.range_m
                key = (vid, tls, int(link))
                told = self.central and (
                    key in self.due or self._due(sim, vid, sig, int(link), told_pid, dist, speed)
                )
                # Both sources request, as on the device: central's (earlier) is served
                # first, and both drop as the vehicle passes the stop line.
                if told:
                    due.add(key)
                    wanted[tls].add(told_pid)
                if heard:
                    wanted[tls].add(pid)
                if heard or told:
                    self.trace.reach(vid, tls)
                if not self.central:
                    break
        self.due = due  # passed signals (and gone vehicles) drop out
        if not self.preempt:
            return
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

    def _due(
        self, sim: Any, vid: str, sig: _Signal, link: int, pid: int, dist: float, speed: float
    ) -> bool:
        """Central's request for this signal falls due: the vehicle's ETA (distance over
        the speed it may drive) is within its request lead (edge/link/priority.py: the
        preempt's lead, or the time to end the conflicting greens and discharge the
        queue ahead of the vehicle)."""
        eta = dist / speed
        pre = sig.pre[pid]
        if eta <= request_lead_s(pre, sig.entry_s[pid], 0.0):
            return True
        if eta > request_lead_s(pre, sig.entry_s[pid], float("inf")):
            return False  # beyond any queue's reach: spare SUMO the count
        queue = _queue_ahead(sim, vid, sig.lane_of_link.get(link), self.stop_edges)
        return eta <= request_lead_s(pre, sig.entry_s[pid], queue)

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


def _queue_ahead(sim: Any, vid: str, lane: str | None, stop_edges: set[str]) -> float:
    """Halting vehicles a lane between the vehicle and the stop line it crosses from `lane`,
    on that signal's approach only: a queue at a signal before it is that signal's to
    discharge (what a device's loops and counts estimate; SUMO's count stands in here)."""
    if lane is None:
        return 0.0
    last = edge_of(lane)
    route = sim.vehicle.getRoute(vid)
    k = sim.vehicle.getRouteIndex(vid)
    queue = 0.0
    for e in route[max(k, 0) :]:
        if e == last:
            return queue + float(sim.lane.getLastStepHaltingNumber(lane))
        if e in stop_edges:
            queue = 0.0  # the approach starts after this signal
        else:
            queue += sim.edge.getLastStepHaltingNumber(e) / max(sim.edge.getLaneNumber(e), 1)
    return queue
