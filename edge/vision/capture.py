"""Frame sources: one reader thread per camera that keeps only the newest frame.

OpenCV opens V4L2 devices (`/dev/video0` or an index), RTSP/HTTP streams
and video files (played in a loop at the camera's fps: for tests, benches
and replays). The thread, the newest-frame slot, stopping, the backoff and the
errors are edge/vision/reader.py's FrameReader (its docstring has the rules):
here, one round opens the source and reads as fast as it gives frames, until
READ_FAILS_TO_REOPEN reads in a row fail. Other URL schemes (the simulator's
`sim://`) register a factory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.vision.config import Camera, url_kind
from edge.vision.reader import FrameReader, Grab

READ_FAILS_TO_REOPEN = 5


class FrameSource(Protocol):
    error: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def latest(self) -> Grab | None: ...


class OpenCVSource(FrameReader):
    """A camera, stream or file through cv2.VideoCapture, on its own thread."""

    def __init__(self, camera: Camera) -> None:
        super().__init__(camera.id, camera.url, f"camera-{camera.id}")
        self.camera = camera
        self.url = camera.url
        self.kind = url_kind(camera.url)
        self.opens = 0

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

    def _read(self) -> None:
        """Open the source and publish its frames until it fails or stop()."""
        cap = self._open()
        if cap is None:
            self.log.warning("camera_open_failed camera=%s: %s", self.camera.id, self.error)
            return
        self.opens += 1
        self.error = ""
        self.log.info("camera_open camera=%s url=%s", self.camera.id, self.url)
        period = 1.0 / self.camera.fps
        fails = 0
        try:
            while not self.stopping:
                ok, frame = cap.read()
                if not ok and self.kind == "file":
                    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # a file plays in a loop
                    ok, frame = cap.read()
                if not ok or frame is None:
                    fails += 1
                    if fails >= READ_FAILS_TO_REOPEN:
                        self.error = f"{self.url} stopped giving frames"
                        break
                    self.wait(0.05)
                    continue
                fails = 0
                self.publish(np.asarray(frame, np.uint8))
                if self.kind == "file":  # a file has no clock of its own: pace it
                    self.pace(period)
        finally:
            cap.release()
        if not self.stopping:
            self.log.warning("camera_lost camera=%s: %s; reopening", self.camera.id, self.error)


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
