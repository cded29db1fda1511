"""A parked camera at night (rendered from SUMO traffic with headlights) stays ok;
the same view shifted on its pole is judged moved. Moving headlights once made the
view comparison follow the lights and call the camera moved most of the night."""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
from devtools.bench.vision import _lit
from edge.vision import health as hl
from sim.camera.render import Conditions, render
from sim.camera.source import sim_cameras, vehicles_from_sumo
from sim.realtime import pick
from sim.sumo import engine
from sim.sumo.lockstep import sumo_args
from sim.sumo.scenarios import resolve

STEP_S = 0.2


def night_frames(n: int) -> list[np.ndarray]:
    scenario = resolve("single")
    cam = sim_cameras(pick("single", None), scenario.net)["W"]
    cond = Conditions(light="night", noise_sigma=4.0, jpeg_quality=70)
    rng = np.random.default_rng(1)
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        sim = engine.start(sumo_args(scenario, 100_012, 3600, STEP_S, Path(tmp), []))
        try:
            for _ in range(int(120 / STEP_S)):  # traffic in view, queues with lights on
                sim.simulationStep()
            for _ in range(n):
                sim.simulationStep()
                vehicles = [_lit(v) for v in vehicles_from_sumo(sim, None)]
                frames.append(render(cam.approach.view, vehicles, cond, rng, cam.road)[0])
        finally:
            engine.close(sim)
    return frames


def states(frames: list[np.ndarray]) -> list[str]:
    mon = hl.HealthMonitor()
    return [mon.frame(k * STEP_S, f) for k, f in enumerate(frames)]


def test_night_camera_stays_ok_and_a_shifted_one_is_moved() -> None:
    frames = night_frames(300)  # 60 s of night traffic
    seen = states(frames)
    assert seen[int(5 / STEP_S) :].count(hl.OK) == len(seen) - int(5 / STEP_S), set(seen)
    # the camera knocked 6 % of the width sideways after 20 s: moved within 5 s
    h, w = frames[0].shape[:2]
    knock = np.array([[1, 0, 0.06 * w], [0, 1, 0]], np.float32)
    cut = int(20 / STEP_S)
    shifted = frames[:cut] + [np.asarray(cv2.warpAffine(f, knock, (w, h))) for f in frames[cut:]]
    after = states(shifted)[cut : cut + int(5 / STEP_S)]
    assert hl.MOVED in after
