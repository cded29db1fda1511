"""The detector measured on real footage against hand-checked ground truth.

Rules it keeps:
- Frames are read as the ground truth was made (devtools/vision/truth.py). The
  footage stays in shared/ (terms unknown: evaluation only); the truth
  (tests/data/real_camera/ground_truth.json) is the project's own.
- A detection matches a vehicle at IoU >= 0.5, greedily by score. Vehicles
  smaller than the goal's size (MIN_HEIGHT_PX tall) or marked partial are
  "don't care": a box on one is neither right nor wrong, and missing one is
  not a miss. Precision and recall are over the rest.
- A false box is a detection that matches no vehicle (not even a don't-care
  one, at IoU >= 0.3); it is "on" a non-vehicle (signal head, pole, person,
  text, ...) when it overlaps that thing's box at IoU >= 0.3 or holds its
  centre.
- Two ways to look: the whole frame (every vehicle is looked for), and as
  the runtime looks (`crop`): the model sees the zones' region only, and a
  vehicle whose ground point is outside it is not looked for.
- A zone's count is the vehicles whose bottom-centre lies in its polygon
  (the runtime's rule, edge.vision.zones.inside), against the detections'
  bottom-centres; the box bottom error is the
  matched box's bottom against the truth's, over the vehicle's height.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from edge.vision.model import Detection
from edge.vision.pipeline import region_of
from edge.vision.tracker import iou
from edge.vision.zones import inside

from devtools.vision.truth import Frame, Truth, Vehicle, default_shared_dir, frame_images

Polygon = tuple[tuple[float, float], ...]
MIN_HEIGHT_PX = 20.0  # the goal's "vehicles at least 20 px tall"
MATCH_IOU = 0.5
TOUCH_IOU = 0.3


def counted(v: Vehicle) -> bool:
    """A vehicle the figures are over: whole, and as tall as the goal's size."""
    return not v.partial and v.box[3] - v.box[1] >= MIN_HEIGHT_PX


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    frames: int = 0
    false_on: Counter[str] = field(default_factory=Counter)
    zone_frames: int = 0
    zone_within_1: int = 0
    zone_abs_err: float = 0.0
    bottom_err: list[float] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)

    def add(
        self,
        frame: Frame,
        zones: dict[str, Polygon],
        dets: Sequence[Detection],
        region: tuple[int, int, int, int] | None = None,
    ) -> None:
        """One frame's detections; with `region` (the runtime's crop) a vehicle whose
        ground point is outside it is not looked for (the runtime never sees it)."""
        self.frames += 1
        order = sorted(dets, key=lambda d: -d.score)
        taken: set[int] = set()
        matched: dict[int, Detection] = {}  # truth index -> detection
        for d in order:
            box = (d.x1, d.y1, d.x2, d.y2)
            best, best_iou = -1, MATCH_IOU
            for k, t in enumerate(frame.vehicles):
                v = iou(box, t.box)
                if k not in matched and v >= best_iou:
                    best, best_iou = k, v
            if best >= 0:
                matched[best] = d
                taken.add(id(d))
        for k, t in enumerate(frame.vehicles):
            if not counted(t) or (region is not None and not _within(t.ground, region)):
                continue
            if k in matched:
                self.tp += 1
                d = matched[k]
                self.bottom_err.append(abs(d.y2 - t.box[3]) / (t.box[3] - t.box[1]))
            else:
                self.fn += 1
                self.misses.append(f"{frame.source}#{frame.frame} {t.cls} {list(t.box)}")
        for d in order:
            if id(d) in taken:
                continue
            box = (d.x1, d.y1, d.x2, d.y2)
            if any(iou(box, t.box) >= TOUCH_IOU for t in frame.vehicles):
                continue  # a loose box on a vehicle (or a don't-care one): not a false vehicle
            self.fp += 1
            for other in frame.non_vehicles:
                obox, kind = other.box, other.kind
                cx, cy = (obox[0] + obox[2]) / 2, (obox[1] + obox[3]) / 2
                holds = box[0] <= cx <= box[2] and box[1] <= cy <= box[3]
                if iou(box, obox) >= TOUCH_IOU or holds:
                    self.false_on[kind] += 1
                    break
        for poly in zones.values():
            truth = sum(inside(poly, *t.ground) for t in frame.vehicles)
            seen = sum(inside(poly, *d.ground) for d in dets)
            self.zone_frames += 1
            self.zone_within_1 += abs(seen - truth) <= 1
            self.zone_abs_err += abs(seen - truth)

    def summary(self) -> dict[str, Any]:
        bottoms = sorted(self.bottom_err)
        false_nv = sum(self.false_on.values())
        return {
            "frames": self.frames,
            "vehicles": self.tp + self.fn,
            "precision": round(self.tp / max(1, self.tp + self.fp), 3),
            "recall": round(self.tp / max(1, self.tp + self.fn), 3),
            "false_boxes": self.fp,
            "false_on_non_vehicles": dict(self.false_on),
            "false_non_vehicle_per_20_frames": round(20 * false_nv / max(1, self.frames), 2),
            "zone_frames": self.zone_frames,
            "zone_count_within_1_pct": round(
                100 * self.zone_within_1 / max(1, self.zone_frames), 1
            ),
            "zone_count_mae": round(self.zone_abs_err / max(1, self.zone_frames), 2),
            "box_bottom_err_median": round(float(np.median(bottoms)), 3) if bottoms else None,
            "box_bottom_within_15_pct": round(
                100 * sum(e <= 0.15 for e in bottoms) / max(1, len(bottoms)), 1
            ),
        }


def _within(point: tuple[float, float], region: tuple[int, int, int, int]) -> bool:
    return region[0] <= point[0] <= region[2] and region[1] <= point[1] <= region[3]


def evaluate(
    detect: Callable[[np.ndarray, tuple[float, float]], Sequence[Detection]],
    truth: Truth,
    footage: Path | None = None,
    *,
    crop: bool = False,
) -> dict[str, Any]:
    """The figures over all frames, and per source file. `detect(picture, offset)` is a
    model's; with `crop` the model sees what the runtime's would: the region of the
    source's zones (a source without zones: the whole frame)."""
    total = Score()
    per_source: dict[str, Score] = {}
    by_source: dict[str, dict[int, Frame]] = {}
    for f in truth.frames:
        by_source.setdefault(f.source, {})[f.frame] = f
    for source, frames in by_source.items():
        zones = truth.sources[source].zones
        for index, image in frame_images(source, frames, footage or default_shared_dir()):
            f = frames[index]
            region = None
            if crop and zones:
                region = region_of([p for z in zones.values() for p in z], f.width, f.height)
            if region is None:
                dets = detect(image, (0.0, 0.0))
            else:
                x1, y1, x2, y2 = region
                dets = detect(image[y1:y2, x1:x2], (float(x1), float(y1)))
            total.add(f, zones, dets, region)
            per_source.setdefault(source, Score()).add(f, zones, dets, region)
    out = total.summary()
    out["per_source"] = {s: sc.summary() for s, sc in per_source.items()}
    out["misses"] = total.misses
    return out
