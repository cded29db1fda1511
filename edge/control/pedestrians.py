"""Pedestrian intervals: walk, pedestrian clearance (flashing don't walk), don't walk.

Rules this module keeps (tests/control/test_properties.py and invariants.py
check them on every step):

1. A walk starts only for a called crossing (a push button, a ped recall or an
   operator call) on a phase that has one and is not omitted, while its phase
   is green: in the initial green (before its minimum ends), or later only while
   the phase rests with no conflicting demand (pedestrian recycle).
2. No walk starts while clearing to all red or flash, while preempted, or
   unless every signal group that conflicts with the crossing is red with its
   clearance finished (the conflict gate, controller.py's rule 4).
3. A walk times its full walk, then its full pedestrian clearance, then don't
   walk; the phase's green cannot end meanwhile (controller.py's rule 3). Only
   preemption shortens them, and only to the preempt's minimum walk and
   clearance (shorten()).
4. A push while the crossing already walks is not a call; a call made at any
   other time is kept until a walk serves it.
5. A crossing is in one interval (`PedInterval`) and moves only along
   TRANSITIONS: don't walk -> walk -> pedestrian clearance -> don't walk. Any
   other move is a sequencer bug: `move` raises IllegalTransition, which the
   controller's step turns into fault flash (controller.py rule 5). Only all
   red, flash or start-up all red taking over the displays puts every crossing
   to don't walk at once (`clear`), as intervals.py's `all_red` does.
6. The don't walk after a clearance shows for at least one step: a walk called
   again meanwhile (pedestrian recycle) starts a step later, never in the step
   the clearance ends. Its lamps would otherwise go straight from flashing
   don't walk to walk, a change interval turning back to GO, which the IO
   board refuses (hw/board_safety.py, FAULT_BAD_SEQUENCE).

State owned here, per phase: the interval, when it ends, when the walk and the
clearance began, and the pedestrian call.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from edge.control.intervals import LONG_AGO, IllegalTransition

if TYPE_CHECKING:
    from edge.control.controller import Controller


class PedInterval(IntEnum):
    """A crossing's interval; the value indexes the lamp table (outputs.PED_LAMP)."""

    DONT_WALK = 0
    WALK = 1
    PED_CLEAR = 2


DONT_WALK, WALK, PED_CLEAR = PedInterval

TRANSITIONS: dict[PedInterval, frozenset[PedInterval]] = {
    DONT_WALK: frozenset({WALK}),
    WALK: frozenset({PED_CLEAR}),
    PED_CLEAR: frozenset({DONT_WALK}),
}
"""The legal moves of rule 5: every interval's successors."""


class Pedestrians:
    def __init__(self, phase_ids: list[int]) -> None:
        n = len(phase_ids)
        self.ids = phase_ids
        self.iv: list[PedInterval] = [DONT_WALK] * n
        self.end = [0] * n
        self.walk_at = [0] * n
        self.fdw_at = [LONG_AGO] * n  # when each walk last ended (intergreens.py)
        self.walk_from = [LONG_AGO] * n  # rule 6: no walk before (a step after a clearance)
        self.call = [False] * n

    def move(self, i: int, to: PedInterval) -> None:
        """Phase i's crossing to `to` if TRANSITIONS allows it; raise IllegalTransition if not."""
        was = self.iv[i]
        if to not in TRANSITIONS[was]:
            raise IllegalTransition(
                f"phase {self.ids[i]} crossing: {was.name.lower()} -> {to.name.lower()}"
                " is not a legal move"
            )
        self.iv[i] = to

    def clear(self) -> None:
        """Rule 5: every crossing to don't walk at once (all red or flash entered);
        calls are kept."""
        self.iv = [DONT_WALK] * len(self.iv)

    def all_clear(self) -> bool:
        return all(v == DONT_WALK for v in self.iv)

    def advance(self, ctl: Controller, now: int, i: int, calls: int, cross_demand: int) -> bool:
        """Phase i is green: start, time or end its crossing. True if a display changed."""
        pi = self.iv[i]
        if pi == DONT_WALK:
            if not (self.call[i] and ctl.has_ped[i] and not ctl.omit[i]):
                return False
            if now < self.walk_from[i]:
                return False  # rule 6: the clearance ended in this step
            # Rule 1: in the initial green, or later only while the phase rests.
            resting = not ((calls & ctl.rings.conf_mask[i]) | cross_demand)
            if now >= ctl.timers.min_end[i] and not resting:
                return False
            if ctl.modes.all_red_req or ctl.modes.flash_req or not ctl._gate_clear(ctl.ped_gate[i]):
                return False
            if ctl.preempt.serving >= 0:
                return False  # no new walk while preempted
            self.call[i] = False
            self.move(i, WALK)
            self.walk_at[i] = now
            self.end[i] = now + ctl.timers.timing[i].walk_ms
            ctl._event(now, "ped_walk", f"phase {ctl.site.phases[i].id}")
            ctl._dirty = True
            return True
        if now < self.end[i]:
            return False
        if pi == WALK:
            self.move(i, PED_CLEAR)
            self.fdw_at[i] = now
            self.end[i] = now + ctl.timers.timing[i].ped_clear_ms
            ctl._event(now, "ped_clear", f"phase {ctl.site.phases[i].id}")
            if now < self.end[i]:
                ctl._dirty = True
                return True
        self.move(i, DONT_WALK)
        self.walk_from[i] = now + 1
        ctl._event(now, "ped_dont_walk", f"phase {ctl.site.phases[i].id}")
        ctl._dirty = True
        return True

    def shorten(self, ctl: Controller, now: int, i: int, min_walk_ms: int, clear_ms: int) -> bool:
        """Preemption's entry: end the walk after `min_walk_ms`, the clearance after
        `clear_ms` from its start (rule 3). True if anything changed."""
        if self.iv[i] == WALK and now >= self.walk_at[i] + min_walk_ms:
            self.move(i, PED_CLEAR)
            self.fdw_at[i] = now
            self.end[i] = now + clear_ms
            ctl._event(now, "ped_clear", f"phase {ctl.site.phases[i].id}", "preempt")
            ctl._dirty = True
            return True
        if self.iv[i] == PED_CLEAR and self.end[i] > self.fdw_at[i] + clear_ms:
            self.end[i] = self.fdw_at[i] + clear_ms
            return True
        return False
