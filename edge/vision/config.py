"""The site file's `[vision]` and `[[cameras]]` sections: schema, cross-checks, frozen objects.

A camera has lane zones (polygons in frame pixels) and count lines. A zone
may stand for a site detector (`detector = 3`): while the camera is healthy
the zone's presence is that detector's presence in the controller; when it
is not, the detector falls back to its loop (`fallback = "loop"`) or to a
recall (`fallback = "recall"`, for a detector with no loop wired).
Queue zones (`kind = "queue"`) are four-sided, stop-bar edge first, with
their real length in metres, so positions map to metres from the stop bar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.control.site import Site

Point = tuple[float, float]
MODELS = Path(__file__).resolve().parent.parent.parent / "models"
# Real cameras: a COCO-trained detector (models/MODEL_CARD.md). The simulator's
# flat renders keep the model trained on them, which counts them far better.
DEFAULT_MODEL = MODELS / "coco-centernet.onnx"
SIM_MODEL = MODELS / "vehicles.onnx"
_ID = r"^[A-Za-z0-9_.-]+$"
_DEVICE = re.compile(r"^/dev/video\d+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


Xy = Annotated[list[float], Field(min_length=2, max_length=2)]


class ZoneCfg(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=32, pattern=_ID)]
    approach: str
    lane: Annotated[int, Field(ge=0, le=15)]
    polygon: Annotated[list[Xy], Field(min_length=3, max_length=32)]
    kind: Literal["presence", "queue"] = "presence"
    detector: int | None = None
    length_m: Annotated[float, Field(gt=0, le=500)] | None = None
    fallback: Literal["loop", "recall"] = "loop"


class LineCfg(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=32, pattern=_ID)]
    approach: str
    lane: Annotated[int, Field(ge=0, le=15)] | None = None
    points: Annotated[list[Xy], Field(min_length=2, max_length=2)]


class CameraCfg(_Strict):
    id: Annotated[str, Field(min_length=1, max_length=32, pattern=_ID)]
    url: Annotated[str, Field(min_length=1)]
    width: Annotated[int, Field(ge=32, le=7680)]
    height: Annotated[int, Field(ge=32, le=4320)]
    fps: Annotated[float, Field(gt=0, le=60)] = 10.0
    infer_fps: Annotated[float, Field(gt=0, le=60)] = 5.0
    reference: str | None = None
    zones: Annotated[list[ZoneCfg], Field(min_length=1)]
    lines: list[LineCfg] = []


class VisionCfg(_Strict):
    model: str | None = None
    # None: the model's own (its metadata score_threshold), else 0.35.
    score_threshold: Annotated[float, Field(gt=0, lt=1)] | None = None
    iou_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.5
    threads: Annotated[int, Field(ge=1, le=4)] = 1
    queue_gap_m: Annotated[float, Field(gt=0, le=50)] = 12.0
    dark_level: Annotated[float, Field(ge=0, le=255)] = 20.0
    sharpness_min: Annotated[float, Field(ge=0)] = 15.0


# --- what the rest of the code receives -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Zone:
    id: str
    camera: str
    approach: str
    lane: int
    polygon: tuple[Point, ...]
    kind: str  # "presence" or "queue"
    detector: int | None
    length_m: float | None
    fallback: str  # "loop" or "recall"


@dataclass(frozen=True, slots=True)
class CountLine:
    id: str
    camera: str
    approach: str
    lane: int | None
    points: tuple[Point, Point]


@dataclass(frozen=True, slots=True)
class Camera:
    id: str
    url: str
    width: int
    height: int
    fps: float
    infer_fps: float
    reference: Path | None
    zones: tuple[Zone, ...]
    lines: tuple[CountLine, ...]


@dataclass(frozen=True, slots=True)
class Vision:
    model: Path
    score_threshold: float | None
    iou_threshold: float
    threads: int
    queue_gap_m: float
    dark_level: float
    sharpness_min: float
    cameras: tuple[Camera, ...]

    def zone_of_detector(self) -> dict[int, Zone]:
        return {z.detector: z for c in self.cameras for z in c.zones if z.detector is not None}


def _resolve(base: Path | None, text: str) -> Path:
    p = Path(text).expanduser()
    return p if p.is_absolute() or base is None else base / p


def url_kind(url: str) -> str:
    """sim, rtsp, http, device (a /dev/videoN or an index) or file."""
    if url.startswith("sim://"):
        return "sim"
    if url.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if url.startswith(("http://", "https://")):
        return "http"
    if _DEVICE.match(url) or url.isdigit():
        return "device"
    return "file"


def _area(poly: list[list[float]]) -> float:
    return 0.5 * sum(
        a[0] * b[1] - b[0] * a[1] for a, b in zip(poly, [*poly[1:], poly[0]], strict=True)
    )


def _segments_cross(p: list[float], q: list[float], r: list[float], s: list[float]) -> bool:
    def orient(a: list[float], b: list[float], c: list[float]) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2, d3, d4 = orient(r, s, p), orient(r, s, q), orient(p, q, r), orient(p, q, s)
    return d1 * d2 < 0 and d3 * d4 < 0


def _self_intersects(poly: list[list[float]]) -> bool:
    n = len(poly)
    edges = [(poly[i], poly[(i + 1) % n]) for i in range(n)]
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # neighbours through the closing edge
            if _segments_cross(*edges[i], *edges[j]):
                return True
    return False


def build_vision(
    vision: VisionCfg | None,
    cameras: list[CameraCfg],
    site: Site,
    bad: Any,
    base: Path | None = None,
) -> Vision | None:
    """Cross-check the camera sections against the site; None when there are no cameras."""
    if not cameras:
        if vision is not None:
            bad("vision: given, but there are no [[cameras]]")
        return None
    v = vision or VisionCfg()
    arms = {a.id for a in site.approaches}
    detectors = {d.id: d for d in site.detectors}
    seen_cam: set[str] = set()
    seen_item: dict[str, str] = {}
    zone_of_det: dict[int, str] = {}
    built: list[Camera] = []
    for c in cameras:
        cam = f"camera {c.id}"
        if c.id in seen_cam:
            bad(f"{cam}: id is used twice")
        seen_cam.add(c.id)
        if c.infer_fps > c.fps:
            bad(f"{cam}: infer_fps {c.infer_fps:g} is above the camera's fps {c.fps:g}")
        if url_kind(c.url) == "sim" and not c.url[len("sim://") :]:
            bad(f"{cam}: url: sim:// needs the camera id, e.g. sim://{c.id}")

        def inside(where: str, pts: list[list[float]], c: CameraCfg = c) -> bool:
            ok = True
            for k, (x, y) in enumerate(pts):
                if not (0 <= x <= c.width and 0 <= y <= c.height):
                    bad(
                        f"{where}: point {k + 1} ({x:g}, {y:g}) is outside the "
                        f"{c.width}x{c.height} frame"
                    )
                    ok = False
            return ok

        zones: list[Zone] = []
        for z in c.zones:
            where = f"{cam}: zone {z.id}"
            if z.id in seen_item:
                bad(f"{where}: id is also used by {seen_item[z.id]}")
            seen_item[z.id] = where
            if z.approach not in arms:
                bad(f"{where}: approach: no approach {z.approach!r} (approaches: {sorted(arms)})")
            inside(f"{where}: polygon", z.polygon)
            if _self_intersects(z.polygon):
                bad(f"{where}: polygon: its edges cross each other")
            elif abs(_area(z.polygon)) < 4.0:
                bad(f"{where}: polygon: encloses no area")
            if z.detector is not None:
                det = detectors.get(z.detector)
                if det is None:
                    bad(f"{where}: detector: no detector {z.detector} in the site")
                elif det.ped:
                    bad(f"{where}: detector: detector {z.detector} is a push button")
                elif z.detector in zone_of_det:
                    bad(
                        f"{where}: detector: detector {z.detector} is already driven by zone "
                        f"{zone_of_det[z.detector]}"
                    )
                else:
                    zone_of_det[z.detector] = z.id
            elif z.fallback != "loop":
                bad(f"{where}: fallback: only a zone that drives a detector has a fallback")
            if z.kind == "queue":
                if len(z.polygon) != 4:
                    bad(f"{where}: a queue zone has 4 corners, stop-bar edge first")
                if z.length_m is None:
                    bad(f"{where}: a queue zone needs length_m (its length along the lane)")
            zones.append(
                Zone(
                    z.id,
                    c.id,
                    z.approach,
                    z.lane,
                    tuple((float(x), float(y)) for x, y in z.polygon),
                    z.kind,
                    z.detector,
                    z.length_m,
                    z.fallback,
                )
            )
        lines: list[CountLine] = []
        for ln in c.lines:
            where = f"{cam}: line {ln.id}"
            if ln.id in seen_item:
                bad(f"{where}: id is also used by {seen_item[ln.id]}")
            seen_item[ln.id] = where
            if ln.approach not in arms:
                bad(f"{where}: approach: no approach {ln.approach!r} (approaches: {sorted(arms)})")
            inside(f"{where}: points", ln.points)
            (x1, y1), (x2, y2) = ln.points
            if abs(x1 - x2) + abs(y1 - y2) < 2:
                bad(f"{where}: points: the two ends are the same point")
            lines.append(CountLine(ln.id, c.id, ln.approach, ln.lane, ((x1, y1), (x2, y2))))
        url = c.url
        if url_kind(url) == "file":  # a video file, relative to the site file
            url = str(_resolve(base, url))
        built.append(
            Camera(
                id=c.id,
                url=url,
                width=c.width,
                height=c.height,
                fps=c.fps,
                infer_fps=c.infer_fps,
                reference=_resolve(base, c.reference) if c.reference else None,
                zones=tuple(zones),
                lines=tuple(lines),
            )
        )
    return Vision(
        model=_resolve(base, v.model) if v.model else DEFAULT_MODEL,
        score_threshold=v.score_threshold,
        iou_threshold=v.iou_threshold,
        threads=v.threads,
        queue_gap_m=v.queue_gap_m,
        dark_level=v.dark_level,
        sharpness_min=v.sharpness_min,
        cameras=tuple(built),
    )
