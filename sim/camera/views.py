"""Cameras and lane zones derived from a SUMO network: one pole camera per approach.

Each approach (an arm of the signal with incoming lanes, named as sim.sumo.derive
names it: N, E, SW...) gets a camera on a pole at the right kerb, `setback_m`
past the stop bar, looking back up the approach, tilted so the frame's top edge
meets the road just beyond the zones. Each incoming lane gets a zone: the lane's
polygon from the stop bar back `zone_m` metres, in frame pixels (cut to the
frame), and a count line across the lane just before the stop bar. The static
road scene (lanes, junction, markings, stop bars) is read once per network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sim.camera.render import (
    CameraView,
    Colour,
    FloatArray,
    Road,
    clip_to_frame,
    cut_polyline,
    offset_polyline,
    project,
    project_polygon,
    strip_polygon,
)
from sim.sumo.derive import build_arms
from sim.sumo.network import compass_bearing, read_net, signal_ids, signal_junction

ZONE_M = 60.0
COUNT_LINE_M = 2.0  # the count line sits this far before the stop bar
SCENE_RADIUS_M = 260.0


@dataclass(frozen=True, slots=True)
class LaneZone:
    """One lane's zone in a camera's frame (pixels) and where it lies on the lane."""

    lane: str
    approach: str
    polygon_px: tuple[tuple[float, float], ...]  # the lane from the stop bar back zone_m
    count_line_px: tuple[tuple[float, float], tuple[float, float]]
    lane_length_m: float  # SUMO lane length: the stop bar is at this lane position
    zone_m: float

    def holds(self, lane: str, lane_pos_m: float) -> bool:
        """Whether a vehicle (SUMO lane, front-bumper position) is in this zone."""
        return lane == self.lane and self.lane_length_m - self.zone_m <= lane_pos_m


@dataclass(frozen=True, slots=True)
class ApproachCamera:
    tls: str
    approach: str  # arm id, as the derivation names it
    edge: str  # the incoming SUMO edge the camera watches
    view: CameraView
    zones: tuple[LaneZone, ...]  # rightmost lane first


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the pole stands relative to the approach; jittered for training data."""

    height_m: float = 10.0
    setback_m: float = 18.0  # past the stop bar, into the junction
    kerb_m: float = 1.5  # beyond the right edge of the rightmost lane
    hfov_deg: float = 45.0
    aim_m: float = 30.0  # the camera heads at the lanes' middle this far up the approach
    far_m: float = 10.0  # the frame's top edge meets the road this far beyond the zones
    heading_jitter_deg: float = 0.0


def _unit(v: FloatArray) -> FloatArray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _lane_shape(lane: Any) -> FloatArray:
    return np.array([p[:2] for p in lane.getShape()], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Approach:
    """An approach's incoming lanes (sumolib objects), to place cameras on."""

    tls: str
    approach: str
    edge: str
    lanes: tuple[Any, ...]  # rightmost first
    junction_xy: tuple[float, float]


def approaches(net: Any, tls: str | None = None) -> list[Approach]:
    """Every approach of every signal (or of `tls`) of a network (a path or sumolib net)."""
    if isinstance(net, (str, Path)):
        net = read_net(net)
    out: list[Approach] = []
    for tid in [tls] if tls else signal_ids(net):
        junction = signal_junction(net, tid)
        for arm in build_arms(junction):
            for edge_id in arm.in_edges[:1]:
                lanes = tuple(net.getEdge(edge_id).getLanes())
                out.append(Approach(tid, arm.id, edge_id, lanes, (junction.x, junction.y)))
    return out


def camera_for(
    approach: Approach,
    placement: Placement = Placement(),
    width: int = 640,
    height: int = 360,
    zone_m: float = ZONE_M,
) -> ApproachCamera:
    """The pole camera on one approach and its lane zones."""
    view = _place(list(approach.lanes), placement, width, height, zone_m)
    zones = tuple(_zone(view, lane, approach.approach, zone_m) for lane in approach.lanes)
    return ApproachCamera(approach.tls, approach.approach, approach.edge, view, zones)


def approach_cameras(
    net: Any,
    tls: str | None = None,
    placement: Placement = Placement(),
    width: int = 640,
    height: int = 360,
    zone_m: float = ZONE_M,
) -> list[ApproachCamera]:
    """One camera per approach of every signal (or of `tls`), with its lane zones."""
    return [camera_for(a, placement, width, height, zone_m) for a in approaches(net, tls)]


def _place(lanes: list[Any], p: Placement, width: int, height: int, zone_m: float) -> CameraView:
    right_lane = _lane_shape(lanes[0])
    stop = right_lane[-1]
    travel = _unit(right_lane[-1] - right_lane[-2])
    right = np.array([travel[1], -travel[0]])
    kerb = stop + right * (lanes[0].getWidth() / 2.0 + p.kerb_m)
    pole = kerb + travel * p.setback_m
    middles = [_point_at(_lane_shape(lane), float(lane.getLength()) - p.aim_m) for lane in lanes]
    target = np.mean(middles, axis=0)
    heading = compass_bearing(*(target - pole)) + p.heading_jitter_deg
    view = CameraView(
        float(pole[0]), float(pole[1]), p.height_m, heading, 0.0, p.hfov_deg, width, height
    )
    vfov = 2.0 * math.atan(math.tan(math.radians(p.hfov_deg) / 2.0) * height / width)
    top_dist = p.setback_m + zone_m + p.far_m
    pitch = math.degrees(math.atan2(p.height_m, top_dist) + vfov / 2.0)
    return replace(view, pitch_deg=round(pitch, 3))


def _point_at(shape: FloatArray, pos_m: float) -> FloatArray:
    piece: FloatArray = cut_polyline(shape, pos_m, pos_m)[0]
    return piece


def _zone(view: CameraView, lane: Any, approach: str, zone_m: float) -> LaneZone:
    shape = _lane_shape(lane)
    length = float(lane.getLength())
    width = float(lane.getWidth())
    piece = cut_polyline(shape, length - zone_m, length)
    poly = clip_to_frame(view, project_polygon(view, strip_polygon(piece, width)))
    line_at = _point_at(shape, length - COUNT_LINE_M)
    ahead = _unit(_point_at(shape, length) - _point_at(shape, length - COUNT_LINE_M - 1.0))
    side = np.array([ahead[1], -ahead[0]]) * width / 2.0
    ends = project(view, [[*(line_at - side), 0.0], [*(line_at + side), 0.0]])
    ends = np.clip(np.nan_to_num(ends, nan=-1.0), [0, 0], [view.width - 1, view.height - 1])
    return LaneZone(
        lane=lane.getID(),
        approach=approach,
        polygon_px=tuple((round(float(x), 1), round(float(y), 1)) for x, y in poly),
        count_line_px=(
            (round(float(ends[0, 0]), 1), round(float(ends[0, 1]), 1)),
            (round(float(ends[1, 0]), 1), round(float(ends[1, 1]), 1)),
        ),
        lane_length_m=round(length, 2),
        zone_m=zone_m,
    )


# --- the static scene -----------------------------------------------------------------

_ASPHALT: Colour = (88, 86, 84)
_JUNCTION: Colour = (82, 80, 78)
_PAINT: Colour = (215, 215, 215)
_YELLOW: Colour = (40, 180, 215)


def road_scene(net: Any, centre: tuple[float, float] | None = None, seed: int = 0) -> Road:
    """Lanes, junction areas and markings within SCENE_RADIUS_M of `centre` (all if None),
    from a network (a path or sumolib net). `seed` varies the asphalt and grass shades."""
    if isinstance(net, (str, Path)):
        net = read_net(net)
    rng = np.random.default_rng(seed)
    tone = float(rng.uniform(0.8, 1.2)) if seed else 1.0

    def near(shape: FloatArray) -> bool:
        if centre is None:
            return True
        return bool((np.hypot(*(shape - np.array(centre)).T) < SCENE_RADIUS_M).any())

    surfaces: list[tuple[FloatArray, Colour]] = []
    markings: list[tuple[FloatArray, Colour]] = []
    tls_nodes = {n.getID() for t in net.getTrafficLights() for n in _tls_nodes(t)}
    for node in net.getNodes():
        shape = np.array([p[:2] for p in node.getShape()], dtype=np.float64)
        if len(shape) >= 3 and near(shape):
            surfaces.append((np.hstack([shape, np.zeros((len(shape), 1))]), _tint(_JUNCTION, tone)))
    for edge in net.getEdges():
        lanes = edge.getLanes()
        shapes = [_lane_shape(lane) for lane in lanes]
        if not any(near(s) for s in shapes):
            continue
        for lane, shape in zip(lanes, shapes, strict=True):
            w = float(lane.getWidth())
            surfaces.append((strip_polygon(shape, w), _tint(_ASPHALT, tone)))
        right_edge = offset_polyline(shapes[0], float(lanes[0].getWidth()) / 2.0 - 0.2)
        markings.append((strip_polygon(right_edge, 0.15, 0.01), _PAINT))
        left_edge = offset_polyline(shapes[-1], -float(lanes[-1].getWidth()) / 2.0 + 0.15)
        markings.append((strip_polygon(left_edge, 0.15, 0.01), _YELLOW))
        for lane, shape in zip(lanes[1:], shapes[1:], strict=True):
            border = offset_polyline(shape, float(lane.getWidth()) / 2.0)
            markings += _dashes(border)
        if edge.getToNode().getID() in tls_nodes:
            markings.append((_stop_bar(lanes, shapes), _PAINT))
    ground = _tint((70, 112, 92), float(rng.uniform(0.75, 1.2)) if seed else 1.0)
    return Road(tuple(surfaces), tuple(markings), ground=ground)


def _tls_nodes(tls: Any) -> list[Any]:
    return list(
        {
            c[0].getEdge().getToNode().getID(): c[0].getEdge().getToNode()
            for c in tls.getConnections()
        }.values()
    )


def _tint(colour: Colour, k: float) -> Colour:
    return (
        min(255, int(colour[0] * k)),
        min(255, int(colour[1] * k)),
        min(255, int(colour[2] * k)),
    )


def _dashes(
    line: FloatArray, dash_m: float = 3.0, gap_m: float = 6.0
) -> list[tuple[FloatArray, Colour]]:
    total = float(np.linalg.norm(np.diff(line, axis=0), axis=1).sum())
    out: list[tuple[FloatArray, Colour]] = []
    s = gap_m / 2.0
    while s + dash_m < total - 1.0:
        out.append((strip_polygon(cut_polyline(line, s, s + dash_m), 0.12, 0.01), _PAINT))
        s += dash_m + gap_m
    return out


def _stop_bar(lanes: list[Any], shapes: list[FloatArray]) -> FloatArray:
    """A bar 0.4 m deep across all lanes of an edge, at the lanes' ends."""
    end = shapes[0][-1]
    travel = _unit(shapes[0][-1] - shapes[0][-2])
    right = np.array([travel[1], -travel[0]])
    width = sum(float(lane.getWidth()) for lane in lanes)
    a = end + right * float(lanes[0].getWidth()) / 2.0 - travel * 0.6
    b = a - right * width
    ring = np.array([a, b, b + travel * 0.4, a + travel * 0.4])
    return np.hstack([ring, np.full((4, 1), 0.01)])
