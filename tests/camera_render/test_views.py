"""Cameras and lane zones from the shipped networks; the held-out set is reproducible."""

from __future__ import annotations

import numpy as np
import pytest
from sim.camera.dataset import HELD_OUT_SEED, held_out, zone_truth
from sim.camera.render import EMPTY_ROAD, Conditions, Vehicle, ground_point, project, render
from sim.camera.views import approach_cameras, road_scene
from sim.sumo.scenarios import resolve


@pytest.fixture(scope="module")
def single() -> str:
    return str(resolve("single").net)


def test_one_camera_per_approach_and_one_zone_per_lane(single: str) -> None:
    cams = approach_cameras(single)
    assert sorted(c.approach for c in cams) == ["E", "N", "S", "W"]
    lanes = {c.approach: len(c.zones) for c in cams}
    assert lanes == {"E": 3, "W": 3, "N": 2, "S": 2}  # single.edg.xml
    for cam in cams:
        view = cam.view
        for zone in cam.zones:
            poly = np.array(zone.polygon_px)
            assert len(poly) >= 3, f"{zone.lane}: zone outside the frame"
            assert (poly >= 0).all() and (poly[:, 0] <= view.width).all()
            assert (poly[:, 1] <= view.height).all()
            (x0, y0), (x1, y1) = zone.count_line_px
            assert 0 <= x0 < view.width and 0 <= y1 < view.height and (x0, y0) != (x1, y1)


def test_a_vehicle_in_a_lane_zone_is_drawn_inside_its_polygon(single: str) -> None:
    import cv2
    import sumolib

    net = sumolib.net.readNet(single)
    cam = next(c for c in approach_cameras(single) if c.approach == "W")
    for zone in cam.zones:
        lane = net.getLane(zone.lane)
        shape = np.array(lane.getShape())
        x, y = shape[-1] + (shape[0] - shape[-1]) / np.linalg.norm(shape[0] - shape[-1]) * 20.0
        d = shape[-1] - shape[0]
        angle = float(np.degrees(np.arctan2(d[0], d[1])) % 360)
        car = Vehicle(
            "c", float(x), float(y), angle, lane=zone.lane, lane_pos_m=lane.getLength() - 18
        )
        assert zone_truth(zone, [car]) == 1
        _, labels = render(cam.view, [car], Conditions(), np.random.default_rng(0))
        (label,) = labels
        inside = cv2.pointPolygonTest(
            np.array(zone.polygon_px, np.float32), label.ground_px, measureDist=False
        )
        assert inside > 0
        others = [z for z in cam.zones if z.lane != zone.lane]
        assert all(zone_truth(z, [car]) == 0 for z in others)


def test_the_stop_bar_of_every_lane_is_in_view(single: str) -> None:
    import sumolib

    net = sumolib.net.readNet(single)
    for cam in approach_cameras(single):
        for zone in cam.zones:
            end = net.getLane(zone.lane).getShape()[-1]
            (u, v), *_ = project(cam.view, [[end[0], end[1], 0.0]])
            assert 0 <= u < cam.view.width and 0 <= v < cam.view.height - 5, zone.lane
            # and the count line's middle meets the road just before it
            (x0, y0), (x1, y1) = zone.count_line_px
            gx, gy = ground_point(cam.view, [((x0 + x1) / 2, (y0 + y1) / 2)])[0]
            assert np.hypot(gx - end[0], gy - end[1]) == pytest.approx(2.0, abs=0.3)


def test_the_road_scene_draws_the_approach(single: str) -> None:
    cam = approach_cameras(single)[0]
    bare, _ = render(cam.view, [], Conditions(), np.random.default_rng(0), EMPTY_ROAD)
    road, _ = render(cam.view, [], Conditions(), np.random.default_rng(0), road_scene(single))
    poly = np.array(cam.zones[0].polygon_px).mean(axis=0).astype(int)
    assert not np.array_equal(bare[poly[1], poly[0]], road[poly[1], poly[0]])


def test_held_out_is_reproducible_and_labelled() -> None:
    a = list(held_out(4, HELD_OUT_SEED))
    b = list(held_out(4, HELD_OUT_SEED))
    assert [s.conditions.light for s in a][:3] == ["day", "dusk", "night"]
    assert a[3].conditions.rain > 0
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.frame, y.frame) and x.labels == y.labels
    assert sum(len(s.labels) for s in a) > 0
    with pytest.raises(ValueError, match="held-out seed"):
        next(held_out(1, 5))


def test_a_render_error_is_surfaced_and_the_camera_keeps_rendering(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The simulator's camera is the cameras' reader thread (edge/vision/reader.py): a
    render that raises is logged, named in `error`, and retried, never the camera's end
    (before, its thread died silently and the camera froze on its last frame)."""
    import threading

    from edge.vision.config import Camera
    from sim.camera.source import SimSource, World

    rendered = threading.Event()

    class Flaky(SimSource):
        fails = 1

        def render_now(self) -> np.ndarray:
            if self.fails:
                self.fails -= 1
                raise ValueError("render failed")
            rendered.set()
            return np.zeros((2, 2, 3), np.uint8)

    cam = Camera("N", "sim://N", 640, 360, 10.0, 5.0, None, (), ())
    src = Flaky(cam, None, World())  # type: ignore[arg-type]  # render_now needs no scene
    src.start()
    try:
        assert rendered.wait(30)  # after the backoff (0.25 to 0.5 s)
    finally:
        src.stop()
    grab = src.latest()
    assert grab is not None and grab.seq >= 1
    assert [r.getMessage() for r in caplog.records if "camera_error" in r.getMessage()] == [
        "camera_error camera=N: sim://N: ValueError('render failed'); reopening"
    ]
