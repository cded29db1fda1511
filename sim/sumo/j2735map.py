"""A derived site's J2735 MAP geometry, from the SUMO network (edge/j2735/mapdata.py).

- Lanes: every incoming lane with a signalled link is an ingress lane (its nodes from
  the stop line, the lane shape's end at the junction, upstream for at most
  REACH_M), every lane such a link leads to an egress lane (from the junction outwards),
  every signalled pedestrian crossing a crosswalk (its shape across the road). Ids are
  given in that order from 1; ApproachID is the derived arm's position (1, 2, ...).
- Connections: per link of the lane, the egress lane, its manoeuvre (the movement's turn;
  SUMO's direction for a link the derivation mapped out) and the signal group of the
  channel the link shows (edge/j2735/signals.py's numbers): a phase's permissive
  movements (a yielding 'g' in SUMO) get the phase's permissive group. A link the
  derivation keeps red has no connection.
- The reference point is the junction's centre: its longitude and latitude where the
  network has a projection, else 0, 0 (a network without one is not geo-referenced;
  the offsets stay right). The intersection id is edge's default for the site id.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from edge.control.site import SignalKind, Site
from edge.j2735.mapdata import Connection, Geometry, Lane, validate
from edge.j2735.publisher import default_intersection_id
from edge.j2735.signals import overlap_group, ped_group, permissive_group, phase_group

from sim.sumo.derive import Derivation, LinkBinding
from sim.sumo.network import SignalJunction

REACH_M = 150.0  # how far up (or down) a lane its nodes go
_DIR_TURN = {"s": "T", "l": "L", "L": "L", "r": "R", "R": "R", "t": "U"}


def _clip(shape: list[tuple[float, float]], reach: float) -> list[tuple[float, float]]:
    """The polyline's points within `reach` metres of its start (cut there)."""
    out = [shape[0]]
    left = reach
    for (x0, y0), (x1, y1) in itertools.pairwise(shape):
        seg = math.hypot(x1 - x0, y1 - y0)
        if seg >= left:
            f = left / seg if seg else 0.0
            out.append((x0 + f * (x1 - x0), y0 + f * (y1 - y0)))
            break
        out.append((x1, y1))
        left -= seg
    return out if len(out) >= 2 else [shape[0], shape[-1]]


def _group(site: Site, b: LinkBinding) -> int | None:
    if b.channel is None:
        return None
    ch = next(c for c in site.channels if c.id == b.channel)
    if ch.kind is SignalKind.OVERLAP:
        return overlap_group(site, str(ch.source))
    if ch.kind is SignalKind.PED:
        return ped_group(int(ch.source))
    phase = site.phase(int(ch.source))
    if not b.protected and any(m.name == b.movement for m in phase.permissive):
        return permissive_group(phase.id)
    return phase_group(phase.id)


def derived_geometry(d: Derivation, junction: SignalJunction, net: Any) -> Geometry:
    """The MAP geometry of one derived signal."""
    cx, cy = junction.x, junction.y
    if net.hasGeoProj():
        lon, lat = net.convertXY2LonLat(cx, cy)
    else:
        lon, lat = 0.0, 0.0

    def shape(lane_id: str) -> list[tuple[float, float]]:
        return [(float(p[0]) - cx, float(p[1]) - cy) for p in net.getLane(lane_id).getShape()]

    arm_of_edge: dict[str, int] = {}
    for k, arm in enumerate(d.arms):
        for e in (*arm.in_edges, *arm.out_edges):
            arm_of_edge[e] = k + 1
    dirs = {k.index: k.dir for k in junction.links}
    crossing_of = {i: c for c in junction.crossings for i in c.links}
    vehicle = [b for b in d.links if b.from_lane and not b.crossing]
    ingress = list(dict.fromkeys(b.from_lane for b in vehicle))
    egress = list(dict.fromkeys(b.to_lane for b in vehicle))
    ids = {lane: k + 1 for k, lane in enumerate(ingress)}
    ids.update({lane: len(ingress) + k + 1 for k, lane in enumerate(egress)})
    lanes: list[Lane] = []
    for lane in ingress:
        conns = []
        for b in vehicle:
            group = _group(d.site, b)
            if b.from_lane != lane or group is None:
                continue
            turn = b.movement.rsplit(".", 1)[-1] if b.movement else _DIR_TURN.get(dirs[b.index])
            conns.append(Connection(ids[b.to_lane], turn or "T", group))
        nodes = tuple(_clip(shape(lane)[::-1], REACH_M))
        edge = lane.rsplit("_", 1)[0]
        lanes.append(Lane(ids[lane], "ingress", nodes, arm_of_edge.get(edge), tuple(conns[:16])))
    for lane in egress:
        nodes = tuple(_clip(shape(lane), REACH_M))
        lanes.append(Lane(ids[lane], "egress", nodes, arm_of_edge.get(lane.rsplit("_", 1)[0])))
    next_id = len(ids) + 1
    done: set[str] = set()
    for b in d.links:
        c = crossing_of.get(b.index)
        group = _group(d.site, b)
        if not b.crossing or c is None or group is None or c.edge in done:
            continue
        done.add(c.edge)
        points = [(float(p[0]) - cx, float(p[1]) - cy) for p in net.getEdge(c.edge).getShape()]
        lanes.append(
            Lane(next_id, "crosswalk", tuple(_clip(points, REACH_M)), None,
                 (Connection(next_id, "", group),))
        )  # fmt: skip
        next_id += 1
    geometry = Geometry(
        default_intersection_id(d.site), float(lat), float(lon), tuple(lanes[:255]),
        name=d.tls[:63],
    )  # fmt: skip
    validate(geometry)
    return geometry
