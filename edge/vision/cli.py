"""`edge vision detect`: the runtime's detector on still images or video frames.

Rules it keeps:
- The same path as the runtime: the picture resized to the camera's size
  (a site's camera with --site/--camera, else 640 px wide, aspect kept),
  cropped to that camera's zones when a camera is named, then the model's
  own input (letterbox or stretch), decode, threshold and NMS
  (edge/vision/model.py). Boxes are printed in the image's own pixels.
- A picture that cannot be read is an error naming the file (and frame); the
  others are still done, and the exit status is 1.
- `--json` prints one JSON object keyed by the path as given (a video frame:
  PATH#FRAME), each a list of {"box": [x1, y1, x2, y2], "cls", "score"}.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edge.vision.config import DEFAULT_MODEL, Camera
from edge.vision.model import Detection, ModelError, VehicleModel
from edge.vision.pipeline import crop_box

VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".gif", ".webm", ".m4v", ".ts"}
WIDTH = 640


class InputError(Exception):
    pass


def pictures(path: str, frames: list[int]) -> Iterator[tuple[str, np.ndarray]]:
    """(key, BGR picture) for a still image, or for the asked frames of a video."""
    if not Path(path).is_file():
        raise InputError(f"{path}: no such file")
    if Path(path).suffix.lower() not in VIDEO_SUFFIXES:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            raise InputError(f"{path}: not a readable image (missing, or not JPEG/PNG/...)")
        yield path, img
        return
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise InputError(f"{path}: not a readable video")
    try:
        wanted, index = sorted(set(frames)), 0
        while wanted:
            ok, img = cap.read()
            if not ok:
                raise InputError(f"{path}#{wanted[0]}: the video has only {index} frames")
            if index == wanted[0]:
                wanted.pop(0)
                yield f"{path}#{index}", img
            index += 1
    finally:
        cap.release()


def detect_picture(model: VehicleModel, img: np.ndarray, camera: Camera | None) -> list[Detection]:
    """Vehicles in one picture, in its own pixels, by the runtime's path."""
    h, w = img.shape[:2]
    size = (camera.width, camera.height) if camera else (WIDTH, max(1, round(h * WIDTH / w)))
    frame = np.asarray(
        cv2.resize(img, size, interpolation=cv2.INTER_AREA) if (w, h) != size else img, np.uint8
    )
    x1, y1, x2, y2 = crop_box(camera) if camera and camera.zones else (0, 0, size[0], size[1])
    found = model.detect(frame[y1:y2, x1:x2], (float(x1), float(y1)))
    sx, sy = w / size[0], h / size[1]
    return [Detection(d.x1 * sx, d.y1 * sy, d.x2 * sx, d.y2 * sy, d.cls, d.score) for d in found]


def _camera(
    site: str | None, camera_id: str | None
) -> tuple[Camera | None, Path | None, float | None]:
    if site is None:
        if camera_id is not None:
            raise InputError("--camera needs --site (the site file that defines the camera)")
        return None, None, None
    from edge.config import ConfigError, load_config

    try:
        vision = load_config(site).vision
    except ConfigError as exc:
        raise InputError(f"{site}: " + "; ".join(exc.problems)) from None
    if vision is None or not vision.cameras:
        raise InputError(f"{site}: no cameras in the site file")
    cams = {c.id: c for c in vision.cameras}
    if camera_id is None:
        if len(cams) > 1:
            raise InputError(f"{site}: several cameras ({', '.join(cams)}): name one, --camera")
        camera_id = next(iter(cams))
    if camera_id not in cams:
        raise InputError(f"{site}: no camera {camera_id!r} (cameras: {', '.join(cams)})")
    return cams[camera_id], vision.model, vision.score_threshold


def cmd_detect(args: argparse.Namespace) -> int:
    try:
        camera, site_model, site_threshold = _camera(args.site, args.camera)
        frames = [int(f) for f in args.frames.split(",")] if args.frames else [0]
    except (InputError, ValueError) as exc:
        print(f"edge vision detect: {exc}", file=sys.stderr)
        return 2
    path = Path(args.model) if args.model else site_model or DEFAULT_MODEL
    try:
        threshold = args.threshold or site_threshold
        model = VehicleModel(path, score_threshold=threshold)
    except ModelError as exc:
        print(f"edge vision detect: {exc}", file=sys.stderr)
        return 2
    results: dict[str, list[dict[str, object]]] = {}
    failed = False
    for given in args.images:
        try:
            for key, img in pictures(given, frames):
                dets = detect_picture(model, img, camera)
                results[key] = [
                    {
                        "box": [round(v, 1) for v in (d.x1, d.y1, d.x2, d.y2)],
                        "cls": d.cls,
                        "score": round(d.score, 3),
                    }
                    for d in dets
                ]
                if not args.json:
                    _print_table(key, img.shape, dets)
        except InputError as exc:
            failed = True
            print(f"edge vision detect: {exc}", file=sys.stderr)
    if args.json:
        print(json.dumps(results))
    return 1 if failed else 0


def _print_table(key: str, shape: tuple[int, ...], dets: list[Detection]) -> None:
    print(f"{key} ({shape[1]}x{shape[0]}): {len(dets)} vehicle(s)")
    for d in sorted(dets, key=lambda d: (d.y2, d.x1)):
        box = f"{d.x1:7.1f} {d.y1:7.1f} {d.x2:7.1f} {d.y2:7.1f}"
        print(f"  {d.cls:<11} {d.score:5.2f}  [{box}]")


def add_vision_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("vision", help="check the vehicle detector on your own camera's stills")
    vsub = p.add_subparsers(dest="vision_command", required=True)
    d = vsub.add_parser(
        "detect",
        help="vehicle boxes in images or video frames, by the runtime's own path",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d.add_argument("images", nargs="+", help="image files, or video files (see --frames)")
    d.add_argument("--model", help="ONNX model (default: the site's, else the shipped one)")
    d.add_argument("--site", help="site TOML: size and crop as its camera's (see --camera)")
    d.add_argument("--camera", help="camera id in --site (needed when it has several)")
    d.add_argument("--frames", help="video frames to run, by number from 0 (e.g. 0,50,100)")
    d.add_argument(
        "--threshold", type=float, help="score threshold (default: the site's, else the model's)"
    )
    d.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    d.set_defaults(func=cmd_detect)
