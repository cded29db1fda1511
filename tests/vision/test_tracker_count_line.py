"""Count-line cases the renderer's traffic showed the tracker getting wrong (double counts)."""

from __future__ import annotations

from edge.vision.config import CountLine
from edge.vision.model import Detection
from edge.vision.tracker import Tracker, suppress_shadows

LINE = CountLine("l", "cam", "N", 0, ((320.0, 150.0), (0.0, 150.0)))


def box(cx: float, bottom: float, w: float = 40, h: float = 30, score: float = 0.9) -> Detection:
    return Detection(cx - w / 2, bottom - h, cx + w / 2, bottom, "car", score)


def test_weaker_box_around_a_found_vehicle_is_dropped() -> None:
    car = box(100, 120)
    shadow = Detection(90, 100, 130, 160, "car", 0.4)  # the car plus road ahead, IoU ~0.3
    other = box(250, 120, score=0.5)
    assert suppress_shadows([shadow, car, other], 0.5) == [car, other]


def test_shadow_box_reaching_the_line_early_does_not_count_twice() -> None:
    tr = Tracker([LINE])
    for k in range(16):
        y = 90 + 6 * k  # crosses 150 at k = 10
        dets = [box(100, y)]
        if 4 <= k <= 6:  # a weak box holding the car and the road ahead, over the line
            dets.append(Detection(80, y - 30, 125, 136 + 10 * (k - 4), "car", 0.4))
        tr.update(k * 0.2, dets)
    assert tr.counts == {"l": 1}


def test_vehicle_waiting_on_the_line_is_counted_once_while_it_drops_out() -> None:
    # In rain a vehicle standing on the line drops out of the detections for longer
    # than a track lives; each reborn track's box jitters across the line.
    tr = Tracker([LINE], max_age_s=1.0)
    t = 0.0
    for k in range(8):
        tr.update(t, [box(100, 94 + 8 * k)])  # arrives, ends just past the line
        t += 0.2
    assert tr.counts == {"l": 1}
    for gap in range(4):
        t += 2.0  # missed long enough for the track to end
        for k in range(5):
            tr.update(t, [box(100, 148 + (3 if (k + gap) % 2 else -3))])
            t += 0.2
    assert tr.counts == {"l": 1}


def test_vehicle_first_seen_before_the_line_and_lost_early_is_not_counted_on_a_blip() -> None:
    tr = Tracker([LINE])
    tr.update(0.0, [box(100, 146)])
    tr.update(0.2, [box(100, 154)])  # one move over the line, then gone: unconfirmed
    tr.update(2.0, [])
    assert tr.counts == {"l": 0}


def test_counting_does_not_depend_on_the_order_of_the_line_points() -> None:
    for points in (((320.0, 150.0), (0.0, 150.0)), ((0.0, 150.0), (320.0, 150.0))):
        tr = Tracker([CountLine("l", "cam", "N", 0, points)])
        for k in range(12):
            tr.update(k * 0.2, [box(100, 100 + 10 * k), box(250, 200 - 10 * k)])
        assert tr.counts == {"l": 2}  # one each way


def test_a_missed_waiting_vehicle_does_not_hand_its_track_to_the_one_behind() -> None:
    tr = Tracker([LINE])
    tr.update(0.0, [box(100, 140)])
    tr.update(0.2, [box(100, 140)])
    tr.update(0.4, [box(100, 108)])  # the waiting car missed; the one behind, 32 px back
    seen = tr.update(0.6, [box(100, 140), box(100, 108)])
    assert {t.id: t.det.y2 for t in seen}[1] == 140
