"""The model's input geometry (shared by training, evaluation and the tests): a region of
interest of a BGR frame, scaled to fit H x W with its aspect kept, centred, padded 114."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

INPUT_H, INPUT_W = 192, 320
PAD = 114


def letterbox(
    frame: npt.NDArray[np.uint8],
    roi: tuple[int, int, int, int] | None = None,
    place: tuple[float, float] = (0.5, 0.5),
) -> tuple[npt.NDArray[np.uint8], float, float, float]:
    """(RGB uint8 H x W x 3, scale, pad x, pad y); a box maps back as (b - pad) / scale + roi.

    `place` puts the picture in the padding (0.5, 0.5 = centred, as the runtime does)."""
    x0, y0, x1, y1 = roi or (0, 0, frame.shape[1], frame.shape[0])
    crop = frame[y0:y1, x0:x1]
    ih, iw = crop.shape[:2]
    scale = min(INPUT_W / iw, INPUT_H / ih)
    nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
    resized = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_LINEAR)
    px, py = int((INPUT_W - nw) * place[0]), int((INPUT_H - nh) * place[1])
    canvas = np.full((INPUT_H, INPUT_W, 3), PAD, np.uint8)
    canvas[py : py + nh, px : px + nw] = resized
    rgb: npt.NDArray[np.uint8] = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB).astype(np.uint8)
    return rgb, scale, float(px), float(py)


def zones_roi(
    zones_px: list[npt.NDArray[np.float64]], width: int, height: int, margin: float = 0.08
) -> tuple[int, int, int, int]:
    """The bounding box of a camera's zone polygons, widened by `margin`, inside the frame."""
    pts = np.vstack(zones_px)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    mx, my = (x1 - x0) * margin + 4, (y1 - y0) * margin + 4
    return (
        int(max(0, x0 - mx)),
        int(max(0, y0 - my)),
        int(min(width, x1 + mx)),
        int(min(height, y1 + my)),
    )
