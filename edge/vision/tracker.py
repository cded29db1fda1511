"""Vehicles followed across frames, so each is counted once when it crosses a count line.

Association is greedy by IoU against each track's predicted box (its last
box moved by its velocity for the time elapsed), then by ground-point
distance for what is left (within half a box's size: further, a waiting
vehicle's track would jump onto the one behind when the model misses it
for a frame). A track unseen for `max_age_s` ends. A count line counts a
track once, when the segment between two of its ground points crosses the
line and the track has `min_hits` observations (a one-frame blip does not
count). What the renderer's traffic showed double counting, and the cures:
a weaker box around a vehicle already found (the vehicle plus the road ahead
of it) is dropped before association; a vehicle found again where a counted
track was lost (a vehicle waiting on the line, missed for a while) keeps
that track's count.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from edge.vision.config import CountLine, Point
from edge.vision.model import Detection


@dataclass(slots=True)
class Track:
    id: int
    det: Detection
    t_s: float
    vx: float = 0.0  # ground point velocity, px/s
    vy: float = 0.0
    hits: int = 1
    counted: set[str] = field(default_factory=set)
    crossed: set[str] = field(default_factory=set)  # counted once the track is confirmed

    def predicted(self, t_s: float) -> tuple[float, float, float, float]:
        dt = t_s - self.t_s
        d = self.det
        return (d.x1 + self.vx * dt, d.y1 + self.vy * dt, d.x2 + self.vx * dt, d.y2 + self.vy * dt)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def overlap_of_smaller(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over the smaller box's area: 1.0 when one box holds the other."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / small if small > 0 else 0.0


def suppress_shadows(dets: Sequence[Detection], cover: float) -> list[Detection]:
    """Drop each box that overlaps a better-scored one by `cover` of the smaller box.

    The model sometimes adds a weaker, bigger or shifted box around a vehicle it
    already found (a vehicle plus the road ahead of it): NMS keeps it, its IoU
    being low, and its bottom edge reaches the count line before the vehicle does.
    """
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        box = (d.x1, d.y1, d.x2, d.y2)
        if all(overlap_of_smaller(box, (k.x1, k.y1, k.x2, k.y2)) < cover for k in kept):
            kept.append(d)
    return kept


def _side(p: Point, a: Point, b: Point) -> float:
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def crosses(p: Point, q: Point, line: tuple[Point, Point]) -> bool:
    """Does the move p -> q cross the segment `line` (touching its end counts)?"""
    a, b = line
    s1, s2 = _side(p, a, b), _side(q, a, b)
    if s1 == 0 and s2 == 0:
        return False
    if (s1 > 0) == (s2 > 0) and s1 != 0 and s2 != 0:
        return False
    t1, t2 = _side(a, p, q), _side(b, p, q)
    return (t1 >= 0) != (t2 >= 0) or t1 == 0 or t2 == 0


class Tracker:
    def __init__(
        self,
        lines: Sequence[CountLine] = (),
        *,
        min_iou: float = 0.2,
        max_age_s: float = 1.5,
        shadow_cover: float = 0.5,
        rebirth_iou: float = 0.5,
        min_hits: int = 3,
        lost_memory_s: float = 60.0,
    ) -> None:
        self.lines = tuple(lines)
        self.min_iou = min_iou
        self.max_age_s = max_age_s
        self.shadow_cover = shadow_cover
        self.rebirth_iou = rebirth_iou
        self.min_hits = min_hits
        self.lost_memory_s = lost_memory_s
        self.tracks: list[Track] = []
        self.counts: dict[str, int] = {ln.id: 0 for ln in self.lines}
        self._ids = itertools.count(1)
        self._lost: list[Track] = []  # counted tracks that ended, for `lost_memory_s`

    def set_lines(self, lines: Sequence[CountLine]) -> None:
        """New count lines (a technician's edit): a line that keeps its id keeps its count,
        and a vehicle that counted it is not counted again; the tracks go on."""
        self.lines = tuple(lines)
        self.counts = {ln.id: self.counts.get(ln.id, 0) for ln in self.lines}
        ids = set(self.counts)
        for tr in self.tracks:
            tr.crossed &= ids

    def _counted_before(self, d: Detection) -> set[str]:
        """The lines already counted for a vehicle found again where a counted track was lost.

        A vehicle waiting on the line (in rain, at night) drops out of the
        model's detections now and then; the track reborn in its place must
        not count it again when its box jitters over the line.
        """
        box = (d.x1, d.y1, d.x2, d.y2)
        for tr in self._lost:
            if iou(box, (tr.det.x1, tr.det.y1, tr.det.x2, tr.det.y2)) >= self.rebirth_iou:
                self._lost.remove(tr)
                return set(tr.counted)
        return set()

    def update(self, t_s: float, dets: Sequence[Detection]) -> list[Track]:
        """Associate this frame's detections; returns the tracks seen in it."""
        dets = suppress_shadows(dets, self.shadow_cover)
        alive = [tr for tr in self.tracks if t_s - tr.t_s <= self.max_age_s]
        self._lost += [tr for tr in self.tracks if t_s - tr.t_s > self.max_age_s and tr.counted]
        self._lost = [tr for tr in self._lost if t_s - tr.t_s <= self.lost_memory_s]
        self.tracks = alive
        pairs = sorted(
            (
                (iou(tr.predicted(t_s), (d.x1, d.y1, d.x2, d.y2)), ti, di)
                for ti, tr in enumerate(self.tracks)
                for di, d in enumerate(dets)
            ),
            reverse=True,
        )
        used_t: set[int] = set()
        used_d: set[int] = set()
        matches: list[tuple[int, int]] = []
        for score, ti, di in pairs:
            if score < self.min_iou:
                break
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            matches.append((ti, di))
        # What IoU left: the nearest predicted ground point within the box's own size.
        near = []
        for ti, tr in enumerate(self.tracks):
            if ti in used_t:
                continue
            px1, _, px2, py2 = tr.predicted(t_s)
            gx, gy = (px1 + px2) / 2, py2
            reach = 0.5 * max(tr.det.x2 - tr.det.x1, tr.det.y2 - tr.det.y1)
            for di, d in enumerate(dets):
                if di in used_d:
                    continue
                dx, dy = d.ground[0] - gx, d.ground[1] - gy
                dist = (dx * dx + dy * dy) ** 0.5
                if dist <= reach:
                    near.append((dist, ti, di))
        for _, ti, di in sorted(near):
            if ti in used_t or di in used_d:
                continue
            used_t.add(ti)
            used_d.add(di)
            matches.append((ti, di))
        seen: list[Track] = []
        for ti, di in matches:
            tr, d = self.tracks[ti], dets[di]
            dt = t_s - tr.t_s
            (ox, oy), (nx, ny) = tr.det.ground, d.ground
            if dt > 0:
                a = 0.5 if tr.hits > 1 else 1.0  # smooth once there is a velocity
                tr.vx = a * (nx - ox) / dt + (1 - a) * tr.vx
                tr.vy = a * (ny - oy) / dt + (1 - a) * tr.vy
            tr.crossed.update(ln.id for ln in self.lines if crosses((ox, oy), (nx, ny), ln.points))
            tr.det, tr.t_s = d, t_s
            tr.hits += 1
            if tr.hits >= self.min_hits:
                for line_id in sorted(tr.crossed - tr.counted):
                    tr.counted.add(line_id)
                    self.counts[line_id] += 1
            seen.append(tr)
        for di, d in enumerate(dets):
            if di not in used_d:
                tr = Track(next(self._ids), d, t_s, counted=self._counted_before(d))
                self.tracks.append(tr)
                seen.append(tr)
        return seen
