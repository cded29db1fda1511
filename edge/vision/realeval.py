"""The detector measured on real footage against hand-checked ground truth.

Rules it keeps:
- Frames are read as the ground truth was made: the frame (index from 0) of
  the video, or the still, resized to the truth's width with INTER_AREA.
  The footage itself stays in shared/ (terms unknown: evaluation only); the
  truth (tests/data/real_camera/ground_truth.json) is the project's own.
- A detection matches a vehicle at IoU >= 0.5, greedily by score. Vehicles
  smaller than the goal's size (MIN_HEIGHT_PX tall) or marked partial are
  "don't care": a box on one is neither right nor wrong, and missing one is
  not a miss. Precision and recall are over the rest.
- A false box is a detection that matches no vehicle (not even a don't-care
  one, at IoU >= 0.3); it is "on" a non-vehicle (signal head, pole, person,
  text, ...) when it overlaps that thing's box at IoU >= 0.3 or holds its
  centre.
- A zone's count is the vehicles whose bottom-centre lies in its polygon,
  against the detections' bottom-centres; the box bottom error is the
  matched box's bottom against the truth's, over the vehicle's height.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.vision.model import Detection

REPO = Path(__file__).resolve().parents[2]
TRUTH = REPO / "tests" / "data" / "real_camera" / "ground_truth.json"
FOOTAGE = REPO.parent / "shared" / "data" / "real-camera"
MIN_HEIGHT_PX = 20.0  # the goal's "vehicles at least 20 px tall"
MATCH_IOU = 0.5
TOUCH_IOU = 0.3
Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Truth:
    box: Box
    cls: str
    partial: bool

    @property
    def counted(self) -> bool:
        return not self.partial and self.box[3] - self.box[1] >= MIN_HEIGHT_PX


@dataclass(frozen=True, slots=True)
class Frame:
    source: str
    index: int
    width: int
    height: int
    vehicles: tuple[Truth, ...]
    others: tuple[tuple[Box, str], ...]  # (box, kind): signal_head, pole, person, text, ...
    zones: dict[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.source}#{self.index}"


def load_truth(path: Path = TRUTH) -> list[Frame]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    sources = doc.get("sources", {})
    frames = []
    for f in doc["frames"]:
        zones = sources.get(f["source"], {}).get("zones", {})
        frames.append(
            Frame(
                f["source"],
                int(f["frame"]),
                int(f["width"]),
                int(f["height"]),
                tuple(
                    Truth(tuple(v["box"]), v["cls"], bool(v.get("partial", False)))
                    for v in f["vehicles"]
                ),
                tuple((tuple(o["box"]), o["kind"]) for o in f.get("non_vehicles", [])),
                {z: tuple((float(x), float(y)) for x, y in poly) for z, poly in zones.items()},
            )
        )
    return frames


def read_frame(footage: Path, frame: Frame) -> np.ndarray:
    """The picture the truth was drawn on."""
    path = footage / frame.source
    if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    else:
        cap = cv2.VideoCapture(str(path))
        img = None
        for _ in range(frame.index + 1):
            ok, img = cap.read()
            if not ok:
                img = None
                break
        cap.release()
    if img is None:
        raise FileNotFoundError(f"{path}: frame {frame.index} cannot be read")
    size = (frame.width, frame.height)
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA) if img.shape[1::-1] != size else img


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _inside(point: tuple[float, float], poly: Sequence[tuple[float, float]]) -> bool:
    contour = np.asarray(poly, np.float32).reshape(-1, 1, 2)
    return cv2.pointPolygonTest(contour, point, False) >= 0


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

    def add(self, frame: Frame, dets: Sequence[Detection]) -> None:
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
            if not t.counted:
                continue
            if k in matched:
                self.tp += 1
                d = matched[k]
                self.bottom_err.append(abs(d.y2 - t.box[3]) / (t.box[3] - t.box[1]))
            else:
                self.fn += 1
                self.misses.append(f"{frame.key} {t.cls} {[round(x) for x in t.box]}")
        for d in order:
            if id(d) in taken:
                continue
            box = (d.x1, d.y1, d.x2, d.y2)
            if any(iou(box, t.box) >= TOUCH_IOU for t in frame.vehicles):
                continue  # a loose box on a vehicle (or a don't-care one): not a false vehicle
            self.fp += 1
            for obox, kind in frame.others:
                cx, cy = (obox[0] + obox[2]) / 2, (obox[1] + obox[3]) / 2
                holds = box[0] <= cx <= box[2] and box[1] <= cy <= box[3]
                if iou(box, obox) >= TOUCH_IOU or holds:
                    self.false_on[kind] += 1
                    break
        for poly in frame.zones.values():
            truth = sum(
                _inside(((t.box[0] + t.box[2]) / 2, t.box[3]), poly) for t in frame.vehicles
            )
            seen = sum(_inside(d.ground, poly) for d in dets)
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


def evaluate(
    detect: Callable[[np.ndarray], Sequence[Detection]],
    frames: Sequence[Frame],
    footage: Path = FOOTAGE,
) -> dict[str, Any]:
    """The figures over all frames, and per source file."""
    total = Score()
    per_source: dict[str, Score] = {}
    for f in frames:
        dets = detect(read_frame(footage, f))
        total.add(f, dets)
        per_source.setdefault(f.source, Score()).add(f, dets)
    out = total.summary()
    out["per_source"] = {s: sc.summary() for s, sc in per_source.items()}
    out["misses"] = total.misses
    return out
