"""Shared helpers for tests/vision: a site with a camera, video files written with OpenCV,
the real footage beside the repository."""

from __future__ import annotations

import copy
import os
import tomllib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "four_leg_protected.toml"
W, H = 320, 192

CAMERA: dict[str, Any] = {
    "id": "cam-n",
    "url": "cam.mp4",
    "width": W,
    "height": H,
    "fps": 10.0,
    "infer_fps": 5.0,
    "zones": [
        {
            "id": "n-stop",
            "approach": "N",
            "lane": 0,
            "polygon": [[60.0, 180.0], [160.0, 180.0], [150.0, 120.0], [80.0, 120.0]],
            "kind": "queue",
            "length_m": 30.0,
            "detector": 4,
        },
        {
            "id": "n-left",
            "approach": "N",
            "lane": 1,
            "polygon": [[170.0, 180.0], [260.0, 180.0], [240.0, 120.0], [170.0, 120.0]],
            "detector": 7,
            "fallback": "recall",
        },
    ],
    "lines": [{"id": "n-line", "approach": "N", "points": [[60.0, 150.0], [260.0, 150.0]]}],
}


def site_raw(camera: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = tomllib.loads(EXAMPLE.read_text())
    raw["cameras"] = [copy.deepcopy(camera if camera is not None else CAMERA)]
    return raw


def scene(brightness: int = 120, seed: int = 0) -> np.ndarray:
    """A textured road scene (lines, blocks) with real detail for the health checks."""
    rng = np.random.default_rng(seed)
    img = np.full((H, W, 3), brightness, np.uint8)
    for _ in range(40):
        x, y = int(rng.integers(0, W - 20)), int(rng.integers(0, H - 20))
        colour = [int(c) for c in rng.integers(0, 255, 3)]
        cv2.rectangle(
            img, (x, y), (x + int(rng.integers(5, 40)), y + int(rng.integers(5, 30))), colour, -1
        )
    cv2.line(img, (0, 150), (W, 150), (255, 255, 255), 2)
    return img


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (W, H))
    assert out.isOpened(), "OpenCV cannot write mp4v here"
    for f in frames:
        out.write(f)
    out.release()
    return path


def live_frames(n: int, brightness: int = 120, shift: int = 0, seed: int = 0) -> list[np.ndarray]:
    """A scene with sensor noise and a moving block: never two identical frames."""
    base = scene(brightness, seed)
    if shift:
        base = np.roll(base, shift, axis=1)
    rng = np.random.default_rng(seed + 1)
    frames = []
    for k in range(n):
        f = base.astype(np.int16) + rng.integers(-6, 7, base.shape, dtype=np.int16)
        f = np.clip(f, 0, 255).astype(np.uint8)
        x = (k * 7) % (W - 30)
        cv2.rectangle(f, (x, 20), (x + 25, 40), (0, 0, 255), -1)
        frames.append(f)
    return frames


@pytest.fixture
def vehicles_model(tmp_path: Path) -> Path:
    """Two cars whose ground points fall in zone n-stop, one in n-left (320x192 input)."""
    from devtools.vision.synthetic import fixed_boxes_model

    return fixed_boxes_model(
        tmp_path / "fixed.onnx",
        [(110, 160, 40, 30, 0, 0.9), (115, 125, 30, 20, 1, 0.8), (215, 150, 30, 30, 3, 0.7)],
    )


@pytest.fixture(scope="session")
def footage() -> Path:
    """The real footage (../shared/data/real-camera, or $EDGE_SHARED_DATA).

    Its terms are unknown, so it is not in the repository: it sits in ../shared beside
    the checkout, as it does in CI. A developer's checkout without it skips these tests;
    in CI (CI set) a missing copy is a failure, as for the Hangzhou data (tests/sim).
    """
    from devtools.vision.truth import default_shared_dir

    path = default_shared_dir()
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real footage not found at {path}: CI must have ../shared beside it")
        pytest.skip(f"real footage not found at {path} (it lives in ../shared, outside the repo)")
    return path
