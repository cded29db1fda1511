"""Small ONNX graphs of the model contract, built with the `onnx` package (a dev dependency).

For tests (contract checks, the pipeline with known boxes) and for the
vision benchmark's throughput when the shipped model is not there: `conv_model`
costs about what a compact detector does per frame (random weights, so its
boxes mean nothing). Same layout as a YOLOv8 export: input `images`
[1, 3, H, W], output [1, 4 + nc, N], metadata `names`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VEHICLE_NAMES = {0: "car", 1: "truck", 2: "bus", 3: "motorcycle", 4: "emergency"}
OPSET = 17


def _save(graph: onnx.GraphProto, path: Path, names: dict[int, str] | None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    if names is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = "names", repr(names)
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
    return _save(graph, path, names)


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
