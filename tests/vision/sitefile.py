"""A real site file with a camera, written as a technician would: comments, their own layout.

examples/four_leg_protected.toml with a `[vision]` section naming a stand-in model
(fixed boxes, devtools/vision/synthetic.py) and one camera on a looping video file. The
count line along the top edge makes the zones' crop the whole frame, so the model's
boxes land in frame pixels as given: ground points (110, 175) and (115, 135) in zone
n-stop, (215, 165) in zone n-left.
"""

from __future__ import annotations

from pathlib import Path

from devtools.vision.synthetic import fixed_boxes_model

from tests.vision.conftest import EXAMPLE, live_frames, write_video

BOXES = [(110, 160, 40, 30, 0, 0.9), (115, 125, 30, 20, 1, 0.8), (215, 150, 30, 30, 3, 0.7)]

CAMERA_TOML = """
[vision]
model = "fixed.onnx"  # the test's stand-in model

# --- the north camera: mast on the NE corner, looking down the N approach ---
[[cameras]]
id = "cam-n"
url = "cam.mp4"   # a recorded clip while the mast camera is on order
width = 320
height = 192
fps = 10.0
infer_fps = 5.0

# stop-bar queue, lane 0: stop-bar edge first
[[cameras.zones]]
id = "n-stop"
approach = "N"
lane = 0
kind = "queue"
polygon = [[60, 180], [160, 180], [150, 120], [80, 120]]  # measured on site
length_m = 30.0
detector = 4

[[cameras.zones]]
id = "n-left"
approach = "N"
lane = 1
polygon = [[170, 180], [260, 180], [240, 120], [170, 120]]
detector = 7
fallback = "recall"   # loop 7 is cut

[[cameras.lines]]
id = "n-top"
approach = "N"
points = [[0, 2], [320, 2]]
"""


def write_site(tmp: Path, *, video: bool = True) -> Path:
    """site.toml in `tmp` with its model and (unless `video` is False) its clip."""
    fixed_boxes_model(tmp / "fixed.onnx", BOXES)
    if video:
        write_video(tmp / "cam.mp4", live_frames(40))
    path = tmp / "site.toml"
    path.write_text(EXAMPLE.read_text(encoding="utf-8") + CAMERA_TOML, encoding="utf-8")
    return path
