"""The camera renderer: projection geometry, labels against pixels, determinism, conditions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sim.camera.render import (
    CameraView,
    Conditions,
    RenderError,
    Vehicle,
    camera_coords,
    ground_point,
    project,
    render,
)

# A camera 10 m up at the origin, looking north, tilted 15 degrees down.
VIEW = CameraView(x=0.0, y=0.0, z=10.0, heading_deg=0.0, pitch_deg=15.0, hfov_deg=50.0)
DAY = Conditions()
# A low camera (2 m), so that vehicles hide one another.
LOW = CameraView(x=0.0, y=0.0, z=2.0, heading_deg=0.0, pitch_deg=3.0, hfov_deg=50.0)


def ahead(distance_m: float, dx: float = 0.0) -> Vehicle:
    """A car heading south (towards the camera) `distance_m` north of the pole."""
    return Vehicle(
        id=f"v{distance_m}_{dx}",
        x=dx,
        y=distance_m,
        angle_deg=180.0,
        colour=(40, 40, 200),
        headlights=False,
    )


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_a_point_on_the_optical_axis_lands_at_the_centre() -> None:
    p = math.radians(VIEW.pitch_deg)
    for d in (5.0, 40.0, 300.0):
        point = [0.0, d * math.cos(p), VIEW.z - d * math.sin(p)]
        u, v = project(VIEW, [point])[0]
        assert u == pytest.approx(VIEW.width / 2, abs=1e-6)
        assert v == pytest.approx(VIEW.height / 2, abs=1e-6)


def test_projection_round_trips_through_the_ground_plane() -> None:
    points = np.array([[3.0, 30.0, 0.0], [-6.0, 55.0, 0.0], [0.0, 80.0, 0.0]])
    back = ground_point(VIEW, project(VIEW, points))
    assert np.allclose(back, points[:, :2], atol=1e-6)


def test_east_is_right_and_up_is_up() -> None:
    (ul, _), (ur, _) = project(VIEW, [[-2.0, 30.0, 0.0], [2.0, 30.0, 0.0]])
    assert ul < VIEW.width / 2 < ur
    (_, v_low), (_, v_high) = project(VIEW, [[0.0, 30.0, 0.0], [0.0, 30.0, 3.0]])
    assert v_high < v_low


def test_a_point_behind_the_camera_has_no_pixel() -> None:
    assert np.isnan(project(VIEW, [[0.0, -10.0, 0.0]])).all()
    assert camera_coords(VIEW, [[0.0, -10.0, 0.0]])[0, 2] < 0


def test_farther_vehicles_are_smaller() -> None:
    widths, heights = [], []
    for d in (20.0, 40.0, 80.0):
        _, labels = render(VIEW, [ahead(d)], DAY, rng())
        (label,) = labels
        widths.append(label.box[2] - label.box[0])
        heights.append(label.box[3] - label.box[1])
    assert widths[0] > widths[1] > widths[2] > 0
    assert heights[0] > heights[1] > heights[2] > 0
    # the width (a face square to the lens) shrinks as 1 / distance
    assert widths[0] / widths[2] == pytest.approx(4.0, rel=0.15)


def test_a_vehicle_behind_the_camera_is_not_drawn() -> None:
    empty, _ = render(VIEW, [], DAY, rng())
    frame, labels = render(VIEW, [ahead(-15.0), ahead(-3.0)], DAY, rng())
    assert labels == []
    assert np.array_equal(frame, empty)


def test_a_vehicle_astride_the_camera_is_clipped_not_wrapped() -> None:
    # a bus under the pole: its rear is behind the lens, its front in view
    bus = Vehicle("bus", 0.0, 4.0, 0.0, length_m=12.0, width_m=2.5, height_m=3.2, kind="bus")
    frame, labels = render(VIEW, [bus], DAY, rng())
    for label in labels:
        x0, y0, x1, y1 = label.box
        assert 0 <= x0 < x1 <= VIEW.width and 0 <= y0 < y1 <= VIEW.height
    assert frame.shape == (VIEW.height, VIEW.width, 3)


def test_labels_match_the_drawn_pixels() -> None:
    empty, _ = render(VIEW, [], DAY, rng())
    frame, labels = render(VIEW, [ahead(30.0, dx=-3.0), ahead(50.0, dx=4.0)], DAY, rng())
    assert len(labels) == 2
    changed = np.any(frame != empty, axis=2)
    for label in labels:
        x0, y0, x1, y1 = (round(c) for c in label.box)
        inside = changed[y0:y1, x0:x1]
        assert inside.mean() > 0.5  # the box holds the vehicle...
        assert label.visible_fraction == pytest.approx(1.0, abs=0.05)  # ...unhidden
    boxes = np.zeros_like(changed)
    for label in labels:
        x0, y0, x1, y1 = (round(c) for c in label.box)
        mx, my = 2 + (x1 - x0) // 8, 2 + (y1 - y0) // 8  # the contact shadow spills a little
        boxes[max(y0 - my, 0) : y1 + my, max(x0 - mx, 0) : x1 + mx] = True
    assert not changed[~boxes].any()  # and nothing is drawn outside the boxes


def test_a_vehicle_in_front_hides_part_of_the_one_behind() -> None:
    far, near = ahead(40.0), ahead(32.0, dx=0.8)
    _, alone = render(LOW, [far], DAY, rng())
    _, both = render(LOW, [far, near], DAY, rng())
    by_id = {label.vehicle_id: label for label in both}
    assert alone[0].visible_fraction == pytest.approx(1.0, abs=0.05)
    assert 0.0 < by_id[far.id].visible_fraction < 0.8
    assert by_id[near.id].visible_fraction == pytest.approx(1.0, abs=0.05)
    # the hidden vehicle keeps its whole box
    assert by_id[far.id].box == pytest.approx(alone[0].box, abs=1.0)


def test_a_fully_hidden_vehicle_has_no_label() -> None:
    car = ahead(60.0)
    bus = Vehicle("bus", 0.0, 30.0, 180.0, length_m=12.0, width_m=2.5, height_m=3.4, kind="bus")
    _, labels = render(LOW, [car, bus], DAY, rng())
    assert [label.vehicle_id for label in labels] == ["bus"]


def test_every_kind_renders_with_its_class() -> None:
    kinds = ["car", "truck", "bus", "motorcycle", "emergency"]
    vehicles = [
        Vehicle(k, -8.0 + 4.0 * i, 35.0, 180.0, 6.0, 2.0, 2.5, kind=k) for i, k in enumerate(kinds)
    ]
    _, labels = render(VIEW, vehicles, DAY, rng())
    assert sorted((lb.kind, lb.class_id) for lb in labels) == sorted(
        (k, i) for i, k in enumerate(kinds)
    )


def test_a_frame_without_labels_is_the_same_frame() -> None:
    scene = [ahead(25.0), ahead(45.0, dx=3.0)]
    cond = Conditions(light="night", noise_sigma=4.0)
    with_labels, labels = render(VIEW, scene, cond, rng(1))
    without, none = render(VIEW, scene, cond, rng(1), with_labels=False)
    assert np.array_equal(with_labels, without) and len(labels) == 2 and none == []


def test_the_same_seed_gives_the_same_frame() -> None:
    cond = Conditions(light="dusk", rain=0.6, glare=0.3, noise_sigma=6.0, jpeg_quality=50)
    scene = [ahead(25.0), ahead(45.0, dx=3.0)]
    a, la = render(VIEW, scene, cond, rng(3))
    b, lb = render(VIEW, scene, cond, rng(3))
    c, _ = render(VIEW, scene, cond, rng(4))
    assert np.array_equal(a, b) and la == lb
    assert not np.array_equal(a, c)


def test_night_is_darker_than_dusk_is_darker_than_day() -> None:
    scene = [ahead(25.0), ahead(45.0, dx=3.0)]
    means = [
        float(render(VIEW, scene, Conditions(light=light), rng())[0].mean())
        for light in ("day", "dusk", "night")
    ]
    assert means[0] > means[1] > means[2]
    assert means[2] < 0.4 * means[0]


def test_headlights_shine_at_night() -> None:
    lit = Vehicle("lit", 0.0, 30.0, 180.0, headlights=True)
    dark = Vehicle("lit", 0.0, 30.0, 180.0, headlights=False)
    night = Conditions(light="night")
    assert render(VIEW, [lit], night, rng())[0].max() > render(VIEW, [dark], night, rng())[0].max()


@pytest.mark.parametrize(
    "cond",
    [
        Conditions(rain=0.8),
        Conditions(glare=0.8),
        Conditions(noise_sigma=8.0),
        Conditions(jpeg_quality=20),
    ],
)
def test_each_condition_changes_the_image(cond: Conditions) -> None:
    scene = [ahead(25.0), ahead(45.0, dx=3.0)]
    clean, labels_clean = render(VIEW, scene, DAY, rng())
    frame, labels = render(VIEW, scene, cond, rng())
    assert np.abs(frame.astype(int) - clean.astype(int)).mean() > 0.5
    assert labels == labels_clean  # conditions change pixels, never the truth


def test_bad_input_is_refused_with_what_is_wrong() -> None:
    with pytest.raises(RenderError, match="kind 'tank'"):
        Vehicle("x", 0.0, 0.0, 0.0, kind="tank")
    with pytest.raises(RenderError, match="hfov"):
        CameraView(0.0, 0.0, 10.0, 0.0, 10.0, hfov_deg=200.0)
    with pytest.raises(RenderError, match="light"):
        Conditions(light="noon")  # type: ignore[arg-type]
