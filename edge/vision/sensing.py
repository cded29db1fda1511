"""The runtime's cameras: workers, the detector merge for the controller, the SensingView.

The `vision` extension (`Cameras`, built by edge/assemble.py when the site has cameras)
loads the model, opens every camera, starts a worker thread per camera, puts
`sense` in the board driver's input path and adds the `vision` task. Nothing
here can stop the intersection: a model that cannot load or a camera that
cannot open is a logged error (`vision_model_error`, `camera_open_failed`),
and its zones are unreliable, so their detectors run on loops or recalls.

A technician's edit of one camera's zones and lines (`apply_layout`, from the page,
once the site file is saved) takes effect without a restart: the detector bindings
are rebuilt from the new layout on the event loop (where the control tick reads
them, so a tick sees the old set or the new, never a mix) and the camera's worker
takes the new geometry between two frames.

Greppable events: vision_start, vision_model_error, vision_camera_health
(camera=... health=... detail=...), vision_detector_source (detector=...
source=camera|loop|recall camera=... health=...), vision_stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from edge.control.messages import Inputs, Outputs
from edge.control.site import Site
from edge.extensions import Extension
from edge.vision import health as hl
from edge.vision.capture import open_source
from edge.vision.config import Camera, Vision
from edge.vision.fusion import Binding, bindings, fuse, green_phases, queue_bindings
from edge.vision.model import ModelError, VehicleModel
from edge.vision.pipeline import CameraProcessor, CameraState, CameraWorker

if TYPE_CHECKING:
    from edge.runtime import Runtime

log = logging.getLogger(__name__)

STALE_S = 2.0  # a worker's state older than this is not trusted
WATCH_EVERY_S = 0.5
JPEG_QUALITY = 80
SWITCH_INTERVAL_S = 0.001


def load_model(vision: Vision) -> tuple[VehicleModel | None, str]:
    try:
        model = VehicleModel(
            vision.model,
            score_threshold=vision.score_threshold,
            iou_threshold=vision.iou_threshold,
            threads=vision.threads,
        )
    except ModelError as exc:
        return None, str(exc)
    return model, ""


def read_reference(path: Path | None) -> tuple[Any, str]:
    if path is None:
        return None, ""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        return None, f"cannot read the reference image {path}"
    return img, ""


class Sensing:
    """Every camera of one site; implements edge.runtime.SensingView."""

    def __init__(self, site: Site, vision: Vision, model: VehicleModel | None = None) -> None:
        self.site = site
        self.vision = vision
        self.model_error = ""
        if model is None:
            model, self.model_error = load_model(vision)
            if model is None:
                log.error(
                    "vision_model_error %s: every camera zone is unreliable; detectors run on "
                    "loops or recalls",
                    self.model_error,
                )
        self.model = model
        self.binds: tuple[Binding, ...] = bindings(site, vision)
        self.queue_binds = queue_bindings(site, vision)
        self.workers: dict[str, CameraWorker] = {}
        self.errors: dict[str, str] = {}
        for cam in vision.cameras:
            ref, err = read_reference(cam.reference)
            if err:
                log.error(
                    "vision_reference_error camera=%s: %s; the first good view is used", cam.id, err
                )
            proc = CameraProcessor(cam, vision, model, ref)
            try:
                source = open_source(cam)
            except ValueError as exc:
                self.errors[cam.id] = str(exc)
                log.error("camera_open_failed camera=%s: %s", cam.id, exc)
                continue
            self.workers[cam.id] = CameraWorker(proc, source)
        self.sources: dict[int, str] = {}
        self._health: dict[str, str] = {}

    def start(self) -> None:
        # The camera threads run Python between their OpenCV/onnxruntime calls; a thread
        # keeps the GIL up to the switch interval once it has it (5 ms by default), and
        # the control tick waits behind each. 1 ms bounds that wait (measured: 3 busy
        # threads delay a 10 ms sleeper by p99 446 ms at 5 ms, 11 ms at 1 ms).
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        log.info(
            "vision_start cameras=%d model=%s detectors=%d",
            len(self.vision.cameras),
            self.model.path if self.model is not None else "none",
            len(self.binds),
        )
        for w in self.workers.values():
            w.start()

    def stop(self) -> None:
        for w in self.workers.values():
            w.stop()
        log.info("vision_stop")

    # -- state ----------------------------------------------------------------------------

    def state(self, camera_id: str) -> CameraState:
        w = self.workers.get(camera_id)
        if w is None:
            return CameraState(camera_id, 0.0, hl.DISCONNECTED, self.errors.get(camera_id, ""))
        st = w.state
        now = time.monotonic()
        if st.health == hl.OK and now - st.t_s > STALE_S:
            return CameraState(camera_id, st.t_s, hl.DISCONNECTED, "camera worker stalled")
        return st

    def zone_readings(self) -> tuple[dict[str, bool | None], dict[str, float | None]]:
        """Each zone's presence, and each queue zone's waiting vehicles; None where the
        camera is unreliable (or a queue has no estimate). One look at each camera."""
        presence: dict[str, bool | None] = {}
        queues: dict[str, float | None] = {}
        for cam in self.vision.cameras:
            st = self.state(cam.id)
            by_id = {z.id: z for z in st.zones} if st.reliable else {}
            for z in cam.zones:
                zs = by_id.get(z.id)
                presence[z.id] = zs.presence if zs is not None else None
                if z.kind == "queue":
                    q = zs.queue_veh if zs is not None else None
                    queues[z.id] = float(q) if q is not None else None
        return presence, queues

    def apply_layout(self, camera: Camera) -> None:
        """Run camera `camera.id` with its new zones and lines (same url and size).

        On the event loop, as the control tick: the bindings change between two ticks."""
        vision = replace(
            self.vision,
            cameras=tuple(camera if c.id == camera.id else c for c in self.vision.cameras),
        )
        self.binds = bindings(self.site, vision)
        self.queue_binds = queue_bindings(self.site, vision)
        self.vision = vision
        worker = self.workers.get(camera.id)
        if worker is not None:
            worker.processor.set_camera(camera)
        log.info(
            "vision_layout camera=%s zones=%d lines=%d detectors=%d",
            camera.id, len(camera.zones), len(camera.lines), len(self.binds),
        )  # fmt: skip

    # -- the controller's input path -----------------------------------------------------

    def sense(self, inputs: Inputs, last: Outputs | None) -> Inputs:
        """BoardDriver's hook: the board's Inputs with camera-driven detectors merged in.

        Never raises: on an error of its own the loops' Inputs go through unchanged."""
        try:
            presence, queues = self.zone_readings()
            merged, sources = fuse(
                inputs, self.binds, presence, green_phases(self.site, last),
                self.queue_binds, queues,
            )  # fmt: skip
        except Exception as exc:
            log.exception("vision_sense_error error=%r: loops only this tick", exc)
            return inputs
        if sources != self.sources:
            cams = {b.detector: b.camera for b in self.binds}
            for det, src in sorted(sources.items()):
                if self.sources.get(det) != src:
                    st = self.state(cams[det])
                    level = logging.INFO if src == "camera" else logging.WARNING
                    log.log(
                        level,
                        "vision_detector_source detector=%d source=%s camera=%s health=%s",
                        det, src, cams[det], st.health,
                    )  # fmt: skip
            self.sources = sources
        return merged

    # -- SensingView ---------------------------------------------------------------------

    def cameras(self) -> list[dict[str, Any]]:
        out = []
        for cam in self.vision.cameras:
            st = self.state(cam.id)
            zs = {z.id: z for z in st.zones}
            zones = []
            for z in cam.zones:
                m = zs.get(z.id)
                zones.append(
                    {
                        "id": z.id,
                        "polygon": [[x, y] for x, y in z.polygon],
                        "kind": z.kind,
                        "detector": z.detector,
                        "source": self.sources.get(z.detector) if z.detector else None,
                        "presence": m.presence if m else None,
                        "count": m.count if m else None,
                        "queue_veh": m.queue_veh if m else None,
                        "queue_m": m.queue_m if m else None,
                        "reliable": st.reliable,
                    }
                )
            counts = dict(st.line_counts)
            out.append(
                {
                    "id": cam.id,
                    "url": cam.url,
                    "health": st.health,
                    "detail": st.detail or self.errors.get(cam.id, "") or self.model_error,
                    "reliable": st.reliable,
                    "fps": st.fps,
                    "infer_fps": st.infer_fps,
                    "infer_ms": round(st.infer_ms, 1),
                    "width": cam.width,
                    "height": cam.height,
                    "zones": zones,
                    "lines": [
                        {
                            "id": ln.id,
                            "points": [list(p) for p in ln.points],
                            "count": counts.get(ln.id, 0),
                        }
                        for ln in cam.lines
                    ],
                    "detections": [
                        {"box": [d.x1, d.y1, d.x2, d.y2], "cls": d.cls, "score": round(d.score, 2)}
                        for d in st.detections
                    ],
                }
            )
        return out

    def camera_jpeg(self, camera_id: str) -> bytes | None:
        st = self.state(camera_id)
        if st.frame is None:
            return None
        ok, buf = cv2.imencode(".jpg", st.frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        return bytes(buf) if ok else None

    def status(self) -> dict[str, Any]:
        """For the runtime's status snapshot: health per camera, source per detector."""
        return {
            "cameras": {c.id: self.state(c.id).health for c in self.vision.cameras},
            "fps": {c.id: self.state(c.id).fps for c in self.vision.cameras},
            "infer_fps": {c.id: self.state(c.id).infer_fps for c in self.vision.cameras},
            "detectors": {str(d): s for d, s in sorted(self.sources.items())},
            "model": "" if self.model is None else str(self.model.path),
            "model_error": self.model_error,
        }

    # -- the runtime task ----------------------------------------------------------------

    async def watch(self, stopped: asyncio.Event) -> None:
        """Task `vision`: logs health changes; stops the workers at shutdown."""
        self.start()
        try:
            while not stopped.is_set():
                for cam in self.vision.cameras:
                    st = self.state(cam.id)
                    if self._health.get(cam.id) != st.health:
                        self._health[cam.id] = st.health
                        level = logging.INFO if st.health == hl.OK else logging.WARNING
                        log.log(
                            level, "vision_camera_health camera=%s health=%s detail=%s",
                            cam.id, st.health, st.detail or "-",
                        )  # fmt: skip
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopped.wait(), WATCH_EVERY_S)
        finally:
            for w in self.workers.values():
                w.request_stop()
            await asyncio.to_thread(self.stop)


class Cameras(Extension):
    """The `vision` extension: the site's cameras merged into the board driver's inputs
    (its `sense`), their health in the runtime's status. Its task's camera threads
    cannot start twice: a failure of it is the runtime's own (no restart)."""

    name = "vision"
    restarts = False

    def __init__(self, vision: Vision) -> None:
        self.vision = vision
        self.sensing: Sensing | None = None
        self.rt: Runtime | None = None

    def start(self, rt: Runtime) -> None:
        self.rt = rt
        self.sensing = Sensing(rt.site, self.vision)
        rt.sensing = self.sensing
        rt.driver.sense = self.sensing.sense

    async def run(self) -> None:
        assert self.rt is not None and self.sensing is not None, "Cameras.start comes first"
        await self.sensing.watch(self.rt.stopping)

    def status_fields(self) -> dict[str, Any]:
        return {"vision": self.sensing.status()} if self.sensing is not None else {}
