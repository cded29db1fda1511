"""Zone maths (presence, counts, queue in vehicles and metres) and the count-line tracker."""

from __future__ import annotations

from edge.vision.config import CountLine, Zone
from edge.vision.model import Detection
from edge.vision.tracker import Tracker, crosses
from edge.vision.zones import ZoneGeometry, inside

# A lane seen in perspective: stop bar at the bottom (y 180), 40 m up to y 20.
QUAD = ((100.0, 180.0), (200.0, 180.0), (170.0, 20.0), (130.0, 20.0))
ZONE = Zone("z", "cam", "N", 0, QUAD, "queue", 3, 40.0, "loop")


def test_inside_polygon() -> None:
    assert inside(QUAD, 150, 100)
    assert not inside(QUAD, 105, 30)
    assert inside(QUAD, 150, 180)  # on the stop-bar edge


def test_homography_metres() -> None:
    g = ZoneGeometry(ZONE)
    assert abs(g.metres_from_stop_bar((150, 180)) or 0) < 1e-6
    assert abs((g.metres_from_stop_bar((150, 20)) or 0) - 40.0) < 1e-6


def point_at(g: ZoneGeometry, metres: float) -> tuple[float, float]:
    """The pixel on the zone's centre line `metres` from the stop bar (search)."""
    lo, hi = 20.0, 180.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (g.metres_from_stop_bar((150, mid)) or 0) > metres:
            lo = mid
        else:
            hi = mid
    return (150.0, lo)


def test_queue_is_the_chain_from_the_stop_bar() -> None:
    g = ZoneGeometry(ZONE)
    pts = [point_at(g, m) for m in (2, 9, 16, 35)]  # a gap of 19 m before the last
    st = g.measure([(p, None) for p in pts] + [((10.0, 10.0), None)], gap_m=12)
    assert (st.presence, st.count, st.queue_veh) == (True, 4, 3)
    assert st.queue_m is not None and abs(st.queue_m - 16) < 0.2
    moving = g.measure([(pts[0], 0.5), (pts[1], 9.0), (pts[2], 0.0)], gap_m=12)
    assert moving.queue_veh == 1  # the second vehicle drives: the queue ends before it
    empty = g.measure([], gap_m=12)
    assert (empty.presence, empty.count, empty.queue_veh, empty.queue_m) == (False, 0, 0, 0.0)


def test_presence_zone_has_no_queue() -> None:
    z = Zone("p", "cam", "N", 0, QUAD, "presence", 3, None, "loop")
    st = ZoneGeometry(z).measure([((150.0, 100.0), None)], gap_m=12)
    assert (st.presence, st.count, st.queue_veh, st.queue_m) == (True, 1, None, None)


def test_crossing() -> None:
    line = ((0.0, 100.0), (100.0, 100.0))
    assert crosses((50, 90), (50, 110), line)
    assert not crosses((50, 90), (50, 99), line)
    assert not crosses((150, 90), (150, 110), line)  # beyond the segment's end


def box(cx: float, bottom: float, w: float = 30, h: float = 24) -> Detection:
    return Detection(cx - w / 2, bottom - h, cx + w / 2, bottom, "car", 0.9)


def test_tracker_counts_each_vehicle_once() -> None:
    line = CountLine("l", "cam", "N", 0, ((0.0, 150.0), (320.0, 150.0)))
    tr = Tracker([line])
    # Three vehicles drive down the frame at different speeds (5 frames/s); one jitters
    # back and forth across the line, one is missed for a frame (detector dropout).
    t = 0.0
    for k in range(30):
        dets = [box(60, 40 + 9 * k), box(260, 20 + 6 * k)]
        if k != 12:
            dets.append(box(160, 60 + 12 * k))
        if 13 <= k <= 15:
            dets[0] = box(60, 148 + (4 if k % 2 else -4))  # the first one stops on the line
        tr.update(t, [d for d in dets if d.y2 < 192])
        t += 0.2
    assert tr.counts == {"l": 3}


def test_tracker_separates_side_by_side_queue() -> None:
    line = CountLine("l", "cam", "N", 0, ((0.0, 150.0), (320.0, 150.0)))
    tr = Tracker([line])
    for k in range(20):
        # a queue discharging: vehicles 30 px apart, moving 10 px a frame
        dets = [box(150, 60 + 10 * k + 30 * j) for j in range(4)]
        tr.update(k * 0.2, [d for d in dets if d.y2 < 192])
    assert tr.counts == {"l": 4}
