"""The model contract: good graphs load and give boxes in frame pixels; bad ones are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edge.vision.model import ModelError, VehicleModel
from edge.vision.synthetic import conv_model, fixed_boxes_model

COCO = {0: "person", 1: "bicycle", 2: "car", 3: "motorcycle", 5: "bus", 7: "truck"}


def test_fixed_boxes_decoded_with_nms(tmp_path: Path) -> None:
    m = VehicleModel(
        fixed_boxes_model(
            tmp_path / "m.onnx",
            [(100, 100, 40, 30, 0, 0.9), (102, 101, 40, 30, 1, 0.8), (200, 50, 20, 20, 3, 0.2)],
        )
    )
    dets = m.detect(np.zeros((192, 320, 3), np.uint8))
    assert [(d.cls, round(d.x1), round(d.y1), round(d.x2), round(d.y2)) for d in dets] == [
        ("car", 80, 85, 120, 115)
    ]  # the truck guess of the same vehicle is suppressed; the 0.2 score is below threshold


def test_letterbox_maps_back_to_the_crop(tmp_path: Path) -> None:
    # A 160x192 crop is scaled by 1 and padded 80 px left: input x 100 is crop x 20.
    m = VehicleModel(fixed_boxes_model(tmp_path / "m.onnx", [(100, 96, 20, 20, 2, 0.9)]))
    (d,) = m.detect(np.zeros((192, 160, 3), np.uint8), offset=(50.0, 10.0))
    assert (d.cls, d.x1, d.y1, d.x2, d.y2) == ("bus", 60.0, 96.0, 80.0, 116.0)
    assert d.ground == (70.0, 116.0)


def test_user_coco_export_maps_vehicle_classes_by_name(tmp_path: Path) -> None:
    # An Ultralytics-style COCO export (names subset): person ignored, car/truck kept.
    m = VehicleModel(
        fixed_boxes_model(
            tmp_path / "coco.onnx",
            [(50, 50, 20, 40, 0, 0.9), (150, 100, 40, 30, 2, 0.8), (250, 100, 50, 40, 5, 0.7)],
            height=640,
            width=640,
            names=dict(enumerate(COCO.values())),
        )
    )
    assert (m.height, m.width) == (640, 640)
    assert sorted(d.cls for d in m.detect(np.zeros((640, 640, 3), np.uint8))) == ["car", "truck"]


def test_conv_model_runs(tmp_path: Path) -> None:
    m = VehicleModel(conv_model(tmp_path / "c.onnx"))
    assert isinstance(m.detect(np.full((192, 320, 3), 90, np.uint8)), list)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: p.write_bytes(b"not onnx"), "not a loadable ONNX model"),
        (lambda p: None, "cannot read the file"),
        (
            lambda p: fixed_boxes_model(p, [], input_name="input"),
            "needs one input named 'images', has: input [1, 3, 192, 320]",
        ),
        (
            lambda p: fixed_boxes_model(p, [], rows=7),
            "output has 7 rows; 4 box rows + 5 classes would be 9",
        ),
        (
            lambda p: fixed_boxes_model(p, [], names={0: "person", 1: "dog"}),
            "none of its classes is a vehicle",
        ),
    ],
)
def test_contract_errors(tmp_path: Path, build: object, message: str) -> None:
    path = tmp_path / "bad.onnx"
    build(path)  # type: ignore[operator]
    with pytest.raises(ModelError) as exc:
        VehicleModel(path)
    assert message in str(exc.value)
    assert str(path) in str(exc.value)
