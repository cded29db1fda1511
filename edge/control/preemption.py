"""Emergency-vehicle preemption (NTCIP 1202): clear to the dwell greens, dwell, exit.

Rules this module keeps (tests/control/test_preemption.py checks them):

1. Requests come by preempt (Preempt commands); one is served at a time: the
   lowest priority number, then the first come. A higher-priority request
   takes over at once; a request still on after the preempt's max presence
   is a stuck input: it times out (event `preempt_timeout`). A request for a
   turn's preempt (central names the vehicle's turn) takes the place of its
   approach's preempt without a turn (the receiver's, which cannot tell the
   turn) when that was requested first: it is the same vehicle, better
   known, and it takes over at once.
2. None is served outside run, nor while the operator clears to all red or
   flash; a request made while held there is refused (commands.py).
3. Entry ends every green that is not a dwell phase as soon as the preempt's
   minimums allow: the green may be cut to the preempt's minimum green (never
   below the site minimum), a walk to its minimum walk and a pedestrian
   clearance to its clearance; yellow and red clearance are never shortened
   and no new walk starts. The dwell phases start green as the conflict gate
   and their red revert allow, and hold green (no max) while preempted.
4. The dwell begins once every ring rests in its dwell phase (or red where it
   has none) and lasts at least the preempt's minimum dwell, even when the
   request is cancelled sooner.
5. Exit keeps every call that came during the preemption, and calls again each
   phase whose green the entry cut short (its queue may reach past its loops).
   A dwell green still showing times its max from its green's start, so one
   that has had its max already ends (past its minimum, walk and clearances,
   as any green) once a conflicting call waits: the streets that waited
   through the preemption are served next (issue 17's compensation).
6. Another request in force whose dwell greens can show with the served
   one's (the same barrier group, no ring asked for two phases) joins its
   dwell: two emergency vehicles from opposite ends of a street that dwell
   in their own through only (shared-lane approaches) are both served at
   once, where the second waited for the first to pass and then for a full
   change (issue 17: arterial-4, the second vehicle stood 21 s at the
   signal). Its greens start through the same conflict gate as any dwell
   green; when the served request ends, the joined one is served in its turn.

State owned here: the requests (preempt index -> time requested), the one
served (-1: none), when its dwell began (-1: still entering), and which
phases the entry cut short.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.control.site import Preempt as SitePreempt
from edge.control.site import Site
from edge.control.states import DONT_WALK, GREEN, NEVER, RUN

if TYPE_CHECKING:
    from edge.control.controller import Controller


class Preemption:
    def __init__(self, site: Site, index: dict[int, int], ring_of: list[int], rings: int) -> None:
        self.index = {p.id: k for k, p in enumerate(site.preempts)}  # preempt id -> k
        # Per preempt: each ring's dwell phase (-1: none), and all dwell phases as a mask.
        self.ring_phase = [[-1] * rings for _ in site.preempts]
        self.dwell_mask = [0] * len(site.preempts)
        for k, pre in enumerate(site.preempts):
            for pid in pre.dwell_phases:
                i = index[pid]
                self.ring_phase[k][ring_of[i]] = i
                self.dwell_mask[k] |= 1 << i
        group = {index[p.id]: p.group for p in site.phases}
        self.group = [{group[i] for i in range(len(group)) if m >> i & 1} for m in self.dwell_mask]
        self.requests: dict[int, int] = {}
        self.serving = -1
        self.dwell_at = -1
        self.cut = 0  # phases whose green the entry ended early: called again at exit

    def request(self, ctl: Controller, now: int, k: int, on: bool, label: str) -> None:
        if on:
            if k not in self.requests:
                self.requests[k] = now
                ctl._event(now, "preempt_request", label)
        elif self.requests.pop(k, None) is not None:
            ctl._event(now, "preempt_cancel", label)

    def select(self, ctl: Controller, now: int, stopping: bool) -> bool:
        """Choose the request to serve: lowest priority number, then first come."""
        preempts = ctl.site.preempts
        for k, since in list(self.requests.items()):
            if now >= since + preempts[k].max_presence_ms:
                del self.requests[k]
                ctl._event(now, "preempt_timeout", f"preempt {preempts[k].id}")
        best = -1
        if self.requests and not stopping and ctl.modes.mode == RUN:
            best = min(self.requests, key=lambda k: self._rank(preempts, k))
        if best == self.serving:
            return False
        if best < 0 and self.dwell_at >= 0:
            dwell_end = self.dwell_at + preempts[self.serving].min_dwell_ms
            if now < dwell_end:
                return False  # the dwell runs its minimum before normal operation resumes
        if best >= 0:  # a first request, or one of higher priority: serve it now
            self.serving = best
            self.dwell_at = -1
            ctl.rings.pending_group = -1
            ctl.rings.entry = [-1] * len(ctl.rings.entry)
            ctl._event(now, "preempt_enter", f"preempt {preempts[best].id}")
            return True
        self._exit(ctl, now)
        return True

    def _rank(self, preempts: tuple[SitePreempt, ...], k: int) -> tuple[int, int, int]:
        """Serve the lowest: priority, then first come (a turn's preempt in the place of
        its approach's preempt requested before it, rule 1), a turn's before the approach's."""
        pre = preempts[k]
        since = self.requests[k]
        if pre.turn is not None:
            for j, at in self.requests.items():
                if preempts[j].approach == pre.approach and preempts[j].turn is None:
                    since = min(since, at)
        return pre.priority, since, 0 if pre.turn is not None else 1

    def dwell(self) -> tuple[int, list[int]]:
        """The served preempt's dwell greens (a mask, and each ring's phase or -1), with
        those of every other request in force that can show with them (rule 6)."""
        k = self.serving
        mask, rings, groups = self.dwell_mask[k], list(self.ring_phase[k]), set(self.group[k])
        for j in sorted(self.requests):
            if j == k or len(self.group[j] | groups) > 1:
                continue
            other = self.ring_phase[j]
            if any(a >= 0 and b >= 0 and a != b for a, b in zip(rings, other, strict=True)):
                continue
            mask |= self.dwell_mask[j]
            rings = [a if a >= 0 else b for a, b in zip(rings, other, strict=True)]
            groups |= self.group[j]
        return mask, rings

    def _exit(self, ctl: Controller, now: int) -> None:
        """Back to normal operation from the dwell greens.

        Detector and pedestrian calls are kept all through a preemption, so the
        phases that are called are those with demand, plus every phase whose
        green the entry cut short (its queue may reach past its loops). Calling
        every phase, as some controllers do, would time a minimum green and
        its clearances for each empty one: measured on `single`, twice the
        delay preemption costs general traffic (docs/priority.md).
        """
        ctl._event(now, "preempt_exit", f"preempt {ctl.site.preempts[self.serving].id}")
        timers, iv = ctl.timers, ctl.intervals
        dwell, _ = self.dwell()
        for i in range(len(iv.iv)):
            if dwell >> i & 1 and iv.iv[i] == GREEN:
                t = timers.timing[i]
                timers.max_from[i] = iv.green_at[i]  # rule 5: its max runs from its green
                timers.max_end[i] = iv.green_at[i] + (
                    t.max2_green_ms if timers.use_max2 else t.max_green_ms
                )
        self.serving = -1
        self.dwell_at = -1
        for i in range(len(ctl.timers.vcall)):
            if self.cut >> i & 1 and not ctl.omit[i]:
                ctl.timers.vcall[i] = True
        self.cut = 0
        for r, a in enumerate(ctl.rings.active):
            ctl.rings.ring_next[r] = -1
            if a < 0:
                ctl.rings.ring_later[r] = (
                    ctl.rings.ring_mask[r] & ctl.rings.group_mask[ctl.rings.group]
                )
        ctl._dirty = True

    def run_pass(self, ctl: Controller, now: int) -> bool:
        """Clear every non-dwell green (within the preempt's minimums), then dwell."""
        k = self.serving
        dwell, ring_phase = self.dwell()
        changed = False
        settled = True
        for r, a in enumerate(ctl.rings.active):
            if a >= 0 and ctl.intervals.iv[a] != GREEN:
                changed |= ctl.rings.clearance(ctl, now, r, a)
                a = ctl.rings.active[r]
            if a >= 0 and ctl.intervals.iv[a] == GREEN:
                if dwell >> a & 1:
                    ctl.timers.max_end[a] = NEVER
                    changed |= ctl.peds.advance(ctl, now, a, 0, 0)
                    continue
                settled = False
                changed |= self._shorten_ped(ctl, now, a)
                changed |= ctl.peds.advance(ctl, now, a, 0, 0)
                if self._can_end(ctl, now, a):
                    ctl._start_yellow(now, a, "preempt")
                    self.cut |= 1 << a
                    changed = True
                continue
            if a >= 0:
                settled = False
                continue
            d = ring_phase[r]
            ctl.rings.ring_next[r] = -1
            if d < 0:
                continue
            settled = False
            if ctl._may_start(now, d):
                ctl.rings.group = ctl.rings.group_of[d]
                ctl._start_green(now, r, d)
                changed = True
        if settled and self.dwell_at < 0:
            self.dwell_at = now
            ctl._event(now, "preempt_dwell", f"preempt {ctl.site.preempts[k].id}")
            changed = True
        return changed

    def _shorten_ped(self, ctl: Controller, now: int, i: int) -> bool:
        """Walk and pedestrian clearance may end early, but not below the preempt's minimums."""
        pre = ctl.site.preempts[self.serving]
        clear_ms = min(ctl.timers.timing[i].ped_clear_ms, pre.ped_clear_ms)
        return ctl.peds.shorten(ctl, now, i, pre.min_walk_ms, clear_ms)

    def _can_end(self, ctl: Controller, now: int, i: int) -> bool:
        pre = ctl.site.preempts[self.serving]
        green_at = ctl.intervals.green_at[i]
        min_end = min(ctl.timers.min_end[i], green_at + max(pre.min_green_ms, ctl.min_green_ms))
        return now >= min_end and ctl.peds.iv[i] == DONT_WALK

    def deadlines(self, ctl: Controller, times: list[int]) -> None:
        """Add the times at which preemption may change something by itself."""
        preempts = ctl.site.preempts
        for k, since in self.requests.items():
            times.append(since + preempts[k].max_presence_ms)
        if self.serving < 0:
            return
        pre = preempts[self.serving]
        if self.dwell_at >= 0:
            times.append(self.dwell_at + pre.min_dwell_ms)
        for i, v in enumerate(ctl.intervals.iv):
            if v == GREEN:
                times.append(ctl.intervals.green_at[i] + max(pre.min_green_ms, ctl.min_green_ms))
                times.append(ctl.peds.walk_at[i] + pre.min_walk_ms)
        _, ring_phase = self.dwell()
        for r, a in enumerate(ctl.rings.active):
            d = ring_phase[r]
            if a < 0 and d >= 0:  # a dwell phase waiting out its red revert
                times.append(ctl.intervals.red_at[d] + ctl.timers.timing[d].red_revert_ms)
