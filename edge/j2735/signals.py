"""The one adapter between the control core and J2735: signal groups and their states.

Everything J2735 reads of the controller is read here, from the core's public outputs
(edge/control/messages.py: `Outputs` with its per-phase `spat`) and the site, so a new
core interface (a phase-status record) changes this module only. The rules it keeps:

- Signal group numbers (SignalGroupID), fixed by the site: phase P's vehicle heads are
  P (1-16); the site's overlaps, in order, 21, 22, ...; phase P's permissive movements
  (a phase's `permissive` list: a green ball over a yielding turn) 60 + P; phase P's
  pedestrian signal 40 + P.
- Flash is reported only in flash: stop-Then-Proceed (flashing red) and
  caution-Conflicting-Traffic (flashing yellow) appear only in the controller's flash
  modes (start-up flash, flash, fault flash); a flashing yellow ARROW while the
  controller runs is a permissive movement (permissive-Movement-Allowed), its yellow
  after it permissive-clearance.
- Protected vs permissive: a phase's heads and an overlap's green are protected
  (protected-Movement-Allowed, then protected-clearance); a phase's permissive
  movements and a flashing yellow arrow are permissive (5, then 7).
- Walk is protected-Movement-Allowed, pedestrian clearance protected-clearance, don't
  walk stop-And-Remain; dark pedestrian signals (flash) are dark.
- End times are the core's own deadlines (ms on its clock), never a wall-clock sum: a
  phase's from its SPaT; an overlap green's from its green parents' (plus its trailing
  green), a flashing yellow arrow's from its permissive parents', an overlap yellow's
  from when the core showed it (its onset) plus its yellow time; a walk's or a
  pedestrian clearance's is its timer's end (min = max = likely: only a preemption
  shortens it), read from the core's status (`ped_ends`: Controller.status(), or the
  tick record's copy of it); without it, unknown. Don't walk has no end (unknown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge.control.messages import Lamp, Outputs, PhaseTiming, Status
from edge.control.site import Site

OVERLAP_BASE = 20
PED_BASE = 40
PERMISSIVE_BASE = 60
FLASH_MODES = frozenset({"startup_flash", "flash", "fault_flash"})

# MovementPhaseState
DARK, STOP_THEN_PROCEED, STOP_AND_REMAIN = 1, 2, 3
PERMISSIVE, PROTECTED, PERMISSIVE_CLEAR, PROTECTED_CLEAR, CAUTION = 5, 6, 7, 8, 9


@dataclass(frozen=True, slots=True)
class GroupState:
    """One signal group now: its MovementPhaseState and end times (core ms, None: unknown)."""

    group: int
    state: int
    min_end_ms: int | None
    max_end_ms: int | None = None
    likely_end_ms: int | None = None


def phase_group(phase: int) -> int:
    return phase


def overlap_group(site: Site, overlap: str) -> int:
    return OVERLAP_BASE + 1 + [o.id for o in site.overlaps].index(overlap)


def ped_group(phase: int) -> int:
    return PED_BASE + phase


def permissive_group(phase: int) -> int:
    return PERMISSIVE_BASE + phase


def ped_ends(status: Status) -> tuple[int | None, ...]:
    """Per phase, when its walk or pedestrian clearance ends (core ms; None: don't walk)."""
    return tuple(
        status.t_ms + p.left_ms
        if p.interval in ("walk", "ped_clear") and p.left_ms is not None
        else None
        for p in status.phases
    )


def _combine(timings: list[PhaseTiming], extra_ms: int = 0) -> tuple[int | None, ...]:
    """An overlap green ends when its last green parent does (plus its trailing green)."""
    if not timings:
        return (None, None, None)
    out: list[int | None] = []
    for field in ("min_end_ms", "max_end_ms", "likely_end_ms"):
        values = [getattr(t, field) for t in timings]
        out.append(None if any(v is None for v in values) else max(values) + extra_ms)
    return tuple(out)


class SignalGroups:
    """Per site: reads each tick's outputs into signal group states (keeps onsets)."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.index = {p.id: i for i, p in enumerate(site.phases)}
        self.ov_lamp: list[Lamp | None] = [None] * len(site.overlaps)
        self.ov_onset: list[int] = [0] * len(site.overlaps)
        self.ov_was_fya: list[bool] = [False] * len(site.overlaps)
        self.preempting = False

    def groups(self) -> list[int]:
        site = self.site
        out = [phase_group(p.id) for p in site.phases]
        out += [overlap_group(site, o.id) for o in site.overlaps]
        out += [permissive_group(p.id) for p in site.phases if p.permissive]
        out += [ped_group(p.id) for p in site.phases if p.ped_crossing]
        return out

    def read(self, out: Outputs, peds: Sequence[int | None] = ()) -> list[GroupState]:
        """The signal groups' states at out.t_ms, in groups() order (peds: ped_ends)."""
        for ev in out.events:
            if ev.name == "preempt_enter":
                self.preempting = True
            elif ev.name == "preempt_exit":
                self.preempting = False
        flash = out.mode in FLASH_MODES
        site = self.site
        res: list[GroupState] = []
        for i, p in enumerate(site.phases):
            g = _veh(out.phases[i], _timing(out, i), flash, PROTECTED, PROTECTED_CLEAR)
            res.append(GroupState(phase_group(p.id), *g))
        res += self._overlaps(out, flash)
        for i, p in enumerate(site.phases):
            if p.permissive:
                g = _veh(out.phases[i], _timing(out, i), flash, PERMISSIVE, PERMISSIVE_CLEAR)
                res.append(GroupState(permissive_group(p.id), *g))
        for i, p in enumerate(site.phases):
            if p.ped_crossing:
                res.append(_ped(p.id, out.peds[i], peds[i] if i < len(peds) else None))
        return res

    def _overlaps(self, out: Outputs, flash: bool) -> list[GroupState]:
        site = self.site
        res: list[GroupState] = []
        for k, ov in enumerate(site.overlaps):
            lamp = out.overlaps[k]
            if lamp != self.ov_lamp[k]:
                self.ov_was_fya[k] = self.ov_lamp[k] == Lamp.FLASH_YELLOW
                self.ov_lamp[k] = lamp
                self.ov_onset[k] = out.t_ms
            group = overlap_group(site, ov.id)
            if flash:
                shown = {Lamp.FLASH_RED: STOP_THEN_PROCEED, Lamp.FLASH_YELLOW: CAUTION}
                res.append(GroupState(group, shown.get(lamp, DARK), None))
                continue

            def green(parents: tuple[int, ...]) -> list[PhaseTiming]:
                return [
                    out.spat[self.index[p]]
                    for p in parents
                    if out.phases[self.index[p]] == Lamp.GREEN and self.index[p] < len(out.spat)
                ]

            if lamp == Lamp.GREEN:
                parents = green(ov.parents)
                times = _combine(parents, ov.trail_green_ms)
                res.append(GroupState(group, PROTECTED, *times))
            elif lamp == Lamp.FLASH_YELLOW:  # a flashing yellow arrow: permissive
                res.append(GroupState(group, PERMISSIVE, *_combine(green(ov.permissive_parents))))
            elif lamp == Lamp.YELLOW:
                end = self.ov_onset[k] + ov.yellow_ms
                state = PERMISSIVE_CLEAR if self.ov_was_fya[k] else PROTECTED_CLEAR
                res.append(GroupState(group, state, end, end, end))
            elif lamp == Lamp.DARK:
                res.append(GroupState(group, DARK, None))
            else:
                res.append(GroupState(group, STOP_AND_REMAIN, None))
        return res


Times = tuple[int, int | None, int | None, int | None]


def _timing(out: Outputs, i: int) -> PhaseTiming | None:
    return out.spat[i] if i < len(out.spat) else None


def _veh(lamp: Lamp, t: PhaseTiming | None, flash: bool, go: int, clear: int) -> Times:
    """A phase's heads (go, clear: protected or permissive states) as (state, times)."""
    if flash:
        state = {Lamp.FLASH_RED: STOP_THEN_PROCEED, Lamp.FLASH_YELLOW: CAUTION}.get(lamp, DARK)
        return (state, None, None, None)
    state = {
        Lamp.GREEN: go,
        Lamp.YELLOW: clear,
        Lamp.RED: STOP_AND_REMAIN,
        Lamp.FLASH_RED: STOP_AND_REMAIN,  # not flash: never stop-Then-Proceed
        Lamp.FLASH_YELLOW: go,  # not flash: never caution
    }.get(lamp, DARK)
    if t is None or state == DARK:
        return (state, None, None, None)
    return (state, t.min_end_ms, t.max_end_ms, t.likely_end_ms)


def _ped(phase: int, lamp: Lamp, end: int | None) -> GroupState:
    state = {
        Lamp.GREEN: PROTECTED,
        Lamp.FLASH_RED: PROTECTED_CLEAR,
        Lamp.RED: STOP_AND_REMAIN,
    }.get(lamp, DARK)
    if state not in (PROTECTED, PROTECTED_CLEAR):
        end = None
    return GroupState(ped_group(phase), state, end, end, end)
