"""The real-footage measure counts as its rules say: matches, don't-cares, false boxes and
what they sit on, the runtime's region, zone counts and box bottoms
(devtools/vision/realeval.py)."""

from __future__ import annotations

from devtools.vision.realeval import Score
from devtools.vision.truth import Frame, NonVehicle, Vehicle
from edge.vision.model import Detection

CAR = Vehicle((100, 100, 160, 140), "car", False)  # 40 px tall: counted
SMALL = Vehicle((300, 100, 315, 115), "car", False)  # 15 px tall: don't care
PARTIAL = Vehicle((0, 200, 30, 260), "truck", True)  # partial: don't care
MISSED = Vehicle((400, 200, 480, 260), "bus", False)
SIGNAL = NonVehicle((500, 20, 520, 60), "signal_head")
FRAME = Frame("clip.mp4", 7, 640, 360, (CAR, SMALL, PARTIAL, MISSED), (SIGNAL,))
ZONES: dict[str, tuple[tuple[float, float], ...]] = {
    "Z": ((90.0, 90.0), (200.0, 90.0), (200.0, 150.0), (90.0, 150.0))
}


def det(box: tuple[float, float, float, float], score: float = 0.9) -> Detection:
    return Detection(*box, "car", score)


def test_matches_dont_cares_and_false_boxes() -> None:
    s = Score()
    s.add(
        FRAME,
        ZONES,
        [
            det((102, 101, 160, 144)),  # the car: IoU 0.86, bottom 4 px low (10 % of 40)
            det((101, 100, 159, 139), 0.5),  # a second, weaker box on it: loose, not false
            det((300, 100, 316, 116)),  # the small car: neither right nor wrong
            det((2, 205, 30, 258)),  # the partial truck: neither
            det((498, 18, 522, 62)),  # on the signal head: false, and counted as such
            det((600, 300, 630, 330)),  # on nothing: false
        ],
    )
    r = s.summary()
    assert (s.tp, s.fn, s.fp) == (1, 1, 2)
    assert (r["precision"], r["recall"]) == (0.333, 0.5)
    assert r["false_on_non_vehicles"] == {"signal_head": 1}
    assert r["false_non_vehicle_per_20_frames"] == 20.0
    assert s.misses == ["clip.mp4#7 bus [400, 200, 480, 260]"]
    assert r["box_bottom_err_median"] == 0.1 and r["box_bottom_within_15_pct"] == 100.0
    # The zone holds the car's ground point (130, 140) and both boxes' (131, 144), (130, 139):
    # 1 in truth, 2 seen: within 1.
    assert (r["zone_frames"], r["zone_count_within_1_pct"], r["zone_count_mae"]) == (1, 100.0, 1)


def test_the_runtime_region_leaves_out_what_it_never_sees() -> None:
    s = Score()
    s.add(FRAME, {}, [det((102, 101, 160, 144))], region=(50, 50, 250, 200))
    assert (s.tp, s.fn, s.fp) == (1, 0, 0)  # the bus outside the region is not looked for
    s.add(FRAME, {}, [det((102, 101, 160, 144))])
    assert (s.tp, s.fn) == (2, 1)  # over the whole frame it is a miss
