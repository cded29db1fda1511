"""Camera sections of the site file: valid ones load, every problem is named with its place."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
from edge.config import ConfigError, config_from_dict

from tests.vision.conftest import CAMERA, site_raw


def problems(camera: dict[str, object], **extra: object) -> list[str]:
    raw = site_raw(camera)
    raw.update(extra)
    with pytest.raises(ConfigError) as exc:
        config_from_dict(raw, "site.toml")
    return exc.value.problems


def test_valid_camera_loads() -> None:
    cfg = config_from_dict(site_raw(), "site.toml", base=Path("/etc/edge"))
    v = cfg.vision
    assert v is not None
    cam = v.cameras[0]
    assert cam.url == "/etc/edge/cam.mp4" and cam.width == 320
    assert [z.id for z in cam.zones] == ["n-stop", "n-left"]
    assert v.zone_of_detector()[4].id == "n-stop"
    assert cam.lines[0].points == ((60.0, 150.0), (260.0, 150.0))


def test_no_cameras_no_vision() -> None:
    raw = site_raw()
    del raw["cameras"]
    assert config_from_dict(raw).vision is None


def test_zone_outside_frame_and_unknown_detector() -> None:
    cam = copy.deepcopy(CAMERA)
    cam["zones"][0]["polygon"][1] = [400.0, 180.0]
    cam["zones"][1]["detector"] = 99
    got = problems(cam)
    assert (
        "camera cam-n: zone n-stop: polygon: point 2 (400, 180) is outside the 320x192 frame" in got
    )
    assert "camera cam-n: zone n-left: detector: no detector 99 in the site" in got


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("zones", 0, "approach", "Q"), "camera cam-n: zone n-stop: approach: no approach 'Q'"),
        (("zones", 0, "length_m", None), "a queue zone needs length_m"),
        (("zones", 1, "detector", 4), "detector 4 is already driven by zone n-stop"),
        (
            ("zones", 0, "polygon", [[60.0, 180.0], [160.0, 120.0], [160.0, 180.0], [60.0, 120.0]]),
            "polygon: its edges cross each other",
        ),
        (("lines", 0, "points", [[10.0, 10.0], [10.0, 10.0]]), "the two ends are the same point"),
        (("lines", 0, "id", "n-stop"), "id is also used by camera cam-n: zone n-stop"),
    ],
)
def test_cross_checks(change: tuple[str, int, str, object], expected: str) -> None:
    cam = copy.deepcopy(CAMERA)
    section, k, key, value = change
    item = cam[section][k]
    if value is None:
        del item[key]
    else:
        item[key] = value
    assert any(expected in p for p in problems(cam)), problems(cam)


def test_schema_errors_name_the_zone() -> None:
    cam = copy.deepcopy(CAMERA)
    cam["zones"][1]["colour"] = "red"
    cam["infer_fps"] = 20.0
    got = problems(cam)
    assert "camera cam-n: zone n-left: unknown key 'colour'" in got
    cam = copy.deepcopy(CAMERA)
    cam["infer_fps"] = 20.0
    assert problems(cam) == ["camera cam-n: infer_fps 20 is above the camera's fps 10"]


def test_ped_detector_and_fallback_without_detector() -> None:
    cam = copy.deepcopy(CAMERA)
    del cam["zones"][1]["detector"]
    got = problems(cam)
    assert got == [
        "camera cam-n: zone n-left: fallback: only a zone that drives a detector has a fallback"
    ]


def test_edge_check_prints_file_and_place(tmp_path: Path) -> None:
    text = Path(site_raw.__globals__["EXAMPLE"]).read_text()
    bad = text + (
        '\n[[cameras]]\nid = "c1"\nurl = "sim://c1"\nwidth = 320\nheight = 192\n'
        '[[cameras.zones]]\nid = "z1"\napproach = "N"\nlane = 0\ndetector = 42\n'
        "polygon = [[0.0, 0.0], [330.0, 0.0], [100.0, 100.0]]\n"
    )
    path = tmp_path / "site.toml"
    path.write_text(bad)
    r = subprocess.run(
        [sys.executable, "-m", "edge.cli", "check", str(path)], capture_output=True, text=True
    )
    assert r.returncode == 1
    assert (
        f"{path}: camera c1: zone z1: polygon: point 2 (330, 0) is outside the 320x192 frame"
        in r.stderr
    )
    assert f"{path}: camera c1: zone z1: detector: no detector 42 in the site" in r.stderr
