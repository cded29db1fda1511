"""Detector layouts: what a model's input wants and how its outputs become boxes.

Rules it keeps:
- A model states its layout in its ONNX metadata (`layout`); without it the
  layout is recognised from the outputs' shapes and names, and a model that
  fits none is refused with what it has and what each layout needs.
- Every layout decodes to the same thing: boxes [x1, y1, x2, y2] in the
  model's input pixels, a score in [0, 1] and a class number, only for the
  classes asked for (the vehicles) and at or above the score threshold.
  Mapping back to the frame and NMS are the caller's, once for all layouts.
- The input is described, not guessed: channel order from the input's shape
  (NCHW or NHWC), the pixel range from the metadata `pixels` ("0-1" or
  "0-255"; a uint8 input takes raw pixels), and `resize` ("letterbox" keeps
  the aspect, "stretch" fills the input).

The layouts (docs/vision.md shows the export commands):
- yolov8: one output [1, 4 + nc, N]; rows 0-3 the box centre x, y, width and
  height, rows 4.. the class scores (Ultralytics YOLOv5u/v8/v11 exports, and
  the project's simulator model).
- centernet: two outputs at stride `stride` (metadata, default 4): a class
  heat map [1, H/s, W/s, nc] (scores after the sigmoid) and the box's
  left/top/right/bottom distances [1, H/s, W/s, 4] in input pixels; NCHW heads
  ([1, nc, H/s, W/s]) are accepted too. A box is a 3x3 local peak of the heat
  map.
- ssd: TensorFlow Object Detection API exports: `detection_boxes` [1, N, 4]
  (ymin, xmin, ymax, xmax, 0..1 of the input), `detection_scores` [1, N] and
  `detection_classes` [1, N] (class ids as the `names` metadata numbers them;
  by default the COCO label map's ids, 1-based).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

LAYOUTS = ("yolov8", "centernet", "ssd")
Float = npt.NDArray[np.float32]

# Class names of the COCO label map by the 1-based ids TF Object Detection API exports use.
COCO91 = {1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 6: "bus", 8: "truck"}


class LayoutError(ValueError):
    """The outputs do not fit the layout: says what differs."""


@dataclass(frozen=True, slots=True)
class InputSpec:
    """How to feed the model one picture."""

    name: str
    height: int
    width: int
    nchw: bool
    scale: float  # multiply 0..255 pixels by this (1/255 for "0-1")
    uint8: bool
    letterbox: bool


@dataclass(frozen=True, slots=True)
class Decoded:
    """Candidate boxes in input pixels, before NMS."""

    boxes: Float  # [K, 4] x1, y1, x2, y2
    scores: Float  # [K]
    classes: npt.NDArray[np.intp]  # [K], numbers as the model's names have them


def _empty() -> Decoded:
    return Decoded(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.intp))


def decode_yolov8(
    outs: Sequence[Float], wanted: npt.NDArray[np.intp], threshold: float, stride: int
) -> Decoded:
    out = outs[0][0]  # [4 + nc, N]
    scores_all = out[4:]
    best = scores_all.argmax(axis=0)
    best_score = scores_all.max(axis=0)
    keep = np.isin(best, wanted) & (best_score >= threshold)
    if not keep.any():
        return _empty()
    cx, cy, bw, bh = out[0, keep], out[1, keep], out[2, keep], out[3, keep]
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1)
    return Decoded(boxes.astype(np.float32), best_score[keep], best[keep].astype(np.intp))


def decode_centernet(
    outs: Sequence[Float], wanted: npt.NDArray[np.intp], threshold: float, stride: int
) -> Decoded:
    heat, ltrb = outs[0][0], outs[1][0]
    if ltrb.shape[-1] != 4 and ltrb.shape[0] == 4:  # NCHW heads
        heat, ltrb = heat.transpose(1, 2, 0), ltrb.transpose(1, 2, 0)
    if ltrb.shape[-1] != 4 or ltrb.shape[:2] != heat.shape[:2]:
        raise LayoutError(f"centernet heads do not match: {heat.shape} and {ltrb.shape}")
    boxes, scores, classes = [], [], []
    for c in wanted:
        # Only the wanted classes' channels: a COCO head may carry 80, a vehicle model 4.
        h = np.ascontiguousarray(heat[:, :, c])
        peak = (h >= threshold) & (h == cv2.dilate(h, np.ones((3, 3), np.uint8)))
        ys, xs = np.nonzero(peak)
        if not len(ys):
            continue
        d = ltrb[ys, xs]
        px, py = xs * float(stride), ys * float(stride)
        boxes.append(np.stack([px - d[:, 0], py - d[:, 1], px + d[:, 2], py + d[:, 3]], axis=1))
        scores.append(h[ys, xs])
        classes.append(np.full(len(ys), c, np.intp))
    if not boxes:
        return _empty()
    return Decoded(
        np.concatenate(boxes).astype(np.float32),
        np.concatenate(scores).astype(np.float32),
        np.concatenate(classes),
    )


def ssd_decoder(height: int, width: int) -> Callable[..., Decoded]:
    def decode(
        outs: Sequence[Float], wanted: npt.NDArray[np.intp], threshold: float, stride: int
    ) -> Decoded:
        boxes, scores, classes = outs[0][0], outs[1][0], outs[2][0].astype(np.intp)
        keep = np.isin(classes, wanted) & (scores >= threshold)
        y1, x1, y2, x2 = (boxes[keep, i] for i in range(4))
        xyxy = np.stack([x1 * width, y1 * height, x2 * width, y2 * height], axis=1)
        return Decoded(xyxy.astype(np.float32), scores[keep].astype(np.float32), classes[keep])

    return decode


@dataclass(frozen=True, slots=True)
class Layout:
    """A model's layout: the order its outputs are read in and its decoder."""

    name: str
    outputs: tuple[str, ...]  # output names, in the decoder's order
    decode: Callable[..., Decoded]
    stride: int
    default_names: Mapping[int, str] | None


def recognise(meta: Mapping[str, str], outputs: Sequence[tuple[str, Sequence[object]]]) -> str:
    """The layout a model's metadata names, or the one its outputs fit."""
    if "layout" in meta:
        name = meta["layout"].strip().lower()
        if name not in LAYOUTS:
            raise LayoutError(f"metadata layout {name!r} is none of {', '.join(LAYOUTS)}")
        return name
    names = {n for n, _ in outputs}
    if {"detection_boxes", "detection_scores", "detection_classes"} <= names:
        return "ssd"
    if len(outputs) == 1 and len(outputs[0][1]) == 3:
        return "yolov8"
    if len(outputs) == 2 and all(len(s) == 4 for _, s in outputs):
        return "centernet"
    got = ", ".join(f"{n} {list(s)}" for n, s in outputs)
    raise LayoutError(
        f"no metadata 'layout' and the outputs ({got}) fit no known layout: yolov8 has one "
        "output [1, 4 + classes, N], centernet a heat map and a box map [1, H, W, C], ssd "
        "detection_boxes/detection_scores/detection_classes"
    )


def build(
    name: str,
    meta: Mapping[str, str],
    outputs: Sequence[tuple[str, Sequence[object]]],
    height: int,
    width: int,
) -> Layout:
    stride = int(meta.get("stride", "4"))
    out_names = tuple(n for n, _ in outputs)
    if name == "yolov8":
        if len(outputs) != 1 or len(outputs[0][1]) != 3:
            raise LayoutError(f"yolov8 needs one output [1, 4 + classes, N], has {out_names}")
        return Layout(name, out_names, decode_yolov8, stride, None)
    if name == "centernet":
        if len(outputs) != 2:
            raise LayoutError(f"centernet needs a heat map and a box map, has {out_names}")
        if {"heatmap", "wh"} <= set(out_names):
            return Layout(name, ("heatmap", "wh"), decode_centernet, stride, None)
        # Unnamed heads: the box map is the one with 4 channels (NHWC or NCHW).
        boxy = [n for n, s in outputs if len(s) == 4 and 4 in (s[1], s[3])]
        if len(boxy) != 1:
            raise LayoutError(
                f"centernet outputs {out_names}: name them 'heatmap' and 'wh', or give "
                "exactly one of them 4 channels (the box map)"
            )
        heat = next(n for n in out_names if n != boxy[0])
        return Layout(name, (heat, boxy[0]), decode_centernet, stride, None)
    wanted = ("detection_boxes", "detection_scores", "detection_classes")
    if not set(wanted) <= set(out_names):
        raise LayoutError(f"ssd needs outputs {', '.join(wanted)}, has {out_names}")
    return Layout(name, wanted, ssd_decoder(height, width), stride, COCO91)


def input_spec(
    name: str, shape: Sequence[object], dtype: str, meta: Mapping[str, str], layout: str
) -> InputSpec:
    """How to feed the model, from its input's shape and type and its metadata."""
    dims = list(shape)
    if len(dims) != 4 or dims[0] not in (1, "batch", None, "N"):
        raise LayoutError(f"input {name!r} has shape {dims}, not [1, 3, H, W] or [1, H, W, 3]")
    if dims[1] == 3:
        nchw, h, w = True, dims[2], dims[3]
    elif dims[3] == 3:
        nchw, h, w = False, dims[1], dims[2]
    else:
        raise LayoutError(f"input {name!r} has shape {dims}: no dimension of 3 colour channels")
    if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
        size = meta.get("imgsz")
        if size is None:
            raise LayoutError(
                f"input {name!r} has shape {dims}: H and W must be fixed numbers "
                "(or set the metadata imgsz = [height, width])"
            )
        try:
            h, w = (int(v) for v in json.loads(size))
        except (ValueError, TypeError):
            raise LayoutError(f"metadata imgsz {size!r} is not [height, width]") from None
    if dtype not in ("tensor(float)", "tensor(uint8)"):
        raise LayoutError(f"input {name!r} is {dtype}, not float32 or uint8")
    uint8 = dtype == "tensor(uint8)"
    default_pixels = "0-1" if layout == "yolov8" else "0-255"
    pixels = meta.get("pixels", default_pixels)
    if pixels not in ("0-1", "0-255"):
        raise LayoutError(f"metadata pixels {pixels!r} is neither '0-1' nor '0-255'")
    resize = meta.get("resize", "letterbox")
    if resize not in ("letterbox", "stretch"):
        raise LayoutError(f"metadata resize {resize!r} is neither 'letterbox' nor 'stretch'")
    scale = 1.0 if uint8 or pixels == "0-255" else 1.0 / 255.0
    return InputSpec(name, int(h), int(w), nchw, scale, uint8, resize == "letterbox")
