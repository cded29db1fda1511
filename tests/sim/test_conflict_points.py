"""sim/sumo/conflicts.py's conflict points, made once per path's segments, against the
segment-by-segment walk they replaced (the same points, to the last bit)."""

from __future__ import annotations

import itertools
import math

from hypothesis import example, given, settings
from hypothesis import strategies as st
from sim.sumo.conflicts import _MERGE_M, ConflictPoint, LinkPath, conflict_points

from tests.hypothesis_profiles import examples

Point = tuple[float, float]


def _cross(p: Point, q: Point, r: Point, s: Point) -> tuple[float, float] | None:
    dx1, dy1 = q[0] - p[0], q[1] - p[1]
    dx2, dy2 = s[0] - r[0], s[1] - r[1]
    den = dx1 * dy2 - dy1 * dx2
    if abs(den) < 1e-12:
        return None
    t = ((r[0] - p[0]) * dy2 - (r[1] - p[1]) * dx2) / den
    u = ((r[0] - p[0]) * dy1 - (r[1] - p[1]) * dx1) / den
    eps = 1e-9
    if -eps <= t <= 1 + eps and -eps <= u <= 1 + eps:
        return (t, u)
    return None


def _length(points: tuple[Point, ...]) -> float:
    return sum(math.dist(a, b) for a, b in itertools.pairwise(points))


def reference(a: LinkPath, b: LinkPath) -> list[ConflictPoint]:
    """conflict_points as it was (segment by segment, lengths walked again)."""
    out: list[ConflictPoint] = []
    sa = 0.0
    for p, q in itertools.pairwise(a.points):
        la = math.dist(p, q)
        sb = 0.0
        for r, s in itertools.pairwise(b.points):
            lb = math.dist(r, s)
            hit = _cross(p, q, r, s)
            if hit is not None:
                out.append(ConflictPoint(sa + hit[0] * la, sb + hit[1] * lb))
            sb += lb
        sa += la
    if not out and math.dist(a.points[-1], b.points[-1]) <= _MERGE_M:
        out.append(ConflictPoint(_length(a.points), _length(b.points)))
    total_a, total_b = _length(a.points), _length(b.points)
    return [
        ConflictPoint(
            max(c.along_a, total_a - c.along_a) if a.kind == "ped" else c.along_a,
            max(c.along_b, total_b - c.along_b) if b.kind == "ped" else c.along_b,
        )
        for c in out
    ]


# Coordinates on a coarse grid as well as anywhere: shared points, parallel and
# collinear segments, merges and touching ends come up often.
_coord = st.one_of(
    st.integers(-20, 20).map(float),
    st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False),
)
_points = st.lists(st.tuples(_coord, _coord), min_size=2, max_size=6).map(tuple)
_paths = st.builds(
    LinkPath,
    index=st.just(0),
    points=_points,
    width_m=st.just(3.2),
    speed_mps=st.just(10.0),
    kind=st.sampled_from(["T", "L", "R", "ped"]),
)


@settings(max_examples=examples(500))
@given(_paths, _paths)
@example(  # a merge: the same end, no crossing
    LinkPath(0, ((0.0, 0.0), (10.0, 0.0)), 3.2, 10.0, "T"),
    LinkPath(1, ((10.0, 5.0), (10.0, 0.3)), 3.2, 10.0, "L"),
)
@example(  # collinear overlap and a crossing walk
    LinkPath(0, ((0.0, 0.0), (5.0, 0.0), (10.0, 0.0)), 3.2, 10.0, "T"),
    LinkPath(1, ((2.0, 0.0), (8.0, 0.0), (8.0, -4.0)), 3.2, 10.0, "ped"),
)
def test_conflict_points_are_the_reference_walks(a: LinkPath, b: LinkPath) -> None:
    assert conflict_points(a, b) == reference(a, b)
