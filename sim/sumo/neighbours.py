"""Neighbours' projected outflows in the simulator: `edge-neighbours`' predicted arrivals.

What a device learns from its upstream neighbours over the central link
(edge/link/outflow.py, docs/adaptive.md), computed here from what those
neighbours sense, never from SUMO's vehicle positions, with the device's own
classes (edge/neighbours.py `Releases` and `Projection`): the simulator
measures what the device runs, and only rule 1 is the simulator's own:

1. Feeds, from the SUMO network: each approach of a signal is walked back
   through plain nodes (a turn pocket's start: one incoming edge) to the
   signal it leaves from; boundary approaches (no signal upstream within 4
   edges) get nothing, so a signal alone runs exactly as `edge`. The
   upstream exit is the walk's last edge; the upstream stop-bar loops that
   feed it are those on lanes whose one exit it is, or, for a lane shared by
   several exits, whose through link leads into it (no route is known: a
   shared lane's vehicles count as going straight, never as one arrival at
   each exit).
2. Each feed is what the downstream's `[[neighbour]]` entry would declare
   (`Feed.link`): the upstream's loops toward it with the phases that
   release over them, the downstream's through phases (no route is known;
   every vehicle counts for them), the walk's free-flow travel time (each
   edge at its speed limit) and the exit's speed limit.
3. Releases, projection and sending are edge/neighbours.py's rules 1-4: a
   falling edge while a releasing phase shows green or yellow, due at
   free flow plus the acceleration lag, a set once a second; a silent
   neighbourhood (`silent=True`, or no releases) steps the cores exactly as
   `edge` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from edge.control.messages import Lamp
from edge.neighbours import SEND_MS, Link, Projection, Releases

from sim.sumo.derive import Derivation

_WALK_EDGES = 4  # a walk back longer than this is not between neighbours


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

    def link(self) -> Link:
        """Rule 2: the feed as its downstream's `[[neighbour]]` entry would declare it."""
        return Link(self.up, self.loops, self.phases, self.travel_ms, self.speed_mps)


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
    """Rules 2-3: releases in, predicted arrivals out, per signal."""

    feeds: list[Feed]
    phase_ids: dict[str, list[int]]  # each signal's phase ids, in its outputs' order
    silent: bool = False  # the neighbours say nothing (the equal-to-`edge` check)
    released_count: int = 0  # releases a feed took
    sent_count: int = 0  # non-empty sets sent
    _releases: dict[str, Releases] = field(init=False)  # each upstream's falling edges
    _projections: dict[str, Projection] = field(init=False)  # each downstream's arrivals
    _fed: dict[str, list[tuple[str, Link]]] = field(init=False)  # upstream -> (down, link)

    def __post_init__(self) -> None:
        self._releases = {tls: Releases(ids) for tls, ids in self.phase_ids.items()}
        links: dict[str, list[Link]] = {}
        self._fed = {}
        for f in self.feeds:
            link = f.link()
            links.setdefault(f.down, []).append(link)
            self._fed.setdefault(f.up, []).append((f.down, link))
        self._projections = {tls: Projection(links.get(tls, [])) for tls in self.phase_ids}

    @classmethod
    def build(cls, net: Any, derivations: Iterable[Derivation], silent: bool = False) -> Neighbours:
        ds = list(derivations)
        ids = {d.tls: [p.id for p in d.site.phases] for d in ds}
        return cls(feeds(net, ds), ids, silent)

    def released(
        self, tls: str, t_ms: int, occupied: frozenset[int], lamps: Sequence[Lamp]
    ) -> None:
        """The loops that went off at this tick, heard by every signal this one feeds."""
        rels = self._releases[tls].step(t_ms, occupied, lamps)
        fed = self._fed.get(tls, ())
        if not rels or not fed:
            return
        for down in {down for down, _ in fed}:
            self._projections[down].receive(tls, t_ms, rels)
        self.released_count += sum(link.due(r) is not None for _, link in fed for r in rels)

    def take(self, tls: str, t_ms: int) -> tuple[tuple[int, int], ...] | None:
        """The set for this signal at this tick, or None (nothing new)."""
        if self.silent or t_ms % SEND_MS:
            return None
        pairs = self._projections[tls].take(t_ms)
        self.sent_count += bool(pairs)
        return pairs
