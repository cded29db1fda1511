"""The degradation ladder: camera -> loop (or recall) when a camera dies, and the merge itself."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path

from edge.config import config_from_dict
from edge.control.messages import Inputs
from edge.vision.fusion import Binding, fuse, queue_bindings
from edge.vision.model import VehicleModel
from edge.vision.sensing import Sensing

from tests.vision.conftest import CAMERA, live_frames, site_raw, write_video

BINDS = (
    Binding(4, "n-stop", "cam-n", "loop", (4,)),
    Binding(7, "n-left", "cam-n", "recall", (7,)),
)


def test_fuse_camera_loop_recall() -> None:
    loops = Inputs(occupied=frozenset({4, 9}), actuations=((4, 2), (9, 1)))
    merged, src = fuse(loops, BINDS, {"n-stop": False, "n-left": True}, frozenset())
    assert merged.occupied == {7, 9} and merged.actuations == ((9, 1),)
    assert src == {4: "camera", 7: "camera"}
    merged, src = fuse(loops, BINDS, {"n-stop": None, "n-left": None}, frozenset())
    assert src == {4: "loop", 7: "recall"}
    assert merged.occupied == {4, 7, 9}  # loop as read; recall calls phase 7 while it is red
    merged, _ = fuse(loops, BINDS, {"n-stop": None, "n-left": None}, frozenset({7}))
    assert 7 not in merged.occupied  # ... and lets its green gap out


def test_fuse_keeps_the_rest_of_the_inputs() -> None:
    """The neighbours' predicted arrivals (and commands) pass through the merge."""
    given = Inputs(occupied=frozenset({4}), commands=("c",), arrivals=((2, 3000),))
    merged, _ = fuse(
        given, BINDS, {"n-stop": False, "n-left": None}, frozenset(), ((4, "q"),), {"q": 2.0}
    )
    assert merged.arrivals == ((2, 3000),) and merged.commands == ("c",)
    assert merged.queues == ((4, 2.0),)


def test_queue_zones_reach_the_controller_while_the_camera_is_healthy() -> None:
    cam = copy.deepcopy(CAMERA)
    cam["zones"].append(  # a queue zone of its own on the left lane, no detector
        {"id": "n-left-q", "approach": "N", "lane": 1, "kind": "queue", "length_m": 40.0,
         "polygon": [[170.0, 120.0], [240.0, 120.0], [230.0, 60.0], [175.0, 60.0]]}
    )  # fmt: skip
    cfg = config_from_dict(site_raw(cam), "test")
    assert cfg.vision is not None
    qb = queue_bindings(cfg.site, cfg.vision)
    assert qb == ((4, "n-stop"), (7, "n-left-q"))  # its own detector; the lane's detector
    loops = Inputs(occupied=frozenset({9}), queues=((9, 2.0),))
    merged, _ = fuse(loops, BINDS, {}, frozenset(), qb, {"n-stop": 3.0, "n-left-q": None})
    assert merged.queues == ((9, 2.0), (4, 3.0))  # an unreliable zone gives none
    merged, _ = fuse(loops, (), {}, frozenset(), qb, {"n-stop": None, "n-left-q": None})
    assert merged.queues == ((9, 2.0),)  # nothing from the camera: the inputs' own stand


def wait_for(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_camera_dies_detectors_fall_back(tmp_path: Path, vehicles_model: Path) -> None:
    write_video(tmp_path / "cam.mp4", live_frames(50))
    cfg = config_from_dict(site_raw(), "site.toml", base=tmp_path)
    assert cfg.vision is not None
    sensing = Sensing(cfg.site, cfg.vision, VehicleModel(vehicles_model))
    sensing.start()
    try:
        loops = Inputs(occupied=frozenset({4}))
        assert wait_for(
            lambda: sensing.sense(loops, None) is not None and sensing.sources.get(4) == "camera"
        )
        assert sensing.cameras()[0]["health"] == "ok"
        jpeg = sensing.camera_jpeg("cam-n")
        assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
        t0 = time.monotonic()
        sensing.workers["cam-n"].source.stop()  # the camera dies: no more frames
        assert wait_for(
            lambda: (
                sensing.sense(loops, None) is not None
                and sensing.sources == {4: "loop", 7: "recall"}
            )
        )
        assert time.monotonic() - t0 <= 5.0
        merged = sensing.sense(loops, None)
        assert merged.occupied == {4, 7}
        cams = sensing.cameras()
        assert cams[0]["health"] == "disconnected" and not cams[0]["reliable"]
        assert {z["source"] for z in cams[0]["zones"]} == {"loop", "recall"}
    finally:
        sensing.stop()


def test_unreadable_model_runs_on_loops(tmp_path: Path) -> None:
    raw = site_raw()
    raw["vision"] = {"model": "missing.onnx"}
    cfg = config_from_dict(raw, "site.toml", base=tmp_path)
    assert cfg.vision is not None
    sensing = Sensing(cfg.site, cfg.vision)
    assert sensing.model is None and "cannot read the file" in sensing.model_error
    merged = sensing.sense(Inputs(occupied=frozenset({4})), None)
    assert sensing.sources == {4: "loop", 7: "recall"} and merged.occupied == {4, 7}
