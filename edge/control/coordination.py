"""Coordination: a cycle, an offset and splits turned into points in the cycle.

The local cycle timer runs from 0 at the start of the coordinated phases'
green (the offset is referenced to that point, on the common time base the
caller's `now` is on). Each ring's phases take their splits in ring order
from the coordinated phase; a split holds the phase's green, yellow and red
clearance. From that:

- a non-coordinated phase's green belongs to [start, force-off) of its
  split; outside it, the phase is forced off (as soon as its minimums
  allow). Fixed force-offs hand a phase the time that earlier phases left
  unused; floating force-offs give each phase no more than its own split.
- a coordinated phase holds green (no gap-out, no max-out) until its yield
  point, the end of its split less its clearance. After that it yields to a
  conflicting call only while the permissive period lasts: while there is
  still time in the cycle for every other phase of its ring to get its
  minimum green and clearance before the next local zero.

Offset transition: when the local timer is off the desired one (a new
pattern, a start-up), it is brought back by running faster (short way, at
most +20 %), slower (long way, at most -20 %), or by holding at the
coordinated phases' yield point (dwell). Minimums and clearances are never
cut: they are enforced by the controller whatever the timer says.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.control.site import Pattern, Phase, PhaseTiming

TRANSITION_RATE_PCT = 20  # how much faster/slower the timer runs in transition


@dataclass(frozen=True, slots=True)
class CoordPoints:
    """A pattern resolved against the rings: ms points in the cycle, by phase index."""

    cycle_ms: int
    coord: tuple[bool, ...]
    start: tuple[int, ...]  # where each phase's split begins
    force_off: tuple[int, ...]  # end of green within its split (split end - clearance)
    split_green: tuple[int, ...]  # split less clearance: the floating force-off length
    permissive_end: tuple[int, ...]  # per phase (coordinated ones): last point to yield


def resolve(
    pattern: Pattern, phases: tuple[Phase, ...], timings: dict[int, PhaseTiming]
) -> CoordPoints:
    """Lay each ring's splits out from its coordinated phase."""
    n = len(phases)
    start = [0] * n
    force_off = [0] * n
    split_green = [0] * n
    permissive_end = [0] * n
    coord = [p.id in pattern.coord_phases for p in phases]
    rings: dict[int, list[int]] = {}
    for i, p in enumerate(phases):
        rings.setdefault(p.ring, []).append(i)
    for members in rings.values():
        first = next((k for k, i in enumerate(members) if coord[i]), 0)
        order = members[first:] + members[:first]
        at = 0
        for i in order:
            t = timings[phases[i].id]
            split = pattern.splits_ms.get(phases[i].id, 0)
            clear = t.yellow_ms + t.red_clear_ms
            start[i] = at % pattern.cycle_ms
            force_off[i] = (at + split - clear) % pattern.cycle_ms
            split_green[i] = max(split - clear, 0)
            at += split
        # Time the ring's other phases need at least, measured back from local zero.
        need = sum(
            timings[phases[i].id].min_green_ms
            + timings[phases[i].id].yellow_ms
            + timings[phases[i].id].red_clear_ms
            for i in order
            if not coord[i]
        )
        for i in order:
            if coord[i]:
                latest = pattern.cycle_ms - need
                permissive_end[i] = max(latest, force_off[i] + 1000) % pattern.cycle_ms
    return CoordPoints(
        cycle_ms=pattern.cycle_ms,
        coord=tuple(coord),
        start=tuple(start),
        force_off=tuple(force_off),
        split_green=tuple(split_green),
        permissive_end=tuple(permissive_end),
    )


def in_window(c: int, lo: int, hi: int) -> bool:
    """Is cycle point c within [lo, hi), the window possibly wrapping past zero?"""
    if lo <= hi:
        return lo <= c < hi
    return c >= lo or c < hi


def until(c: int, point: int, cycle_ms: int) -> int:
    """Milliseconds of cycle from c forward to point (0 < result <= cycle)."""
    d = (point - c) % cycle_ms
    return d if d else cycle_ms


def step_shift(shift: int, dt: int, cycle_ms: int, method: str, at_yield: bool) -> int:
    """Move the offset error `shift` (ms the local timer lags the desired one) toward 0.

    Short way runs the local timer faster, long way slower (each by at most
    TRANSITION_RATE_PCT), dwell freezes it at the yield point. `best` picks the
    shorter of short and long way.
    """
    shift %= cycle_ms
    if shift == 0 or dt <= 0:
        return shift
    ahead = cycle_ms - shift  # the same error seen as running ahead
    if method == "best":
        method = "shortway" if shift <= ahead else "longway"
    if method == "dwell":
        if not at_yield:
            return shift
        # Frozen timer: the desired one moves on by dt, so the timer is dt further ahead.
        return 0 if dt >= ahead else (shift + dt) % cycle_ms
    gain = dt * TRANSITION_RATE_PCT // 100
    if method == "shortway":  # catch up: lag shrinks
        return 0 if gain >= shift else shift - gain
    return 0 if gain >= ahead else (shift + gain) % cycle_ms  # long way: fall back a whole lap
