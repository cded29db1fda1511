"""Neighbours' projected outflows in the simulator: `edge-neighbours`' predicted arrivals.

What a device would learn from its upstream neighbours over the central link
(docs/adaptive.md, seventh pass; the device side is not built), computed here
from what those neighbours sense, never from SUMO's vehicle positions:

1. Feeds, from the SUMO network: each approach of a signal is walked back
   through plain nodes (a turn pocket's start: one incoming edge) to the
   signal it leaves from; boundary approaches (no signal upstream within 4
   edges) get nothing, so a signal alone runs exactly as `edge`. The
   upstream exit is the walk's last edge; the upstream stop-bar loops that
   feed it are those on lanes whose one exit it is, or, for a lane shared by
   several exits, whose through link leads into it (no route is known: a
   shared lane's vehicles count as going straight, never as one arrival at
   each exit).
2. Releases: a vehicle leaving such a loop (its falling edge, 100 ms ticks)
   while a phase of its link to the exit shows green or yellow has crossed
   the stop line toward the neighbour. (A rising edge misses the queue's
   first vehicle, which stands on the loop when the green starts.)
3. Projection: free flow, each edge of the walk at its speed limit, plus
   the time lost accelerating to it from the speed the vehicle crossed the
   loop at ((loop length + VEHICLE_M) / time on the loop; a vehicle that
   stood on it starts from rest): (v - v0)^2 / (2 a v), a = 2.6 m/s^2. The
   arrival is for the approach's through phases (no route is known; every
   vehicle counts for them), due at release + travel time. The projection is
   the device's own (edge/neighbours.py `due_ms`): the simulator measures it.
4. Sending: once a second each signal gets the set of its arrivals due
   within SEND_AHEAD_MS (the core's windows plus margin) as
   `Inputs.arrivals`; nothing is sent while there is nothing to say and the
   last set said nothing, so a silent neighbourhood (`silent=True`, or no
   releases) steps the cores exactly as `edge` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.control.arrivals import CALL_MS
from edge.control.messages import Lamp
from edge.neighbours import due_ms

from sim.sumo.derive import Derivation

SEND_MS = 1000  # a set once a second, as a device would publish
SEND_AHEAD_MS = CALL_MS + 2000  # arrivals further ahead are not sent
_WALK_EDGES = 4  # a walk back longer than this is not between neighbours
_RELEASING = (Lamp.GREEN, Lamp.YELLOW, Lamp.FLASH_YELLOW)


@dataclass(frozen=True, slots=True)
class Feed:
    """One upstream signal's exit feeding one approach of a downstream signal."""

    up: str  # upstream signal (tls id)
    down: str  # downstream signal
    approach: str  # the downstream signal's incoming edge
    # (upstream loop, its length (m), the phases whose green releases over it)
    loops: tuple[tuple[int, float, tuple[int, ...]], ...]
    phases: tuple[int, ...]  # downstream phases the arrivals are for
    travel_ms: int  # free-flow time, upstream stop line to downstream stop line
    speed_mps: float  # the exit's speed limit (the acceleration lag's target)


def _edge_of(lane: str) -> str:
    return lane.rsplit("_", 1)[0]


def feeds(net: Any, derivations: Sequence[Derivation]) -> list[Feed]:
    """Rule 1: every (upstream exit -> downstream approach) pair, from a sumolib net."""
    node_tls: dict[str, Derivation] = {}
    for d in derivations:
        tl = net.getTLS(d.tls)
        for conn in tl.getConnections():
            node_tls[conn[0].getEdge().getToNode().getID()] = d
    out = []
    for d in derivations:
        by_edge: dict[str, list[int]] = {}
        through: dict[str, list[int]] = {}
        for b in d.links:
            if b.phase is None or b.crossing:
                continue
            e = _edge_of(b.from_lane)
            by_edge.setdefault(e, []).append(b.phase)
            if b.movement.endswith(".T"):
                through.setdefault(e, []).append(b.phase)
        for approach in sorted(by_edge):
            phases = tuple(sorted(set(through.get(approach) or by_edge[approach])))
            walk = _walk_back(net, approach, node_tls)
            if walk is None:
                continue
            up, path = walk
            exit_edge = path[-1]
            releasing: dict[str, set[int]] = {}
            for b in up.links:
                if b.phase is None or b.crossing or _edge_of(b.to_lane) != exit_edge:
                    continue
                if _lane_exit(up, b.from_lane) != exit_edge:
                    continue
                ps = releasing.setdefault(b.from_lane, set())
                ps.add(b.phase)
                if b.permissive_phase is not None:
                    ps.add(b.permissive_phase)
            loops = tuple(
                (det.id, det.length_m, tuple(sorted(releasing[det.lane])))
                for det in up.detectors
                if det.kind == "stop-bar" and det.lane in releasing
            )
            if not loops:
                continue
            travel_s = sum(net.getEdge(e).getLength() / net.getEdge(e).getSpeed() for e in path)
            speed = net.getEdge(exit_edge).getSpeed()
            travel = round(travel_s * 1000)
            out.append(Feed(up.tls, d.tls, approach, loops, phases, travel, speed))
    return out


def _lane_exit(d: Derivation, lane: str) -> str | None:
    """The exit a lane's vehicles are counted for: its one exit, else its through link's."""
    links = [b for b in d.links if b.from_lane == lane and b.phase is not None and not b.crossing]
    exits = {_edge_of(b.to_lane) for b in links}
    if len(exits) == 1:
        return exits.pop()
    through = {_edge_of(b.to_lane) for b in links if b.movement.endswith(".T")}
    return through.pop() if len(through) == 1 else None


def _walk_back(
    net: Any, approach: str, node_tls: dict[str, Derivation]
) -> tuple[Derivation, list[str]] | None:
    """The signal an approach leaves from, and the edges from the approach back to it."""
    path = [approach]
    edge = net.getEdge(approach)
    seen = {edge.getToNode().getID()}
    node = edge.getFromNode()
    while node.getID() not in node_tls:
        ins = [e for e in node.getIncoming() if not e.getID().startswith(":")]
        if len(path) >= _WALK_EDGES or len(ins) != 1:
            return None  # a junction, or too far
        seen.add(node.getID())
        node = ins[0].getFromNode()
        if node.getID() in seen:
            return None  # a dead end turning back
        path.append(ins[0].getID())
    up = node_tls[node.getID()]
    return up, path


@dataclass(slots=True)
class Neighbours:
    """Rules 2-4: releases in, predicted arrivals out, per signal."""

    feeds: list[Feed]
    phase_ids: dict[str, list[int]]  # each signal's phase ids, in its outputs' order
    silent: bool = False  # the neighbours say nothing (the equal-to-`edge` check)
    _prev: dict[str, frozenset[int]] = field(default_factory=dict)
    _on_since: dict[tuple[str, int], int] = field(default_factory=dict)  # loop's rising edge
    _pending: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # (phase, due)
    _said: dict[str, bool] = field(default_factory=dict)  # the last set sent was not empty
    released_count: int = 0
    sent_count: int = 0  # non-empty sets sent

    @classmethod
    def build(cls, net: Any, derivations: Iterable[Derivation], silent: bool = False) -> Neighbours:
        ds = list(derivations)
        ids = {d.tls: [p.id for p in d.site.phases] for d in ds}
        return cls(feeds(net, ds), ids, silent)

    def released(
        self, tls: str, t_ms: int, occupied: frozenset[int], lamps: Sequence[Lamp]
    ) -> None:
        """Rule 2: loops that went off at this tick, with their link's phase releasing."""
        prev = self._prev.get(tls, frozenset())
        self._prev[tls] = occupied
        for det in occupied - prev:
            self._on_since[(tls, det)] = t_ms
        gone = prev - occupied
        if not gone:
            return
        ids = self.phase_ids[tls]
        for f in self.feeds:
            if f.up != tls:
                continue
            for det, length_m, phases in f.loops:
                if det in gone and any(lamps[ids.index(p)] in _RELEASING for p in phases):
                    on_ms = t_ms - self._on_since.get((tls, det), t_ms)
                    due = due_ms(t_ms, f.travel_ms, f.speed_mps, length_m, on_ms)
                    self._pending.setdefault(f.down, []).extend((p, due) for p in f.phases)
                    self.released_count += 1

    def take(self, tls: str, t_ms: int) -> tuple[tuple[int, int], ...] | None:
        """Rule 4: the set for this signal at this tick, or None (nothing new)."""
        if self.silent or t_ms % SEND_MS:
            return None
        pending = [(p, due) for p, due in self._pending.get(tls, ()) if due > t_ms]
        self._pending[tls] = pending
        pairs = tuple(sorted((p, due - t_ms) for p, due in pending if due - t_ms <= SEND_AHEAD_MS))
        if not pairs and not self._said.get(tls, False):
            return None
        self._said[tls] = bool(pairs)
        self.sent_count += bool(pairs)
        return pairs
