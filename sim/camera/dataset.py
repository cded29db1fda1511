"""Labelled camera frames from SUMO traffic: the model's training set and the held-out set.

Traffic comes from the shipped scenarios (single, tee, arterial) run with libsumo;
every few simulated seconds one approach's camera is rendered under drawn
conditions. SUMO's vehicles are plain cars, so each new vehicle is given a kind
(car, truck, bus, motorcycle, emergency) and its size there, in SUMO too, so
queues keep their real spacing. Everything is drawn from the seed: the same seed
gives the same frames. Training uses seeds below HELD_OUT_SEED; `held_out` uses
seeds from it up, on the standard cameras (`views.Placement()`), cycling through
day, dusk, night and rain.
"""

from __future__ import annotations

import itertools
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from sim.camera.render import Colour, Conditions, Frame, Label, Vehicle, render
from sim.camera.views import (
    Approach,
    ApproachCamera,
    LaneZone,
    Placement,
    approaches,
    camera_for,
    road_scene,
)
from sim.sumo import engine
from sim.sumo.network import read_net
from sim.sumo.scenarios import resolve

SCENARIOS = ("single", "tee", "arterial")
HELD_OUT_SEED = 100_000  # training seeds stay below, held-out seeds start here
WARMUP_S = 90  # queues form before the first frame

# kind: share of vehicles, (length, width, height) ranges in metres
KIND_MIX: dict[str, tuple[float, tuple[tuple[float, float], ...]]] = {
    "car": (0.62, ((3.6, 5.2), (1.65, 1.95), (1.35, 1.8))),
    "truck": (0.1, ((6.5, 11.0), (2.3, 2.55), (2.8, 3.8))),
    "bus": (0.06, ((10.5, 13.0), (2.45, 2.55), (2.9, 3.3))),
    "motorcycle": (0.1, ((1.9, 2.3), (0.7, 0.9), (1.4, 1.6))),
    "emergency": (0.12, ((5.5, 7.0), (2.0, 2.3), (2.4, 2.9))),
}
_PALETTE: tuple[Colour, ...] = (
    (235, 235, 235), (30, 30, 30), (160, 160, 165), (110, 110, 115), (40, 40, 170),
    (150, 80, 30), (40, 90, 40), (60, 140, 200), (200, 200, 60), (30, 60, 110),
    (90, 50, 120), (180, 140, 100),
)  # fmt: skip
_VCLASS_KIND = {
    "emergency": "emergency",
    "authority": "emergency",
    "bus": "bus",
    "coach": "bus",
    "trolleybus": "bus",
    "truck": "truck",
    "trailer": "truck",
    "delivery": "truck",
    "motorcycle": "motorcycle",
    "moped": "motorcycle",
}


def kind_of_vclass(vclass: str) -> str:
    """The renderer's kind for a SUMO vehicle class (anything else is a car)."""
    return _VCLASS_KIND.get(vclass, "car")


def colour_of(vehicle_id: str) -> Colour:
    """A stable body colour for a vehicle id (SUMO's default colour is all yellow)."""
    return _PALETTE[zlib.crc32(vehicle_id.encode()) % len(_PALETTE)]


def vehicles_from_sumo(
    sim: Any, headlights: bool, kinds: dict[str, str] | None = None
) -> list[Vehicle]:
    """Every vehicle of a running libsumo/traci simulation as the renderer's Vehicle.

    SUMO reports the front bumper's position; the renderer wants the centre. `kinds`
    overrides the kind per vehicle id (else it follows the vehicle class)."""
    out: list[Vehicle] = []
    for vid in sim.vehicle.getIDList():
        fx, fy = sim.vehicle.getPosition(vid)
        angle = float(sim.vehicle.getAngle(vid))
        length = float(sim.vehicle.getLength(vid))
        a = np.radians(angle)
        kind = (kinds or {}).get(vid) or kind_of_vclass(sim.vehicle.getVehicleClass(vid))
        out.append(
            Vehicle(
                id=vid,
                x=float(fx - np.sin(a) * length / 2.0),
                y=float(fy - np.cos(a) * length / 2.0),
                angle_deg=angle,
                length_m=length,
                width_m=float(sim.vehicle.getWidth(vid)),
                height_m=float(sim.vehicle.getHeight(vid)),
                kind=kind,
                colour=(225, 225, 230) if kind == "emergency" else colour_of(vid),
                headlights=headlights or kind == "emergency",
                lane=str(sim.vehicle.getLaneID(vid)),
                lane_pos_m=float(sim.vehicle.getLanePosition(vid)),
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Sample:
    """One rendered frame with its truth."""

    frame: Frame  # BGR uint8
    labels: list[Label]  # every visible vehicle
    view: Any  # CameraView
    zones: tuple[LaneZone, ...]  # the camera's lane zones (pixels)
    vehicles: list[Vehicle]  # every vehicle in the network, seen or not (zone truth)
    conditions: Conditions
    scenario: str
    approach: str


def _sumo(scenario: Any, seed: int, workdir: Path) -> Any:
    args = [
        "-c", str(scenario.sumocfg),
        "--seed", str(seed),
        "--no-step-log", "true",
        "--no-warnings", "true",
        "--duration-log.disable", "true",
        "--log", str(workdir / "sumo.log"),
    ]  # fmt: skip
    return engine.start(args)


def _assign_kinds(sim: Any, rng: np.random.Generator, kinds: dict[str, str]) -> None:
    """Give each newly departed vehicle a kind and that kind's size, in SUMO too."""
    names = list(KIND_MIX)
    shares = np.array([KIND_MIX[k][0] for k in names])
    for vid in sim.simulation.getDepartedIDList():
        kind = names[int(rng.choice(len(names), p=shares / shares.sum()))]
        kinds[vid] = kind
        (l0, l1), (w0, w1), (h0, h1) = KIND_MIX[kind][1]
        sim.vehicle.setLength(vid, float(rng.uniform(l0, l1)))
        sim.vehicle.setWidth(vid, float(rng.uniform(w0, w1)))
        sim.vehicle.setHeight(vid, float(rng.uniform(h0, h1)))


def _headlights(light: str, rng: np.random.Generator) -> bool:
    share = {"day": 0.15, "dusk": 0.75, "night": 0.97}[light]
    return bool(rng.random() < share)


def jittered_placement(rng: np.random.Generator) -> Placement:
    """A camera pole somewhere around the standard one, for training variety."""
    return Placement(
        height_m=float(rng.uniform(7.0, 13.0)),
        setback_m=float(rng.uniform(12.0, 26.0)),
        kerb_m=float(rng.uniform(0.3, 4.0)),
        hfov_deg=float(rng.uniform(36.0, 62.0)),
        aim_m=float(rng.uniform(18.0, 40.0)),
        far_m=float(rng.uniform(-5.0, 25.0)),
        heading_jitter_deg=float(rng.uniform(-5.0, 5.0)),
    )


def generate(
    scenario_name: str,
    seed: int,
    n_frames: int,
    every_s: tuple[int, int] = (2, 5),
    jitter: bool = True,
    light_cycle: tuple[str, ...] | None = None,
    cycle_start: int = 0,
) -> Iterator[Sample]:
    """Frames from one SUMO run of a scenario: warm up, then one approach every few
    seconds. `jitter` moves the poles (training); `light_cycle` fixes the conditions'
    order (held-out: day, dusk, night, rain)."""
    rng = np.random.default_rng(seed)
    scenario = resolve(scenario_name)
    net = read_net(scenario.net)
    apps = approaches(net)
    roads = {
        a.tls: road_scene(net, a.junction_xy, seed=int(rng.integers(1, 1 << 30))) for a in apps
    }
    cameras: dict[str, list[ApproachCamera]] = {}
    for a in apps:
        places = [jittered_placement(rng) for _ in range(3)] if jitter else [Placement()]
        cameras[_key(a)] = [camera_for(a, p) for p in places]
    kinds: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="edge-camera-") as tmp:
        sim = _sumo(scenario, seed, Path(tmp))
        try:
            t = 0
            for k in range(n_frames):
                wait = WARMUP_S if k == 0 else int(rng.integers(every_s[0], every_s[1] + 1))
                for _ in range(wait):
                    sim.simulationStep()
                    _assign_kinds(sim, rng, kinds)
                    t += 1
                a = apps[int(rng.integers(len(apps)))]
                cams = cameras[_key(a)]
                cam = cams[int(rng.integers(len(cams)))]
                if light_cycle:
                    which = light_cycle[(cycle_start + k) % len(light_cycle)]
                    if which == "rain":
                        cond = replace(
                            Conditions.sample(rng, "day"), rain=float(rng.uniform(0.5, 1.0))
                        )
                    else:
                        cond = replace(Conditions.sample(rng, which), rain=0.0)  # type: ignore[arg-type]
                else:
                    cond = Conditions.sample(rng)
                vehicles = vehicles_from_sumo(sim, _headlights(cond.light, rng), kinds)
                frame, labels = render(cam.view, vehicles, cond, rng, roads[a.tls])
                yield Sample(
                    frame, labels, cam.view, cam.zones, vehicles, cond, scenario_name, a.approach
                )
        finally:
            engine.close(sim)


def _key(a: Approach) -> str:
    return f"{a.tls}/{a.approach}"


HELD_OUT_CONDITIONS = ("day", "dusk", "night", "rain")


def held_out(n_frames: int, seed: int = HELD_OUT_SEED) -> Iterator[Sample]:
    """The held-out set: `n_frames` frames on the standard cameras of the shipped
    scenarios, from SUMO seeds no training run uses (`seed` must be >= HELD_OUT_SEED),
    cycling through day, dusk, night and rain. Deterministic for a seed."""
    if seed < HELD_OUT_SEED:
        raise ValueError(f"held-out seed {seed}: must be >= {HELD_OUT_SEED} (lower seeds train)")
    per = -(-n_frames // len(SCENARIOS))
    made = 0
    for i, name in enumerate(itertools.cycle(SCENARIOS)):
        if made >= n_frames:
            return
        take = min(per, n_frames - made)
        runs = generate(
            name, seed + i, take, jitter=False, light_cycle=HELD_OUT_CONDITIONS, cycle_start=made
        )
        for sample in runs:
            made += 1
            yield sample


def zone_truth(zone: LaneZone, vehicles: list[Vehicle]) -> int:
    """How many vehicles are in a lane zone (SUMO's truth: seen or hidden)."""
    return sum(1 for v in vehicles if zone.holds(v.lane, v.lane_pos_m))
