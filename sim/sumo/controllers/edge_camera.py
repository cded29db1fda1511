"""The project's controller driven by simulated cameras: rendered frames -> model -> zones.

`edge-camera`: every SUMO step each approach's camera (sim.camera.source) is
rendered from SUMO's vehicles, the vehicle model runs on the zones' crop,
and the zones that stand for loops drive those detectors through the same
merge the device runtime uses (edge.vision.fusion): camera while healthy,
else the loop. `edge-camera-labels` uses the renderer's own labels as the
detections: the zone geometry and merge without model error (an upper bound
for the camera path). Frames come at the cameras' inference rate (5/s) when
SUMO steps 0.1 s, once a step at 1 s steps; the loops (SUMO lane-area
detectors) stay the fallback. Deterministic for a seed: the renderer's noise
comes from a generator seeded per camera.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from edge.config import config_from_dict
from edge.control.controller import Controller
from edge.control.messages import Inputs, Outputs, SetMode
from edge.vision.config import Vision
from edge.vision.fusion import Binding, bindings, fuse, green_phases, queue_bindings
from edge.vision.model import Detection, ModelError, VehicleModel
from edge.vision.pipeline import CameraProcessor, Frame

from sim.sumo.controllers.base import LinkRenderer
from sim.sumo.controllers.edge_control import EdgeControl, _Signal, detector_sumo_id
from sim.sumo.derive import Derivation
from sim.sumo.errors import SimError
from sim.sumo.scenarios import Scenario


class _Labels:
    """A stand-in model: the renderer's labels of the frame just drawn, as detections."""

    def __init__(self) -> None:
        self.dets: list[Detection] = []

    def detect(self, image: Frame, offset: tuple[float, float] = (0.0, 0.0)) -> list[Detection]:
        return self.dets


class _Cam:
    def __init__(self, proc: CameraProcessor, sim_cam: Any, seed: int, labels: _Labels | None):
        self.proc = proc
        self.sim_cam = sim_cam
        self.rng = np.random.default_rng(seed)
        self.labels = labels


class EdgeCameraControl(EdgeControl):
    def __init__(
        self, derivations: list[Derivation], *, labels: bool = False, mode: str | None = None
    ) -> None:
        name = "edge-camera-labels" if labels else "edge-camera"
        name += "-adaptive" if mode == "adaptive" and not labels else ""
        super().__init__(derivations, name=name, mode=mode)
        self.use_labels = labels
        self.cams: dict[str, list[_Cam]] = {}
        self.binds: dict[str, tuple[Binding, ...]] = {}
        self.queue_binds: dict[str, tuple[tuple[int, str], ...]] = {}
        self.queues: dict[str, tuple[tuple[int, float], ...]] = {}  # per signal, latest frame
        self.visions: dict[str, Vision] = {}
        self.lanes: set[str] = set()
        self.last: dict[str, Outputs | None] = {}
        self.camera_steps = 0
        self.fallback_steps = 0
        self.frames = 0
        self._next_frame_ms = 0

    def prepare(self, scenario: Scenario, workdir: Path) -> list[Path]:
        from sim.camera.source import sim_cameras, with_cameras

        extra = super().prepare(scenario, workdir)
        model: VehicleModel | None = None
        for k, d in enumerate(self.derivations):
            raw = with_cameras(d, scenario.net)
            vision = config_from_dict(raw, f"{d.tls} (derived)").vision
            assert vision is not None
            if not self.use_labels and model is None:
                try:
                    model = VehicleModel(vision.model, score_threshold=vision.score_threshold)
                except ModelError as exc:
                    raise SimError(f"edge-camera: {exc}") from None
            sims = sim_cameras(d, scenario.net)
            cams = []
            for j, cam in enumerate(vision.cameras):
                labels = _Labels() if self.use_labels else None
                proc = CameraProcessor(cam, vision, labels if labels is not None else model)
                cams.append(_Cam(proc, sims[cam.id], 1000 * k + j, labels))
                self.lanes |= {z.lane for z in sims[cam.id].approach.zones}
            self.cams[d.tls] = cams
            self.binds[d.tls] = bindings(d.site, vision)
            self.queue_binds[d.tls] = queue_bindings(d.site, vision)
            self.visions[d.tls] = vision
        return extra

    def start(self, sim: Any, t_ms: int) -> None:
        self.buttons.start(sim)
        self.loops.start(sim)
        for d in self.derivations:
            dets = [(det.id, detector_sumo_id(d.tls, det.id)) for det in d.detectors]
            self.signals.append(
                _Signal(
                    tls=d.tls,
                    site=d.site,
                    controller=Controller(d.site, now_ms=t_ms),
                    renderer=LinkRenderer(d.links, [ch.id for ch in d.site.channels]),
                    detectors=dets,
                    commands=(SetMode(self.mode, "sim"),) if self.mode else (),
                )
            )
            self.last[d.tls] = None

    def _sense(self, sim: Any, t_ms: int) -> None:
        from sim.camera.render import render
        from sim.camera.source import SIM_CONDITIONS, vehicles_from_sumo

        self.loops.update(sim, t_ms)
        self.buttons.update(sim)
        vehicles = vehicles_from_sumo(sim, self.lanes)
        t_s = t_ms / 1000
        for s in self.signals:
            loops = self.loops.during_step(s.tls)  # the fallback: any vehicle in the step
            presence: dict[str, bool | None] = {}
            queues: dict[str, float | None] = {}
            for cam in self.cams[s.tls]:
                view = cam.sim_cam.approach.view
                frame, labels = render(view, vehicles, SIM_CONDITIONS, cam.rng, cam.sim_cam.road)
                if cam.labels is not None:
                    cam.labels.dets = [
                        Detection(*lb.box, lb.kind, 1.0)
                        for lb in labels
                        if lb.visible_fraction > 0.2
                    ]
                st = cam.proc.process(t_s, frame, force=True)
                self.frames += 1
                zs = {z.id: z for z in st.zones} if st.reliable else {}
                for z in cam.proc.camera.zones:
                    got = zs.get(z.id)
                    presence[z.id] = got.presence if got is not None else None
                    q = got.queue_veh if got is not None else None
                    queues[z.id] = float(q) if q is not None else None
            merged, sources = fuse(
                Inputs(occupied=loops), self.binds[s.tls], presence,
                green_phases(s.site, self.last[s.tls]), self.queue_binds[s.tls], queues,
            )  # fmt: skip
            s.occupied = merged.occupied | self.buttons.pressed[s.tls]  # push buttons
            self.queues[s.tls] = merged.queues
            self.camera_steps += sum(1 for v in sources.values() if v == "camera")
            self.fallback_steps += sum(1 for v in sources.values() if v != "camera")

    def step(self, sim: Any, t_ms: int, sensed: bool) -> None:
        # Frames at the cameras' inference rate (with 0.1 s SUMO steps); between frames
        # the zones hold, as they do in the runtime.
        if sensed and t_ms >= self._next_frame_ms:
            period_ms = round(1000 / min(v.cameras[0].infer_fps for v in self.visions.values()))
            self._next_frame_ms = t_ms + period_ms
            self._sense(sim, t_ms)
        ev = self.emergency
        if sensed and ev is not None:
            ev.update(sim)
        for s in self.signals:
            cmds = (ev.take(s.tls) if ev is not None else ()) + s.commands
            s.commands = ()
            queues = self.queues.pop(s.tls, ())  # a frame's estimates, handed on once
            out = s.controller.step(t_ms, Inputs(occupied=s.occupied, commands=cmds, queues=queues))
            self.last[s.tls] = out
            s.channels = out.channels
            if out.fault is not None and not self.fault_events:
                self.fault_events.append(
                    f"{s.tls}: fault flash at {t_ms / 1000:.1f} s: {out.fault}"
                )

    def notes(self) -> list[str]:
        total = self.camera_steps + self.fallback_steps
        share = 100 * self.camera_steps / total if total else 0.0
        procs = [c.proc for cams in self.cams.values() for c in cams]
        infer = [p.infer_ms for p in procs if p.inferences]
        return [
            *super().notes(),
            f"cameras: {len(procs)}, {self.frames} frames; detector-steps on camera {share:.1f} %"
            + (f", last inference {np.mean(infer):.1f} ms" if infer else ""),
        ]
