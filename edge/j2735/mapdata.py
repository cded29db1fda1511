"""The intersection's geometry and the J2735 MAP message (DSRC `MapData`) built from it.

Rules it keeps:
- `Geometry` is what a MAP says: a reference point (WGS-84 degrees) and lanes, each with
  its nodes in metres east/north of the reference point. An ingress lane's first node is
  its stop line (marked `stopLine`), the next ones go upstream; an egress lane's first
  node is where it leaves the junction; a crosswalk's nodes run across the road.
- An ingress lane lists its connections: the egress lane, the manoeuvre (L, T, R, U) and
  the signal group that controls it (edge/j2735/signals.py's numbers). A crosswalk
  connects to itself with its pedestrian signal group.
- Node offsets go out in centimetres, each from the previous node (the first from the
  reference point), in the smallest Node-XY form that holds them; an offset beyond
  +-327.67 m is an error naming the lane. Built by a site file's [map] table
  (edge/j2735/sitemap.py) or, for a simulated site, from the SUMO network
  (sim/sumo/j2735map.py).
- msgIssueRevision and the intersection's revision are a digest of the geometry modulo
  128: they change when the geometry does, never between messages.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

LANE_KINDS = ("ingress", "egress", "crosswalk")
MANEUVER_BIT = {"T": 0, "L": 1, "R": 2, "U": 3}  # AllowedManeuvers
# Node-XY forms: (choice name, the largest |offset| in cm)
_NODE_XY = (
    ("node-XY1", 511),
    ("node-XY2", 1023),
    ("node-XY3", 2047),
    ("node-XY4", 4095),
    ("node-XY5", 8191),
    ("node-XY6", 32767),
)


class GeometryError(ValueError):
    """A geometry a MAP cannot carry: which lane and why."""


@dataclass(frozen=True, slots=True)
class Connection:
    lane: int  # the egress lane (a crosswalk: itself)
    maneuver: str  # L, T, R, U ("" for a crosswalk)
    signal_group: int


@dataclass(frozen=True, slots=True)
class Lane:
    id: int  # 1..255
    kind: str  # ingress, egress, crosswalk
    nodes: tuple[tuple[float, float], ...]  # metres east, north of the reference point
    approach: int | None = None  # ApproachID 1..15 (the arm), None when not said
    connects: tuple[Connection, ...] = ()


@dataclass(frozen=True, slots=True)
class Geometry:
    intersection_id: int  # 0..65535
    lat: float
    lon: float
    lanes: tuple[Lane, ...]
    lane_width_m: float = 3.5
    name: str = ""

    def revision(self) -> int:
        return hashlib.sha256(repr(self).encode()).digest()[0] % 128


def _bits(positions: set[int], size: int) -> tuple[bytes, int]:
    value = 0
    for p in positions:
        value |= 1 << (size - 1 - p)
    nbytes = (size + 7) // 8
    return ((value << (nbytes * 8 - size)).to_bytes(nbytes, "big"), size)


def _node(lane: Lane, dx_m: float, dy_m: float) -> tuple[str, dict[str, int]]:
    if not (math.isfinite(dx_m * 100) and math.isfinite(dy_m * 100)):  # TOML has nan, inf
        raise GeometryError(f"lane {lane.id}: a node {dx_m} m, {dy_m} m: not a distance")
    x, y = round(dx_m * 100), round(dy_m * 100)
    for name, limit in _NODE_XY:
        if abs(x) <= limit and abs(y) <= limit:
            return (name, {"x": x, "y": y})
    raise GeometryError(
        f"lane {lane.id}: a node {dx_m:.1f} m, {dy_m:.1f} m from the one before is beyond "
        "the 327.67 m a MAP offset holds"
    )


def validate(geometry: Geometry) -> None:
    """GeometryError naming the first lane a MAP cannot carry."""
    if not 0 <= geometry.intersection_id <= 65535:
        raise GeometryError(f"intersection id {geometry.intersection_id}: give 0..65535")
    if not (-90 <= geometry.lat <= 90 and -180 <= geometry.lon <= 180):
        raise GeometryError(f"reference point {geometry.lat}, {geometry.lon}: not WGS-84 degrees")
    ids = [lane.id for lane in geometry.lanes]
    if not ids:
        raise GeometryError("no lanes")
    if len(set(ids)) != len(ids):
        raise GeometryError(f"lane ids repeat: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
    for lane in geometry.lanes:
        if not 1 <= lane.id <= 255:
            raise GeometryError(f"lane {lane.id}: ids are 1..255")
        if lane.kind not in LANE_KINDS:
            raise GeometryError(f"lane {lane.id}: kind {lane.kind!r}, not one of {LANE_KINDS}")
        if not 2 <= len(lane.nodes) <= 63:
            raise GeometryError(f"lane {lane.id}: {len(lane.nodes)} nodes; give 2..63")
        if len(lane.connects) > 16:
            raise GeometryError(f"lane {lane.id}: {len(lane.connects)} connections; at most 16")
        for c in lane.connects:
            if c.lane not in ids:
                raise GeometryError(f"lane {lane.id}: connects to lane {c.lane}, not in the map")
            if c.maneuver and c.maneuver not in MANEUVER_BIT:
                raise GeometryError(f"lane {lane.id}: manoeuvre {c.maneuver!r}: L, T, R or U")
            if not 1 <= c.signal_group <= 254:
                raise GeometryError(f"lane {lane.id}: signal group {c.signal_group}: 1..254")
        if lane.approach is not None and not 0 <= lane.approach <= 15:
            raise GeometryError(f"lane {lane.id}: approach {lane.approach}: 0..15")
        _nodes(lane)


def _nodes(lane: Lane) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    px = py = 0.0
    for k, (x, y) in enumerate(lane.nodes):
        node: dict[str, Any] = {"delta": _node(lane, x - px, y - py)}
        if k == 0 and lane.kind == "ingress":
            node["attributes"] = {"localNode": ["stopLine"]}
        out.append(node)
        px, py = x, y
    return out


def _lane(lane: Lane) -> dict[str, Any]:
    if lane.kind == "crosswalk":
        direction = {0, 1}
        lane_type: tuple[str, tuple[bytes, int]] = ("crosswalk", _bits(set(), 16))
        shared = _bits({9}, 10)  # pedestrianTraffic
    else:
        direction = {0} if lane.kind == "ingress" else {1}
        lane_type = ("vehicle", _bits(set(), 8))
        shared = _bits(set(), 10)
    g: dict[str, Any] = {
        "laneID": lane.id,
        "laneAttributes": {
            "directionalUse": _bits(direction, 2),
            "sharedWith": shared,
            "laneType": lane_type,
        },
        "nodeList": ("nodes", _nodes(lane)),
    }
    if lane.approach is not None:
        g["ingressApproach" if lane.kind != "egress" else "egressApproach"] = lane.approach
    turns = {MANEUVER_BIT[c.maneuver] for c in lane.connects if c.maneuver}
    if lane.kind == "ingress" and turns:
        g["maneuvers"] = _bits(turns, 12)
    if lane.connects:
        conns = []
        for c in lane.connects:
            target: dict[str, Any] = {"lane": c.lane}
            if c.maneuver:
                target["maneuver"] = _bits({MANEUVER_BIT[c.maneuver]}, 12)
            conns.append({"connectingLane": target, "signalGroup": c.signal_group})
        g["connectsTo"] = conns
    return g


def map_value(geometry: Geometry) -> dict[str, Any]:
    """The MapData as asn1tools encodes it: one intersection."""
    validate(geometry)
    rev = geometry.revision()
    inter: dict[str, Any] = {
        "id": {"id": geometry.intersection_id},
        "revision": rev,
        "refPoint": {"lat": round(geometry.lat * 1e7), "long": round(geometry.lon * 1e7)},
        "laneWidth": round(geometry.lane_width_m * 100),
        "laneSet": [_lane(lane) for lane in geometry.lanes],
    }
    if geometry.name:
        inter["name"] = geometry.name[:63]
    return {"msgIssueRevision": rev, "intersections": [inter]}
