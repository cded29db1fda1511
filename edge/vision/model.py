"""The vehicle detector: an ONNX model run by onnxruntime on the CPU, checked at load.

Rules it keeps:
- The model's layout (yolov8, centernet, ssd: edge/vision/layouts.py) and its
  input (channel order, pixel range, letterbox or stretch) come from the
  model's metadata or its shapes; a model that fits none is refused at load
  with ModelError saying what differs, never half-used.
- Class names come from the metadata `names` (an Ultralytics-style dict
  string, "{0: 'car', 1: 'truck'}"), or the layout's own default (the COCO
  label map for ssd). Vehicle classes are taken by name (car, truck, bus,
  motorcycle, emergency); the others (person, bicycle, traffic light, ...)
  are never decoded, so they never become a box.
- The score threshold is the site's ([vision] score_threshold), else the
  model's own (metadata `score_threshold`), else 0.35.
- One inference at a time per model, whatever the number of cameras: the
  activations are allocated once (memory), and inference never takes more
  than one core from the control tick.
- Boxes come back in the frame's pixels, one per vehicle whatever its class
  (class-agnostic NMS), clipped to the picture.

The shipped models and their contracts: models/MODEL_CARD.md.
"""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from edge.vision import layouts
from edge.vision.layouts import Decoded, InputSpec, LayoutError

VEHICLE_CLASSES = ("car", "truck", "bus", "motorcycle", "emergency")
PAD = 114
DEFAULT_THRESHOLD = 0.35  # for a model that states none
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


def _threshold(text: str | None, path: Path | str) -> float:
    """The model's own score threshold (metadata), else DEFAULT_THRESHOLD."""
    if text is None:
        return DEFAULT_THRESHOLD
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise ModelError(path, f"metadata score_threshold {text!r} is not a number in (0, 1)")
    return value


class VehicleModel:
    """One onnxruntime session (intra-op threads as given: 1 keeps a core for the rest)."""

    def __init__(
        self,
        path: Path | str,
        *,
        score_threshold: float | None = None,
        iou_threshold: float = 0.5,
        threads: int = 1,
    ) -> None:
        self.path = Path(path)
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
        self._one_at_a_time = threading.Lock()
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.spec, self.layout, self.names = self._check(meta)
        except LayoutError as exc:
            raise ModelError(path, str(exc)) from None
        self.height, self.width = self.spec.height, self.spec.width
        self.score_threshold = (
            score_threshold
            if score_threshold is not None
            else _threshold(meta.get("score_threshold"), path)
        )
        self.vehicle_rows = np.array(
            [k for k, n in sorted(self.names.items()) if n in VEHICLE_CLASSES], dtype=np.intp
        )
        self.version = meta.get("edge_model_version", meta.get("version", ""))

    def _check(self, meta: dict[str, str]) -> tuple[InputSpec, layouts.Layout, dict[int, str]]:
        inputs = self.session.get_inputs()
        outputs = [(o.name, list(o.shape)) for o in self.session.get_outputs()]
        if len(inputs) != 1:
            got = ", ".join(f"{i.name} {i.shape}" for i in inputs)
            raise LayoutError(f"needs one input (the picture), has: {got}")
        name = layouts.recognise(meta, outputs)
        spec = layouts.input_spec(inputs[0].name, inputs[0].shape, inputs[0].type, meta, name)
        layout = layouts.build(name, meta, outputs, spec.height, spec.width)
        if "names" in meta:
            try:
                names = parse_names(meta["names"])
            except ValueError as exc:
                raise LayoutError(str(exc)) from None
        elif layout.default_names is not None:
            names = dict(layout.default_names)
        else:
            raise LayoutError("no 'names' in the model's metadata (class names)")
        if name == "yolov8":
            rows = outputs[0][1][1]
            if isinstance(rows, int) and rows != 4 + len(names):
                raise LayoutError(
                    f"output has {rows} rows; 4 box rows + {len(names)} classes would be "
                    f"{4 + len(names)}"
                )
        if not any(n in VEHICLE_CLASSES for n in names.values()):
            raise LayoutError(
                f"none of its classes is a vehicle ({', '.join(VEHICLE_CLASSES)}): "
                f"{sorted(names.values())[:10]}"
            )
        # One run on a grey picture: the graph really runs, and decodes as declared.
        grey = np.full((spec.height, spec.width, 3), 128, np.uint8)
        outs = self.session.run(list(layout.outputs), {spec.name: self._tensor(grey, spec)})
        if name == "yolov8" and (outs[0].ndim != 3 or outs[0].shape[1] != 4 + len(names)):
            raise LayoutError(
                f"output is {list(outs[0].shape)} at run time, not [1, {4 + len(names)}, N]"
            )
        wanted = np.array(sorted(names), dtype=np.intp)
        layout.decode(outs, wanted, 1.0, layout.stride)
        return spec, layout, names

    # -- inference ------------------------------------------------------------------------

    @staticmethod
    def _tensor(picture: Image, spec: InputSpec) -> npt.NDArray[np.generic]:
        """An RGB picture already at the input size, as the input tensor."""
        rgb = cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)
        arr = rgb.transpose(2, 0, 1)[None] if spec.nchw else rgb[None]
        if spec.uint8:
            return np.ascontiguousarray(arr)
        tensor = np.ascontiguousarray(arr, dtype=np.float32)
        if spec.scale != 1.0:
            tensor *= spec.scale
        return tensor

    def letterbox(self, image: Image) -> tuple[npt.NDArray[np.generic], float, float, float, float]:
        """The input tensor for a BGR picture, with the x/y scales and padding to map back."""
        spec = self.spec
        ih, iw = image.shape[:2]
        if not spec.letterbox:
            size = (spec.width, spec.height)
            resized = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), np.uint8)
            return self._tensor(resized, spec), spec.width / iw, spec.height / ih, 0.0, 0.0
        scale = min(spec.width / iw, spec.height / ih)
        nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
        resized = np.asarray(cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR), np.uint8)
        px, py = (spec.width - nw) // 2, (spec.height - nh) // 2
        canvas = np.full((spec.height, spec.width, 3), PAD, np.uint8)
        canvas[py : py + nh, px : px + nw] = resized
        return self._tensor(canvas, spec), scale, scale, float(px), float(py)

    def detect(self, image: Image, offset: tuple[float, float] = (0.0, 0.0)) -> list[Detection]:
        """Vehicles in a BGR picture (a crop at `offset` in the frame): boxes in frame pixels."""
        if not len(self.vehicle_rows):
            return []
        tensor, sx, sy, px, py = self.letterbox(image)
        with self._one_at_a_time:
            outs = self.session.run(list(self.layout.outputs), {self.spec.name: tensor})
        found = self.layout.decode(
            outs, self.vehicle_rows, self.score_threshold, self.layout.stride
        )
        return self._to_frame(found, sx, sy, px, py, offset, image.shape[1], image.shape[0])

    def _to_frame(
        self,
        found: Decoded,
        sx: float,
        sy: float,
        px: float,
        py: float,
        offset: tuple[float, float],
        width: int,
        height: int,
    ) -> list[Detection]:
        if not len(found.scores):
            return []
        b = found.boxes
        x1 = np.clip((b[:, 0] - px) / sx, 0, width)
        y1 = np.clip((b[:, 1] - py) / sy, 0, height)
        x2 = np.clip((b[:, 2] - px) / sx, 0, width)
        y2 = np.clip((b[:, 3] - py) / sy, 0, height)
        rects = [
            [float(a), float(c), float(e - a), float(f - c)]
            for a, c, e, f in zip(x1, y1, x2, y2, strict=True)
        ]
        # One box per vehicle whatever its class: a car and a truck guess of one vehicle.
        score = found.scores
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
                    self.names[int(found.classes[i])],
                    float(score[i]),
                )
            )
        return dets
