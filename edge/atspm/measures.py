"""The project's own ATSPM figures, from the controller's state tick by tick (pure).

What ATSPM computes from the hi-res log, computed here from what the controller saw:
the phase intervals and detector presence at each 100 ms tick (`Sample`). The test
(tests/atspm/test_atspm_package.py) holds the `atspm` package's figures from the log to
these.

- Arrivals on green: a detector's rising edge (its presence goes on) is an arrival on
  its phase; it is on green when the phase's interval at that tick is GREEN (a green
  that starts in the same tick counts; a yellow that starts in it does not, as ATSPM
  orders a tick's phase events before its detector events).
- Split failure (ATSPM's definition): a cycle of a phase runs from one start of green
  to the next; green occupancy is the share of its green (to the start of yellow) with
  any of the phase's detectors occupied, red occupancy the share of the first RED_S
  seconds from the start of its red clearance; the cycle is a split failure when both
  exceed THRESHOLD. A cycle whose red window the samples do not cover is not counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from edge.control.states import GREEN, RED_CLEAR, YELLOW

TICK_MS = 100
RED_S = 5
THRESHOLD = 0.79


@dataclass(frozen=True, slots=True)
class Sample:
    """One tick: the time, each phase's interval, each detector's presence."""

    t_ms: int
    intervals: tuple[int, ...]
    present: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class Arrivals:
    total: int
    on_green: int


def arrivals_on_green(
    samples: Iterable[Sample], phases_of: Mapping[int, Sequence[int]]
) -> dict[int, Arrivals]:
    """Per phase index: arrivals and those on green. `phases_of`: detector index -> the
    indexes of the phases it counts for (the advance loops')."""
    total: dict[int, int] = {}
    green: dict[int, int] = {}
    before: tuple[bool, ...] | None = None
    for s in samples:
        if before is not None:
            for k, phases in phases_of.items():
                if s.present[k] and not before[k]:
                    for i in phases:
                        total[i] = total.get(i, 0) + 1
                        green[i] = green.get(i, 0) + (s.intervals[i] == GREEN)
        before = s.present
    return {i: Arrivals(n, green.get(i, 0)) for i, n in total.items()}


@dataclass(slots=True)
class _Cycle:
    green_ticks: int = 0
    green_on: int = 0
    red_at: int | None = None  # ms the red clearance started
    red_ticks: int = 0
    red_on: int = 0


def split_failures(
    samples: Sequence[Sample], detectors_of: Mapping[int, Sequence[int]]
) -> dict[int, tuple[int, int]]:
    """Per phase index: (cycles, split failures). `detectors_of`: phase index -> the
    indexes of its (stop-bar) detectors, taken together."""
    out: dict[int, tuple[int, int]] = {}
    for i, dets in detectors_of.items():
        cycles = fails = 0
        cur: _Cycle | None = None
        prev_iv: int | None = None
        for s in samples:
            iv = s.intervals[i]
            on = any(s.present[k] for k in dets)
            if iv == GREEN and prev_iv != GREEN:
                cur = _Cycle()  # a new cycle; an unfinished one is dropped
            if cur is not None:
                if iv == GREEN:
                    cur.green_ticks += 1
                    cur.green_on += on
                elif iv == RED_CLEAR and prev_iv == YELLOW:
                    cur.red_at = s.t_ms
                if cur.red_at is not None and s.t_ms < cur.red_at + RED_S * 1000:
                    cur.red_ticks += 1
                    cur.red_on += on
                    if cur.red_ticks == RED_S * 1000 // TICK_MS:
                        cycles += 1
                        fails += _failed(cur)
                        cur = None
            prev_iv = iv
        out[i] = (cycles, fails)
    return out


def _failed(c: _Cycle) -> bool:
    if not c.green_ticks:
        return False
    green_occ = c.green_on / c.green_ticks
    red_occ = c.red_on / c.red_ticks
    return green_occ > THRESHOLD and red_occ > THRESHOLD
