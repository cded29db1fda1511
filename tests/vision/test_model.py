"""The model contract: good graphs load and give boxes in frame pixels; bad ones are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from devtools.vision.synthetic import (
    _constant_outputs,
    centernet_model,
    conv_model,
    fixed_boxes_model,
    ssd_model,
)
from edge.vision.model import ModelError, VehicleModel

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
            lambda p: fixed_boxes_model(p, [], meta={"layout": "detr"}),
            "metadata layout 'detr' is none of yolov8, centernet, ssd",
        ),
        (
            lambda p: fixed_boxes_model(p, [], meta={"score_threshold": "high"}),
            "metadata score_threshold 'high' is not a number in (0, 1)",
        ),
        (
            lambda p: fixed_boxes_model(p, [], meta={"pixels": "0-65535"}),
            "metadata pixels '0-65535' is neither '0-1' nor '0-255'",
        ),
        (
            lambda p: _constant_outputs(
                p, [1, 64, 64, 3], 1, {"a": np.zeros((1, 5)), "b": np.zeros((1, 5))}, None, {}
            ),
            "no metadata 'layout' and the outputs (a [1, 5], b [1, 5]) fit no known layout",
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


def test_centernet_layout_peaks_become_boxes(tmp_path: Path) -> None:
    # A 256x128 input at stride 4; a 512x256 picture is scaled by 0.5 (no padding).
    m = VehicleModel(
        centernet_model(
            tmp_path / "cn.onnx",
            [
                (10, 8, 0, 0.9, (12, 8, 12, 8)),  # a car at input (40, 32)
                (11, 8, 1, 0.6, (12, 8, 12, 8)),  # the next cell, weaker: not a peak of its own
                (40, 20, 2, 0.3, (8, 8, 8, 8)),  # below the threshold
            ],
        )
    )
    assert (m.layout.name, m.spec.nchw, m.spec.scale) == ("centernet", False, 1.0)
    dets = m.detect(np.zeros((256, 512, 3), np.uint8))
    assert [(d.cls, d.x1, d.y1, d.x2, d.y2) for d in dets] == [("car", 56.0, 48.0, 104.0, 80.0)]


def test_centernet_nchw_heads_without_names_of_outputs(tmp_path: Path) -> None:
    # No metadata but names: recognised by its two 4-D outputs, the box map by its 4 channels.
    m = VehicleModel(
        centernet_model(
            tmp_path / "cn.onnx", [(5, 5, 3, 0.8, (4, 4, 4, 4))], nchw_heads=True, meta={}
        )
    )
    ((d,),) = [m.detect(np.zeros((128, 256, 3), np.uint8))]
    assert (d.cls, d.x1, d.y1, d.x2, d.y2) == ("motorcycle", 16.0, 16.0, 24.0, 24.0)


def test_ssd_layout_uses_the_coco_label_map_ids(tmp_path: Path) -> None:
    m = VehicleModel(
        ssd_model(
            tmp_path / "ssd.onnx",
            [(0.5, 0.25, 0.75, 0.5, 3, 0.9), (0.1, 0.1, 0.3, 0.2, 1, 0.95), (0, 0, 1, 1, 8, 0.1)],
        )
    )
    assert (m.layout.name, m.spec.uint8, m.spec.nchw) == ("ssd", True, False)
    # A 600x300 picture letterboxed into 300x300: scale 0.5, 75 px of padding above.
    (d,) = m.detect(np.zeros((300, 600, 3), np.uint8))
    assert (d.cls, d.x1, d.y1, d.x2, d.y2) == ("car", 150.0, 150.0, 300.0, 300.0)


def test_stretch_maps_each_axis_back(tmp_path: Path) -> None:
    m = VehicleModel(
        fixed_boxes_model(
            tmp_path / "s.onnx", [(160, 96, 32, 32, 0, 0.9)], meta={"resize": "stretch"}
        )
    )
    (d,) = m.detect(np.zeros((96, 640, 3), np.uint8))  # x / 0.5, y / 2
    assert (d.x1, d.y1, d.x2, d.y2) == (288.0, 40.0, 352.0, 56.0)
