"""Train the vehicle detector from simulator renders and ship it: `make model-sim` or
`python -m models.train`. Renders the data set (seeded), trains on the CPU, exports
models/vehicles.onnx with the contract of models/MODEL_CARD.md, checks onnxruntime
against torch, and writes models/EVALUATION.md from the held-out set.

Needs the train extra (torch 2.13.0 CPU, onnx); the runtime needs neither."""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import torch
from sim.camera.dataset import HELD_OUT_SEED
from sim.camera.render import KINDS

from models import evaluate as ev
from models.data import TrainSet, build
from models.letterbox import INPUT_H, INPUT_W
from models.net import NUM_CLASSES, STRIDE, Detector, Exported

MODEL_VERSION = "1.0.0"
CONTRACT = "yolov8-detect-v1"
CROP_H, CROP_W = 96, 160  # training windows: the net is convolutional, 4x cheaper a step


def targets(
    batch: list[npt.NDArray[np.float32]], gh: int, gw: int, max_boxes: int = 64
) -> tuple[torch.Tensor, ...]:
    """Heat maps (Gaussian per box at its centre cell), "don't care" masks, and per box
    its cell index, offset and log size targets, on a gh x gw grid."""
    GH, GW = gh, gw
    n = len(batch)
    heat = np.zeros((n, NUM_CLASSES, GH, GW), np.float32)
    ignore = np.zeros((n, 1, GH, GW), np.float32)
    index = np.zeros((n, max_boxes), np.int64)
    reg = np.zeros((n, max_boxes, 4), np.float32)
    mask = np.zeros((n, max_boxes), np.float32)
    ys, xs = np.mgrid[0:GH, 0:GW]
    for b, boxes in enumerate(batch):
        k = 0
        for cls, x0, y0, x1, y1, dont in boxes:
            gx0, gy0, gx1, gy1 = x0 / STRIDE, y0 / STRIDE, x1 / STRIDE, y1 / STRIDE
            if dont:
                ya, yb = max(int(gy0), 0), min(math.ceil(gy1), GH)
                xa, xb = max(int(gx0), 0), min(math.ceil(gx1), GW)
                ignore[b, 0, ya:yb, xa:xb] = 1.0
                continue
            cx, cy = (gx0 + gx1) / 2, (gy0 + gy1) / 2
            ix, iy = min(int(cx), GW - 1), min(int(cy), GH - 1)
            sx, sy = max(0.15 * (gx1 - gx0), 0.5), max(0.15 * (gy1 - gy0), 0.5)
            g = np.exp(-((xs - ix) ** 2) / (2 * sx * sx) - ((ys - iy) ** 2) / (2 * sy * sy))
            np.maximum(heat[b, int(cls)], g, out=heat[b, int(cls)])
            heat[b, int(cls), iy, ix] = 1.0
            if k < max_boxes:
                index[b, k] = iy * GW + ix
                reg[b, k] = (
                    cx - ix,
                    cy - iy,
                    math.log(max(gx1 - gx0, 0.1)),
                    math.log(max(gy1 - gy0, 0.1)),
                )
                mask[b, k] = 1.0
                k += 1
    return tuple(torch.from_numpy(a) for a in (heat, ignore, index, reg, mask))


def loss_fn(
    heat_logit: torch.Tensor, reg_out: torch.Tensor, t: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, dict[str, float]]:
    heat, ignore, index, reg, mask = t
    p = torch.sigmoid(heat_logit).clamp(1e-4, 1 - 1e-4)
    pos = (heat == 1).float()
    pos_loss = -(torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_w = (1 - heat) ** 4 * (1 - pos) * (1 - ignore)
    neg_loss = -(torch.log(1 - p) * p**2 * neg_w).sum()
    npos = pos.sum().clamp(min=1.0)
    l_heat = (pos_loss + neg_loss) / npos
    flat = reg_out.flatten(2)  # (n, 4, cells)
    picked = flat.gather(2, index[:, None, :].expand(-1, 4, -1)).permute(0, 2, 1)  # (n, k, 4)
    m = mask[..., None]
    nbox = mask.sum().clamp(min=1.0)
    l_off = (torch.abs(torch.sigmoid(picked[..., :2]) - reg[..., :2]) * m).sum() / nbox
    l_size = (torch.abs(picked[..., 2:] - reg[..., 2:]) * m).sum() / nbox
    total = l_heat + l_off + 0.5 * l_size
    parts = {"heat": l_heat.item(), "off": l_off.item(), "size": l_size.item()}
    return total, parts


def crop_boxes(b: npt.NDArray[np.float32], ox: int, oy: int) -> npt.NDArray[np.float32]:
    """Boxes seen through a CROP_W x CROP_H window at (ox, oy): a box whose centre is
    outside, or that the window cuts by more than 40 %, becomes "don't care"; the others
    keep their whole extent (the size to learn)."""
    out = b.copy()
    out[:, [1, 3]] -= ox
    out[:, [2, 4]] -= oy
    area = (out[:, 3] - out[:, 1]) * (out[:, 4] - out[:, 2])
    cx, cy = (out[:, 1] + out[:, 3]) / 2, (out[:, 2] + out[:, 4]) / 2
    cut_w = out[:, 3].clip(0, CROP_W) - out[:, 1].clip(0, CROP_W)
    cut_h = out[:, 4].clip(0, CROP_H) - out[:, 2].clip(0, CROP_H)
    kept = cut_w * cut_h / np.maximum(area, 1e-6)
    inside = (cx >= 0) & (cx < CROP_W) & (cy >= 0) & (cy < CROP_H)
    out[:, 5] = np.maximum(out[:, 5], ((~inside) | (kept < 0.6)).astype(np.float32))
    result: npt.NDArray[np.float32] = out[kept > 0]
    return result


def batches(data: TrainSet, batch: int, rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """Random windows of random examples, half of them mirrored."""
    n = len(data.images)
    while True:
        order = rng.permutation(n)
        for i in range(0, n - batch + 1, batch):
            idx = order[i : i + batch]
            imgs = np.empty((len(idx), CROP_H, CROP_W, 3), np.uint8)
            boxes = []
            for k, j in enumerate(idx):
                ox = int(rng.integers(0, (INPUT_W - CROP_W) // STRIDE + 1)) * STRIDE
                oy = int(rng.integers(0, (INPUT_H - CROP_H) // STRIDE + 1)) * STRIDE
                img = data.images[j, oy : oy + CROP_H, ox : ox + CROP_W]
                b = crop_boxes(data.boxes[j], ox, oy)
                if rng.random() < 0.5:
                    img = img[:, ::-1]
                    b[:, 1], b[:, 3] = CROP_W - b[:, 3], CROP_W - b[:, 1].copy()
                imgs[k] = img
                boxes.append(b)
            x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div_(255.0)
            yield x, boxes


def export(net: Detector, path: Path) -> None:
    net.eval()
    model = Exported(net).eval()
    dummy = torch.zeros(1, 3, INPUT_H, INPUT_W)
    tmp = path.with_suffix(".tmp.onnx")
    torch.onnx.export(
        model,
        (dummy,),
        str(tmp),
        input_names=["images"],
        output_names=["output0"],
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(str(tmp))
    names = "{" + ", ".join(f"{i}: '{k}'" for i, k in enumerate(KINDS)) + "}"
    meta = {
        "names": names,
        "edge_model_version": MODEL_VERSION,
        "edge_contract": CONTRACT,
        "imgsz": f"[{INPUT_H}, {INPUT_W}]",
        "description": "edge vehicle detector trained on sim.camera renders (see MODEL_CARD.md)",
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "edge models.train"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    tmp.unlink(missing_ok=True)


def check_export(net: Detector, path: Path, images: npt.NDArray[np.uint8]) -> float:
    """Largest difference between torch and onnxruntime on a few training inputs: box
    rows, and scores where both keep a peak (a near-tie in the 3x3 max-pool may keep a
    different cell of the two)."""
    sess = ev.session(path)
    worst = 0.0
    with torch.no_grad():
        model = Exported(net).eval()
        for img in images[:4]:
            x = torch.from_numpy(img[None]).permute(0, 3, 1, 2).float() / 255.0
            a = model(x).numpy()[0]
            b = sess.run(None, {"images": x.numpy()})[0][0]
            both = (a[4:] > 0) & (b[4:] > 0)
            worst = max(worst, float(np.abs(a[:4] - b[:4]).max() / INPUT_W))
            worst = max(worst, float(np.abs(a[4:][both] - b[4:][both]).max(initial=0.0)))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=2400, help="training frames to render")
    ap.add_argument("--steps", type=int, default=2400, help="optimiser steps")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=1)
    # one thread: on shared cores a second OpenMP thread spends its time waiting
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="processes rendering the set")
    ap.add_argument("--eval-frames", type=int, default=400)
    ap.add_argument("--out", default="models/vehicles.onnx")
    ap.add_argument("--report", default="models/EVALUATION.md")
    ap.add_argument("--cache", default="", help="keep the rendered set in this .npz")
    ap.add_argument("--minutes", type=float, default=0.0, help="wall budget: stop early")
    ap.add_argument("--data-only", action="store_true", help="render (and cache) the set, stop")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    t0 = time.perf_counter()
    if a.cache and Path(a.cache).is_file():
        z = np.load(a.cache, allow_pickle=False)
        data = TrainSet(z["images"], [z[f"b{i}"] for i in range(len(z["images"]))])
    else:
        data = build(a.frames, a.seed, workers=a.workers)
        if a.cache:
            np.savez(a.cache, images=data.images, **{f"b{i}": b for i, b in enumerate(data.boxes)})
    t_data = time.perf_counter() - t0
    nboxes = sum(int((b[:, 5] == 0).sum()) for b in data.boxes)
    per_class = np.bincount(
        np.concatenate([b[b[:, 5] == 0, 0].astype(int) for b in data.boxes]), minlength=NUM_CLASSES
    )
    print(
        json.dumps(
            {
                "event": "data",
                "frames": len(data.images),
                "boxes": nboxes,
                "per_class": per_class.tolist(),
                "seconds": round(t_data, 1),
            }
        ),
        flush=True,
    )
    if a.data_only:
        return

    net = Detector()
    opt = torch.optim.AdamW(net.parameters(), lr=a.lr, weight_decay=1e-4)
    net.train()
    t1 = time.perf_counter()
    it = batches(data, a.batch, rng)
    running: dict[str, float] = {}
    budget_s = a.minutes * 60.0 if a.minutes else math.inf
    step = 0
    lr = a.lr
    while True:
        # progress: steps done or the wall-clock budget spent, whichever is further;
        # a short warm-up, then a cosine decay to zero
        frac = max(step / a.steps, (time.perf_counter() - t1) / budget_s)
        if frac >= 1.0:
            break
        step += 1
        lr = a.lr * min(1.0, frac / 0.05 + 0.02) * 0.5 * (1.0 + math.cos(math.pi * frac))
        for group in opt.param_groups:
            group["lr"] = lr
        x, boxes = next(it)
        heat, reg = net(x)
        loss, parts = loss_fn(heat, reg, targets(boxes, CROP_H // STRIDE, CROP_W // STRIDE))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        for k, v in parts.items():
            running[k] = 0.95 * running.get(k, v) + 0.05 * v
        if step % 50 == 0 or step == 1:
            print(
                json.dumps(
                    {
                        "event": "step",
                        "step": step,
                        **{k: round(v, 4) for k, v in running.items()},
                        "lr": round(lr, 5),
                        "s_per_step": round((time.perf_counter() - t1) / step, 3),
                    }
                ),
                flush=True,
            )
    t_train = time.perf_counter() - t1

    out = Path(a.out)
    export(net, out)
    diff = check_export(net, out, data.images)
    size_kb = os.path.getsize(out) / 1024
    print(
        json.dumps(
            {"event": "export", "path": str(out), "kb": round(size_kb, 1), "max_diff": diff}
        ),
        flush=True,
    )
    if diff > 1e-3:
        raise SystemExit(f"onnxruntime and torch disagree by {diff}")
    results = ev.evaluate(out, a.eval_frames, HELD_OUT_SEED)
    text = ev.report(results, out, a.eval_frames, HELD_OUT_SEED)
    params = sum(p.numel() for p in net.parameters())
    text += (
        "\n## Training\n\n"
        f"`python -m models.train --frames {a.frames} --steps {a.steps} --batch {a.batch} "
        f"--lr {a.lr} --seed {a.seed} --threads {a.threads}"
        + (f" --minutes {a.minutes:g}" if a.minutes else "")
        + "`"
        + (f" (the wall budget ended it at step {step} of {a.steps})" if step < a.steps else "")
        + ".\n"
        f"{len(data.images)} rendered frames ({nboxes} boxes: "
        + ", ".join(f"{k} {n}" for k, n in zip(KINDS, per_class.tolist(), strict=True))
        + f"), SUMO seeds {a.seed}..{a.seed + math.ceil(a.frames / 200) - 1}; rendering took "
        f"{t_data / 60:.1f} min, training {t_train / 60:.1f} min ({step} steps of {a.batch} "
        f"windows of {CROP_W} x {CROP_H}) "
        f"on {a.threads} threads. {params} parameters; the ONNX file is {size_kb:.0f} KB; "
        f"onnxruntime matches torch within {diff:.1e}.\n"
        f"Final losses (running mean): "
        + ", ".join(f"{k} {v:.3f}" for k, v in running.items())
        + ".\n"
    )
    Path(a.report).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
