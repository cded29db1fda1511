"""`edge run` with a camera, as a real process against a virtual board on a pty.

The camera is a video file that loops: 6 s of a live street, then 6 s of a
dead-dark picture. The zone drives detector 2 while the camera is ok; when
the picture goes dark the runtime says so and detector 2 falls back to its
loop, and back to the camera when the picture returns; the board runs
throughout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
from devtools.vision.synthetic import fixed_boxes_model
from sim.sumo.site_toml import to_toml
from sim.virtual_board import VirtualBoard

from tests.board.procs import CROSSING, REPO, poll
from tests.vision.conftest import H, W, live_frames, write_video


def test_camera_drives_detector_and_falls_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    # a covered lens: black but for the sensor's noise (so it is dark, not frozen)
    dark = [rng.integers(0, 6, (H, W, 3), dtype=np.uint8) for _ in range(60)]
    frames = live_frames(60) + dark
    write_video(tmp_path / "street.mp4", frames)
    fixed_boxes_model(tmp_path / "m.onnx", [(160, 100, 40, 30, 0, 0.9)])
    raw = tomllib.loads(CROSSING.read_text())
    raw["vision"] = {"model": "m.onnx"}
    raw["cameras"] = [
        {
            "id": "c1", "url": "street.mp4", "width": W, "height": H, "fps": 10.0,
            "infer_fps": 5.0,
            "zones": [{"id": "z2", "approach": "N", "lane": 0, "detector": 2,
                       "polygon": [[0.0, 0.0], [320.0, 0.0], [320.0, 192.0], [0.0, 192.0]]}],
        }
    ]  # fmt: skip
    site = tmp_path / "site.toml"
    site.write_text(to_toml(raw))
    status = tmp_path / "status.json"
    log_path = tmp_path / "run.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    with VirtualBoard(tmp_path / "ttyB", record_rx=False) as vb, open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "run", "--config", str(site), "--port", vb.path,
             "--status-file", str(status)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:

            def text() -> str:
                return log_path.read_text()

            assert poll(lambda: "detector=2 source=camera" in text(), 20), text()
            assert poll(lambda: "vision_camera_health camera=c1 health=dark" in text(), 25), text()
            assert poll(
                lambda: (
                    "vision_detector_source detector=2 source=loop camera=c1 health=dark" in text()
                ),
                5,
            ), text()
            back = text().count("detector=2 source=camera")
            assert poll(lambda: text().count("detector=2 source=camera") > back, 20), text()
            assert poll(lambda: status.exists(), 15)
            snap = json.loads(status.read_text())
            assert snap["vision"]["cameras"] == {"c1": snap["vision"]["cameras"]["c1"]}
            assert snap["mode"] == "run"
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(20)
    out = log_path.read_text()
    assert code == 0, out
    assert "shutdown_handover board_state=FLASH" in out
    assert "task_failed" not in out and "vision_frame_error" not in out
