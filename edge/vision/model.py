"""The vehicle detector: an ONNX model run by onnxruntime on the CPU, checked against its contract.

The contract (models/MODEL_CARD.md): one input `images`, float32
[1, 3, H, W], RGB scaled to 0..1, H and W fixed in the graph, the picture
letterboxed (aspect kept, padded with 114/255); one output [1, 4 + nc, N]
in the YOLOv8 detect layout: rows 0-3 are the box centre x, y, width and
height in input pixels, rows 4.. the class scores (no objectness); the
model's metadata `names` is an Ultralytics-style dict string
("{0: 'car', 1: 'truck'}"). Vehicle classes are taken by name (car, truck,
bus, motorcycle, emergency); other classes (a COCO export's person,
bicycle, ...) are ignored. A model that breaks the contract is refused at
load with ModelError saying what differs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

VEHICLE_CLASSES = ("car", "truck", "bus", "motorcycle", "emergency")
PAD = 114
Image = npt.NDArray[np.uint8]


class ModelError(Exception):
    """A model that cannot be used: unreadable, or not of the contract."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"model {path}: {reason}")


@dataclass(frozen=True, slots=True)
class Detection:
    """A vehicle box in frame pixels."""

    x1: float
    y1: float
    x2: float
    y2: float
    cls: str
    score: float

    @property
    def emergency(self) -> bool:
        return self.cls == "emergency"

    @property
    def ground(self) -> tuple[float, float]:
        """Where the vehicle meets the road: the middle of the box's bottom edge."""
        return ((self.x1 + self.x2) / 2, self.y2)


def parse_names(text: str) -> dict[int, str]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"metadata names is not a dict literal: {exc}") from None
    if isinstance(value, list):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not all(
        isinstance(k, int) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError("metadata names must map class numbers to names")
    return {int(k): str(v) for k, v in value.items()}


class VehicleModel:
    """One onnxruntime session (intra-op threads as given: 1 keeps a core for the rest)."""

    def __init__(
        self,
        path: Path | str,
        *,
        score_threshold: float = 0.35,
        iou_threshold: float = 0.5,
        threads: int = 1,
    ) -> None:
        self.path = Path(path)
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise ModelError(path, f"cannot read the file: {exc.strerror or exc}") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                data, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own types for a bad graph
            raise ModelError(path, f"not a loadable ONNX model: {exc}") from None
        self.height, self.width, self.names = self._check_contract()
        self.vehicle_rows = np.array(
            [k for k, n in sorted(self.names.items()) if n in VEHICLE_CLASSES], dtype=np.intp
        )
        self.version = self.session.get_modelmeta().custom_metadata_map.get("version", "")

    def _check_contract(self) -> tuple[int, int, dict[int, str]]:
        inputs = self.session.get_inputs()
        outputs = self.session.get_outputs()
        if len(inputs) != 1 or inputs[0].name != "images":
            got = ", ".join(f"{i.name} {i.shape}" for i in inputs)
            raise ModelError(self.path, f"needs one input named 'images', has: {got}")
        inp = inputs[0]
        if inp.type != "tensor(float)":
            raise ModelError(self.path, f"input 'images' is {inp.type}, not float32")
        shape = list(inp.shape)
        if len(shape) != 4 or shape[1] != 3 or shape[0] not in (1, "batch", None):
            raise ModelError(self.path, f"input 'images' has shape {shape}, not [1, 3, H, W]")
        h, w = shape[2], shape[3]
        if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
            raise ModelError(
                self.path, f"input 'images' has shape {shape}: H and W must be fixed numbers"
            )
        if len(outputs) != 1:
            raise ModelError(self.path, f"needs one output [1, 4 + classes, N], has {len(outputs)}")
        out_shape = list(outputs[0].shape)
        if len(out_shape) != 3:
            raise ModelError(self.path, f"output has shape {out_shape}, not [1, 4 + classes, N]")
        meta = self.session.get_modelmeta().custom_metadata_map
        if "names" not in meta:
            raise ModelError(self.path, "no 'names' in the model's metadata (class names)")
        try:
            names = parse_names(meta["names"])
        except ValueError as exc:
            raise ModelError(self.path, str(exc)) from None
        rows = out_shape[1]
        if isinstance(rows, int) and rows != 4 + len(names):
            raise ModelError(
                self.path,
                f"output has {rows} rows; 4 box rows + {len(names)} classes would be "
                f"{4 + len(names)}",
            )
        if not any(n in VEHICLE_CLASSES for n in names.values()):
            raise ModelError(
                self.path,
                f"none of its classes is a vehicle ({', '.join(VEHICLE_CLASSES)}): "
                f"{sorted(names.values())[:10]}",
            )
        # One run on a grey picture: the graph really runs, and its output is as declared.
        out = self.session.run(None, {"images": np.full((1, 3, h, w), 0.5, np.float32)})[0]
        if out.ndim != 3 or out.shape[0] != 1 or out.shape[1] != 4 + len(names):
            raise ModelError(
                self.path,
                f"output is {list(out.shape)} at run time, not [1, {4 + len(names)}, N]",
            )
        return h, w, names

    # -- inference ------------------------------------------------------------------------

    def letterbox(self, image: Image) -> tuple[npt.NDArray[np.float32], float, float, float]:
        """The model's input for a BGR picture, with the scale and padding to map boxes back."""
        ih, iw = image.shape[:2]
        scale = min(self.width / iw, self.height / ih)
        nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        px, py = (self.width - nw) // 2, (self.height - nh) // 2
        canvas = np.full((self.height, self.width, 3), PAD, np.uint8)
        canvas[py : py + nh, px : px + nw] = resized
        rgb = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
        tensor = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)
        tensor *= 1.0 / 255.0
        return tensor, scale, float(px), float(py)

    def detect(self, image: Image, offset: tuple[float, float] = (0.0, 0.0)) -> list[Detection]:
        """Vehicles in a BGR picture (a crop at `offset` in the frame): boxes in frame pixels."""
        tensor, scale, px, py = self.letterbox(image)
        out = self.session.run(None, {"images": tensor})[0][0]  # [4 + nc, N]
        return self.decode(out, scale, px, py, offset, image.shape[1], image.shape[0])

    def decode(
        self,
        out: npt.NDArray[np.float32],
        scale: float,
        px: float,
        py: float,
        offset: tuple[float, float],
        width: int,
        height: int,
    ) -> list[Detection]:
        if not len(self.vehicle_rows):
            return []
        scores_all = out[4:]
        best = scores_all.argmax(axis=0)
        best_score = scores_all.max(axis=0)
        keep = np.isin(best, self.vehicle_rows) & (best_score >= self.score_threshold)
        if not keep.any():
            return []
        cx, cy, bw, bh = out[0, keep], out[1, keep], out[2, keep], out[3, keep]
        cls, score = best[keep], best_score[keep]
        x1 = np.clip((cx - bw / 2 - px) / scale, 0, width)
        y1 = np.clip((cy - bh / 2 - py) / scale, 0, height)
        x2 = np.clip((cx + bw / 2 - px) / scale, 0, width)
        y2 = np.clip((cy + bh / 2 - py) / scale, 0, height)
        rects = [
            [float(a), float(b), float(c - a), float(d - b)]
            for a, b, c, d in zip(x1, y1, x2, y2, strict=True)
        ]
        # One box per vehicle whatever its class: a car and a truck guess of one vehicle.
        picked = cv2.dnn.NMSBoxes(
            rects, [float(s) for s in score], self.score_threshold, self.iou_threshold
        )
        ox, oy = offset
        dets = []
        for i in np.asarray(picked, dtype=np.intp).reshape(-1):
            if x2[i] - x1[i] < 1 or y2[i] - y1[i] < 1:
                continue
            dets.append(
                Detection(
                    float(x1[i] + ox),
                    float(y1[i] + oy),
                    float(x2[i] + ox),
                    float(y2[i] + oy),
                    self.names[int(cls[i])],
                    float(score[i]),
                )
            )
        return dets
