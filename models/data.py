"""The training set: frames rendered from SUMO runs of the shipped scenarios, cut to the
model's input the way the runtime cuts them (a zone region or the whole frame,
letterboxed), with boxes in input pixels. Seeded: the same seed, the same arrays."""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sim.camera.dataset import HELD_OUT_SEED, SCENARIOS, Sample, generate

from models.letterbox import letterbox, zones_roi

MIN_VISIBLE = 0.3  # a box less visible than this is neither a target nor a false positive
MIN_SIDE_PX = 3.0  # nor is one this small in the input


@dataclass(frozen=True, slots=True)
class TrainSet:
    images: npt.NDArray[np.uint8]  # (n, H, W, 3) RGB
    boxes: list[npt.NDArray[np.float32]]  # per image (k, 6): class, x0, y0, x1, y1, ignore


def _roi(sample: Sample, rng: np.random.Generator) -> tuple[int, int, int, int]:
    w, h = sample.view.width, sample.view.height
    polys = [np.array(z.polygon_px) for z in sample.zones if len(z.polygon_px) >= 3]
    pick = rng.random()
    if pick < 0.3 or not polys:
        return (0, 0, w, h)
    x0, y0, x1, y1 = zones_roi(polys, w, h, margin=float(rng.uniform(0.0, 0.2)))
    if pick < 0.85:
        return (x0, y0, x1, y1)
    # a zoomed part of the zone region: far queues seen larger
    cw, ch = (x1 - x0) * rng.uniform(0.45, 0.8), (y1 - y0) * rng.uniform(0.45, 0.8)
    cx0 = x0 + rng.uniform(0, (x1 - x0) - cw)
    cy0 = y0 + rng.uniform(0, (y1 - y0) - ch)
    return (int(cx0), int(cy0), int(cx0 + cw), int(cy0 + ch))


def cut(
    sample: Sample, rng: np.random.Generator
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]:
    """One training example: the letterboxed input and its boxes."""
    roi = _roi(sample, rng)
    place = (float(rng.random()), float(rng.random()))
    image, scale, px, py = letterbox(sample.frame, roi, place)
    rows = []
    cw, ch = (roi[2] - roi[0]) * scale, (roi[3] - roi[1]) * scale
    for lb in sample.labels:
        offsets = (roi[0], roi[1], roi[0], roi[1])
        x0, y0, x1, y1 = ((c - o) * scale for c, o in zip(lb.box, offsets, strict=True))
        area = max((x1 - x0) * (y1 - y0), 1e-6)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, cw), min(y1, ch)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        kept = (cx1 - cx0) * (cy1 - cy0) / area
        if kept < 0.25:
            continue
        ignore = (
            lb.visible_fraction < MIN_VISIBLE
            or kept < 0.6
            or min(cx1 - cx0, cy1 - cy0) < MIN_SIDE_PX
        )
        rows.append([lb.class_id, cx0 + px, cy0 + py, cx1 + px, cy1 + py, float(ignore)])
    return image, np.array(rows, np.float32).reshape(-1, 6)


def _run(args: tuple[str, int, int]) -> list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]]]:
    name, seed, n = args
    rng = np.random.default_rng(seed + 7)
    return [cut(s, rng) for s in generate(name, seed, n)]


def build(n_frames: int, seed: int = 1, per_run: int = 200, workers: int = 2) -> TrainSet:
    """n_frames examples from SUMO runs (seeds from `seed` up, all below HELD_OUT_SEED)."""
    runs: list[tuple[str, int, int]] = []
    k = 0
    while sum(r[2] for r in runs) < n_frames:
        take = min(per_run, n_frames - sum(r[2] for r in runs))
        runs.append((SCENARIOS[k % len(SCENARIOS)], seed + k, take))
        k += 1
    if seed + k >= HELD_OUT_SEED:
        raise ValueError("training seeds would reach the held-out seeds")
    ctx = multiprocessing.get_context("spawn")  # libsumo: one simulation per process
    examples = []
    with ctx.Pool(workers) as pool:
        for done, part in enumerate(pool.imap(_run, runs, chunksize=1), 1):
            examples += part
            print(f"rendered run {done}/{len(runs)}: {len(examples)} frames", flush=True)
    images = np.stack([e[0] for e in examples])
    return TrainSet(images, [e[1] for e in examples])
