"""The shipped models/vehicles.onnx keeps its contract (models/MODEL_CARD.md) and finds
vehicles in held-out renders. onnxruntime and onnx only: CI has no torch."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from models.evaluate import Tally, detect, roi_of, score_frame
from models.letterbox import INPUT_H, INPUT_W, PAD, letterbox, zones_roi
from sim.camera.dataset import HELD_OUT_SEED, held_out

MODEL = Path(__file__).resolve().parents[2] / "models" / "vehicles.onnx"
NAMES = {0: "car", 1: "truck", 2: "bus", 3: "motorcycle", 4: "emergency"}


@pytest.fixture(scope="module")
def session() -> ort.InferenceSession:
    assert MODEL.is_file(), f"{MODEL} is not shipped"
    return ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])


def test_the_file_is_small_and_a_valid_onnx_of_a_recent_opset() -> None:
    assert MODEL.stat().st_size <= 5 * 1024 * 1024
    proto = onnx.load(str(MODEL))
    onnx.checker.check_model(proto)
    opset = max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 13


def test_input_output_and_metadata_follow_the_contract(session: ort.InferenceSession) -> None:
    (inp,) = session.get_inputs()
    assert inp.name == "images"
    assert inp.type == "tensor(float)"
    assert inp.shape == [1, 3, INPUT_H, INPUT_W] == [1, 3, 192, 320]
    (out,) = session.get_outputs()
    assert out.shape[:2] == [1, 4 + len(NAMES)]
    meta = session.get_modelmeta().custom_metadata_map
    assert ast.literal_eval(meta["names"]) == NAMES
    assert meta["edge_contract"] == "yolov8-detect-v1"
    assert meta["edge_model_version"].count(".") == 2


def test_outputs_are_boxes_in_input_pixels_and_scores_in_0_1(
    session: ort.InferenceSession,
) -> None:
    grey = np.full((1, 3, INPUT_H, INPUT_W), PAD / 255.0, np.float32)
    out = session.run(None, {"images": grey})[0]
    assert out.shape[:2] == (1, 9) and out.shape[2] > 100
    scores = out[0, 4:]
    assert scores.min() >= 0.0 and scores.max() <= 1.0
    assert scores.max() < 0.3  # a blank picture holds no vehicle
    cx, cy, w, h = out[0, :4]
    assert (cx >= 0).all() and (cx <= INPUT_W).all() and (cy >= 0).all() and (cy <= INPUT_H).all()
    assert (w > 0).all() and (h > 0).all()


def test_letterbox_keeps_the_aspect_and_centres() -> None:
    frame = np.zeros((360, 640, 3), np.uint8)
    rgb, scale, px, py = letterbox(frame)
    assert rgb.shape == (INPUT_H, INPUT_W, 3)
    assert scale == pytest.approx(0.5) and px == 0 and py == 6
    assert (rgb[:6] == PAD).all() and (rgb[6:186] == 0).all()
    roi = zones_roi([np.array([[100.0, 50.0], [300.0, 50.0], [200.0, 300.0]])], 640, 360)
    assert roi[0] < 100 and roi[1] < 50 and roi[2] > 300 and roi[3] > 300


def test_it_finds_the_vehicles_of_held_out_frames(session: ort.InferenceSession) -> None:
    tally = Tally()
    for sample in held_out(6, HELD_OUT_SEED + 500):
        score_frame(sample, detect(session, sample.frame, roi_of(sample)), tally)
    row = tally.row()
    assert tally.tp + tally.fn >= 10, "too few vehicles in the sample to judge"
    assert row["recall"] >= 0.6, row
    assert row["precision"] >= 0.6, row
