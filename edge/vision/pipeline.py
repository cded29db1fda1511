"""One camera's processing: health, motion gate, inference on the zones' crop, tracking, zones.

`CameraProcessor.process(t_s, frame)` is synchronous and deterministic for
given frames (the lockstep simulator calls it directly); `CameraWorker`
runs it on its own thread at the camera's fps against a FrameSource, so a
slow frame or a slow model never holds up the control tick (onnxruntime
releases the GIL while it runs).

Cost control, as Frigate does it: the model sees only the crop that holds
the zones and lines (letterboxed to its input), at most `infer_fps` times a
second; a frame with no motion in that crop is not inferred at all and the
last detections stand (a stopped vehicle stays where it was), except on a
camera with queue zones, which is inferred at its rate whatever the motion:
stopped vehicles are the queue.

A technician's new zone and line layout (`set_camera`, from any thread) is taken by
the processing thread between two frames: the zones, count lines (counts kept by
line id), crop and motion gate change together, and the new crop is inferred at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge.vision import health as hl
from edge.vision.capture import FrameSource
from edge.vision.config import Camera, Vision
from edge.vision.model import Detection
from edge.vision.reader import Grab
from edge.vision.tracker import Tracker
from edge.vision.zones import ZoneGeometry, ZoneState

log = logging.getLogger(__name__)
# One thread per camera already: OpenCV's own pool only adds hand-offs on small pictures.
cv2.setNumThreads(1)

CROP_PAD_PX = 16
MOTION_DIFF = 20  # grey levels: a pixel that changed this much moved
MOTION_FRACTION = 0.002  # of the crop's pixels
MOTION_W = 160
Frame = npt.NDArray[np.uint8]


class Detector(Protocol):
    """What the processor needs of a model: VehicleModel, or a stand-in in simulation."""

    def detect(self, image: Frame, offset: tuple[float, float] = (0.0, 0.0)) -> list[Detection]: ...


@dataclass(frozen=True, slots=True)
class CameraState:
    """A camera as the rest of the runtime sees it: an immutable snapshot."""

    camera: str
    t_s: float
    health: str
    detail: str
    zones: tuple[ZoneState, ...] = ()
    line_counts: tuple[tuple[str, int], ...] = ()
    detections: tuple[Detection, ...] = ()
    fps: float = 0.0
    infer_fps: float = 0.0
    infer_ms: float = 0.0
    frame: Frame | None = field(default=None, repr=False)

    @property
    def reliable(self) -> bool:
        return self.health == hl.OK and bool(self.zones)


def crop_box(camera: Camera) -> tuple[int, int, int, int]:
    points = [p for z in camera.zones for p in z.polygon] + [
        p for ln in camera.lines for p in ln.points
    ]
    return region_of(points, camera.width, camera.height)


def region_of(
    points: Sequence[tuple[float, float]], width: int, height: int
) -> tuple[int, int, int, int]:
    """The part of the frame the model sees: the points' bounds, padded, in the frame."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x1 = max(0, int(min(xs)) - CROP_PAD_PX)
    y1 = max(0, int(min(ys)) - CROP_PAD_PX)
    x2 = min(width, int(max(xs)) + CROP_PAD_PX + 1)
    y2 = min(height, int(max(ys)) + CROP_PAD_PX + 1)
    return x1, y1, x2, y2


class CameraProcessor:
    def __init__(
        self,
        camera: Camera,
        vision: Vision,
        model: Detector | None,
        reference: Frame | None = None,
    ) -> None:
        self.camera = camera
        self.vision = vision
        self.model = model
        self.health = hl.HealthMonitor(
            reference, dark_level=vision.dark_level, sharpness_min=vision.sharpness_min
        )
        self.zones = [ZoneGeometry(z) for z in camera.zones]
        self.tracker = Tracker(camera.lines)
        self.crop = crop_box(camera)
        self.always_infer = any(z.zone.kind == "queue" for z in self.zones)
        self.infer_period = 1.0 / camera.infer_fps
        self._last_infer = -1e9
        self._last_motion: Frame | None = None
        self.detections: list[Detection] = []
        self.frames = 0
        self.inferences = 0
        self.skipped_still = 0
        self.infer_ms = 0.0
        self._zones: tuple[ZoneState, ...] = ()
        self._zones_of = -1  # the inference count self._zones were measured for
        self._pending: Camera | None = None  # a new layout, taken before the next frame
        self._pending_lock = threading.Lock()

    def set_camera(self, camera: Camera) -> None:
        """A new zone and line layout for this camera (same id, url and frame size), from
        any thread: the processing thread takes it before its next frame, never within one."""
        with self._pending_lock:
            self._pending = camera

    def _take_layout(self) -> None:
        if self._pending is None:  # the common case: no lock taken
            return
        with self._pending_lock:
            camera, self._pending = self._pending, None
        if camera is None:
            return
        self.camera = camera
        self.zones = [ZoneGeometry(z) for z in camera.zones]
        self.tracker.set_lines(camera.lines)
        self.crop = crop_box(camera)
        self.always_infer = any(z.zone.kind == "queue" for z in self.zones)
        self._last_motion = None  # the crop changed: no motion to compare with
        self._last_infer = -1e9  # infer the new crop at once
        self._zones_of = -1  # and measure the new zones, with the detections at hand

    def _sized(self, frame: Frame) -> Frame:
        c = self.camera
        if frame.shape[1] != c.width or frame.shape[0] != c.height:
            size = (c.width, c.height)
            frame = np.asarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA), np.uint8)
        return frame

    def _motion(self, crop: Frame) -> bool:
        h, w = crop.shape[:2]
        small = cv2.resize(crop, (MOTION_W, max(1, round(h * MOTION_W / w))))
        gray = np.asarray(
            cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0), np.uint8
        )
        prev, self._last_motion = self._last_motion, gray
        if prev is None or prev.shape != gray.shape:
            return True
        _, moved = cv2.threshold(cv2.absdiff(gray, prev), MOTION_DIFF, 255, cv2.THRESH_BINARY)
        return cv2.countNonZero(moved) > MOTION_FRACTION * moved.size

    def process(self, t_s: float, frame: Frame, *, force: bool = False) -> CameraState:
        """One frame; inference when due (or `force`), then the zones from the detections."""
        self._take_layout()
        frame = self._sized(frame)
        self.frames += 1
        state = self.health.frame(t_s, frame)
        x1, y1, x2, y2 = self.crop
        crop = frame[y1:y2, x1:x2]
        moving = self._motion(crop)
        due = force or t_s - self._last_infer >= self.infer_period - 1e-6
        if self.model is not None and state == hl.OK and due:
            if moving or self.always_infer or force:
                self._last_infer = t_s
                t0 = time.perf_counter()
                self.detections = self.model.detect(crop, (float(x1), float(y1)))
                self.infer_ms = (time.perf_counter() - t0) * 1000
                self.inferences += 1
                self.tracker.update(t_s, self.detections)
            else:
                self.skipped_still += 1
        return self.snapshot(t_s, frame)

    def snapshot(self, t_s: float, frame: Frame | None) -> CameraState:
        self._take_layout()
        state = self.health.poll(t_s)
        if state != hl.OK or self.model is None:
            return CameraState(
                self.camera.id, t_s, state, self.health.detail or "no model", frame=frame
            )
        if self._zones_of != self.inferences:  # zones change only with new detections
            self._zones_of = self.inferences
            vehicles = [(d.ground, self._speed(d)) for d in self.detections]
            self._zones = tuple(
                z.measure(self._speeds_for(z, vehicles), self.vision.queue_gap_m)
                for z in self.zones
            )
        zones = self._zones
        return CameraState(
            self.camera.id,
            t_s,
            state,
            "",
            zones,
            tuple(sorted(self.tracker.counts.items())),
            tuple(self.detections),
            infer_ms=self.infer_ms,
            frame=frame,
        )

    def _speed(self, d: Detection) -> tuple[float, float] | None:
        for tr in self.tracker.tracks:
            if tr.det is d and tr.hits > 1:
                return tr.vx, tr.vy
        return None

    @staticmethod
    def _speeds_for(
        z: ZoneGeometry, vehicles: list[tuple[tuple[float, float], tuple[float, float] | None]]
    ) -> list[tuple[tuple[float, float], float | None]]:
        """Ground points with their speed along the zone in m/s (queue zones; None: unknown)."""
        out: list[tuple[tuple[float, float], float | None]] = []
        for p, v in vehicles:
            speed = None
            if v is not None and z.to_road is not None:
                a = z.metres_from_stop_bar(p)
                b = z.metres_from_stop_bar((p[0] + v[0] * 0.5, p[1] + v[1] * 0.5))
                if a is not None and b is not None:
                    speed = abs(b - a) / 0.5
            out.append((p, speed))
        return out


class CameraWorker:
    """A processor on its own thread, reading the newest frame from its source."""

    def __init__(self, processor: CameraProcessor, source: FrameSource) -> None:
        self.processor = processor
        self.source = source
        cam = processor.camera
        self.state = CameraState(cam.id, 0.0, hl.DISCONNECTED, "not started")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"vision-{cam.id}", daemon=True)
        self._times: list[float] = []
        self._infers: list[float] = []
        self.error_count = 0

    def start(self) -> None:
        self.source.start()
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self.source.stop()

    def _run(self) -> None:
        proc = self.processor
        period = 1.0 / proc.camera.fps
        last_seq = -1
        next_s = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            grab: Grab | None = self.source.latest()
            try:
                if grab is not None and grab.seq != last_seq:
                    last_seq = grab.seq
                    before = proc.inferences
                    st = proc.process(now, grab.frame)
                    self._times.append(now)
                    if proc.inferences != before:
                        self._infers.append(now)
                else:
                    st = proc.snapshot(now, self.state.frame)
                    if self.source.error:
                        st = CameraState(st.camera, now, st.health, self.source.error)
            except Exception as exc:  # a bad frame must not end the camera
                self.error_count += 1
                log.exception("vision_frame_error camera=%s error=%r", proc.camera.id, exc)
                self._stop.wait(period)
                continue
            self._times = [t for t in self._times if now - t <= 2.0]
            self._infers = [t for t in self._infers if now - t <= 2.0]
            self.state = CameraState(
                st.camera, st.t_s, st.health, st.detail, st.zones, st.line_counts,
                st.detections, len(self._times) / 2.0, len(self._infers) / 2.0,
                st.infer_ms, st.frame,
            )  # fmt: skip
            next_s = max(next_s + period, time.monotonic() - period)
            self._stop.wait(max(0.0, next_s - time.monotonic()))
