"""Phase timing: calls and recalls, minimum green and added initial, passage and gap
reduction, max 1 and max 2, and the reason a green may end.

Rules this module keeps (tests/control/test_timeline.py, test_properties.py and
invariants.py check them):

1. A phase is called by a vehicle call (a detector or an operator), a pedestrian
   call, a non-locking loop occupied now, or a recall (minimum, maximum,
   pedestrian, or a coordinated phase), or a neighbour's predicted arrival
   (arrivals.py rule 3); a soft recall calls only when nothing else does. A green
   or omitted phase has no serviceable call.
2. A green starts on the plan in force: its minimum is the plan's minimum green,
   or the added initial (per actuation counted on red, up to the max initial) if
   longer, never below the site minimum green.
3. Passage: each actuation (and each end of a loop's extension) restarts the
   passage timer with the allowable gap, which gap reduction lowers linearly from
   the passage to the minimum gap after the time before reduction, counted from
   when the max timer started (adaptive timing: by the queues waiting instead).
4. The max timer (max 1, or max 2 when the plan or an operator asks for it;
   adaptive timing may shorten it) runs only while a conflicting call waits, and
   is reset when none does.
5. A green may end only once its minimum has passed, its crossing shows don't
   walk and no operator hold keeps it (a stop overrides a hold). Its reason to
   end, in order: an operator force-off, a stop (all red, flash),
   coordination's force-offs and yields, max-out, and gap-out (never under a
   max recall; a neighbour's predicted arrival holds it off: arrivals.py rule 2).

State owned here, per phase: the timing in force, the vehicle call, actuations
counted on red, loops extending and non-locking loops calling now, the
minimum, passage and max timers, the recalls; and max 2 in use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.control.site import PhaseTiming as Timing
from edge.control.site import Plan, Recall, Site
from edge.control.states import ADAPTIVE, DONT_WALK, GREEN, NEVER, RED

if TYPE_CHECKING:
    from edge.control.controller import Controller


class PhaseTimers:
    def __init__(self, site: Site, plan: Plan) -> None:
        n = len(site.phases)
        self.timing: list[Timing] = [plan.timings[p.id] for p in site.phases]
        self.vcall = [False] * n
        self.actu_red = [0] * n  # actuations while not green (added initial)
        self.ext_count = [0] * n  # loops extending the green now
        self.nl_count = [0] * n  # non-locking loops calling now
        self.min_end = [0] * n
        self.pass_end = [0] * n
        self.max_end = [NEVER] * n
        self.max_from = [NEVER] * n  # when the max timer started (gap reduction)
        self.use_max2 = plan.use_max2
        self.recall_veh: list[bool] = []
        self.recall_ped: list[bool] = []
        self.recall_soft: list[bool] = []

    def set_recalls(self, ctl: Controller) -> None:
        """From the plan, and coordination's phases (served every cycle, as if on recall)."""
        recalls = [ctl.plan.timings[p.id].recall for p in ctl.site.phases]
        pts = ctl.coordinator.points
        coord = pts.coord if pts is not None else (False,) * len(recalls)
        self.recall_veh = [
            Recall.MIN in r or Recall.MAX in r or coord[i] for i, r in enumerate(recalls)
        ]
        self.recall_ped = [Recall.PED in r and ctl.has_ped[i] for i, r in enumerate(recalls)]
        self.recall_soft = [Recall.SOFT in r for r in recalls]

    def calls(self, ctl: Controller) -> int:
        """Bitmask of phases with a serviceable call (rule 1)."""
        mask = 0
        soft = 0
        pcall = ctl.peds.call
        omit = ctl.omit
        adaptive = ctl.control == ADAPTIVE
        predicted = ctl.arrivals.calls(ctl)  # arrivals.py rule 3: non-locking
        for i, v in enumerate(ctl.intervals.iv):
            if v == GREEN or omit[i]:
                continue
            if self.recall_ped[i]:
                pcall[i] = True
            loop = self.nl_count[i] and (
                not adaptive
                or ctl.adaptive.left_call_counts(i, ctl.last_now, ctl.dets.present, ctl.dets.on_at)
            )
            if self.vcall[i] or pcall[i] or loop or self.recall_veh[i] or predicted >> i & 1:
                mask |= 1 << i
            elif self.recall_soft[i]:
                soft |= 1 << i
        return mask or soft

    def green_started(self, ctl: Controller, i: int, now: int) -> None:
        """Rule 2: the timing in force, the minimum (added initial), passage; no max yet."""
        t = ctl.plan.timings[ctl.site.phases[i].id]
        self.timing[i] = t
        added = min(self.actu_red[i] * t.added_initial_ms, t.max_initial_ms)
        self.min_end[i] = now + max(t.min_green_ms, added, ctl.min_green_ms)
        self.pass_end[i] = now + t.passage_ms
        self.max_end[i] = NEVER
        self.max_from[i] = NEVER
        self.actu_red[i] = 0
        self.vcall[i] = False

    def gap(self, ctl: Controller, i: int, now: int) -> int:
        """Rule 3: passage (allowable gap) now, after gap reduction."""
        t = self.timing[i]
        if ctl.control == ADAPTIVE:
            return ctl.adaptive.gap_ms(t.passage_ms, self._waiting(ctl, i))
        if t.time_to_reduce_ms <= 0 or self.max_from[i] == NEVER:
            return t.passage_ms
        into = now - self.max_from[i] - t.time_before_reduction_ms
        if into <= 0:
            return t.passage_ms
        if into >= t.time_to_reduce_ms:
            return t.min_gap_ms
        span = t.passage_ms - t.min_gap_ms
        return t.passage_ms - span * into // t.time_to_reduce_ms

    def _waiting(self, ctl: Controller, i: int) -> float:
        """Vehicles queued on the phases that must wait for phase i to end."""
        present = ctl.dets.present
        iv = ctl.intervals.iv
        total = 0.0
        mask = ctl.rings.conf_mask[i]
        for j in range(len(iv)):
            if mask >> j & 1 and iv[j] != GREEN and not ctl.omit[j]:
                total += ctl.adaptive.queue(j, present)
        return total

    def max_timer(self, ctl: Controller, now: int, i: int, demand: int) -> None:
        """Rule 4: start the max timer when a conflicting call waits, reset it when none."""
        if demand and self.max_end[i] == NEVER:
            t = self.timing[i]
            self.max_from[i] = now
            max_ms = t.max2_green_ms if self.use_max2 else t.max_green_ms
            if ctl.control == ADAPTIVE:
                max_ms = ctl.adaptive.max_green_ms(i, max_ms, t.min_green_ms)
            self.max_end[i] = now + max_ms
            ctl._timers_dirty = True
        elif not demand and self.max_end[i] != NEVER:
            self.max_end[i] = NEVER
            self.max_from[i] = NEVER
            ctl._timers_dirty = True

    def green_ended(self, i: int) -> None:
        self.max_end[i] = NEVER
        self.max_from[i] = NEVER

    def can_end(self, ctl: Controller, now: int, i: int) -> bool:
        """Rule 5: minimum passed, don't walk, no hold (a stop overrides a hold)."""
        return (
            now >= self.min_end[i]
            and ctl.peds.iv[i] == DONT_WALK
            and not (ctl.hold[i] and not (ctl.modes.all_red_req or ctl.modes.flash_req))
        )

    def end_reason(self, ctl: Controller, now: int, i: int) -> str:
        """Rule 5: why phase i's green ends now ("" while it should not)."""
        if ctl.force_off[i]:
            return "force_off"
        if ctl.modes.all_red_req or ctl.modes.flash_req:
            return "stop"
        if ctl.coordinator.points is not None:
            return ctl.coordinator.end_reason(ctl, now, i)
        if now >= self.max_end[i]:
            return "max_out"
        if Recall.MAX in self.timing[i].recall:
            return ""
        if self.ext_count[i] == 0 and now >= self.pass_end[i]:
            return "" if ctl.arrivals.holds(ctl, i, now) else "gap_out"  # arrivals.py rule 2
        return ""

    def deadlines(self, ctl: Controller, times: list[int]) -> None:
        """When a green's minimum, max or passage (or its crossing's interval) runs out,
        and when a yellow or red clearance ends (one loop: this runs every busy step)."""
        peds = ctl.peds
        ped_iv, ped_end = peds.iv, peds.end
        ends = ctl.intervals.end
        for i, v in enumerate(ctl.intervals.iv):
            if v == GREEN:
                times += (self.min_end[i], self.max_end[i], self.pass_end[i])
                if ped_iv[i]:  # not DONT_WALK (0; a truth test is CPython's fast path)
                    times.append(ped_end[i])
                elif peds.call[i]:
                    times.append(peds.walk_from[i])  # a recycle waiting a step (its rule 6)
            elif v != RED:
                times.append(ends[i])
