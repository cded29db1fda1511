"""Per-pair intergreens in the core's conflict gate (RiLSA / EN 12675; issue 17).

The site's table `intergreens[(leaving, entering)]` is the least time in ms from
the end of `leaving`'s green (its yellow onset; for a pedestrian signal the end
of its walk, i.e. the onset of its flashing don't walk) to the start of
`entering`'s green (or walk), for a conflicting pair of signal groups.

Rules this module keeps (tests/control/test_intergreens.py checks them):

1. The conflict gate (controller.py's rule 4) opens for a group only when, for
   every listed pair that the group enters, the pair's intergreen has elapsed
   since the leaving group's green last ended. This is on top of the gate's own
   rule (every conflicting group red, its clearance finished), never instead.
2. A pair not listed adds nothing: the leaving group's own yellow and red
   clearance (a walk's own clearance) keep the pair apart, as before.
3. A phase's red clearance may be shorter than its plan's only when every
   conflicting pair it leaves is listed: it then ends when the shortest of
   those intergreens has elapsed since its yellow began, and never sooner than
   the site's minimum red clearance after its yellow. Overlaps' and walks'
   clearances stay as configured.
4. A group whose green has not ended since the controller started constrains
   nothing here (its end time is `LONG_AGO`): the start-up all red covers it.
   A green cut short (a fault flash, then the restart through all red) ends
   when the restart begins (cut_greens()).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from edge.control.intervals import LONG_AGO, Waits
from edge.control.overlaps import OverlapInterval
from edge.control.site import SignalKey, SignalKind, Site
from edge.control.states import GREEN, WALK

if TYPE_CHECKING:
    from edge.control.controller import Controller


def waits(site: Site, entering: SignalKey) -> Waits:
    """The listed pairs `entering` must wait out, by the leaving group's kind and index."""
    out: Waits = []
    if not site.intergreens:
        return out
    for i, p in enumerate(site.phases):
        for src, kind in ((0, SignalKind.PHASE), (1, SignalKind.PED)):
            ms = site.intergreens.get(((kind, p.id), entering))
            if ms is not None:
                out.append((src, i, ms))
    for k, o in enumerate(site.overlaps):
        ms = site.intergreens.get(((SignalKind.OVERLAP, o.id), entering))
        if ms is not None:
            out.append((2, k, ms))
    return out


def opens_at(group_waits: Waits, ended: Sequence[Sequence[int]]) -> int:
    """The earliest time (ms) the group may start: every pair's intergreen elapsed since
    its leaving group's green ended (`ended[kind][index]`). LONG_AGO when nothing waits."""
    at: int | None = None  # max(..., default=LONG_AGO), without a generator per call
    for src, j, ms in group_waits:
        t = ended[src][j] + ms
        if at is None or t > at:
            at = t
    return LONG_AGO if at is None else at


def shortest_leaving(site: Site, leaving: SignalKey) -> int | None:
    """Rule 3: the shortest intergreen `leaving` owes a conflicting group, or None
    when some conflicting pair is not listed (the plan's red clearance then stays)."""
    table: Mapping[tuple[SignalKey, SignalKey], int] = site.intergreens
    if not table:
        return None
    owed = []
    for a, b in site.conflicts:
        if a != leaving:
            continue
        ms = table.get((a, b))
        if ms is None:
            return None
        owed.append(ms)
    return min(owed, default=None)


def red_clear_end(
    now: int, yellow_at: int, plan_red_ms: int, floor_ms: int, shortest: int | None
) -> int:
    """When a phase's red clearance that starts `now` (its yellow began at `yellow_at`) ends."""
    if shortest is None:
        return now + max(plan_red_ms, floor_ms)
    return max(now + floor_ms, yellow_at + shortest)


_OVERLAP_GREENS = (OverlapInterval.GREEN, OverlapInterval.TRAIL, OverlapInterval.FYA_FLASH)


def cut_greens(ctl: Controller, now: int) -> None:
    """Rule 4: every green still showing (about to be put to red at once) ends now."""
    ivs = ctl.intervals
    for i, v in enumerate(ivs.iv):
        if v == GREEN:
            ivs.yellow_at[i] = now
    for i, ped in enumerate(ctl.peds.iv):
        if ped == WALK:
            ctl.peds.fdw_at[i] = now
    for k, ov in enumerate(ctl.overlaps.iv):
        if ov in _OVERLAP_GREENS:
            ctl.overlaps.yellow_at[k] = now


class Intergreens:
    """The site's intergreens as the step uses them: the gates that wait on a listed pair,
    and each phase's shortest intergreen owed when all its pairs are listed (else None)."""

    def __init__(self, site: Site, gates: Sequence[tuple[object, object, object, Waits]]) -> None:
        self.waits = [g[3] for g in gates if g[3]]
        self.red = [shortest_leaving(site, (SignalKind.PHASE, p.id)) for p in site.phases]

    @staticmethod
    def ends(ctl: Controller) -> tuple[list[int], list[int], list[int]]:
        """When each phase's, walk's and overlap's green last ended."""
        return (ctl.intervals.yellow_at, ctl.peds.fdw_at, ctl.overlaps.yellow_at)

    def opens_at(self, ctl: Controller, group_waits: Waits) -> int:
        """Rule 1: when a gate waiting on `group_waits` may open."""
        return opens_at(group_waits, self.ends(ctl))

    def deadlines(self, ctl: Controller, times: list[int]) -> None:
        """Each waiting gate's opening time: the step wakes for it."""
        if self.waits:
            ends = self.ends(ctl)
            times += (opens_at(w, ends) for w in self.waits)
