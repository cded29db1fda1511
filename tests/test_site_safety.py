"""Unsafe sites are refused: only a permissive left yields, and a green arrow never does.

Pinned: issue 15's two site files (a `permissive` through beside the opposing
protected left, and beside the walk across its path) and a flashing-yellow-arrow
head whose green arrow showed beside the walk it turns across, all accepted by
`edge check` before; a protected right-turn arrow against the walk across its
path (`--matrix`), and streams let off the walk across the arm they enter by.

Properties (Hypothesis), against an oracle written here from the rules alone
(streams as chords on the plane, yielding as the README states it): for random
junctions and services the geometry lets a stream off a conflict only where it
truly yields; for random phasings edge.config either refuses the site or its
table is exactly the oracle's, no two displays that can show together conflict
(a flashing-yellow-arrow head judged as a green arrow with its parents and as a
yielding left with its permissive parents), and the software monitor's and the
IO board's conflict masks are that table.
"""

from __future__ import annotations

import contextlib
import copy
import math
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from edge.board.config import board_config
from edge.config import ConfigError, compatibility_matrix, load_site, site_from_dict
from edge.control import geometry
from edge.control.geometry import Service, Stream
from edge.control.messages import Lamp, Outputs
from edge.control.monitor import Monitor
from edge.control.site import Approach, Movement, SignalKey, SignalKind, Site, Turn
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tests.control.timeline import NEMA_PHASES
from tests.hypothesis_profiles import examples

ROOT = Path(__file__).resolve().parents[1]
SITES = ROOT / "tests" / "sites"
T_JUNCTION = ROOT / "examples" / "t_junction.toml"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", *args], capture_output=True, text=True, cwd=ROOT
    )


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as err:
        site_from_dict(raw, "site.toml")
    return err.value.problems


# --- pinned unsafe sites -------------------------------------------------------------

NOT_A_LEFT = (
    "phase 2: permissive: W.T is not a left turn; only a left turn can be permissive "
    "(yield to opposing traffic and pedestrians): a through or right turn never yields, "
    "so list it in movements"
)
UNSAFE = {
    "permissive_through_beside_opposing_left.toml": NOT_A_LEFT,
    "permissive_through_beside_its_walk.toml": NOT_A_LEFT,
    "fya_arrow_beside_its_walk.toml": (
        "overlap F: its green arrow shows with phase 1, which does not serve E.L protected "
        '(give phase 1 movements = ["E.L"])'
    ),
}


@pytest.mark.parametrize("name", sorted(UNSAFE))
def test_edge_check_refuses_the_unsafe_site(name: str) -> None:
    res = run_cli("check", str(SITES / name))
    assert res.returncode == 1
    assert f"{SITES / name}: {UNSAFE[name]}" in res.stderr, res.stderr
    with pytest.raises(ConfigError) as err:
        load_site(SITES / name)
    assert err.value.problems == [UNSAFE[name]]


def test_the_through_listed_as_protected_is_refused_beside_the_opposing_left() -> None:
    raw = tomllib.loads((SITES / "permissive_through_beside_opposing_left.toml").read_text())
    raw["phases"][0]["movements"] = raw["phases"][0].pop("permissive")
    assert problems(raw) == ["phase 2 and phase 5 can time together but W.T conflicts with E.L"]


def test_the_fya_left_shown_by_its_protected_phase_is_refused_beside_its_walk() -> None:
    raw = tomllib.loads((SITES / "fya_arrow_beside_its_walk.toml").read_text())
    raw["phases"][0]["movements"] = ["E.L"]
    assert problems(raw) == [
        "phase 1 and the crosswalk of phase 6 can time together but E.L conflicts with crosswalk S"
    ]


def test_a_flashing_yellow_arrow_serves_lefts_only() -> None:
    raw = tomllib.loads(T_JUNCTION.read_text())
    raw["overlaps"][1]["movements"] = ["E.T"]
    assert (
        "overlap B: a flashing-yellow-arrow overlap serves left turns; E.T is not one"
        in problems(raw)
    )


def _walk_site(phase: dict[str, Any]) -> dict[str, Any]:
    raw = tomllib.loads((SITES / "permissive_through_beside_its_walk.toml").read_text())
    raw["phases"][0] = {"id": 2, "ring": 1, "group": 1, "start_up": True, **phase}
    return raw


@pytest.mark.parametrize(
    ("phase", "stream"),
    [
        ({"movements": ["W.R"], "ped_crossing": "W"}, "W.R"),
        ({"permissive": ["W.L"], "ped_crossing": "W"}, "W.L"),
    ],
)
def test_no_stream_yields_to_the_walk_across_the_arm_it_enters_by(
    phase: dict[str, Any], stream: str
) -> None:
    """A right turn on a circular green and a permissive left yield to the walk across
    the arm they turn into, never to the one they drive through before turning."""
    assert problems(_walk_site(phase)) == [
        f"phase 2 and the crosswalk of phase 2 can time together but {stream} conflicts "
        "with crosswalk W"
    ]
    exit_arm = {"W.R": "S", "W.L": "N"}[stream]
    site_from_dict(_walk_site({**phase, "ped_crossing": exit_arm}))  # the one it turns into


# --- the protected right-turn arrow against the walk across its path -----------------


def _matrix(text: str) -> dict[tuple[str, str], str]:
    lines = text.splitlines()
    header = lines[0].split()
    return {
        (row.split()[0], col): mark
        for row in lines[1:-1]
        for col, mark in zip(header, row.split()[1:], strict=True)
    }


def test_matrix_shows_the_right_turn_arrow_in_conflict_with_the_walk_across_its_path() -> None:
    res = run_cli("check", "--matrix", str(T_JUNCTION))
    assert res.returncode == 0, res.stderr
    marks = _matrix(res.stdout.split("\n", 1)[1])
    assert marks[("OA", "Ped2")] == marks[("Ped2", "OA")] == "X"
    site = load_site(T_JUNCTION)
    assert ((SignalKind.OVERLAP, "A"), (SignalKind.PED, 2)) in site.conflicts
    assert _matrix(compatibility_matrix(site))[("OA", "Ped2")] == "X"


def test_the_monitor_and_the_board_hold_the_arrow_against_the_walk() -> None:
    site = load_site(T_JUNCTION)
    chan = {(c.kind, c.source): i for i, c in enumerate(site.channels)}
    arrow, walk = chan[(SignalKind.OVERLAP, "A")], chan[(SignalKind.PED, 2)]
    masks = board_config(site).conflicts
    assert masks[arrow] >> walk & 1 and masks[walk] >> arrow & 1
    monitor = Monitor(site)
    red = tuple(Lamp.RED for _ in site.phases)
    peds = tuple(Lamp.RED if p.ped_crossing else Lamp.DARK for p in site.phases)
    overlaps = tuple(Lamp.RED for _ in site.overlaps)
    assert monitor.check(0, Outputs(0, "run", (), red, peds, overlaps)) is None
    walking = tuple(
        Lamp.GREEN if p.id == 2 else lamp for p, lamp in zip(site.phases, peds, strict=True)
    )
    arrow_on = (Lamp.GREEN, *overlaps[1:])  # overlap A is the first
    fault = monitor.check(5000, Outputs(5000, "run", (), red, walking, arrow_on))
    assert fault is not None and fault.startswith("conflict:") and "overlap A" in fault


# --- the oracle: the rules, restated on the plane ---------------------------------------

_SIDE_DEG = 1.0  # a stream enters left of its arm's centre line and leaves right of it


def _point(bearing: float) -> tuple[float, float]:
    rad = math.radians(bearing)
    return (math.sin(rad), math.cos(rad))


def _segments_cross(p: Iterable[tuple[float, float]], q: Iterable[tuple[float, float]]) -> bool:
    (a, b), (c, d) = p, q

    def orient(o: tuple[float, float], x: tuple[float, float], y: tuple[float, float]) -> float:
        return (x[0] - o[0]) * (y[1] - o[1]) - (x[1] - o[1]) * (y[0] - o[0])

    return orient(a, b, c) * orient(a, b, d) < 0 and orient(c, d, a) * orient(c, d, b) < 0


@dataclass(frozen=True)
class Oracle:
    arms: dict[str, float]

    def path(self, m: Movement) -> tuple[tuple[float, float], tuple[float, float]]:
        return (_point(self.arms[m.approach] - _SIDE_DEG), _point(self.arms[m.to] + _SIDE_DEG))

    def opposite(self, arm: str) -> str | None:
        """The arm straight across, within 60 degrees."""
        best = None
        for other, bearing in self.arms.items():
            off = abs((bearing - self.arms[arm]) % 360 - 180)  # from straight across
            if other != arm and off <= 60 and (best is None or off < best[0]):
                best = (off, other)
        return None if best is None else best[1]

    def meet(self, a: Movement, b: Movement) -> bool:
        if a.approach == b.approach:
            return False
        return a.to == b.to or _segments_cross(self.path(a), self.path(b))

    def vehicles(self, a: Stream, b: Stream) -> bool:
        """Do the two streams conflict with nobody yielding?"""
        if not self.meet(a.movement, b.movement):
            return False
        for x, y in ((a, b), (b, a)):
            left = x.service is Service.PERMISSIVE and x.movement.turn is Turn.LEFT
            if left and self.opposite(x.movement.approach) == y.movement.approach:
                return False
        return True

    def walk(self, s: Stream, arm: str) -> bool:
        m = s.movement
        if arm not in (m.approach, m.to):
            return False
        turning_into = arm == m.to
        permissive_left = s.service is Service.PERMISSIVE and m.turn is Turn.LEFT
        ball_right = s.service is Service.BALL and m.turn is Turn.RIGHT
        return not (turning_into and (permissive_left or ball_right))


# --- property: the geometry lets off only what yields -------------------------------


@st.composite
def junctions(draw: st.DrawFn) -> list[Approach]:
    n = draw(st.integers(2, 6))
    start = draw(st.integers(0, 359))
    gaps = draw(st.lists(st.integers(25, 150), min_size=n - 1, max_size=n - 1))
    if sum(gaps) > 335:
        gaps = [25] * (n - 1)
    bearings, b = [], start
    for gap in [0, *gaps]:
        b += gap
        bearings.append(b % 360)
    return [Approach(f"A{i}", float(x)) for i, x in enumerate(bearings)]


@st.composite
def streams(draw: st.DrawFn, approaches: list[Approach]) -> list[Stream]:
    found = []
    for a in approaches:
        for turn in "LTR":
            with contextlib.suppress(geometry.GeometryError):  # no arm to leave by
                found.append(geometry.resolve_movement(f"{a.id}.{turn}", approaches))
    picked = draw(st.lists(st.sampled_from(found), min_size=1, max_size=8)) if found else []
    out = []
    for m in picked:
        kinds = list(Service) if m.turn is Turn.LEFT else [Service.BALL, Service.ARROW]
        out.append(Stream(m, draw(st.sampled_from(kinds))))
    return out


@given(data=st.data())
@settings(max_examples=examples(300), deadline=None)
def test_geometry_lets_a_stream_off_only_where_it_yields(data: st.DataObject) -> None:
    approaches = data.draw(junctions())
    chosen = data.draw(streams(approaches))
    oracle = Oracle({a.id: a.bearing_deg for a in approaches})
    for a in chosen:
        for b in chosen:
            assert geometry.vehicle_conflict(a, b, approaches) == oracle.vehicles(a, b), (a, b)
        for arm in oracle.arms:
            assert geometry.ped_conflict(a, arm) == oracle.walk(a, arm), (a, arm)
            if a.movement.turn is Turn.THROUGH or a.service is Service.ARROW:
                touches = arm in (a.movement.approach, a.movement.to)
                assert geometry.ped_conflict(a, arm) == touches  # never yields to a walk


@pytest.mark.parametrize("turn", ["T", "R"])
def test_only_a_left_can_be_a_permissive_stream(turn: str) -> None:
    arms = [Approach("N", 0), Approach("E", 90), Approach("S", 180), Approach("W", 270)]
    m = geometry.resolve_movement(f"W.{turn}", arms)
    with pytest.raises(geometry.GeometryError, match="only a left turn can be permissive"):
        Stream(m, Service.PERMISSIVE)


# --- property: accepted sites never time an unexcused conflict -----------------------

_ARMS = {"N": 0.0, "E": 90.0, "S": 180.0, "W": 270.0}
_ALL = [f"{a}.{t}" for a in _ARMS for t in "LTR"]
_PLAN = {
    "min_green_s": 6,
    "passage_s": 2.0,
    "max_green_s": 20,
    "yellow_s": 4.0,
    "red_clear_s": 2.0,
    "walk_s": 7,
    "ped_clear_s": 10,
}


def _site_dict(phases: list[dict[str, Any]], overlaps: list[dict[str, Any]]) -> dict[str, Any]:
    channels: list[dict[str, Any]] = []
    for p in phases:
        if p.get("movements") or p.get("permissive"):
            channels.append({"id": len(channels) + 1, "phase": p["id"]})
        if p.get("ped_crossing"):
            channels.append({"id": len(channels) + 1, "ped": p["id"]})
    channels += [{"id": len(channels) + k + 1, "overlap": o["id"]} for k, o in enumerate(overlaps)]
    return {
        "site": {"id": "prop", "default_plan": "day"},
        "approaches": [{"id": a, "bearing_deg": b} for a, b in _ARMS.items()],
        "phases": phases,
        "overlaps": overlaps,
        "channels": channels,
        "plans": {"day": {"defaults": _PLAN}},
    }


@st.composite
def phasings(draw: st.DrawFn) -> dict[str, Any]:
    """The NEMA 8-phase layout with a few random changes: movements added and removed,
    `permissive` declarations of any turn (often the opposing left, which is allowed),
    crosswalks moved, right-turn (and other) arrows and flashing yellow arrows."""
    phases: dict[int, dict[str, Any]] = {
        pid: {"id": pid, "ring": ring, "group": group, "movements": list(moves)}
        | ({"ped_crossing": crossing} if crossing else {})
        for pid, (ring, group, moves, crossing) in NEMA_PHASES.items()
    }
    changes = ["add", "remove", "permissive", "crossing"]
    for change in draw(st.lists(st.sampled_from(changes), max_size=3)):
        p = phases[draw(st.sampled_from(sorted(phases)))]
        if change == "add":
            p["movements"].append(draw(st.sampled_from(_ALL)))
        elif change == "remove" and len(p["movements"]) > 1:
            p["movements"].remove(draw(st.sampled_from(p["movements"])))
        elif change == "permissive":
            through = next((m for m in p["movements"] if m.endswith(".T")), None)
            arm = through.split(".")[0] if through else "W"
            opposing_left = {"N": "S", "E": "W", "S": "N", "W": "E"}[arm] + ".L"
            picks = [opposing_left] * 4 + _ALL
            p.setdefault("permissive", []).append(draw(st.sampled_from(picks)))
        elif change == "crossing":
            arm = draw(st.sampled_from([None, *_ARMS]))
            if arm is None:
                p.pop("ped_crossing", None)
            else:
                p["ped_crossing"] = arm
    overlaps: list[dict[str, Any]] = []
    for k in range(draw(st.sampled_from([0, 0, 1, 2]))):
        if draw(st.booleans()):  # a right-turn (or any) arrow green with its parents
            movement = draw(st.sampled_from([m for m in _ALL if m.endswith(".R")] + _ALL[:3]))
            parents = draw(st.lists(st.sampled_from(sorted(phases)), min_size=1, max_size=2))
            overlaps.append(
                {"id": f"O{k}", "parents": sorted(set(parents)), "movements": [movement]}
            )
        else:  # a flashing yellow arrow on a left phase, permissive with a through
            left = draw(st.sampled_from([1, 3, 5, 7]))
            through = draw(st.sampled_from([2, 4, 6, 8]))
            movement = draw(st.sampled_from([NEMA_PHASES[left][2][0], "E.L", "W.T"]))
            overlaps.append(
                {
                    "id": f"F{k}",
                    "type": "fya",
                    "parents": [left],
                    "permissive_parents": [through],
                    "movements": [movement],
                }
            )
    return _site_dict(list(phases.values()), overlaps)


def _pinned(name: str) -> dict[str, Any]:
    return tomllib.loads((SITES / name).read_text())


@dataclass(frozen=True)
class _Display:
    """What a signal group shows while some phases are green."""

    key: SignalKey
    streams: tuple[Stream, ...]
    crossing: str | None
    with_phases: tuple[int, ...]


def _displays(site: Site) -> list[_Display]:
    out = []
    for p in site.phases:
        streams = tuple(Stream(m, Service.BALL) for m in p.movements)
        streams += tuple(Stream(m, Service.PERMISSIVE) for m in p.permissive)
        out.append(_Display((SignalKind.PHASE, p.id), streams, None, (p.id,)))
        if p.ped_crossing:
            out.append(_Display((SignalKind.PED, p.id), (), p.ped_crossing, (p.id,)))
    for o in site.overlaps:
        arrow = tuple(Stream(m, Service.ARROW) for m in o.movements)
        out.append(_Display((SignalKind.OVERLAP, o.id), arrow, None, o.parents))
        if o.permissive_parents:
            yielding = tuple(Stream(m, Service.PERMISSIVE) for m in o.movements)
            out.append(_Display((SignalKind.OVERLAP, o.id), yielding, None, o.permissive_parents))
    return out


def _clash(oracle: Oracle, a: _Display, b: _Display) -> bool:
    if a.crossing and b.crossing:
        return False
    if a.crossing or b.crossing:
        ped, veh = (a, b) if a.crossing else (b, a)
        assert ped.crossing is not None
        return any(oracle.walk(s, ped.crossing) for s in veh.streams)
    return any(oracle.vehicles(x, y) for x in a.streams for y in b.streams)


def _oracle_table(site: Site, oracle: Oracle) -> set[tuple[SignalKey, SignalKey]]:
    """Conflicting signal groups, a flashing yellow arrow's head counted as yielding (the
    table is per head; its green arrow is held by its parent's own row)."""
    heads: dict[SignalKey, _Display] = {}
    for d in _displays(site):
        heads[d.key] = d  # an FYA's last display is its yielding one
    table = set()
    for ka, a in heads.items():
        for kb, b in heads.items():
            if ka != kb and _clash(oracle, a, b):
                table.add((ka, kb))
    return table


@given(raw=phasings())
@example(raw=_pinned("permissive_through_beside_opposing_left.toml"))
@example(raw=_pinned("permissive_through_beside_its_walk.toml"))
@example(raw=_pinned("fya_arrow_beside_its_walk.toml"))
@example(raw=tomllib.loads(T_JUNCTION.read_text()))
@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_accepted_sites_never_time_a_conflict_and_every_layer_holds_the_table(
    raw: dict[str, Any],
) -> None:
    not_left = [
        (p["id"], m) for p in raw["phases"] for m in p.get("permissive", []) if not m.endswith(".L")
    ]
    try:
        site = site_from_dict(copy.deepcopy(raw), "site.toml")
    except ConfigError as err:
        event("refused")
        for pid, m in not_left:
            assert any(
                f"phase {pid}: permissive: {m} is not a left turn" in p for p in err.problems
            )
        return
    event("accepted")
    assert not not_left
    oracle = Oracle({a.id: a.bearing_deg for a in site.approaches})
    ring = {p.id: (p.ring, p.group) for p in site.phases}

    def together(a: _Display, b: _Display) -> bool:
        return any(
            x == y or (ring[x][0] != ring[y][0] and ring[x][1] == ring[y][1])
            for x in a.with_phases
            for y in b.with_phases
        )

    displays = _displays(site)
    for i, a in enumerate(displays):
        for b in displays[i:]:
            if a.key == b.key and (a is not b or a.key[0] is not SignalKind.PHASE):
                continue  # one head's two displays never show at once; peds, arrows alone
            if together(a, b):
                assert not _clash(oracle, a, b), (a.key, b.key)
    assert site.conflicts == _oracle_table(site, oracle)

    monitor = Monitor(site)
    keys: list[SignalKey] = [
        (SignalKind.PHASE, p.id) for p in site.phases if p.movements or p.permissive
    ]
    keys += [(SignalKind.PED, p.id) for p in site.phases if p.ped_crossing]
    keys += [(SignalKind.OVERLAP, o.id) for o in site.overlaps]
    assert [[keys[j] for j in row] for row in monitor.conflicts] == [
        [kb for kb in keys if (ka, kb) in site.conflicts] for ka in keys
    ]
    # The board checks per indication. A flashing yellow arrow is its head's own (yielding)
    # row; a steady one (green arrow or ball) stands for the head and, on an FYA head, for its
    # protected parents too (the green arrow is the parents' protected left), so two steady
    # indications clash when any signal groups they stand for conflict in the table.
    board = board_config(site)
    chans = [(c.kind, c.source) for c in site.channels]
    fya_parents: dict[SignalKey, set[SignalKey]] = {
        (SignalKind.OVERLAP, o.id): {(SignalKind.PHASE, p) for p in o.parents}
        for o in site.overlaps
        if o.permissive_parents
    }

    def stands(k: SignalKey) -> set[SignalKey]:
        return {k} | fya_parents.get(k, set())

    fya = board.fya_conflicts or board.conflicts
    for i, ka in enumerate(chans):
        steady = {
            j
            for j, kb in enumerate(chans)
            if ka != kb and any((x, y) in site.conflicts for x in stands(ka) for y in stands(kb))
        }
        own = {j for j, kb in enumerate(chans) if (ka, kb) in site.conflicts}
        assert {j for j in range(len(chans)) if board.conflicts[i] >> j & 1} == steady, ka
        got_fya = {j for j in range(len(chans)) if fya[i] >> j & 1}
        assert got_fya == (own if ka in fya_parents else steady), ka
