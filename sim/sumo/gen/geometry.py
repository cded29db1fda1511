"""Geometry of a generated scenario: a rectangular lattice of signals, as plain XML.

Rules this module keeps:
- Every network is rows x columns of signalised junctions (a lone T or 4-leg
  junction is 1 x 1); streets run east-west (one per row, the main streets)
  and north-south (one per column). A T junction has no north arm.
- Each street has its through lanes per direction (1-3), a speed and a
  left-turn pocket flag. An approach has the street's through lanes, plus one
  pocket lane where it has a left exit and the street has pockets: the pocket
  is its own short edge (from a priority node `pocket_m` before the stop line),
  so the upstream part keeps the street's lane count.
- Every connection at a signal is written out (.con.xml): through lane i to
  exit lane i, the right turn from lane 0 to the exit's lane 0, the left turn
  from the leftmost lane (the pocket, else shared with the through: a
  permissive left) to the exit's leftmost lane. A T's side road turns right
  from lane 0 and left from its leftmost lane (one lane: both from it).
  With pedestrians every edge has a sidewalk, which SUMO makes lane 0: the
  connections count from lane 1 then.
- Ids are stable and readable: junction J{row}_{col}; fringe nodes
  N{col}, S{col}, E{row}, W{row}; edge A_B from node A to node B, its
  upstream part A_B_u where a pocket splits it.
- Output is text built in a fixed order: the same layout gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

ARMS = ("N", "E", "S", "W")  # clockwise: from arm a, through exits at a+2, left a+1, right a+3


@dataclass(frozen=True, slots=True)
class Street:
    lanes: int  # through lanes per direction
    speed_kmh: int
    pocket: bool  # a left-turn pocket lane on each approach with a left exit
    pocket_m: float = 60.0

    @property
    def speed_mps(self) -> float:
        return round(self.speed_kmh / 3.6, 2)


@dataclass(frozen=True, slots=True)
class Layout:
    xs: tuple[float, ...]  # signal column positions, m, increasing
    ys: tuple[float, ...]  # signal row positions, m, increasing (north is +y)
    rows: tuple[Street, ...]  # the east-west street of each row
    cols: tuple[Street, ...]  # the north-south street of each column
    fringe_m: float  # from an outer signal to its fringe node
    tee: bool = False  # 1 x 1 without the north arm
    pedestrians: bool = False  # sidewalks and crossings (netconvert guesses them)

    def __post_init__(self) -> None:
        if len(self.xs) != len(self.cols) or len(self.ys) != len(self.rows):
            raise ValueError("one street per row and per column")
        if self.tee and (len(self.xs), len(self.ys)) != (1, 1):
            raise ValueError("a T is a lone junction")


def junction(r: int, c: int) -> str:
    return f"J{r}_{c}"


def signals(lay: Layout) -> list[str]:
    return [junction(r, c) for r in range(len(lay.ys)) for c in range(len(lay.xs))]


def neighbour(lay: Layout, r: int, c: int, arm: str) -> str | None:
    """The node at the end of arm `arm` of junction (r, c): a signal, a fringe node, or None."""
    if arm == "N" and lay.tee:
        return None
    dr, dc = {"N": (1, 0), "S": (-1, 0), "E": (0, 1), "W": (0, -1)}[arm]
    rr, cc = r + dr, c + dc
    if 0 <= rr < len(lay.ys) and 0 <= cc < len(lay.xs):
        return junction(rr, cc)
    return f"{arm}{c}" if arm in "NS" else f"{arm}{r}"


def _pos(lay: Layout, node: str) -> tuple[float, float]:
    if node.startswith("J"):
        r, c = (int(x) for x in node[1:].split("_"))
        return lay.xs[c], lay.ys[r]
    arm, k = node[0], int(node[1:])
    f = lay.fringe_m
    if arm == "N":
        return lay.xs[k], lay.ys[-1] + f
    if arm == "S":
        return lay.xs[k], lay.ys[0] - f
    if arm == "E":
        return lay.xs[-1] + f, lay.ys[k]
    return lay.xs[0] - f, lay.ys[k]


def _rc(node: str) -> tuple[int, int]:
    r, c = (int(x) for x in node[1:].split("_"))
    return r, c


@dataclass(frozen=True, slots=True)
class Approach:
    """One edge into a signal, from arm `arm` of junction `to`."""

    frm: str
    to: str
    arm: str
    street: Street
    exits: dict[str, str]  # turn (L, T, R) -> the node it leads to
    pocket: bool

    @property
    def edge(self) -> str:
        return f"{self.frm}_{self.to}"

    @property
    def lanes(self) -> int:
        return self.street.lanes + (1 if self.pocket else 0)


def street_of(lay: Layout, r: int, c: int, arm: str) -> Street:
    return lay.rows[r] if arm in "EW" else lay.cols[c]


def approaches(lay: Layout) -> list[Approach]:
    out = []
    for r in range(len(lay.ys)):
        for c in range(len(lay.xs)):
            for k, arm in enumerate(ARMS):
                frm = neighbour(lay, r, c, arm)
                if frm is None:
                    continue
                exits = {}
                for turn, step in (("T", 2), ("L", 1), ("R", 3)):
                    to = neighbour(lay, r, c, ARMS[(k + step) % 4])
                    if to is not None:
                        exits[turn] = to
                street = street_of(lay, r, c, arm)
                pocket = street.pocket and "L" in exits and "T" in exits
                out.append(Approach(frm, junction(r, c), arm, street, exits, pocket))
    return out


def edges_between(lay: Layout, a: str, b: str) -> list[str]:
    """The edges a vehicle drives from node a to the adjacent node b (pocket split kept)."""
    split = any(ap.frm == a and ap.to == b and ap.pocket for ap in approaches(lay))
    return [f"{a}_{b}_u", f"{a}_{b}"] if split else [f"{a}_{b}"]


def nodes_xml(lay: Layout) -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!-- Generated (sim/sumo/gen). -->",
        "<nodes>",
    ]
    for j in signals(lay):
        x, y = _pos(lay, j)
        lines.append(f'    <node id="{j}" x="{x:g}" y="{y:g}" type="traffic_light"/>')
    fringe = sorted({n for ap in approaches(lay) for n in (ap.frm,) if not n.startswith("J")})
    for n in fringe:
        x, y = _pos(lay, n)
        lines.append(f'    <node id="{n}" x="{x:g}" y="{y:g}" type="priority"/>')
    for ap in approaches(lay):
        if ap.pocket:
            (x0, y0), (x1, y1) = _pos(lay, ap.frm), _pos(lay, ap.to)
            length = abs(x1 - x0) + abs(y1 - y0)
            f = ap.street.pocket_m / length
            x, y = x1 + (x0 - x1) * f, y1 + (y0 - y1) * f
            lines.append(f'    <node id="P{ap.edge}" x="{x:g}" y="{y:g}" type="priority"/>')
    lines.append("</nodes>")
    return "\n".join(lines) + "\n"


def _edge_line(eid: str, a: str, b: str, lanes: int, st: Street, prio: int, sidewalk: bool) -> str:
    walk = ' sidewalkWidth="2"' if sidewalk else ""
    return (
        f'    <edge id="{eid}" from="{a}" to="{b}" numLanes="{lanes}" '
        f'speed="{st.speed_mps:g}" priority="{prio}"{walk}/>'
    )


def edges_xml(lay: Layout) -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!-- Generated (sim/sumo/gen). -->",
        "<edges>",
    ]
    aps = approaches(lay)
    done: set[str] = set()
    walk = lay.pedestrians
    for ap in aps:
        prio = 3 if ap.arm in "EW" else 2
        if ap.pocket:
            lines.append(
                _edge_line(
                    f"{ap.edge}_u", ap.frm, f"P{ap.edge}", ap.street.lanes, ap.street, prio, walk
                )
            )
            lines.append(_edge_line(ap.edge, f"P{ap.edge}", ap.to, ap.lanes, ap.street, prio, walk))
        else:
            lines.append(_edge_line(ap.edge, ap.frm, ap.to, ap.lanes, ap.street, prio, walk))
        done.add(ap.edge)
    # Edges out to the fringe (edges between signals are some signal's approach).
    for ap in aps:
        if not ap.frm.startswith("J"):
            eid = f"{ap.to}_{ap.frm}"
            if eid not in done:
                prio = 3 if ap.arm in "EW" else 2
                lines.append(_edge_line(eid, ap.to, ap.frm, ap.street.lanes, ap.street, prio, walk))
                done.add(eid)
    lines.append("</edges>")
    return "\n".join(lines) + "\n"


def _out_lanes(lay: Layout, a: str, b: str) -> int:
    """Lanes of the first edge from node a towards b (the upstream part where split)."""
    for ap in approaches(lay):
        if ap.frm == a and ap.to == b:
            return ap.street.lanes if ap.pocket else ap.lanes
    r, c = _rc(a)
    arm = b[0] if not b.startswith("J") else None
    if arm is None:
        raise ValueError(f"no edge {a} -> {b}")
    return street_of(lay, r, c, arm).lanes


def connections_xml(lay: Layout) -> str:
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        "<!-- Generated (sim/sumo/gen): every lane's turns at each signal. -->",
        "<connections>",
    ]
    sw = 1 if lay.pedestrians else 0

    def con(a: str, b: str, i: int, j: int) -> str:
        return f'    <connection from="{a}" to="{b}" fromLane="{i + sw}" toLane="{j + sw}"/>'

    for ap in approaches(lay):
        if ap.pocket:  # the upstream part feeds its lanes straight on, the leftmost also the pocket
            up = ap.street.lanes
            for i in range(up):
                lines.append(con(f"{ap.edge}_u", ap.edge, i, i))
            lines.append(con(f"{ap.edge}_u", ap.edge, up - 1, up))
        top = ap.lanes - 1
        for turn in ("R", "T", "L"):
            to = ap.exits.get(turn)
            if to is None:
                continue
            out = f"{ap.to}_{to}" + ("_u" if _split(lay, ap.to, to) else "")
            n_out = _out_lanes(lay, ap.to, to)
            if turn == "T":
                for i in range(ap.street.lanes):
                    lines.append(con(ap.edge, out, i, min(i, n_out - 1)))
            elif turn == "R":
                lines.append(con(ap.edge, out, 0, 0))
            elif "T" in ap.exits or ap.lanes == 1:
                lines.append(con(ap.edge, out, top, n_out - 1))
            else:  # a T's side road: right from lane 0, left from every other lane
                for i in range(1, ap.lanes):
                    lines.append(con(ap.edge, out, i, min(i - 1, n_out - 1) if n_out > 1 else 0))
    lines.append("</connections>")
    return "\n".join(lines) + "\n"


def _split(lay: Layout, a: str, b: str) -> bool:
    return len(edges_between(lay, a, b)) == 2
