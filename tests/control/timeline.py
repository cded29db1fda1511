"""Helpers for the timeline tests: purpose-made sites and a 100 ms script runner.

Sites have round timings so that every expected time can be worked out by
hand. Unless a test says otherwise (all times in seconds):

    start-up flash 2, start-up all red 2, so the start-up phases (2 and 6)
    turn green at 4.0 and every phase has a call (NEMA start-up calls);
    min green 5, passage 2, max 20, yellow 3, red clearance 1, red revert 2,
    walk 5, pedestrian clearance 6; phases 2 and 6 on min recall.

Layouts (approaches N/E/S/W; main street east-west):

    "four":  ring 1: 2 | 4     ring 2: 6 | 8     no dual entry
    "eight": ring 1: 1 2 | 3 4  ring 2: 5 6 | 7 8  dual entry on 2, 4, 6, 8

Detectors: vehicle loop N calls and extends phase N (locking); push button
20 + N places a pedestrian call on phase N.

Settled states, derived once here and used by many tests:
- "four" with main-street recall: the start-up cycle serves 2+6 (4.0-9.0),
  then 4+8 (13.0-18.0); 2+6 are green again at 22.0 and rest there.
- "eight" with main-street recall: 2+6 (4.0-9.0), 3+7 (13.0-18.0),
  4+8 (22.0-27.0), 1+5 (31.0-36.0); 2+6 green again at 40.0 and rest.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from edge.config import site_from_dict
from edge.control.controller import Controller
from edge.control.messages import Inputs, Lamp, Outputs
from edge.control.site import Site

STEP_MS = 100
FOUR_SETTLED_S = 22.0
EIGHT_SETTLED_S = 40.0

Entry = tuple[float, str, str]  # (t seconds, event name, subject)

_APPROACHES = [
    {"id": "N", "bearing_deg": 0},
    {"id": "E", "bearing_deg": 90},
    {"id": "S", "bearing_deg": 180},
    {"id": "W", "bearing_deg": 270},
]
# The classic 8-phase dual ring: id -> (ring, group, movements, ped crossing)
NEMA_PHASES: dict[int, tuple[int, int, list[str], str | None]] = {
    1: (1, 1, ["E.L"], None),
    2: (1, 1, ["W.T", "W.R"], "S"),
    3: (1, 2, ["N.L"], None),
    4: (1, 2, ["S.T", "S.R"], "E"),
    5: (2, 1, ["W.L"], None),
    6: (2, 1, ["E.T", "E.R"], "N"),
    7: (2, 2, ["S.L"], None),
    8: (2, 2, ["N.T", "N.R"], "W"),
}
LAYOUTS = {"four": (2, 4, 6, 8), "eight": (1, 2, 3, 4, 5, 6, 7, 8)}
DEFAULT_TIMING: dict[str, Any] = {
    "min_green_s": 5.0,
    "passage_s": 2.0,
    "max_green_s": 20.0,
    "yellow_s": 3.0,
    "red_clear_s": 1.0,
    "red_revert_s": 2.0,
    "walk_s": 5.0,
    "ped_clear_s": 6.0,
}


def site_dict(
    layout: str = "four",
    *,
    site: dict[str, Any] | None = None,
    timing: dict[str, Any] | None = None,
    phase_timing: dict[int, dict[str, Any]] | None = None,
    phase_opts: dict[int, dict[str, Any]] | None = None,
    detector_opts: dict[int, dict[str, Any]] | None = None,
    extra_detectors: Sequence[dict[str, Any]] = (),
    overlaps: Sequence[dict[str, Any]] = (),
    plans: dict[str, dict[str, Any]] | None = None,
    main_recall: bool = True,
) -> dict[str, Any]:
    """The config dict (TOML schema) of a test site; arguments override the defaults."""
    ids = LAYOUTS[layout]
    phases = []
    for pid in ids:
        ring, group, movements, crossing = NEMA_PHASES[pid]
        p: dict[str, Any] = {"id": pid, "ring": ring, "group": group, "movements": movements}
        if crossing is not None:
            p["ped_crossing"] = crossing
        if pid in (2, 6):
            p.update(start_up=True, flash="yellow")
        p["dual_entry"] = layout == "eight" and pid in (2, 4, 6, 8)
        p.update((phase_opts or {}).get(pid, {}))
        phases.append(p)
    detectors: list[dict[str, Any]] = []
    for p in phases:
        pid = p["id"]
        detectors.append({"id": pid, "input": pid, "phase": pid})
        if p.get("ped_crossing"):
            detectors.append({"id": 20 + pid, "input": 20 + pid, "phase": pid, "type": "ped"})
    for d in detectors:
        d.update((detector_opts or {}).get(d["id"], {}))
    detectors.extend(copy.deepcopy(list(extra_detectors)))
    per_phase: dict[str, dict[str, Any]] = {}
    if main_recall:
        per_phase = {"2": {"recall": ["min"]}, "6": {"recall": ["min"]}}
    for pid, values in (phase_timing or {}).items():
        per_phase.setdefault(str(pid), {}).update(values)
    day: dict[str, Any] = {"defaults": {**DEFAULT_TIMING, **(timing or {})}, "phase": per_phase}
    return {
        "site": {
            "id": f"test-{layout}",
            "default_plan": "day",
            "startup_flash_s": 2.0,
            "startup_all_red_s": 2.0,
            **(site or {}),
        },
        "approaches": copy.deepcopy(_APPROACHES),
        "phases": phases,
        "overlaps": copy.deepcopy(list(overlaps)),
        "channels": [{"id": i + 1, "phase": p["id"]} for i, p in enumerate(phases)],
        "detectors": detectors,
        "plans": {"day": day, **copy.deepcopy(plans or {})},
    }


def make_site(layout: str = "four", **kwargs: Any) -> Site:
    return site_from_dict(site_dict(layout, **kwargs), f"<test site {layout}>")


def ms(seconds: float) -> int:
    return round(seconds * 1000)


def sec(t_ms: int) -> float:
    return t_ms / 1000


class Runner:
    """Steps a Controller every 100 ms through a script of occupancy and commands.

    occupancy: (detector id, on at s, off at s): present for on <= t < off.
    commands: (t s, command), sent in the step at that time (on the 100 ms grid).
    """

    def __init__(
        self,
        site: Site,
        occupancy: Iterable[tuple[int, float, float]] = (),
        commands: Iterable[tuple[float, object]] = (),
        plan: str | None = None,
    ) -> None:
        self.site = site
        self.ctl = Controller(site, now_ms=0, plan=plan)
        self.occupancy = [(d, ms(on), ms(off)) for d, on, off in occupancy]
        self.commands: dict[int, list[object]] = {}
        for t, cmd in commands:
            t_ms = ms(t)
            assert t_ms % STEP_MS == 0, f"command at {t} s is off the 100 ms grid"
            self.commands.setdefault(t_ms, []).append(cmd)
        self.now = -STEP_MS
        self.events: list[Entry] = []
        self.outputs: dict[int, Outputs] = {}
        self.phase_pos = {p.id: i for i, p in enumerate(site.phases)}
        self.overlap_pos = {o.id: k for k, o in enumerate(site.overlaps)}

    def occupied_at(self, t_ms: int) -> frozenset[int]:
        return frozenset(d for d, on, off in self.occupancy if on <= t_ms < off)

    def step(
        self, t_ms: int, occupied: frozenset[int] | None = None, commands: Sequence[object] = ()
    ) -> Outputs:
        """One step at t_ms (the scripted occupancy unless `occupied` is given)."""
        if occupied is None:
            occupied = self.occupied_at(t_ms)
        cmds = tuple(self.commands.get(t_ms, ())) + tuple(commands)
        out = self.ctl.step(t_ms, Inputs(occupied=occupied, commands=cmds))
        self.events.extend((sec(e.t_ms), e.name, e.subject) for e in out.events)
        self.outputs[t_ms] = out
        self.now = max(self.now, t_ms)
        return out

    def until(self, t_s: float) -> Runner:
        """Step every 100 ms from the next step up to and including t_s."""
        end = ms(t_s)
        t = self.now + STEP_MS
        while t <= end:
            self.step(t)
            t += STEP_MS
        return self

    def timeline(self, since: float = 0.0, names: Iterable[str] | None = None) -> list[Entry]:
        keep = set(names) if names is not None else None
        return [e for e in self.events if e[0] >= since and (keep is None or e[1] in keep)]

    def at(self, t_s: float) -> Outputs:
        return self.outputs[ms(t_s)]

    def phase(self, t_s: float, pid: int) -> Lamp:
        return self.at(t_s).phases[self.phase_pos[pid]]

    def ped(self, t_s: float, pid: int) -> Lamp:
        return self.at(t_s).peds[self.phase_pos[pid]]

    def overlap(self, t_s: float, oid: str) -> Lamp:
        return self.at(t_s).overlaps[self.overlap_pos[oid]]


def run(
    site: Site,
    until: float,
    occupancy: Iterable[tuple[int, float, float]] = (),
    commands: Iterable[tuple[float, object]] = (),
    plan: str | None = None,
) -> Runner:
    return Runner(site, occupancy, commands, plan).until(until)


# --- building expected timelines ---------------------------------------------------


def _t(x: float) -> float:
    return ms(x) / 1000


def green(t: float, *phases: int) -> list[Entry]:
    return [(_t(t), "phase_green", f"phase {p}") for p in phases]


def ends(
    t: float, *phases: int, reason: str | None = "gap_out", yellow: float = 3.0, red: float = 1.0
) -> list[Entry]:
    """Each phase ends at t (reason event, yellow), then red clearance, then red."""
    out: list[Entry] = []
    for p in phases:
        subject = f"phase {p}"
        if reason is not None:
            out.append((_t(t), reason, subject))
        out += [
            (_t(t), "phase_yellow", subject),
            (_t(t + yellow), "phase_red_clear", subject),
            (_t(t + yellow + red), "phase_red", subject),
        ]
    return out


def cross(t: float, group: int) -> list[Entry]:
    return [(_t(t), "barrier_cross", f"group {group}")]


def walk(t: float, phase: int, walk_s: float = 5.0, clear_s: float = 6.0) -> list[Entry]:
    subject = f"phase {phase}"
    return [
        (_t(t), "ped_walk", subject),
        (_t(t + walk_s), "ped_clear", subject),
        (_t(t + walk_s + clear_s), "ped_dont_walk", subject),
    ]


def ev(t: float, name: str, subject: str = "") -> list[Entry]:
    return [(_t(t), name, subject)]


def startup(all_red_at: float = 2.0, run_at: float = 4.0) -> list[Entry]:
    """Start-up all red, then run (entering start-up flash at 0 is checked on its own)."""
    return [(_t(all_red_at), "mode", "startup_all_red"), (_t(run_at), "mode", "run")]


def four_settle() -> list[Entry]:
    """The "four" site's start-up cycle with main-street recall (see the module doc)."""
    return [
        *startup(),
        *green(4.0, 2, 6),
        *ends(9.0, 2, 6),
        *cross(9.0, 2),
        *green(13.0, 4, 8),
        *ends(18.0, 4, 8),
        *cross(18.0, 1),
        *green(22.0, 2, 6),
    ]


def eight_settle() -> list[Entry]:
    """The "eight" site's start-up cycle with main-street recall (see the module doc)."""
    return [
        *startup(),
        *green(4.0, 2, 6),
        *ends(9.0, 2, 6),
        *cross(9.0, 2),
        *green(13.0, 3, 7),
        *ends(18.0, 3, 7),
        *green(22.0, 4, 8),
        *ends(27.0, 4, 8),
        *cross(27.0, 1),
        *green(31.0, 1, 5),
        *ends(36.0, 1, 5),
        *green(40.0, 2, 6),
    ]


def assert_timeline(actual: list[Entry], expected: list[Entry]) -> None:
    """Exact comparison; the order of events within one 100 ms step does not matter.

    On a mismatch the message lists what is missing and what is unexpected, then
    the whole actual timeline.
    """
    got, want = sorted(actual), sorted(expected)
    if got == want:
        return
    missing = list(want)
    extra = []
    for e in got:
        if e in missing:
            missing.remove(e)
        else:
            extra.append(e)
    lines = ["timeline differs", "  expected but missing:"]
    lines += [f"    {e}" for e in missing] or ["    -"]
    lines += ["  unexpected:"]
    lines += [f"    {e}" for e in extra] or ["    -"]
    lines += ["  actual timeline:"]
    lines += [f"    {e}" for e in got]
    raise AssertionError("\n".join(lines))
