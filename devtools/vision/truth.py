"""Hand-checked ground truth for frames of the real footage (tests/data/real_camera): its loader.

Rules this loader keeps (a file that breaks one is refused with a TruthError naming the frame
and the box):
- Every box is [x1, y1, x2, y2] in the pixels of the frame scaled to 640 px wide, inside the
  frame, with x1 < x2 and y1 < y2; every vehicle is at least 12 px tall.
- Vehicle classes are car, truck, bus, motorcycle; non-vehicle kinds are those in KINDS.
- Zones are simple polygons (3+ points, inside the frame, non-zero area, no crossing edges),
  a static list per source file; a vehicle is in a zone when its box's bottom-centre is, by
  the runtime's own rule (edge.vision.zones.inside: a point on an edge is inside).
- A frame is read with cv2.VideoCapture (index counted from 0; stills with cv2.imread, frame
  0) and resized to 640 px wide with INTER_AREA, keeping the aspect ratio.

The footage itself is not in the repository: it sits in ../shared/data/real-camera beside it,
or where $EDGE_SHARED_DATA says (that folder, or a data folder holding real-camera/).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from edge.vision.zones import inside

REPO = Path(__file__).resolve().parents[2]
TRUTH = REPO / "tests" / "data" / "real_camera" / "ground_truth.json"
WIDTH = 640
MIN_HEIGHT = 12
CLASSES = ("car", "truck", "bus", "motorcycle")
KINDS = ("signal_head", "pole", "sign", "person", "bicycle", "text", "tree")
STILLS = (".jpg", ".jpeg", ".png")

Box = tuple[int, int, int, int]
Point = tuple[float, float]
Image = npt.NDArray[np.uint8]


class TruthError(ValueError):
    """The ground-truth file breaks one of the module's rules."""


@dataclass(frozen=True, slots=True)
class Vehicle:
    box: Box
    cls: str
    partial: bool  # cut by the frame edge or more than about a third hidden

    @property
    def ground(self) -> Point:
        """The bottom-centre point: where the zones count the vehicle."""
        return ((self.box[0] + self.box[2]) / 2, float(self.box[3]))


@dataclass(frozen=True, slots=True)
class NonVehicle:
    box: Box
    kind: str


@dataclass(frozen=True, slots=True)
class Frame:
    source: str
    frame: int
    width: int
    height: int
    vehicles: tuple[Vehicle, ...]
    non_vehicles: tuple[NonVehicle, ...]


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    view: str
    zones: dict[str, tuple[Point, ...]]


@dataclass(frozen=True, slots=True)
class Truth:
    sources: dict[str, Source]
    frames: tuple[Frame, ...]


def load_truth(path: Path = TRUTH) -> Truth:
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TruthError(f"{path}: {e}") from e
    return parse_truth(raw, str(path))


def parse_truth(raw: Any, where: str = "ground truth") -> Truth:
    if not isinstance(raw, dict) or raw.get("version") != 1:
        raise TruthError(f"{where}: expected an object with version 1")
    if raw.get("frames_scaled_to_width") != WIDTH:
        raise TruthError(f"{where}: frames_scaled_to_width must be {WIDTH}")
    sources = {n: _source(n, s, f"{where} sources[{n!r}]") for n, s in raw["sources"].items()}
    frames = tuple(_frame(f, sources, f"{where} frames[{i}]") for i, f in enumerate(raw["frames"]))
    # The zones must fit every frame of their source (all frames of a source share a size).
    for f in frames:
        for zid, poly in sources[f.source].zones.items():
            if not all(0 <= x <= f.width and 0 <= y <= f.height for x, y in poly):
                raise TruthError(f"{where}: zone {zid} of {f.source} leaves the frame")
    return Truth(sources, frames)


def _source(name: str, raw: dict[str, Any], where: str) -> Source:
    zones: dict[str, tuple[Point, ...]] = {}
    for zid, pts in raw.get("zones", {}).items():
        poly = tuple((float(x), float(y)) for x, y in pts)
        _check_polygon(poly, f"{where} zone {zid}")
        zones[zid] = poly
    return Source(name, str(raw.get("view", "")), zones)


def _frame(raw: dict[str, Any], sources: dict[str, Source], where: str) -> Frame:
    src, n, w, h = raw["source"], raw["frame"], raw["width"], raw["height"]
    where = f"{where} ({src} #{n})"
    if src not in sources:
        raise TruthError(f"{where}: source not listed under sources")
    if w != WIDTH or not (isinstance(n, int) and n >= 0 and isinstance(h, int) and h > 0):
        raise TruthError(f"{where}: bad frame index or size {w}x{h}")
    if src.lower().endswith(STILLS) and n != 0:
        raise TruthError(f"{where}: a still has only frame 0")
    vehicles = []
    for i, v in enumerate(raw["vehicles"]):
        box = _box(v["box"], w, h, f"{where} vehicles[{i}]")
        if v["cls"] not in CLASSES:
            raise TruthError(f"{where} vehicles[{i}]: class {v['cls']!r} not one of {CLASSES}")
        if box[3] - box[1] < MIN_HEIGHT:
            raise TruthError(f"{where} vehicles[{i}]: under {MIN_HEIGHT} px tall")
        if not isinstance(v["partial"], bool):
            raise TruthError(f"{where} vehicles[{i}]: partial must be true or false")
        vehicles.append(Vehicle(box, v["cls"], v["partial"]))
    others = []
    for i, o in enumerate(raw["non_vehicles"]):
        box = _box(o["box"], w, h, f"{where} non_vehicles[{i}]")
        if o["kind"] not in KINDS:
            raise TruthError(f"{where} non_vehicles[{i}]: kind {o['kind']!r} not one of {KINDS}")
        others.append(NonVehicle(box, o["kind"]))
    return Frame(src, n, w, h, tuple(vehicles), tuple(others))


def _box(raw: Any, w: int, h: int, where: str) -> Box:
    if not (isinstance(raw, list) and len(raw) == 4 and all(isinstance(c, int) for c in raw)):
        raise TruthError(f"{where}: box must be four integers, got {raw!r}")
    x1, y1, x2, y2 = raw
    if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
        raise TruthError(f"{where}: box {raw} is empty or outside the {w}x{h} frame")
    return (x1, y1, x2, y2)


def _check_polygon(poly: tuple[Point, ...], where: str) -> None:
    if len(poly) < 3:
        raise TruthError(f"{where}: a polygon needs 3 or more points")
    area = sum(a[0] * b[1] - b[0] * a[1] for a, b in zip(poly, poly[1:] + poly[:1], strict=True))
    if abs(area) < 1.0:
        raise TruthError(f"{where}: the polygon has no area")
    edges = list(zip(poly, poly[1:] + poly[:1], strict=True))
    for i, e in enumerate(edges):
        for j in range(i + 2, len(edges)):
            if i == 0 and j == len(edges) - 1:
                continue  # neighbours through the closing point
            if _cross(e, edges[j]):
                raise TruthError(f"{where}: edges {i} and {j} cross")


def _cross(e: tuple[Point, Point], f: tuple[Point, Point]) -> bool:
    """Whether two segments properly cross (touching at an end point does not count)."""

    def side(a: Point, b: Point, c: Point) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = side(*e, f[0]), side(*e, f[1])
    d3, d4 = side(*f, e[0]), side(*f, e[1])
    return d1 * d2 < 0 and d3 * d4 < 0


def zone_counts(truth: Truth, frame: Frame) -> dict[str, int]:
    """Vehicles per zone of the frame's source, by each vehicle's bottom-centre point."""
    zones = truth.sources[frame.source].zones
    return {z: sum(inside(p, *v.ground) for v in frame.vehicles) for z, p in zones.items()}


def default_shared_dir() -> Path:
    """The folder with the footage ($EDGE_SHARED_DATA, else ../shared/data/real-camera)."""
    env = os.environ.get("EDGE_SHARED_DATA")
    if env:
        base = Path(env)
        return base / "real-camera" if (base / "real-camera").is_dir() else base
    return REPO.parent / "shared" / "data" / "real-camera"


def scale_to_width(img: Image) -> Image:
    h, w = img.shape[:2]
    if w == WIDTH:
        return img
    size = (WIDTH, round(h * WIDTH / w))
    return np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA), np.uint8)


def frame_images(
    source: str, frames: Iterable[int], shared_dir: Path | None = None
) -> Iterator[tuple[int, Image]]:
    """The 640-wide BGR images of the given frames of one file, in frame order, one pass."""
    path = (shared_dir or default_shared_dir()) / source
    if not path.is_file():
        raise FileNotFoundError(f"{path}: footage not found (see {TRUTH.parent}/README.md)")
    wanted = sorted(set(frames))
    if source.lower().endswith(STILLS):
        if wanted != [0]:
            raise ValueError(f"{source}: a still has only frame 0, asked for {wanted}")
        img = cv2.imread(str(path))
        if img is None:
            raise ValueError(f"{path}: OpenCV cannot read the image")
        yield 0, scale_to_width(np.asarray(img, np.uint8))
        return
    cap = cv2.VideoCapture(str(path))
    try:
        index = 0
        for n in wanted:
            while True:
                ok, img = cap.read()
                if not ok:
                    raise ValueError(f"{path}: ends before frame {n} (read {index} frames)")
                index += 1
                if index - 1 == n:
                    yield n, scale_to_width(np.asarray(img, np.uint8))
                    break
    finally:
        cap.release()


def frame_image(source: str, frame: int, shared_dir: Path | None = None) -> Image:
    """The 640-wide BGR image of one frame (0 for a still) of a file of the footage."""
    return next(iter(frame_images(source, [frame], shared_dir)))[1]
