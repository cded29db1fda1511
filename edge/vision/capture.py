"""Frame sources: one reader thread per camera that keeps only the newest frame.

OpenCV opens V4L2 devices (`/dev/video0` or an index), RTSP/HTTP streams
and video files (played in a loop at the camera's fps: for tests, benches
and replays). The reader reads as fast as the source gives frames and
keeps the last one: a slow consumer gets the newest frame, never a queue of
stale ones. A source that fails to open or stops giving frames is reopened
with the project's backoff (edge/backoff.py); an unexpected error (cv2.error)
is logged and retried the same way, never the end of the reader; `error`
says why it is down. Other URL schemes (the simulator's `sim://`) register a
factory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge.backoff import Backoff
from edge.vision.config import Camera, url_kind

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 10.0
READ_FAILS_TO_REOPEN = 5

Frame = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Grab:
    seq: int  # increases with every new frame
    t_s: float  # monotonic time it was read
    frame: Frame


class FrameSource(Protocol):
    error: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def latest(self) -> Grab | None: ...


class OpenCVSource:
    """A camera, stream or file through cv2.VideoCapture, on its own thread."""

    def __init__(self, camera: Camera) -> None:
        self.camera = camera
        self.url = camera.url
        self.kind = url_kind(camera.url)
        self.error = "not started"
        self.opens = 0
        self._grab: Grab | None = None
        self._seq = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def latest(self) -> Grab | None:
        with self._lock:
            return self._grab

    def _open(self) -> cv2.VideoCapture | None:
        if self.kind == "file" and not Path(self.url).is_file():
            self.error = f"cannot open {self.url}: no such file"
            return None
        target: str | int = int(self.url) if self.url.isdigit() else self.url
        api = cv2.CAP_V4L2 if self.kind == "device" else cv2.CAP_ANY
        cap = cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            self.error = f"cannot open {self.url}"
            return None
        if self.kind != "file":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def _run(self) -> None:
        backoff = Backoff(BACKOFF_MIN_S, BACKOFF_MAX_S)
        while not self._stop.is_set():
            try:
                got_frames = self._read_until_lost(backoff)
            except Exception as exc:  # cv2.error or a bug: logged; the reader never dies of it
                self.error = f"{self.url}: {exc!r}"
                log.exception("camera_error camera=%s: %s; reopening", self.camera.id, self.error)
                got_frames = False
            if not got_frames:  # a source that gave frames is reopened at once
                self._stop.wait(backoff.next_delay())

    def _read_until_lost(self, backoff: Backoff) -> bool:
        """Open the source and keep its newest frame until it fails or stop(); True if it
        gave frames (which resets the backoff)."""
        cap = self._open()
        if cap is None:
            log.warning("camera_open_failed camera=%s: %s", self.camera.id, self.error)
            return False
        self.opens += 1
        self.error = ""
        log.info("camera_open camera=%s url=%s", self.camera.id, self.url)
        period = 1.0 / self.camera.fps
        got_frames = False
        fails = 0
        next_s = time.monotonic()
        try:
            while not self._stop.is_set():
                ok, frame = cap.read()
                if not ok and self.kind == "file":
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # a file plays in a loop
                    ok, frame = cap.read()
                if not ok or frame is None:
                    fails += 1
                    if fails >= READ_FAILS_TO_REOPEN:
                        self.error = f"{self.url} stopped giving frames"
                        break
                    self._stop.wait(0.05)
                    continue
                fails = 0
                if not got_frames:
                    got_frames = True
                    backoff.reset()
                now = time.monotonic()
                with self._lock:
                    self._seq += 1
                    self._grab = Grab(self._seq, now, np.asarray(frame, np.uint8))
                if self.kind == "file":  # a file has no clock of its own: pace it
                    next_s = max(next_s + period, now)
                    self._stop.wait(max(0.0, next_s - time.monotonic()))
        finally:
            cap.release()
        if not self._stop.is_set():
            log.warning("camera_lost camera=%s: %s; reopening", self.camera.id, self.error)
        return got_frames


SourceFactory = Callable[[Camera], FrameSource]
_SCHEMES: dict[str, SourceFactory] = {}


def register_scheme(kind: str, factory: SourceFactory) -> None:
    """A source for URLs of this kind (e.g. "sim" for sim://camera-id)."""
    _SCHEMES[kind] = factory


def open_source(camera: Camera) -> FrameSource:
    factory = _SCHEMES.get(url_kind(camera.url))
    if factory is not None:
        return factory(camera)
    if url_kind(camera.url) == "sim":
        raise ValueError(f"camera {camera.id}: {camera.url} needs the simulator (edge run --sim)")
    return OpenCVSource(camera)
