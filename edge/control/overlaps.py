"""Overlaps: signal heads that follow their parent phases, and flashing yellow arrows.

Rules this module keeps (tests/control/test_properties.py, test_fya.py and
invariants.py check them):

1. A normal overlap is wanted while one of its parents is green, and through a
   change from one parent to the next in a ring (the phase that last served and
   the one coming next are both parents). It starts green only when its conflict
   gate is clear (controller.py's rule 4); a trailing green taken back is not a
   new green.
2. A normal overlap no longer wanted times its trailing green (if any), then its
   own yellow, then its own red clearance, then red. Only fault flash cuts these
   short, and only a trailing green may return to green: one wanted again while
   in its yellow or red clearance (a parent in the other barrier group started
   first) finishes them, then greens through its gate like any red overlap.
3. A flashing-yellow-arrow head follows its parents' intervals: a green arrow
   while a protected parent is green, a flashing yellow arrow while a permissive
   parent is green. Its yellow is the parent's yellow, so it is never shorter; it
   flashes only from red (never straight from a green arrow) and only once its
   conflict gate is clear; it leaves the flashing arrow only through yellow, or
   straight to a green arrow (a gain of right of way, as the MUTCD allows).
4. All red, flash and start-up all red put every overlap to red at once (clear()).
   A plan or timing change waits while any overlap is yellow, in red clearance
   or in a trailing green (at_safe_point()).
5. An overlap is in one interval (`OverlapInterval`) and moves only along its
   kind's table: TRANSITIONS for a normal overlap (red -> green -> trailing green
   or yellow, trailing green -> green or yellow, yellow -> red clearance -> red),
   FYA_TRANSITIONS for a flashing-yellow-arrow head (red -> green arrow or
   flashing arrow, flashing arrow -> green arrow or yellow, green arrow ->
   yellow -> red). Any other move is a sequencer bug: `move` raises
   IllegalTransition, which the controller's step turns into fault flash
   (controller.py rule 5). clear() (rule 4) is the one exception, as
   intervals.py's `all_red` is for phases.

State owned here, per overlap: the interval and when it ends; the indexes built
from the site (parents, permissive parents, the conflict gate, each one's table).
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

from edge.control.intervals import LONG_AGO, Gate, IllegalTransition, Interval
from edge.control.site import Site

if TYPE_CHECKING:
    from edge.control.controller import Controller


class OverlapInterval(IntEnum):
    """An overlap's interval: a phase's four (same values), trailing green and the
    flashing yellow arrow; the value indexes the lamp table (outputs.VEH_LAMP)."""

    RED = 0
    GREEN = 1
    YELLOW = 2
    RED_CLEAR = 3
    TRAIL = 4
    FYA_FLASH = 5


RED, GREEN, YELLOW, RED_CLEAR, TRAIL, FYA_FLASH = OverlapInterval
_PARENT_GREEN, _PARENT_YELLOW = Interval.GREEN, Interval.YELLOW  # a parent phase's

Table = dict[OverlapInterval, frozenset[OverlapInterval]]
TRANSITIONS: Table = {
    RED: frozenset({GREEN}),
    GREEN: frozenset({TRAIL, YELLOW}),
    TRAIL: frozenset({GREEN, YELLOW}),  # a trailing green taken back (rule 1)
    YELLOW: frozenset({RED_CLEAR}),
    RED_CLEAR: frozenset({RED}),
    FYA_FLASH: frozenset(),
}
"""A normal overlap's legal moves (rules 1, 2 and 5)."""
FYA_TRANSITIONS: Table = {
    RED: frozenset({GREEN, FYA_FLASH}),
    GREEN: frozenset({YELLOW}),
    FYA_FLASH: frozenset({GREEN, YELLOW}),
    YELLOW: frozenset({RED}),  # its yellow is its parent's; red in the parent's red clearance
    RED_CLEAR: frozenset(),
    TRAIL: frozenset(),
}
"""A flashing-yellow-arrow head's legal moves (rules 3 and 5)."""

_FYA_EVENTS = {
    GREEN: "overlap_green",
    FYA_FLASH: "overlap_flashing_yellow",
    YELLOW: "overlap_yellow",
    RED: "overlap_red",
}


class Overlaps:
    def __init__(self, n: int) -> None:
        self.iv: list[OverlapInterval] = [RED] * n
        self.end = [0] * n
        self.yellow_at = [LONG_AGO] * n  # when each one's green (or flashing arrow) last ended

    def build_indexes(self, site: Site, index: dict[int, int], gates: list[Gate]) -> None:
        """Indexes from the site (again after new timing): parents, the conflict gate."""
        self.site = site
        self.index = {o.id: k for k, o in enumerate(site.overlaps)}
        self.parent_mask = [sum(1 << index[pid] for pid in o.parents) for o in site.overlaps]
        self.parents = [[index[pid] for pid in o.parents] for o in site.overlaps]
        self.permissive = [[index[pid] for pid in o.permissive_parents] for o in site.overlaps]
        self.gate = gates
        self.table = [
            FYA_TRANSITIONS if o.permissive_parents else TRANSITIONS for o in site.overlaps
        ]

    def move(self, k: int, to: OverlapInterval) -> None:
        """Overlap k to `to` if its table allows it; raise IllegalTransition if not."""
        was = self.iv[k]
        if to not in self.table[k][was]:
            raise IllegalTransition(
                f"overlap {self.site.overlaps[k].id}: {was.name.lower()} -> {to.name.lower()}"
                " is not a legal move"
            )
        self.iv[k] = to

    def clear(self) -> None:
        """Every overlap to red (all red, flash or start-up all red entered)."""
        self.iv = [RED] * len(self.iv)

    def all_red(self) -> bool:
        return all(v == RED for v in self.iv)

    def at_safe_point(self) -> bool:
        """No overlap is clearing or trailing (rule 4)."""
        return all(v in (RED, GREEN, FYA_FLASH) for v in self.iv)

    def deadlines(self, times: list[int]) -> None:
        """When a running trailing green, yellow or red clearance ends."""
        for k, v in enumerate(self.iv):
            if v in (YELLOW, RED_CLEAR, TRAIL):
                times.append(self.end[k])

    def _wanted(self, ctl: Controller, k: int) -> bool:
        """Rule 1: while a parent is green, and through a change from one parent to the next."""
        parents = self.parent_mask[k]
        for r, a in enumerate(ctl.rings.active):
            if a >= 0 and ctl.intervals.iv[a] == _PARENT_GREEN and parents >> a & 1:
                return True
            last = a if a >= 0 else ctl.rings.ring_prev[r]
            nxt = ctl.rings.ring_next[r] if ctl.rings.ring_next[r] >= 0 else ctl.rings.entry[r]
            if last >= 0 and nxt >= 0 and parents >> last & 1 and parents >> nxt & 1:
                return True
        return False

    def _fya_state(self, ctl: Controller, k: int, st: OverlapInterval) -> OverlapInterval:
        """Rule 3: a flashing-yellow-arrow head's next interval from its parents'."""
        iv = ctl.intervals.iv
        for i in self.parents[k]:
            if iv[i] == _PARENT_GREEN and st != YELLOW:  # a flashing arrow may turn green directly
                return GREEN if st != RED or ctl._gate_clear(self.gate[k]) else RED
            if iv[i] == _PARENT_YELLOW and st in (GREEN, YELLOW):
                return YELLOW
        for i in self.permissive[k]:
            if iv[i] == _PARENT_GREEN and st in (RED, FYA_FLASH):
                return FYA_FLASH if st == FYA_FLASH or ctl._gate_clear(self.gate[k]) else RED
            if iv[i] == _PARENT_YELLOW and st in (FYA_FLASH, YELLOW):
                return YELLOW
        return RED if st in (RED, YELLOW) else st

    def advance(self, ctl: Controller, now: int) -> bool:
        """Each overlap follows its parents (after the rings and barrier in a pass).
        True if a display changed."""
        changed = False
        for k, ov in enumerate(self.site.overlaps):
            st = self.iv[k]
            name = f"overlap {ov.id}"
            if ov.permissive_parents:
                new = self._fya_state(ctl, k, st)
                if new != st:
                    self.move(k, new)
                    if new == YELLOW:
                        self.yellow_at[k] = now
                    ctl._event(now, _FYA_EVENTS[new], name)
                    changed = True
                continue
            # Wanted again while clearing (another parent, across a barrier): the yellow
            # and red clearance still run out first; only a trailing green returns.
            if st in (RED, GREEN, TRAIL) and self._wanted(ctl, k):
                if st == TRAIL:
                    self.move(k, GREEN)
                    changed = True
                elif st == RED and ctl._gate_clear(self.gate[k]):
                    self.move(k, GREEN)
                    ctl._event(now, "overlap_green", name)
                    changed = True
                continue
            if st == GREEN:  # rule 2
                if ov.trail_green_ms > 0:
                    self.move(k, TRAIL)
                    self.end[k] = now + ov.trail_green_ms
                else:
                    self.move(k, YELLOW)
                    self.end[k] = now + ov.yellow_ms
                    self.yellow_at[k] = now
                    ctl._event(now, "overlap_yellow", name)
                changed = True
            elif st != RED and now >= self.end[k]:
                if st == TRAIL:
                    self.move(k, YELLOW)
                    self.end[k] = now + ov.yellow_ms
                    self.yellow_at[k] = now
                    ctl._event(now, "overlap_yellow", name)
                elif st == YELLOW:
                    self.move(k, RED_CLEAR)
                    self.end[k] = now + ov.red_clear_ms
                else:
                    self.move(k, RED)
                    ctl._event(now, "overlap_red", name)
                changed = True
        if changed:
            ctl._dirty = True
        return changed
