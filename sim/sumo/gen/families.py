"""Scenario families: what a seed draws, and how.

Rules this module keeps:
- All randomness comes from one random.Random seeded with "FAMILY-SEED"
  (string seeding is stable across Python runs and machines), drawn in a
  fixed order: the same family and seed give the same scenario.
- Families: `tee` (a T junction), `cross` (a 4-leg junction, pockets drawn),
  `shared` (a 4-leg junction, no pockets: lefts share the through lane and
  turn permissively), `arterial` (2-6 signals in a row, uneven spacing),
  `grid` (2x2 up to 4x4). Each street draws 1-3 through lanes (an approach
  has up to 4 with its pocket), 30-80 km/h; the scenario draws a
  heavy-vehicle share (0-20 %), pedestrians (single junctions at up to
  50 km/h), emergency vehicles (arterials and grids).
- Demand: a level (off-peak, moderate, peak, over-saturated) names a target
  degree of saturation x of the busiest street pair (two-phase critical lane
  flows against 1,800 veh/h per lane, 15 % lost time); a shape (symmetric or
  lopsided directions); a profile (flat, ramp, or a one-sided late peak) in
  four time slices; turning shares 5-50 % of traffic, split left/right.
- `level` (and only it) can be pinned by the caller: the suite spreads levels
  evenly rather than trusting chance.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from sim.sumo.gen.demand import Demand
from sim.sumo.gen.geometry import Layout, Street

FAMILIES = ("tee", "cross", "shared", "arterial", "grid")
LEVELS = {  # target degree of saturation of the busiest street pair
    "off-peak": (0.25, 0.40),
    "moderate": (0.50, 0.65),
    "peak": (0.70, 0.85),
    "over-saturated": (0.95, 1.15),
}
PROFILES = ("flat", "ramp", "late-peak")
SPEEDS_KMH = (30, 40, 50, 60, 70, 80)
SAT_FLOW_VPH = 1800.0
USABLE = 0.85  # green share left after lost time
# Simulated length: long enough for queues to form, short enough for the suite's budget.
DURATION_S = {"tee": 1200.0, "cross": 1200.0, "shared": 1200.0, "arterial": 900.0, "grid": 900.0}


@dataclass(frozen=True, slots=True)
class Drawn:
    family: str
    seed: int
    layout: Layout
    demand: Demand
    duration_s: float
    meta: dict[str, Any] = field(default_factory=dict)  # what was drawn, for the README/JSON


def _street(rng: random.Random, pockets: bool | None, max_lanes: int = 3) -> Street:
    lanes = rng.randint(1, max_lanes)
    speed = rng.choice(SPEEDS_KMH)
    pocket = rng.random() < 0.6 if pockets is None else pockets
    return Street(lanes, speed, pocket, float(rng.randint(4, 10) * 10))


def _spacing(rng: random.Random, n: int, lo: int, hi: int) -> tuple[float, ...]:
    xs = [0.0]
    for _ in range(n - 1):
        xs.append(xs[-1] + rng.randint(lo // 10, hi // 10) * 10)
    return tuple(xs)


def draw(family: str, seed: int, level: str | None = None) -> Drawn:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}: choose from {', '.join(FAMILIES)}")
    if level is not None and level not in LEVELS:
        raise ValueError(f"unknown level {level!r}: choose from {', '.join(LEVELS)}")
    rng = random.Random(f"{family}-{seed}")
    fringe = float(rng.randint(20, 40) * 10)
    if family in ("tee", "cross", "shared"):
        pockets = False if family == "shared" else None
        main = _street(rng, pockets)
        side = _street(rng, pockets, max_lanes=2)
        if family == "shared" and main.lanes == 1:
            main = Street(2, main.speed_kmh, False)  # a shared left needs a through beside it
        peds = max(main.speed_kmh, side.speed_kmh) <= 50 and rng.random() < 0.5
        lay = Layout(
            (0.0,), (0.0,), (main,), (side,), fringe, tee=family == "tee", pedestrians=peds
        )
    elif family == "arterial":
        n = rng.randint(2, 6)
        main = _street(rng, None)
        cols = tuple(_street(rng, rng.random() < 0.4, max_lanes=2) for _ in range(n))
        lay = Layout(_spacing(rng, n, 150, 600), (0.0,), (main,), cols, fringe)
    else:
        nr, nc = rng.randint(2, 4), rng.randint(2, 4)
        rows = tuple(_street(rng, rng.random() < 0.5, max_lanes=2) for _ in range(nr))
        cols = tuple(_street(rng, rng.random() < 0.5, max_lanes=2) for _ in range(nc))
        lay = Layout(_spacing(rng, nc, 200, 400), _spacing(rng, nr, 200, 400), rows, cols, fringe)
    drawn_level = rng.choice(sorted(LEVELS))
    level = level or drawn_level
    x = rng.uniform(*LEVELS[level])
    lopsided = rng.random() < 0.5
    profile = rng.choice(PROFILES)
    turning = rng.uniform(0.05, 0.50)
    left_part = rng.uniform(0.3, 0.7)
    heavy = rng.choice((0.0, 0.0, 0.05, 0.1, 0.2))
    base = _base_rates(rng, lay, x, lopsided)
    slices = _slices(rng, sorted(base), profile)
    ev = rng.choice((0.0, 4.0, 8.0)) if family in ("arterial", "grid") else 0.0
    peds_ph = float(rng.randint(6, 30) * 10) if lay.pedestrians else 0.0
    dem = Demand(
        base_vph=base,
        slices=slices,
        left=round(turning * left_part, 3),
        right=round(turning * (1 - left_part), 3),
        heavy=heavy,
        emergency_vph=ev,
        pedestrians_ph=peds_ph,
    )
    meta = {
        "family": family,
        "seed": seed,
        "signals": len(lay.xs) * len(lay.ys),
        "grid": f"{len(lay.ys)}x{len(lay.xs)}",
        "level": level,
        "saturation_target": round(x, 2),
        "shape": "lopsided" if lopsided else "symmetric",
        "profile": profile,
        "turning_share": round(turning, 3),
        "left_share": dem.left,
        "right_share": dem.right,
        "heavy_share": heavy,
        "pedestrians_per_h": peds_ph,
        "emergency_per_h": ev,
        "streets_ew": [_describe(s) for s in lay.rows],
        "streets_ns": [_describe(s) for s in lay.cols],
        "spacing_m": [round(b - a) for a, b in zip(lay.xs, lay.xs[1:], strict=False)],
        "demand_vph": {k: round(v) for k, v in sorted(base.items())},
    }
    return Drawn(family, seed, lay, dem, DURATION_S[family], meta)


def _describe(s: Street) -> str:
    pocket = f", {s.pocket_m:g} m left pockets" if s.pocket else ""
    return f"{s.lanes} lane(s), {s.speed_kmh} km/h{pocket}"


def _origins(lay: Layout) -> tuple[list[str], list[str]]:
    """Fringe nodes on the east-west streets and on the north-south streets."""
    ew = [f"{a}{r}" for r in range(len(lay.ys)) for a in ("E", "W")]
    ns = [f"S{c}" for c in range(len(lay.xs))]
    if not lay.tee:
        ns += [f"N{c}" for c in range(len(lay.xs))]
    return ew, ns


def _base_rates(rng: random.Random, lay: Layout, x: float, lopsided: bool) -> dict[str, float]:
    """veh/h per origin: direction factors, scaled so the busiest pair's critical flows hit x."""
    ew, ns = _origins(lay)
    side = rng.uniform(0.3, 0.9)
    factor: dict[str, float] = {}
    heavy_ew = rng.choice(("E", "W"))
    heavy_ns = rng.choice(("N", "S"))
    for o in ew:
        factor[o] = 1.0 if not lopsided or o[0] == heavy_ew else rng.uniform(0.35, 0.7)
    for o in ns:
        f = side if not lopsided or o[0] == heavy_ns else side * rng.uniform(0.3, 0.7)
        factor[o] = f * rng.uniform(0.8, 1.2)
    # Critical lane flow per street direction (per through lane), the worst street pair.
    lanes = {
        o: (lay.rows[int(o[1:])] if o[0] in "EW" else lay.cols[int(o[1:])]).lanes for o in factor
    }
    main = max(factor[o] / lanes[o] for o in ew)
    cross = max(factor[o] / lanes[o] for o in ns)
    scale = x * SAT_FLOW_VPH * USABLE / (main + cross)
    return {o: round(factor[o] * scale, 1) for o in sorted(factor)}


def _slices(rng: random.Random, origins: list[str], profile: str) -> dict[str, tuple[float, ...]]:
    if profile == "flat":
        return {o: (1.0, 1.0, 1.0, 1.0) for o in origins}
    if profile == "ramp":
        return {o: (0.55, 0.75, 0.95, 1.15) for o in origins}
    peak = rng.choice([o for o in origins if o[0] in "EW"])  # one main-street direction
    return {o: (0.7, 0.7, 1.3, 1.6) if o == peak else (1.0, 1.0, 1.0, 1.0) for o in origins}
