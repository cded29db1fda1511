"""Camera health from frames (pure monitor), and from real video files through the reader thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from edge.config import config_from_dict
from edge.vision import health as hl
from edge.vision.capture import OpenCVSource
from edge.vision.model import VehicleModel
from edge.vision.pipeline import CameraProcessor, CameraWorker

from tests.vision.conftest import live_frames, site_raw, write_video

FPS = 10.0


def noisy(img: np.ndarray, seed: int, amp: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = img.astype(np.int16) + rng.integers(-amp, amp + 1, img.shape, dtype=np.int16)
    return np.asarray(np.clip(out, 0, 255), np.uint8)


def run(
    mon: hl.HealthMonitor, frames: list[np.ndarray], t0: float = 0.0
) -> list[tuple[float, str]]:
    out = []
    for k, f in enumerate(frames):
        t = t0 + k / FPS
        out.append((t, mon.frame(t, f)))
    return out


def first(states: list[tuple[float, str]], state: str) -> float:
    return next(t for t, s in states if s == state)


def test_live_camera_is_ok_then_each_fault_within_5_s() -> None:
    live = live_frames(60)
    frozen = [live[-1]] * 60
    # The sensor's noise comes after the optics and the light: dark and blurred
    # pictures still change from frame to frame (they are not frozen).
    dark = [noisy((f // 40).astype(np.uint8), k, 2) for k, f in enumerate(live_frames(60))]
    blurred = [noisy(cv2.GaussianBlur(f, (0, 0), 12), k) for k, f in enumerate(live_frames(60))]
    moved = live_frames(60, shift=40)
    for faulty, expected in (
        (frozen, hl.FROZEN),
        (dark, hl.DARK),
        (blurred, hl.OBSTRUCTED),
        (moved, hl.MOVED),
    ):
        mon = hl.HealthMonitor()
        states = run(mon, live)
        assert states[-1][1] == hl.OK, mon.detail
        after = run(mon, faulty, t0=6.0)
        t = first(after, expected)
        assert t - 6.0 <= 5.0, (expected, t)
        back = run(mon, live_frames(80, seed=0), t0=12.0)
        assert back[-1][1] == hl.OK, (expected, mon.detail)


def test_silence_is_disconnected() -> None:
    mon = hl.HealthMonitor()
    run(mon, live_frames(20))
    assert mon.poll(2.0) == hl.OK
    assert mon.poll(4.5) == hl.DISCONNECTED
    assert "no frame" in mon.detail


def test_night_scene_with_lights_is_not_dark() -> None:
    night = []
    for k, f in enumerate(live_frames(40, brightness=6)):
        f = noisy((f // 12).astype(np.uint8), k, 2)
        cv2.circle(f, (100, 150), 6, (255, 255, 255), -1)  # headlights
        cv2.circle(f, (130, 150), 6, (255, 255, 255), -1)
        night.append(f)
    mon = hl.HealthMonitor(dark_level=20, sharpness_min=0.5)
    assert run(mon, night)[-1][1] == hl.OK, mon.detail


def wait_for(pred: Callable[[], bool], timeout: float = 8.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_video_file_reader_and_reconnect(tmp_path: Path, vehicles_model: Path) -> None:
    video = tmp_path / "cam.mp4"
    cfg = config_from_dict(site_raw(), "site.toml", base=tmp_path)
    assert cfg.vision is not None
    cam = cfg.vision.cameras[0]
    proc = CameraProcessor(cam, cfg.vision, VehicleModel(vehicles_model))
    source = OpenCVSource(cam)
    worker = CameraWorker(proc, source)
    worker.start()
    try:
        # No file yet: the reader retries with backoff; the camera is disconnected.
        assert wait_for(lambda: "no such file" in source.error)
        assert worker.state.health == hl.DISCONNECTED
        write_video(video, live_frames(50))
        assert wait_for(lambda: worker.state.health == hl.OK), worker.state
        st = worker.state
        zones = {z.id: z for z in st.zones}
        # The model's fixed boxes land (through the crop's letterbox) in the stop zone.
        assert zones["n-stop"].presence and zones["n-stop"].queue_veh is not None
        assert st.detections
        assert wait_for(lambda: worker.state.fps > 5), worker.state.fps
        assert source.opens == 1
    finally:
        worker.stop()


def test_frozen_video_file(tmp_path: Path, vehicles_model: Path) -> None:
    video = write_video(tmp_path / "cam.mp4", [live_frames(1)[0]] * 100)
    cfg = config_from_dict(site_raw(), "site.toml", base=tmp_path)
    assert cfg.vision is not None
    cam = cfg.vision.cameras[0]
    assert cam.url == str(video)
    worker = CameraWorker(
        CameraProcessor(cam, cfg.vision, VehicleModel(vehicles_model)), OpenCVSource(cam)
    )
    worker.start()
    try:
        assert wait_for(lambda: worker.state.health == hl.FROZEN), worker.state
        assert not worker.state.reliable
    finally:
        worker.stop()
