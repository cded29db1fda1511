"""Vehicle intervals and the conflict gate.

Rules this module keeps (tests/control/test_intervals.py checks them; the
property tests and tests/control/invariants.py check the displays every step):

1. A phase's vehicle signal is in one interval (`Interval`): RED (at rest or
   after its clearance), GREEN, YELLOW (change) or RED_CLEAR. It moves only
   along TRANSITIONS: red -> green -> yellow -> red clearance -> red. Any other
   move is a bug in the sequencer: `move` raises IllegalTransition, which the
   controller's step turns into fault flash (controller.py rule 5), never a
   silent state.
2. A yellow and a red clearance run for the duration they start with (the
   controller gives it, never below the site minimums: controller.py rule 2),
   timed from the step that starts them; red revert counts from the end of
   the yellow (`red_at`).
3. Only a flash or start-up mode taking over the displays puts every phase to
   red at once (`all_red`); the lamps flash or are all red meanwhile, so
   nothing shows a short yellow.
4. The conflict gate (`gate_clear`, controller.py rule 4): a signal group may
   start green (or walk) only when every group that conflicts with it, from the
   site's movement-derived conflict table, is red with its clearance finished:
   vehicle phases RED, crossings DONT_WALK, overlaps RED. It is independent of
   the ring structure. The per-pair intergreens (intergreens.py) are the gate's
   second half: each Gate carries the pairs it waits out, and the controller's
   `_gate_clear` checks them beside `gate_clear`.

State owned here, per phase: the interval, when a yellow or red clearance
ends, when the last green began, when it last ended (yellow onset, for the
intergreens) and when the last yellow ended.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum

from edge.control.site import SignalKey, SignalKind, Site

LONG_AGO = -(1 << 62)  # the green end of a group that has not been green (intergreens.py)


class Interval(IntEnum):
    """A phase's vehicle interval; the value indexes the lamp tables (outputs.py)."""

    RED = 0
    GREEN = 1
    YELLOW = 2
    RED_CLEAR = 3


TRANSITIONS: dict[Interval, frozenset[Interval]] = {
    Interval.RED: frozenset({Interval.GREEN}),
    Interval.GREEN: frozenset({Interval.YELLOW}),
    Interval.YELLOW: frozenset({Interval.RED_CLEAR}),
    Interval.RED_CLEAR: frozenset({Interval.RED}),
}
"""The legal moves of rule 1: every interval's successors."""


class IllegalTransition(RuntimeError):
    """A move that TRANSITIONS does not allow (a sequencer bug; the step faults)."""


_RED, _GREEN, _YELLOW, _RED_CLEAR = Interval


class Intervals:
    """Every phase's vehicle interval and its times (indexes are the site's phase order)."""

    def __init__(self, phase_ids: list[int], now: int) -> None:
        n = len(phase_ids)
        self.ids = phase_ids
        self.iv: list[Interval] = [_RED] * n
        self.end = [0] * n  # when the running yellow or red clearance ends
        self.green_at = [0] * n
        self.yellow_at = [LONG_AGO] * n  # when the last green ended (intergreens.py)
        self.red_at = [now - 3_600_000] * n  # when the last yellow ended (red revert)

    def move(self, i: int, to: Interval) -> None:
        """Phase i to `to` if TRANSITIONS allows it; raise IllegalTransition if not."""
        was = self.iv[i]
        if to not in TRANSITIONS[was]:
            raise IllegalTransition(
                f"phase {self.ids[i]}: {was.name.lower()} -> {to.name.lower()} is not a legal move"
            )
        self.iv[i] = to

    def green(self, i: int, now: int) -> None:
        self.move(i, _GREEN)
        self.green_at[i] = now

    def yellow(self, i: int, now: int, ms: int) -> None:
        self.move(i, _YELLOW)
        self.yellow_at[i] = now
        self.end[i] = now + ms

    def red_clear(self, i: int, now: int, ms: int) -> None:
        # Timed from this step, not from the yellow's deadline: steps may come
        # late, and the displayed red clearance must be whole (rule 2).
        self.move(i, _RED_CLEAR)
        self.red_at[i] = now
        self.end[i] = now + ms

    def red(self, i: int) -> None:
        self.move(i, _RED)

    def all_red(self, red_from: int | None) -> None:
        """Rule 3: every phase red at once; `red_from`: red revert counts from then."""
        # In place: the lists are the same objects for as long as the controller runs.
        n = len(self.iv)
        self.iv[:] = [_RED] * n
        if red_from is not None:
            self.red_at[:] = [red_from] * n

    def all_clear(self) -> bool:
        return all(v == _RED for v in self.iv)

    def at_safe_point(self) -> bool:
        """No phase in yellow or red clearance (a plan may change)."""
        return all(v in (_RED, _GREEN) for v in self.iv)


# -- the conflict gate (rule 4) ------------------------------------------------------

Waits = list[tuple[int, int, int]]
"""The intergreen pairs a group waits out: (0 phase / 1 ped / 2 overlap, index, ms)."""
Gate = tuple[list[int], list[int], list[int], Waits]
"""The conflicting vehicle phases, crossings (by phase index) and overlaps of one group,
and the intergreens it waits out (intergreens.py)."""


def build_gates(
    site: Site, has_ped: list[bool], waits: Callable[[Site, SignalKey], Waits]
) -> tuple[list[Gate], list[Gate], list[Gate]]:
    """The gate of every phase, crossing and overlap, from the site's conflict table and
    its intergreens (`waits`: intergreens.waits)."""
    conflicts = site.conflicts
    veh_keys = [(SignalKind.PHASE, p.id) for p in site.phases]
    ped_keys = [(SignalKind.PED, p.id) for p in site.phases]
    ov_keys = [(SignalKind.OVERLAP, o.id) for o in site.overlaps]

    def gate(key: tuple[SignalKind, int | str]) -> Gate:
        return (
            [i for i, k in enumerate(veh_keys) if (key, k) in conflicts],
            [i for i, k in enumerate(ped_keys) if has_ped[i] and (key, k) in conflicts],
            [k for k, ok in enumerate(ov_keys) if (key, ok) in conflicts],
            waits(site, key),
        )

    return [gate(k) for k in veh_keys], [gate(k) for k in ped_keys], [gate(k) for k in ov_keys]


def gate_clear(gate: Gate, veh: list[Interval], peds: Sequence[int], ovs: Sequence[int]) -> bool:
    """Rule 4: every conflicting group red with its clearance finished (`peds`: the
    crossings' PedInterval, `ovs`: the overlaps' OverlapInterval, whose RED is 0 too)."""
    phases, ped_idx, ov_idx, _ = gate
    for j in phases:
        if veh[j] != _RED:
            return False
    # DONT_WALK and an overlap's RED are 0: a truth test, not ==, keeps CPython's fast
    # path (its specialised compare takes exact ints only, not IntEnum members).
    for j in ped_idx:
        if peds[j]:
            return False
    return not any(ovs[k] for k in ov_idx)
