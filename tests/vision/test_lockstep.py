"""Lockstep: the controller driven by rendered cameras on `single`, against the loops."""

from __future__ import annotations

import pytest
from edge.vision.config import SIM_MODEL
from sim.sumo import scenarios
from sim.sumo.errors import SimError
from sim.sumo.lockstep import run


def test_camera_labels_drive_the_controller_like_the_loops() -> None:
    single = scenarios.resolve("single")
    loops = run(single, "edge", seed=3, end_s=300)
    cams = run(single, "edge-camera-labels", seed=3, end_s=300)
    assert cams["collisions"] == 0 and cams["arrived"] > 50
    note = next(n for n in cams["notes"] if n.startswith("cameras: 4"))
    assert "detector-steps on camera 100.0 %" in note
    # The zones stand for the loops: the same traffic is served about as well.
    assert cams["mean_delay_s"] <= loops["mean_delay_s"] * 1.3


def test_camera_with_the_model_or_a_clear_error() -> None:
    single = scenarios.resolve("single")
    if not SIM_MODEL.is_file():  # the simulator runs its own model (docs/vision.md)
        with pytest.raises(SimError, match=r"edge-camera: model .*vehicles.onnx: cannot read"):
            run(single, "edge-camera", seed=3, end_s=60)
        return
    report = run(single, "edge-camera", seed=3, end_s=120)
    assert report["collisions"] == 0 and report["arrived"] > 10
