"""`edge vision detect`: the runtime's detector on stills and video frames, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from devtools.vision.synthetic import fixed_boxes_model
from edge.vision.config import SIM_MODEL
from edge.vision.tracker import iou

from tests.vision.conftest import CAMERA, site_raw


def detect(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "vision", "detect", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_json_boxes_in_each_pictures_own_pixels(footage: Path) -> None:
    dog, video = str(footage / "dog.jpg"), str(footage / "rknn_cars.mp4")
    r = detect(dog, video, "--frames", "53,107", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert list(out) == [dog, f"{video}#53", f"{video}#107"]
    # dog.jpg is 768 px wide: the pickup's box is in those pixels (its ground truth is
    # [390, 65, 570, 140] in the 640 px picture: x 1.2 here), not the 640 px frame's.
    truck = [v * 1.2 for v in (390, 65, 570, 140)]
    (pickup,) = [b for b in out[dog] if iou(b["box"], truck) >= 0.5]
    assert pickup["cls"] in ("car", "truck") and 0.25 <= pickup["score"] <= 1
    # rknn_cars.mp4 is 1280 x 720: boxes reach past 640.
    assert len(out[f"{video}#53"]) >= 7
    assert max(b["box"][2] for b in out[f"{video}#53"]) > 900


def test_table_and_errors_name_the_file(tmp_path: Path) -> None:
    img = tmp_path / "street.png"
    cv2.imwrite(str(img), np.full((360, 640, 3), 90, np.uint8))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    r = detect(str(img), str(bad), str(tmp_path / "gone.png"))
    assert r.returncode == 1
    assert f"{img} (640x360): 0 vehicle(s)" in r.stdout
    assert f"{bad}: not a readable image" in r.stderr
    assert f"{tmp_path / 'gone.png'}: no such file" in r.stderr
    r = detect(str(img), "--model", str(tmp_path / "none.onnx"))
    assert r.returncode == 2 and "none.onnx: cannot read the file" in r.stderr
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    r = detect(str(clip), "--frames", "1,9")
    assert r.returncode == 1 and f"{clip}#9: the video has only 3 frames" in r.stderr


def test_site_camera_sets_size_crop_and_model(tmp_path: Path) -> None:
    """With --site the picture is resized to the camera's 320x192 and cropped to its zones,
    as the runtime does; a box at the crop's corner comes back in the picture's pixels."""
    from sim.sumo.site_toml import to_toml

    # A model that always sees one car at input (20, 20)-(40, 40) of its 320x192 input.
    model = fixed_boxes_model(tmp_path / "fixed.onnx", [(30, 30, 20, 20, 0, 0.9)])
    raw = site_raw()
    raw["vision"] = {"model": str(model)}
    site = tmp_path / "site.toml"
    site.write_text(to_toml(raw))
    img = tmp_path / "big.png"
    cv2.imwrite(str(img), np.full((384, 640, 3), 90, np.uint8))  # twice the camera's size
    r = detect(str(img), "--site", str(site), "--camera", CAMERA["id"], "--json")
    assert r.returncode == 0, r.stderr
    ((box,),) = json.loads(r.stdout).values()
    assert box["cls"] == "car" and box["score"] == 0.9
    # The crop (zones' bounds plus padding) is letterboxed into 320x192; the box is mapped
    # back through that and the resize: it sits inside the zones' region, doubled.
    x1, y1, x2, y2 = box["box"]
    assert 2 * 40 <= x1 < x2 <= 2 * 280 and 2 * 100 <= y1 < y2 <= 2 * 192
    r = detect(str(img), "--site", str(site), "--camera", "nope")
    assert r.returncode == 2 and "no camera 'nope' (cameras: cam-n)" in r.stderr
    r = detect(str(img), "--camera", "cam-n")
    assert r.returncode == 2 and "--camera needs --site" in r.stderr


def test_the_simulator_model_runs_too(tmp_path: Path) -> None:
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), np.full((192, 320, 3), 90, np.uint8))
    r = detect(str(img), "--model", str(SIM_MODEL), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {str(img): []}
