"""Demand of a generated scenario: one-turn routes, Poisson flows in time slices.

Rules this module keeps:
- Vehicles enter at a fringe node and drive straight along their street; at
  each signal they meet they turn left with probability `left`, right with
  `right` (renormalised where an exit is missing), and after one turn drive
  straight to the fringe. So every signal sees the drawn turning shares, and
  a grid's route count stays linear in its size.
- An origin's rate is its base (veh/h) times its slice's multiplier; each
  (route, slice) is a flow with `period="exp(rate/3600)"`, so a run is fixed
  by SUMO's --seed. Vehicle type: a car/truck distribution with the drawn
  heavy-vehicle share.
- Emergency vehicles (when drawn) run the length of each main street both
  ways; pedestrians (when drawn) walk along every street on the sidewalks and
  cross at the signals.
- Output is text in a fixed order, rates rounded: same inputs, same bytes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from sim.sumo.gen.geometry import ARMS, Layout, edges_between, neighbour

# A flow below this (veh/h) is left out: it would add an id, hardly a vehicle.
MIN_RATE_VPH = 0.5


@dataclass(frozen=True, slots=True)
class Demand:
    base_vph: dict[str, float]  # fringe node -> vehicles per hour entering there
    slices: dict[str, tuple[float, ...]]  # fringe node -> multiplier per time slice
    left: float  # turning shares at each signal
    right: float
    heavy: float  # share of trucks
    emergency_vph: float = 0.0  # per main-street direction
    pedestrians_ph: float = 0.0  # per street direction


def _walk(lay: Layout, origin: str) -> tuple[int, int, int]:
    """The first signal (row, col) from a fringe node and the arm index it enters by."""
    arm, k = origin[0], int(origin[1:])
    r = {"N": len(lay.ys) - 1, "S": 0}.get(arm, k)
    c = {"E": len(lay.xs) - 1, "W": 0}.get(arm, k)
    return r, c, ARMS.index(arm)


def _straight(lay: Layout, r: int, c: int, arm_in: int) -> list[str]:
    """Nodes from junction (r, c) straight on (entering from arm index arm_in) to the fringe."""
    nodes = [f"J{r}_{c}"]
    out = ARMS[(arm_in + 2) % 4]
    while True:
        nxt = neighbour(lay, r, c, out)
        if nxt is None:
            return []
        nodes.append(nxt)
        if not nxt.startswith("J"):
            return nodes
        r, c = (int(x) for x in nxt[1:].split("_"))


def routes(lay: Layout, origin: str, left: float, right: float) -> list[tuple[list[str], float]]:
    """(node path, probability) for every one-turn route from a fringe node."""
    r, c, a = _walk(lay, origin)
    out: list[tuple[list[str], float]] = []
    prefix = [origin]
    p_on = 1.0
    while True:
        here = f"J{r}_{c}"
        prefix = [*prefix, here]
        exits = {
            t: neighbour(lay, r, c, ARMS[(a + s) % 4]) for t, s in (("T", 2), ("L", 1), ("R", 3))
        }
        shares = {"L": left, "R": right}
        shares["T"] = 1.0 - left - right
        live = {t: shares[t] for t, n in exits.items() if n is not None}
        total = sum(live.values())
        for t in ("L", "R"):
            if t in live:
                arm_in = (a + {"L": 1, "R": 3}[t] + 2) % 4  # the arm we come in by after turning
                tail = _straight(lay, r, c, arm_in)
                out.append(([*prefix[:-1], *tail], p_on * live[t] / total))
        if "T" not in live:
            return out
        p_on *= live["T"] / total
        nxt = exits["T"]
        assert nxt is not None
        if not nxt.startswith("J"):
            out.append(([*prefix, nxt], p_on))
            return out
        r, c = (int(x) for x in nxt[1:].split("_"))


def _edges(lay: Layout, nodes: list[str]) -> str:
    return " ".join(e for a, b in itertools.pairwise(nodes) for e in edges_between(lay, a, b))


VTYPES = (
    '    <vType id="car" accel="2.6" decel="4.5" sigma="0.5" length="5.0" minGap="2.5" '
    'maxSpeed="27.8"/>',
    '    <vType id="truck" vClass="truck" accel="1.2" decel="4.0" sigma="0.5" length="12.0" '
    'minGap="3.0" maxSpeed="25.0"/>',
    '    <vType id="emergency" vClass="emergency" accel="2.6" decel="4.5" length="6.5" '
    'maxSpeed="30.0" speedFactor="1.2" guiShape="emergency"/>',
)


def routes_xml(lay: Layout, dem: Demand, duration_s: float) -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!-- Generated (sim/sumo/gen): Poisson flows, period=exp(veh/s), fixed by the seed. -->",
        "<routes>",
        *VTYPES,
    ]
    vtype = "car"
    if dem.heavy > 0:
        vtype = "mix"
        lines.append(
            f'    <vTypeDistribution id="mix" vTypes="car truck" '
            f'probabilities="{1 - dem.heavy:.3f} {dem.heavy:.3f}"/>'
        )
    origins = sorted(dem.base_vph)
    flows: list[str] = []
    for o in origins:
        for k, (nodes, p) in enumerate(routes(lay, o, dem.left, dem.right)):
            rid = f"r_{o}_{k}"
            lines.append(f'    <route id="{rid}" edges="{_edges(lay, nodes)}"/>')
            mults = dem.slices[o]
            span = duration_s / len(mults)
            for s, m in enumerate(mults):
                vph = dem.base_vph[o] * m * p
                if vph < MIN_RATE_VPH:
                    continue
                flows.append(
                    f'    <flow id="f_{o}_{k}_{s}" type="{vtype}" route="{rid}" '
                    f'begin="{s * span:g}" end="{(s + 1) * span:g}" '
                    f'period="exp({vph / 3600:.6f})" departLane="best" departSpeed="max"/>'
                )
    if dem.emergency_vph > 0:
        for r in range(len(lay.ys)):
            for o, d in ((f"W{r}", f"E{r}"), (f"E{r}", f"W{r}")):
                nodes = [o, *_row(lay, r, reverse=o.startswith("E")), d]
                flows.append(
                    f'    <flow id="ev_{o}" type="emergency" begin="0" end="{duration_s:g}" '
                    f'period="exp({dem.emergency_vph / 3600:.6f})" departLane="best" '
                    f'departSpeed="max"><route edges="{_edges(lay, nodes)}"/></flow>'
                )
    if dem.pedestrians_ph > 0:
        flows += _walkers(lay, dem.pedestrians_ph, duration_s)
    # SUMO reads route files in departure order and drops (with a warning) what
    # comes after a later begin: walkers listed last never walked.
    lines += sorted(flows, key=_begin)
    lines.append("</routes>")
    return "\n".join(lines) + "\n"


def _begin(line: str) -> float:
    return float(line.split('begin="')[1].split('"')[0])


def _row(lay: Layout, r: int, reverse: bool) -> list[str]:
    cols = range(len(lay.xs) - 1, -1, -1) if reverse else range(len(lay.xs))
    return [f"J{r}_{c}" for c in cols]


def _walkers(lay: Layout, per_hour: float, duration_s: float) -> list[str]:
    """Person flows along each street, both ways, fringe to fringe (crossing the side streets)."""
    out = []
    rate = f"exp({per_hour / 3600:.6f})"
    ends: list[tuple[str, str]] = []
    for r in range(len(lay.ys)):
        ends += [(f"W{r}", f"E{r}"), (f"E{r}", f"W{r}")]
    if not lay.tee:
        for c in range(len(lay.xs)):
            ends += [(f"S{c}", f"N{c}"), (f"N{c}", f"S{c}")]
    for o, d in ends:
        first = _walk(lay, o)
        last = _walk(lay, d)
        start = edges_between(lay, o, f"J{first[0]}_{first[1]}")[0]
        stop = f"J{last[0]}_{last[1]}_{d}"
        out.append(
            f'    <personFlow id="p_{o}_{d}" begin="0" end="{duration_s:g}" period="{rate}">'
            f'<walk from="{start}" to="{stop}"/></personFlow>'
        )
    return out
