"""The camera reader thread: an unexpected error while opening or reading (cv2.error) is
logged and the source reopened with the project's backoff; the reader never dies of it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import cv2
import pytest
from edge.vision.capture import OpenCVSource
from edge.vision.config import Camera

from tests.vision.conftest import H, W, live_frames, write_video


class _FailsFirst(OpenCVSource):
    """A real file source whose first two opens raise as a broken driver's would."""

    fails = 2

    def _open(self) -> cv2.VideoCapture | None:
        if self.fails:
            self.fails -= 1
            raise cv2.error("simulated driver failure")
        return super()._open()


def test_an_unexpected_error_is_logged_and_the_camera_reopened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.vision.capture")
    video = write_video(tmp_path / "cam.mp4", live_frames(20))
    cam = Camera("cam1", str(video), W, H, 10.0, 2.0, None, (), ())
    src = _FailsFirst(cam)
    src.start()
    try:
        deadline = time.monotonic() + 10
        while src.latest() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert src.latest() is not None, src.error
        assert src.opens == 1 and src.error == ""
    finally:
        src.stop()
    errors = [r for r in caplog.records if r.getMessage().startswith("camera_error")]
    assert len(errors) == 2 and "simulated driver failure" in errors[0].getMessage()
