"""Read the signalised junctions of a SUMO network into plain, frozen data.

sumolib is used here and nowhere else in the derivation: the rest of the code
sees `SignalJunction`s. Bearings are compass degrees (0 north, 90 east) of the
direction an edge's arm points to, seen from the junction, taken from the edge
geometry within `_BEARING_REACH_M` of the junction.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.sumo.conflicts import LinkPath, link_paths
from sim.sumo.errors import SimError

_BEARING_REACH_M = 25.0


@dataclass(frozen=True, slots=True)
class Leg:
    """An edge that touches the junction, with the direction its arm points to."""

    edge: str
    incoming: bool
    bearing_deg: float
    lanes: tuple[str, ...]  # lane ids, rightmost first
    lane_length_m: float
    speed_mps: float
    priority: int


@dataclass(frozen=True, slots=True)
class Link:
    """One controlled connection: a character of the signal's state string."""

    index: int  # TLS link index (position in the state string)
    from_edge: str
    from_lane: str
    to_edge: str
    to_lane: str
    dir: str  # SUMO direction: s, l, r, t, L, R
    crossing: bool  # a pedestrian crossing, not a vehicle stream


@dataclass(frozen=True, slots=True)
class Crossing:
    """A signalised pedestrian crossing: its links, the road edges it crosses, its length."""

    edge: str  # the crossing's own (internal) edge
    links: tuple[int, ...]  # TLS link indices (one per walking direction SUMO signals)
    crossed: tuple[str, ...]  # the road edges it crosses
    length_m: float


@dataclass(frozen=True, slots=True)
class SignalJunction:
    tls: str
    nodes: tuple[str, ...]  # junctions the signal controls (one, for a derivable signal)
    x: float
    y: float
    size_m: float  # the junction's extent, for red clearance
    right_on_red: bool  # SUMO junction type traffic_light_right_on_red
    legs: tuple[Leg, ...]
    links: tuple[Link, ...]
    state_length: int
    # Link-index pairs (both orders) whose paths cross or merge, from the junction logic.
    foes: frozenset[tuple[int, int]]
    # (a, b): link a must yield to link b when both may go (the junction's response).
    yields: frozenset[tuple[int, int]]
    crossings: tuple[Crossing, ...] = ()
    # Edges between two junctions of a joined signal (several nodes, one program).
    inner_edges: frozenset[str] = frozenset()
    # Each controlled link's path through the junction (sim/sumo/conflicts.py), for
    # the intergreens; empty when read without the network's geometry.
    paths: tuple[LinkPath, ...] = ()


def read_net(path: str | Path) -> Any:
    """Load a .net.xml with sumolib (connections, right of way, pedestrian links)."""
    try:
        import sumolib
    except ImportError:
        raise SimError("sumolib is not installed: pip install -e '.[sim]'") from None
    if not Path(path).is_file():
        raise SimError(f"network file not found: {path}")
    try:
        return sumolib.net.readNet(str(path), withPedestrianConnections=True)
    except Exception as exc:  # sumolib raises whatever its parser raises
        raise SimError(f"cannot read the network {path}: {exc}") from None


def signal_ids(net: Any) -> list[str]:
    return sorted(t.getID() for t in net.getTrafficLights())


def compass_bearing(dx: float, dy: float) -> float:
    return math.degrees(math.atan2(dx, dy)) % 360.0


def _point_along(shape: list[tuple[float, float]], reach: float) -> tuple[float, float]:
    """The point `reach` metres along a polyline (or its end)."""
    left = reach
    for (x0, y0), (x1, y1) in itertools.pairwise(shape):
        seg = math.hypot(x1 - x0, y1 - y0)
        if seg >= left and seg > 0:
            f = left / seg
            return (x0 + f * (x1 - x0), y0 + f * (y1 - y0))
        left -= seg
    return shape[-1]


def _bearing(edge: Any, incoming: bool) -> float:
    shape = [tuple(p[:2]) for p in edge.getShape()]
    if incoming:
        shape = shape[::-1]  # from the junction outwards
    if len(shape) < 2:
        raise SimError(f"edge {edge.getID()!r} has no geometry")
    x0, y0 = shape[0]
    x1, y1 = _point_along(shape, _BEARING_REACH_M)
    return round(compass_bearing(x1 - x0, y1 - y0), 1)


def _leg(edge: Any, incoming: bool) -> Leg:
    lanes = edge.getLanes()
    return Leg(
        edge=edge.getID(),
        incoming=incoming,
        bearing_deg=_bearing(edge, incoming),
        lanes=tuple(lane.getID() for lane in lanes),
        lane_length_m=min(lane.getLength() for lane in lanes),
        speed_mps=max(lane.getSpeed() for lane in lanes),
        priority=int(edge.getPriority()),
    )


def _junction_link_order(node: Any) -> dict[int, int]:
    """Junction link index (the `request` index of foes/response) of each connection.

    The order sumolib's Node.getLinkIndex uses, computed once per node rather
    than once per connection (that is quadratic and took seconds on the 4x4).
    """
    edges = {e.getID(): e for e in node.getIncoming()}
    out: dict[int, int] = {}
    n = 0
    for lane_id in node._incLanes:
        cut = lane_id.rfind("_")
        edge = edges.get(lane_id[:cut]) if cut > 0 else None
        if edge is None:
            continue
        for conn in edge.getLane(int(lane_id[cut + 1 :])).getOutgoing():
            src = conn.getFromLane().getEdge().getFunction()
            dst = conn.getToLane().getEdge().getFunction()
            if dst == "walkingarea" or (src == "walkingarea" and dst != "crossing"):
                continue
            out[id(conn)] = n
            n += 1
    return out


def signal_junction(
    net: Any, tls_id: str, paths: Mapping[int, LinkPath] | None = None
) -> SignalJunction:
    """Everything the derivation needs about one traffic light; `paths` (conflicts.py's
    link_paths for this light) gives the derivation its intergreens."""
    try:
        tls = net.getTLS(tls_id)
    except KeyError:
        known = ", ".join(signal_ids(net)) or "none"
        raise SimError(f"no traffic light {tls_id!r} in the network (signals: {known})") from None
    links: list[Link] = []
    nodes: dict[str, Any] = {}
    index_of: dict[int, Any] = {}
    crossing_links: dict[str, list[int]] = {}
    crossing_edges: dict[str, Any] = {}
    for in_lane, out_lane, index in tls.getConnections():
        from_edge, to_edge = in_lane.getEdge(), out_lane.getEdge()
        conn = next(
            (c for c in in_lane.getOutgoing() if c.getToLane() is out_lane),
            None,
        )
        node = from_edge.getToNode()
        nodes[node.getID()] = node
        crossing = from_edge.getFunction() == "crossing" or to_edge.getFunction() == "crossing"
        if crossing:
            cedge = to_edge if to_edge.getFunction() == "crossing" else from_edge
            crossing_links.setdefault(cedge.getID(), []).append(int(index))
            crossing_edges[cedge.getID()] = cedge
        links.append(
            Link(
                index=int(index),
                from_edge=from_edge.getID(),
                from_lane=in_lane.getID(),
                to_edge=to_edge.getID(),
                to_lane=out_lane.getID(),
                dir=conn.getDirection() if conn is not None else "s",
                crossing=crossing,
            )
        )
        if conn is not None:
            index_of[int(index)] = conn
    links.sort(key=lambda k: (k.index, k.from_lane, k.to_lane))
    node_ids = tuple(sorted(nodes))
    if not node_ids:
        raise SimError(f"traffic light {tls_id!r} controls no connections")
    cluster = [nodes[n] for n in node_ids]
    coords = [n.getCoord()[:2] for n in cluster]
    x = sum(c[0] for c in coords) / len(coords)
    y = sum(c[1] for c in coords) / len(coords)
    shape = [p for n in cluster for p in (n.getShape() or [n.getCoord()[:2]])]
    xs = [p[0] for p in shape]
    ys = [p[1] for p in shape]
    size = max(max(xs) - min(xs), max(ys) - min(ys), 1.0)
    # A joined signal's arms are its outer edges; edges between its junctions are inner.
    inner = {
        e.getID()
        for n in cluster
        for e in n.getOutgoing()
        if e.getFunction() == "" and e.getToNode().getID() in nodes
    }
    legs = [
        _leg(e, True)
        for n in cluster
        for e in n.getIncoming()
        if e.getFunction() == "" and e.getID() not in inner
    ]
    legs += [
        _leg(e, False)
        for n in cluster
        for e in n.getOutgoing()
        if e.getFunction() == "" and e.getID() not in inner
    ]
    foes: set[tuple[int, int]] = set()
    yields: set[tuple[int, int]] = set()
    for node in cluster:  # each junction's logic relates its own links
        order = _junction_link_order(node)
        jidx = {i: order[id(c)] for i, c in index_of.items() if id(c) in order}
        for a, ja in jidx.items():
            for b, jb in jidx.items():
                if a == b or ja < 0 or jb < 0 or ja not in node._foes or jb not in node._foes:
                    continue
                if node.areFoes(ja, jb):
                    foes.add((a, b))
                response = node._prohibits.get(ja, "")  # links that a must yield to
                if 0 <= jb < len(response) and response[-(jb + 1)] == "1":
                    yields.add((a, b))
    return SignalJunction(
        tls=tls_id,
        nodes=node_ids,
        x=float(x),
        y=float(y),
        size_m=round(float(size), 1),
        right_on_red=node.getType() == "traffic_light_right_on_red",
        legs=tuple(sorted(legs, key=lambda g: (g.bearing_deg, g.edge))),
        links=tuple(links),
        state_length=max((k.index for k in links), default=-1) + 1,
        foes=frozenset(foes | {(b, a) for a, b in foes}),
        yields=frozenset(yields),
        crossings=tuple(
            Crossing(
                edge=cid,
                links=tuple(sorted(crossing_links[cid])),
                crossed=tuple(
                    sorted(
                        e if isinstance(e, str) else e.getID()
                        for e in crossing_edges[cid].getCrossingEdges()
                    )
                ),
                length_m=round(float(crossing_edges[cid].getLanes()[0].getLength()), 1),
            )
            for cid in sorted(crossing_links)
        ),
        inner_edges=frozenset(inner),
        paths=tuple(paths[i] for i in sorted(paths)) if paths else (),
    )


_cache: dict[tuple[str, float], list[SignalJunction]] = {}


def signal_junctions(path: str | Path) -> list[SignalJunction]:
    """Every traffic light of a network (cached per file version; the data is frozen)."""
    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime if p.is_file() else 0.0)
    if key not in _cache:
        net = read_net(path)
        ids = signal_ids(net)
        if not ids:
            raise SimError(f"{path}: the network has no traffic lights: nothing to control")
        geometry = link_paths(path)
        _cache.clear()
        _cache[key] = [signal_junction(net, t, geometry.get(t)) for t in ids]
    return list(_cache[key])
