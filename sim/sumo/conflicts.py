"""Conflict geometry of a SUMO network's signalised links, for RiLSA intergreens.

Each controlled link's path is its internal lanes' shape (SUMO's `via` lane,
then any internal lane it chains into), which starts at the stop line and ends
where the outgoing lane begins; a pedestrian crossing's path is its crossing
lane, kerb to kerb. Two paths conflict where their centre lines cross or where
they end together (a merge into one lane).

Rules kept:
1. Read-only, plain XML (ElementTree): only lanes, internal chains and the
   connections of traffic lights; sumolib's network object is untouched.
2. A distance along a path is metres from its start (the stop line or kerb);
   a crossing is walked either way, so its distance is the longer of the two.
3. Missing geometry yields no path (the pair then keeps the blanket clearance),
   never a guessed one.
"""

from __future__ import annotations

import gzip
import itertools
import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.control.site import SignalKey, SignalKind, Site
from edge.intergreen import clearing_speed, intergreen_ms

from sim.sumo.errors import SimError

Point = tuple[float, float]
DEFAULT_LANE_WIDTH_M = 3.2  # SUMO's default lane width (written only when it differs)
_MERGE_M = 0.5  # paths that end this close together merge there


@dataclass(frozen=True, slots=True)
class LinkPath:
    """One controlled link's way through the junction."""

    index: int  # TLS link index
    points: tuple[Point, ...]  # from the stop line (a crossing: one kerb) onwards
    width_m: float
    speed_mps: float  # the internal lane's speed (SUMO's turning speed)
    kind: str  # T, L, R (a vehicle stream) or ped (a crossing)


@dataclass(frozen=True, slots=True)
class ConflictPoint:
    """Where two paths meet: metres along each from its start."""

    along_a: float
    along_b: float


def _shape(text: str | None) -> tuple[Point, ...]:
    if not text:
        return ()
    pts = []
    for pair in text.split():
        x, y = pair.split(",")[:2]
        pts.append((float(x), float(y)))
    return tuple(pts)


def _kind(sumo_dir: str) -> str:
    return {"l": "L", "L": "L", "r": "R", "R": "R"}.get(sumo_dir, "T")


def link_paths(path: str | Path) -> dict[str, dict[int, LinkPath]]:
    """Every traffic light's controlled links' paths, by TLS id and link index."""
    p = Path(path)
    try:
        opener = gzip.open if p.name.endswith(".gz") else open
        with opener(p, "rb") as f:
            root = ET.parse(f).getroot()
    except (OSError, ET.ParseError) as exc:
        raise SimError(f"cannot read the network geometry of {path}: {exc}") from None
    lanes: dict[str, tuple[tuple[Point, ...], float, float]] = {}
    crossing_edges: set[str] = set()
    for edge in root.iter("edge"):
        if edge.get("function") == "crossing":
            crossing_edges.add(edge.get("id", ""))
        for lane in edge.iter("lane"):
            lanes[lane.get("id", "")] = (
                _shape(lane.get("shape")),
                float(lane.get("width", DEFAULT_LANE_WIDTH_M)),
                float(lane.get("speed", 13.89)),
            )
    chain: dict[str, str] = {}  # internal lane -> the internal lane it continues into
    controlled = []
    for c in root.iter("connection"):
        src, via = c.get("from", ""), c.get("via")
        if src.startswith(":") and via:
            chain[f"{src}_{c.get('fromLane')}"] = via
        if c.get("tl") is not None and c.get("linkIndex") is not None:
            controlled.append(c)
    out: dict[str, dict[int, LinkPath]] = {}
    for c in controlled:
        index = int(c.get("linkIndex", "-1"))
        to = c.get("to", "")
        if to in crossing_edges or c.get("from", "") in crossing_edges:
            walk = lanes.get(f"{to if to in crossing_edges else c.get('from', '')}_0")
            if walk is None or len(walk[0]) < 2:
                continue
            found = LinkPath(index, walk[0], walk[1], walk[2], "ped")
        else:
            via = c.get("via")
            if via is None or via not in lanes:
                continue
            points = list(lanes[via][0])
            width, speed = lanes[via][1], lanes[via][2]
            seen = {via}
            nxt = chain.get(via)
            while nxt is not None and nxt in lanes and nxt not in seen:
                seen.add(nxt)
                more = lanes[nxt][0]
                points += more[1:] if points and more and more[0] == points[-1] else more
                nxt = chain.get(nxt)
            if len(points) < 2:
                continue
            found = LinkPath(index, tuple(points), width, speed, _kind(c.get("dir", "s")))
        out.setdefault(c.get("tl", ""), {})[index] = found
    return out


# A path's segments: (x, y, dx, dy, length) from each point to the next.
Segment = tuple[float, float, float, float, float]


def _segments(points: tuple[Point, ...]) -> list[Segment]:
    return [
        (p[0], p[1], q[0] - p[0], q[1] - p[1], math.dist(p, q))
        for p, q in itertools.pairwise(points)
    ]


def conflict_points(a: LinkPath, b: LinkPath) -> list[ConflictPoint]:
    """Every point where a's and b's centre lines meet (rule 2 for crossings)."""
    return _meet(a, _segments(a.points), b, _segments(b.points))


def _meet(
    a: LinkPath, segs_a: list[Segment], b: LinkPath, segs_b: list[Segment]
) -> list[ConflictPoint]:
    # conflict_points over segments made once per path (site_intergreens meets each
    # path with many): per segment pair, t and u of p + t (q - p) = r + u (s - r).
    out: list[ConflictPoint] = []
    eps = 1e-9
    sa = 0.0
    for px, py, dx1, dy1, la in segs_a:
        sb = 0.0
        for rx, ry, dx2, dy2, lb in segs_b:
            den = dx1 * dy2 - dy1 * dx2
            if not abs(den) < 1e-12:  # else parallel: a shared end is found as a merge
                t = ((rx - px) * dy2 - (ry - py) * dx2) / den
                u = ((rx - px) * dy1 - (ry - py) * dx1) / den
                if -eps <= t <= 1 + eps and -eps <= u <= 1 + eps:
                    out.append(ConflictPoint(sa + t * la, sb + u * lb))
            sb += lb
        sa += la
    total_a, total_b = sum(x[4] for x in segs_a), sum(x[4] for x in segs_b)
    if not out and math.dist(a.points[-1], b.points[-1]) <= _MERGE_M:
        out.append(ConflictPoint(total_a, total_b))
    return [
        ConflictPoint(
            max(c.along_a, total_a - c.along_a) if a.kind == "ped" else c.along_a,
            max(c.along_b, total_b - c.along_b) if b.kind == "ped" else c.along_b,
        )
        for c in out
    ]


def site_intergreens(
    site: Site, paths: Mapping[int, LinkPath], links_of: Mapping[SignalKey, Sequence[int]]
) -> dict[tuple[SignalKey, SignalKey], int]:
    """The intergreen (ms) of each conflicting pair of `site`'s signal groups, from the
    paths of the links each group shows (`links_of`), by edge/intergreen.py.

    A pair is the worst of its link pairs and their conflict points. A pair whose
    links all have paths but never meet gets the floor (the leaving change
    interval + the minimum red clearance); a pair with a link without a path is
    left out (it keeps the blanket clearance). A walk leaving keeps its whole
    pedestrian clearance: its pair is never below it.
    """
    floor = site.safety.min_red_clear_ms
    out: dict[tuple[SignalKey, SignalKey], int] = {}
    segs = {i: _segments(p.points) for i, p in paths.items()}
    met: dict[tuple[int, int], list[ConflictPoint]] = {}  # link pairs recur across groups
    for a, b in sorted(site.conflicts, key=str):
        la, lb = links_of.get(a, ()), links_of.get(b, ())
        if not la or not lb or any(i not in paths for i in (*la, *lb)):
            continue
        walk = a[0] is SignalKind.PED
        leave = 0 if walk else _change_ms(site, a)
        need = leave + (0 if walk else floor)
        for i in la:
            pa = paths[i]
            v = clearing_speed(pa.kind, pa.speed_mps)
            for j in lb:
                pb = paths[j]
                points = met.get((i, j))
                if points is None:
                    points = met[i, j] = _meet(pa, segs[i], pb, segs[j])
                for c in points:
                    need = max(
                        need,
                        intergreen_ms(
                            leave,
                            c.along_a + pb.width_m / 2,
                            v,
                            c.along_b - pa.width_m / 2,
                            vehicle=not walk,
                            entering_vehicle=pb.kind != "ped",
                            floor_ms=0 if walk else floor,
                        ),
                    )
        if walk:
            need = max(need, *(pl.timings[int(a[1])].ped_clear_ms for pl in site.plans.values()))
        out[(a, b)] = need
    return out


def _change_ms(site: Site, key: SignalKey) -> int:
    """A vehicle group's longest yellow (every plan; never below the site's minimum)."""
    kind, ident = key
    if kind is SignalKind.OVERLAP:
        yellow = next(o.yellow_ms for o in site.overlaps if o.id == ident)
    else:
        yellow = max(pl.timings[int(ident)].yellow_ms for pl in site.plans.values())
    return max(yellow, site.safety.min_yellow_ms)
