"""Zone measurements from one frame's vehicles: presence, count, queue (vehicles and metres).

Pure: boxes in, numbers out. A vehicle is in a zone when its ground point
(the middle of its box's bottom edge, where it meets the road) is inside
the zone's polygon. A queue zone has four corners, stop-bar edge first, and
its length in metres: a homography maps the quadrilateral onto the road
rectangle, so a ground point becomes metres from the stop bar, exact for a
flat road whatever the perspective. The queue is the chain of vehicles from
the stop bar on: the first within `gap_m` of it, each next within `gap_m`
of the one before, and (when the tracker knows its speed) none moving
faster than `QUEUE_SPEED_MPS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from edge.vision.config import Point, Zone

QUEUE_SPEED_MPS = 2.0  # slower than this (or speed unknown) counts as waiting


@dataclass(frozen=True, slots=True)
class ZoneState:
    id: str
    presence: bool
    count: int
    queue_veh: int | None
    queue_m: float | None


def inside(poly: Sequence[Point], x: float, y: float) -> bool:
    """Point in polygon (even-odd rule); points on an edge count as inside."""
    n = len(poly)
    hit = False
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            xc = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if xc == x:
                return True
            if xc > x:
                hit = not hit
        elif y1 == y2 == y and min(x1, x2) <= x <= max(x1, x2):
            return True
    return hit


class ZoneGeometry:
    """A zone with its precomputed road mapping (queue zones only)."""

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.to_road: npt.NDArray[np.float64] | None = None
        if zone.kind == "queue" and zone.length_m is not None and len(zone.polygon) == 4:
            src = np.array(zone.polygon, np.float32)
            length = zone.length_m
            dst = np.array([[0, 0], [1, 0], [1, length], [0, length]], np.float32)
            self.to_road = np.asarray(cv2.getPerspectiveTransform(src, dst), np.float64)

    def contains(self, point: Point) -> bool:
        return inside(self.zone.polygon, point[0], point[1])

    def metres_from_stop_bar(self, point: Point) -> float | None:
        h = self.to_road
        if h is None:
            return None
        x, y = point
        w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
        if abs(w) < 1e-12:
            return None
        return float((h[1, 0] * x + h[1, 1] * y + h[1, 2]) / w)

    def measure(self, vehicles: Iterable[tuple[Point, float | None]], gap_m: float) -> ZoneState:
        """`vehicles`: (ground point, speed in m/s or None) for every vehicle in the frame."""
        inside_ = [(p, v) for p, v in vehicles if self.contains(p)]
        count = len(inside_)
        z = self.zone
        if self.to_road is None or z.length_m is None:
            return ZoneState(z.id, count > 0, count, None, None)
        dists = sorted(
            (d, v)
            for d, v in ((self.metres_from_stop_bar(p), v) for p, v in inside_)
            if d is not None
        )
        queue, last = 0, 0.0
        for d, speed in dists:
            if d - last > gap_m or (speed is not None and speed > QUEUE_SPEED_MPS):
                break
            queue += 1
            last = max(last, d)
        queue_m = min(z.length_m, max(0.0, last)) if queue else 0.0
        return ZoneState(z.id, count > 0, count, queue, round(queue_m, 1))
