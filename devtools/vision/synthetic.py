"""Small ONNX graphs of the model contract, built with the `onnx` package (a dev dependency).

For tests (contract checks, the pipeline with known boxes) and for the
vision benchmark's throughput when the shipped model is not there: `conv_model`
costs about what a compact detector does per frame (random weights, so its
boxes mean nothing). `fixed_boxes_model` and `conv_model` have the YOLOv8
layout (input `images` [1, 3, H, W], output [1, 4 + nc, N], metadata
`names`); `centernet_model` and `ssd_model` give fixed outputs in the other
layouts of edge/vision/layouts.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VEHICLE_NAMES = {0: "car", 1: "truck", 2: "bus", 3: "motorcycle", 4: "emergency"}
OPSET = 17


def _save(
    graph: onnx.GraphProto,
    path: Path,
    names: dict[int, str] | None,
    meta: dict[str, str] | None = None,
) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    props = ({"names": repr(names)} if names is not None else {}) | (meta or {})
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def fixed_boxes_model(
    path: Path,
    boxes: Sequence[tuple[float, float, float, float, int, float]],
    *,
    height: int = 192,
    width: int = 320,
    names: dict[int, str] | None = None,
    rows: int | None = None,
    input_name: str = "images",
    meta: dict[str, str] | None = None,
) -> Path:
    """Outputs the same boxes for any picture: (cx, cy, w, h in input pixels, class, score).

    The output still depends on the input (plus 0 x its mean), as a real graph's does."""
    names = VEHICLE_NAMES if names is None else names
    nc = len(names)
    n = max(1, len(boxes))
    out = np.zeros((1, rows if rows is not None else 4 + nc, n), np.float32)
    for k, (cx, cy, bw, bh, cls, score) in enumerate(boxes):
        out[0, :4, k] = (cx, cy, bw, bh)
        out[0, 4 + cls, k] = score
    const = numpy_helper.from_array(out, "boxes")
    zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
    nodes = [
        helper.make_node("ReduceMean", [input_name], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["boxes", "z"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "fixed_boxes",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(out.shape))],
        [const, zero],
    )
    return _save(graph, path, names, meta)


def _constant_outputs(
    path: Path,
    in_shape: list[int],
    in_type: int,
    outputs: dict[str, np.ndarray],
    names: dict[int, str] | None,
    meta: dict[str, str],
) -> Path:
    """A graph whose outputs are the given arrays (plus 0 x the input's mean)."""
    nodes = [
        helper.make_node("Cast", ["images"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
    ]
    inits = [numpy_helper.from_array(np.zeros((1,), np.float32), "zero")]
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_const"))
        nodes.append(helper.make_node("Add", [f"{name}_const", "z"], [name]))
    graph = helper.make_graph(
        nodes,
        "fixed_outputs",
        [helper.make_tensor_value_info("images", in_type, in_shape)],
        [
            helper.make_tensor_value_info(n, TensorProto.FLOAT, list(v.shape))
            for n, v in outputs.items()
        ],
        inits,
    )
    return _save(graph, path, names, meta)


def centernet_model(
    path: Path,
    peaks: Sequence[tuple[int, int, int, float, tuple[float, float, float, float]]],
    *,
    height: int = 128,
    width: int = 256,
    names: dict[int, str] | None = None,
    nchw_heads: bool = False,
    meta: dict[str, str] | None = None,
) -> Path:
    """CenterNet heads at stride 4: peaks (cell x, cell y, class, score, (l, t, r, b))."""
    names = VEHICLE_NAMES if names is None else names
    heat = np.zeros((1, height // 4, width // 4, len(names)), np.float32)
    ltrb = np.zeros((1, height // 4, width // 4, 4), np.float32)
    for x, y, cls, score, dist in peaks:
        heat[0, y, x, cls] = score
        ltrb[0, y, x] = dist
    if nchw_heads:
        heat, ltrb = heat.transpose(0, 3, 1, 2), ltrb.transpose(0, 3, 1, 2)
    layout = {"layout": "centernet", "pixels": "0-255"} if meta is None else meta
    return _constant_outputs(
        path,
        [1, height, width, 3],
        TensorProto.FLOAT,
        {"heatmap": heat, "wh": ltrb},
        names,
        layout,
    )


def ssd_model(
    path: Path,
    boxes: Sequence[tuple[float, float, float, float, int, float]],
    *,
    height: int = 300,
    width: int = 300,
) -> Path:
    """A TF Object Detection API-style SSD: (ymin, xmin, ymax, xmax 0..1, class id, score);
    uint8 NHWC input, no names (the COCO label map's ids apply)."""
    n = max(1, len(boxes))
    b = np.zeros((1, n, 4), np.float32)
    cls = np.zeros((1, n), np.float32)
    score = np.zeros((1, n), np.float32)
    for k, (y1, x1, y2, x2, c, s) in enumerate(boxes):
        b[0, k], cls[0, k], score[0, k] = (y1, x1, y2, x2), c, s
    outputs = {"detection_boxes": b, "detection_scores": score, "detection_classes": cls}
    return _constant_outputs(path, [1, height, width, 3], TensorProto.UINT8, outputs, None, {})


def conv_model(
    path: Path, *, height: int = 192, width: int = 320, names: dict[int, str] | None = None
) -> Path:
    """A compact strided conv net (stride 8, 4 convs) with the detect output layout."""
    names = VEHICLE_NAMES if names is None else names
    rng = np.random.default_rng(0)
    chans = [3, 16, 32, 64, 64]
    inits = []
    nodes = []
    x = "images"
    for i in range(4):
        stride = 2 if i < 3 else 1
        w = numpy_helper.from_array(
            (rng.standard_normal((chans[i + 1], chans[i], 3, 3)) * 0.1).astype(np.float32), f"w{i}"
        )
        inits.append(w)
        nodes.append(
            helper.make_node(
                "Conv", [x, f"w{i}"], [f"c{i}"], strides=[stride, stride], pads=[1, 1, 1, 1]
            )
        )
        nodes.append(helper.make_node("Relu", [f"c{i}"], [f"r{i}"]))
        x = f"r{i}"
    rows = 4 + len(names)
    head = numpy_helper.from_array(
        (rng.standard_normal((rows, chans[-1], 1, 1)) * 0.01).astype(np.float32), "head"
    )
    cells = (height // 8) * (width // 8)
    shape = numpy_helper.from_array(np.array([1, rows, cells], np.int64), "shape")
    inits += [head, shape]
    nodes += [
        helper.make_node("Conv", [x, "head"], ["h"]),
        helper.make_node("Sigmoid", ["h"], ["s"]),
        helper.make_node("Reshape", ["s", "shape"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, height, width])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, rows, cells])],
        inits,
    )
    return _save(graph, path, names)
