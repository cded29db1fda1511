"""The simulator's cameras for the runtime: `sim://<camera>` frames drawn from live SUMO traffic.

- `with_cameras(d, net)`: a derived site's dict with its cameras and the
  simulator's model (`[vision] model`: the one trained on these renders).
- `camera_sections(d, net)`: the `[[cameras]]` a derived site gets (`edge sim
  init`, `edge run --sim`, lockstep `edge-camera`): one camera per approach
  (sim.camera.views places it), per lane a queue zone (stop bar back 60 m,
  four corners, stop-bar edge first) and a count line before the stop bar,
  and per loop of the derivation a presence zone driving that detector
  (loops stay the fallback).
- `World`: the vehicles SUMO has now, as the renderer's Vehicles; the
  simulation task updates it after each step.
- `SimSource`: a FrameSource rendering one camera from the World at the
  camera's fps, on its own thread (edge/vision/reader.py's FrameReader, as a
  real camera's: newest frame only, a render error logged and retried; the
  renderer is numpy/OpenCV: it mostly runs without the GIL).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from edge.vision.capture import register_scheme
from edge.vision.config import SIM_MODEL, Camera
from edge.vision.reader import FrameReader

from sim.camera.render import CameraView, Conditions, Road, Vehicle, project, render
from sim.camera.views import ApproachCamera, approach_cameras, road_scene
from sim.sumo.derive import Derivation

WIDTH, HEIGHT = 640, 360  # the standard cameras of sim.camera.views (the held-out set)
QUEUE_ZONE_M = 60.0
# A loop sees a vehicle over any part of it; a zone sees its front bumper (the bottom of
# its box, for a camera facing the traffic): the zone reaches this much nearer the stop bar.
VEHICLE_REACH_M = 5.0  # SUMO passenger car length
SIM_CONDITIONS = Conditions(light="day", noise_sigma=2.0)
_KIND = {
    "passenger": "car", "private": "car", "taxi": "car", "evehicle": "car",
    "truck": "truck", "trailer": "truck", "delivery": "truck",
    "bus": "bus", "coach": "bus", "motorcycle": "motorcycle", "moped": "motorcycle",
    "emergency": "emergency",
}  # fmt: skip


def _lane_geometry(net: Any, lane_id: str) -> tuple[np.ndarray, np.ndarray, float, float]:
    lane = net.getLane(lane_id)
    shape = np.array([p[:2] for p in lane.getShape()], np.float64)
    end = shape[-1]
    travel = shape[-1] - shape[-2]
    travel /= max(float(np.linalg.norm(travel)), 1e-9)
    return end, travel, float(lane.getWidth()), float(lane.getLength())


def _quad(
    view: CameraView, net: Any, lane_id: str, near_m: float, far_m: float
) -> list[list[float]] | None:
    """The lane between near_m and far_m before its stop bar, in pixels: stop-bar edge first."""
    end, travel, width, _ = _lane_geometry(net, lane_id)
    right = np.array([travel[1], -travel[0]]) * width / 2
    near, far = end - travel * near_m, end - travel * far_m
    corners = [near - right, near + right, far + right, far - right]
    px = project(view, [[c[0], c[1], 0.0] for c in corners])
    if np.isnan(px).any():
        return None
    w, h = view.width, view.height
    return [[round(float(np.clip(x, 0, w)), 1), round(float(np.clip(y, 0, h)), 1)] for x, y in px]


def _line(view: CameraView, net: Any, lane_id: str, at_m: float) -> list[list[float]] | None:
    end, travel, width, _ = _lane_geometry(net, lane_id)
    right = np.array([travel[1], -travel[0]]) * width / 2
    p = end - travel * at_m
    px = project(view, [[*(p - right), 0.0], [*(p + right), 0.0]])
    if np.isnan(px).any():
        return None
    return [
        [round(float(np.clip(x, 0, view.width)), 1), round(float(np.clip(y, 0, view.height)), 1)]
        for x, y in px
    ]


def cameras_for(d: Derivation, net_path: str | Path) -> list[ApproachCamera]:
    return approach_cameras(net_path, d.tls, width=WIDTH, height=HEIGHT, zone_m=QUEUE_ZONE_M)


def with_cameras(d: Derivation, net_path: str | Path) -> dict[str, Any]:
    """The derived site's dict with its camera sections, run by the simulator's model."""
    vision = {**d.site_dict.get("vision", {}), "model": str(SIM_MODEL)}
    return {**d.site_dict, "vision": vision, "cameras": camera_sections(d, net_path)}


def camera_sections(d: Derivation, net_path: str | Path) -> list[dict[str, Any]]:
    """The `cameras` list of a derived site (TOML-ready dicts)."""
    from sim.sumo.network import read_net

    net = read_net(net_path)
    out = []
    for cam in cameras_for(d, net_path):
        zones: list[dict[str, Any]] = []
        lines: list[dict[str, Any]] = []
        lane_ids = [z.lane for z in cam.zones]
        for k, lane_id in enumerate(lane_ids):
            q = _quad(cam.view, net, lane_id, 0.0, QUEUE_ZONE_M)
            if q is not None:
                zones.append(
                    {"id": f"{cam.approach}{k}-queue", "approach": cam.approach, "lane": k,
                     "polygon": q, "kind": "queue", "length_m": QUEUE_ZONE_M}
                )  # fmt: skip
            ln = _line(cam.view, net, lane_id, 2.0)
            if ln is not None:
                lines.append(
                    {"id": f"{cam.approach}{k}-line", "approach": cam.approach, "lane": k,
                     "points": ln}
                )  # fmt: skip
            for det in d.detectors:
                if det.lane != lane_id:
                    continue
                _, _, _, length = _lane_geometry(net, lane_id)
                near = length - det.pos_m - det.length_m - VEHICLE_REACH_M  # < 0: past the line
                far = length - det.pos_m
                z = _quad(cam.view, net, lane_id, near, far)
                if z is not None:
                    zones.append(
                        {"id": f"{cam.approach}{k}-{det.kind}", "approach": cam.approach,
                         "lane": k, "polygon": z, "detector": det.id}
                    )  # fmt: skip
        out.append(
            {"id": cam.approach, "url": f"sim://{cam.approach}", "width": WIDTH,
             "height": HEIGHT, "fps": 10.0, "infer_fps": 5.0, "zones": zones, "lines": lines}
        )  # fmt: skip
    return out


# --- vehicles from SUMO -----------------------------------------------------------------


def _colour(vid: str) -> tuple[int, int, int]:
    h = zlib.crc32(vid.encode())
    return (h & 0xFF, (h >> 8) & 0xFF, (h >> 16) & 0xFF)


def vehicles_from_sumo(sim: Any, lanes: set[str] | None = None) -> list[Vehicle]:
    """SUMO's vehicles (on `lanes` when given) as the renderer's Vehicles, centred."""
    out = []
    for vid in sim.vehicle.getIDList():
        lane = sim.vehicle.getLaneID(vid)
        if lanes is not None and lane not in lanes:
            continue
        x, y = sim.vehicle.getPosition(vid)
        angle = sim.vehicle.getAngle(vid)
        length = sim.vehicle.getLength(vid)
        kind = _KIND.get(sim.vehicle.getVehicleClass(vid), "car")
        a = np.radians(angle)
        out.append(
            Vehicle(
                id=vid,
                x=x - np.sin(a) * length / 2,
                y=y - np.cos(a) * length / 2,
                angle_deg=angle,
                length_m=length,
                width_m=sim.vehicle.getWidth(vid),
                height_m=sim.vehicle.getHeight(vid),
                kind=kind,
                colour=_colour(vid),
                lane=lane,
                lane_pos_m=sim.vehicle.getLanePosition(vid),
            )
        )
    return out


class World:
    """The newest vehicle list, shared between the SUMO task and the camera threads."""

    def __init__(self) -> None:
        self.vehicles: list[Vehicle] = []
        self.t_s = 0.0

    def update(self, sim: Any, t_s: float, lanes: set[str] | None = None) -> None:
        self.vehicles = vehicles_from_sumo(sim, lanes)  # one reference swap: no lock needed
        self.t_s = t_s


@dataclass(slots=True)
class SimCamera:
    approach: ApproachCamera
    road: Road


class SimSource(FrameReader):
    """A `sim://` camera: renders its approach from the World at the camera's fps."""

    def __init__(self, camera: Camera, sim_cam: SimCamera, world: World, seed: int = 0) -> None:
        super().__init__(camera.id, camera.url, f"sim-camera-{camera.id}")
        self.camera = camera
        self.sim_cam = sim_cam
        self.world = world
        self.error = ""
        self._rng = np.random.default_rng(seed)

    def render_now(self) -> np.ndarray:
        frame, _ = render(
            self.sim_cam.approach.view,
            self.world.vehicles,
            SIM_CONDITIONS,
            self._rng,
            self.sim_cam.road,
        )
        return frame

    def _read(self) -> None:
        period = 1.0 / self.camera.fps
        while not self.stopping:
            self.publish(self.render_now())
            self.pace(period)


def sim_cameras(d: Derivation, net_path: str | Path) -> dict[str, SimCamera]:
    cams = cameras_for(d, net_path)
    road = road_scene(net_path)
    return {c.approach: SimCamera(c, road) for c in cams}


def register(d: Derivation, net_path: str | Path, world: World) -> dict[str, SimCamera]:
    """Make `sim://<approach>` URLs open SimSources on this junction's cameras."""
    cams = sim_cameras(d, net_path)

    def factory(camera: Camera) -> SimSource:
        key = camera.url[len("sim://") :]
        if key not in cams:
            raise ValueError(f"camera {camera.id}: {camera.url}: no simulated camera {key!r} "
                             f"(there are {sorted(cams)})")  # fmt: skip
        return SimSource(camera, cams[key], world)

    register_scheme("sim", factory)
    return cams
