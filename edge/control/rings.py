"""Rings and barriers: which phase each ring serves, and when the rings cross a barrier.

Rules this module keeps (controller.py's rule 1; tests/control/test_timeline.py,
test_properties.py and invariants.py check them):

1. The phases of one ring time one at a time, in ring order; phases of
   different rings time together only inside one barrier group.
2. In a ring, a green that may end (timing.py rule 5) gives way to the next
   called phase later in the ring inside the group; a ring with nothing more
   to serve in the group is ready to cross. With simultaneous gap-out off, a
   ring once ready stays ready until the barrier is crossed.
   2a. A green whose next phase is a lagging left (a protected left after the
   phase that lets it turn permissively, its FYA overlap's permissive parent)
   gives way to it only once every other ring's green in the group may end
   too (free and adaptive operation; coordination's force-offs decide
   otherwise). Meanwhile its stragglers pass and the left's flashing arrow
   turns lefts in the gaps, and the protected left runs at the end of the
   group for the lefts still waiting, not in the middle of it, where its
   through's later arrivals would wait a whole cycle while the other ring's
   green runs on. Only a gap-out holds: the held green's own maximum (its
   timer runs, the left calling) ends it, so the left waits no longer than
   when that green was extended to its maximum by its own vehicles. A held
   green ends as a gap-out (controller._start_yellow asks ended_held(); it had
   gapped out, so logs and split balancing see no max-out). No green holds
   while a transit request is on: the hold would delay the bus's early green
   or, the left being its phase, the left itself.
3. The barrier is crossed when another group (or a phase behind a ring's
   position in this group) is called and every ring is ready: every green
   still running ends, and the new group starts only once every ring has
   finished its clearance. The next group is the first called one after the
   current one; each ring enters it at its first called phase, else its
   dual-entry phase, else waits.
4. A green ends (through yellow) when it may end and: a later phase of its ring
   is called, or a stop (all red, flash) is asked, or, resting in red is asked,
   nothing conflicting is called. No green starts while stopping, and a phase
   starts only as its red revert and the conflict gate allow (controller.py).
5. Leaving all red with nothing timing, the rings enter the first called group
   (else the start-up phases' group); start-up enters the start-up phases'
   group. All red, flash and start-up all red clear every ring (clear()).

State owned here, per ring: the phase timing (-1: none), the next phase chosen,
the phases still ahead in the group (a mask), the phase whose service last ended
and the ready latch; the greens rule 2a held (a mask); the group timing, the
group being crossed to (-1: none) and each ring's entry phase into it; and the
indexes built from the site.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.control import intergreens, transit
from edge.control.site import Site
from edge.control.states import GREEN, YELLOW

if TYPE_CHECKING:
    from edge.control.controller import Controller


class Rings:
    def __init__(self, site: Site) -> None:
        self.build_indexes(site)
        nr = len(self.ring_seq)
        self.active = [-1] * nr
        self.ring_next = [-1] * nr
        self.ring_later = [0] * nr  # phases of each ring still ahead in the group
        self.ring_prev = [-1] * nr  # the phase whose service last ended in the ring
        self.ready_latch = [False] * nr
        self.group = 0
        self.pending_group = -1
        self.entry = [-1] * nr
        self.held = 0  # greens rule 2a held since they started (they end as gap-outs)

    def build_indexes(self, site: Site) -> None:
        phases = site.phases
        rings = sorted({p.ring for p in phases})
        groups = sorted({p.group for p in phases})
        self.ring_of = [rings.index(p.ring) for p in phases]
        self.group_of = [groups.index(p.group) for p in phases]
        self.ngroups = len(groups)
        self.ring_seq = [[i for i, p in enumerate(phases) if p.ring == r] for r in rings]
        self.pos_of = [0] * len(phases)
        for seq in self.ring_seq:
            for pos, i in enumerate(seq):
                self.pos_of[i] = pos
        self.group_mask = [0] * self.ngroups
        for i, g in enumerate(self.group_of):
            self.group_mask[g] |= 1 << i
        self.ring_mask = [sum(1 << i for i in seq) for seq in self.ring_seq]
        # Calls that make phase i end: same ring, or another barrier group.
        all_mask = (1 << len(phases)) - 1
        self.conf_mask = [
            (self.ring_mask[self.ring_of[i]] | ~self.group_mask[self.group_of[i]])
            & ~(1 << i)
            & all_mask
            for i in range(len(phases))
        ]
        # Phases after each ring position, within that position's group.
        self.later_mask = [
            [
                sum(1 << j for j in seq[pos + 1 :] if self.group_of[j] == self.group_of[i])
                for pos, i in enumerate(seq)
            ]
            for seq in self.ring_seq
        ]
        self.start_phases = [i for i, p in enumerate(phases) if p.start_up]
        self.dual_entry = [p.dual_entry for p in phases]
        # Lagging FYA lefts (rule 2a): a protected left after a phase of its ring that
        # lets it turn permissively (its FYA overlap's permissive parent).
        index = {p.id: i for i, p in enumerate(phases)}
        self.lag_left = 0
        for o in site.overlaps:
            for pid in o.parents if o.permissive_parents else ():
                i = index[pid]
                if any(
                    self.ring_of[index[q]] == self.ring_of[i]
                    and self.pos_of[index[q]] < self.pos_of[i]
                    for q in o.permissive_parents
                ):
                    self.lag_left |= 1 << i

    def clear(self) -> None:
        """Rule 5: all red, flash or start-up all red entered: no ring times anything."""
        self.active = [-1] * len(self.active)
        self.ring_next = [-1] * len(self.ring_next)
        self.entry = [-1] * len(self.entry)
        self.pending_group = -1

    def green_started(self, r: int, i: int) -> None:
        self.active[r] = i
        self.ring_next[r] = -1
        self.ring_later[r] = self.later_mask[r][self.pos_of[i]]
        self.ready_latch[r] = False
        self.held &= ~(1 << i)

    def ended_held(self, i: int) -> bool:
        """Phase i's green ends: did rule 2a hold it? (Forgets it.)"""
        held = bool(self.held >> i & 1)
        self.held &= ~(1 << i)
        return held

    def serve(self, ctl: Controller, now: int, calls: int, stopping: bool) -> bool:
        """Each ring's clearance, green and next phase, then the barrier (rules 1-4).
        True if anything changed."""
        changed = False
        iv = ctl.intervals.iv
        timers = ctl.timers
        # Calls behind a ring's position in this group need a trip round the barrier.
        here = self.group_mask[self.group]
        wrap = 0
        for r, a in enumerate(self.active):
            behind = self.ring_mask[r] & here & ~self.ring_later[r]
            wrap |= calls & behind & ~(1 << a if a >= 0 else 0)
        cross_demand = (calls & ~self.group_mask[self.group]) | wrap
        ready_all = True
        for r, a in enumerate(self.active):
            if a >= 0 and iv[a] != GREEN:
                changed |= self.clearance(ctl, now, r, a)
                a = self.active[r]
            if a >= 0 and iv[a] == GREEN:
                changed |= ctl.peds.advance(ctl, now, a, calls, cross_demand)
                demand = (calls & self.conf_mask[a]) | cross_demand
                timers.max_timer(ctl, now, a, demand)
                local = calls & self.ring_later[r] if self.pending_group < 0 else 0
                can_end = timers.can_end(ctl, now, a)
                reason = timers.end_reason(ctl, now, a) if can_end else ""
                if ctl.transit is not None and can_end and not stopping:
                    reason = transit.end_reason(ctl, now, a, reason, bool(demand | local))
                if (
                    local
                    and reason == "gap_out"
                    and not stopping
                    and self._lag_waits(ctl, now, r, local)
                ):
                    self.held |= 1 << a
                    ready_all = False  # rule 2a: the green holds, its left's FYA still flashing
                    continue
                if local and reason and not stopping:
                    ctl._start_yellow(now, a, reason)
                    self.ring_next[r] = (local & -local).bit_length() - 1
                    changed = True
                    ready_all = False
                    continue
                if reason and (stopping or (not demand and ctl.site.rest_in_red)):
                    ctl._start_yellow(now, a, reason if stopping else "gap_out")
                    changed = True
                    continue
                ready = bool(reason) and not local
                if not ctl.site.simultaneous_gap_out:
                    ready = ready or self.ready_latch[r]
                    self.ready_latch[r] = ready
                ready_all &= ready
            elif a < 0:
                nxt = self.ring_next[r]
                if nxt >= 0:
                    ready_all = False
                    if not stopping and ctl._may_start(now, nxt):
                        ctl._start_green(now, r, nxt)
                        changed = True
                elif self.pending_group < 0 and not stopping:
                    local = calls & self.ring_later[r]
                    if local:
                        ready_all = False
                        nxt = (local & -local).bit_length() - 1
                        if ctl._may_start(now, nxt):
                            ctl._start_green(now, r, nxt)
                            changed = True
                        else:
                            self.ring_next[r] = nxt
            elif self.ring_next[r] >= 0:
                ready_all = False
        changed |= self._barrier(ctl, now, calls, cross_demand, ready_all, stopping)
        return changed

    def _lag_waits(self, ctl: Controller, now: int, r: int, local: int) -> bool:
        """Rule 2a: ring r's green gapped out, its next phase is a lagging left and
        another ring's green in the group still extends (may not end yet); never while a
        transit request is on (the hold would delay its early green or its left)."""
        nxt = (local & -local).bit_length() - 1
        if not self.lag_left >> nxt & 1 or ctl.coordinator.points is not None:
            return False
        if ctl.transit is not None and ctl.transit.target() is not None:
            return False
        iv, timers = ctl.intervals.iv, ctl.timers
        for r2, a2 in enumerate(self.active):
            if r2 == r or a2 < 0 or iv[a2] != GREEN:
                continue
            if not (timers.can_end(ctl, now, a2) and timers.end_reason(ctl, now, a2)):
                return True
        return False

    def clearance(self, ctl: Controller, now: int, r: int, i: int) -> bool:
        """Ring r's phase i: yellow ends in red clearance, red clearance in red (the ring
        is then free). True if anything changed."""
        ivs = ctl.intervals
        if now < ivs.end[i]:
            return False
        if ivs.iv[i] == YELLOW:
            end = intergreens.red_clear_end(
                now,
                ivs.yellow_at[i],
                ctl.timers.timing[i].red_clear_ms,
                ctl.min_red_ms,
                ctl.ig.red[i],
            )
            ivs.red_clear(i, now, end - now)
            ctl._event(now, "phase_red_clear", f"phase {ctl.site.phases[i].id}")
            ctl._dirty = True
            if now < ivs.end[i]:
                return True
        ivs.red(i)
        self.active[r] = -1
        self.ring_prev[r] = i
        ctl._event(now, "phase_red", f"phase {ctl.site.phases[i].id}")
        ctl._dirty = True
        return True

    def _barrier(
        self, ctl: Controller, now: int, calls: int, cross_demand: int, ready_all: bool,
        stopping: bool,
    ) -> bool:  # fmt: skip
        """Rule 3: decide to cross, end the greens still running, enter once all clear."""
        changed = False
        if self.pending_group < 0:
            if not (cross_demand and ready_all) or stopping:
                return False
            target = self.target_group(calls)
            if target < 0:
                return False
            self.pending_group = target
            iv = ctl.intervals.iv
            for r, a in enumerate(self.active):
                self.entry[r] = self.entry_phase(r, target, calls, ctl.omit)
                if a >= 0 and iv[a] == GREEN:
                    reason = ctl.timers.end_reason(ctl, now, a)
                    ctl._start_yellow(now, a, reason or "gap_out")
                self.ready_latch[r] = False
            ctl._event(now, "barrier_cross", f"group {target + 1}")
            changed = True
        if any(a >= 0 for a in self.active):
            return changed
        self._enter_group(ctl, now, self.pending_group, start=not stopping)
        return True

    def _enter_group(self, ctl: Controller, now: int, g: int, start: bool) -> None:
        """Cross into barrier group g: each ring starts its entry phase, if any."""
        self.group = g
        self.pending_group = -1
        for r in range(len(self.ring_seq)):
            e = self.entry[r]
            self.entry[r] = -1
            # A ring with no entry waits before its first phase in the group.
            self.ring_later[r] = self.ring_mask[r] & self.group_mask[g]
            if e >= 0 and start:
                self.ring_next[r] = e
                if ctl._may_start(now, e):
                    ctl._start_green(now, r, e)

    def target_group(self, calls: int) -> int:
        """The first group after the current one with a call (-1: none)."""
        for step in range(1, self.ngroups + 1):
            g = (self.group + step) % self.ngroups
            if calls & self.group_mask[g]:
                return g
        return -1

    def entry_phase(self, r: int, g: int, calls: int, omit: list[bool]) -> int:
        """Ring r's first phase into group g: the first called, else dual entry (-1: none)."""
        in_group = [i for i in self.ring_seq[r] if self.group_of[i] == g and not omit[i]]
        for i in in_group:
            if calls >> i & 1:
                return i
        for i in in_group:
            if self.dual_entry[i]:
                return i
        return -1

    def resume(self, ctl: Controller) -> None:
        """Rule 5: from all red with no phase timing, serve whatever is called next."""
        if any(a >= 0 for a in self.active):
            return
        calls = ctl.timers.calls(ctl)
        target = self.target_group(calls)
        if target < 0:
            target = self.group_of[self.start_phases[0]] if self.start_phases else 0
        self.pending_group = target
        for r in range(len(self.ring_seq)):
            self.entry[r] = self.entry_phase(r, target, calls, ctl.omit)

    def start_up(self, ctl: Controller, now: int) -> None:
        """Rule 5: start-up enters the start-up phases' group (or resumes, with none)."""
        if not self.start_phases:
            self.resume(ctl)
            return
        self.group = self.group_of[self.start_phases[0]]
        self.ring_later = [m & self.group_mask[self.group] for m in self.ring_mask]
        for i in self.start_phases:
            r = self.ring_of[i]
            if ctl._may_start(now, i):
                ctl._start_green(now, r, i)
            else:
                self.ring_next[r] = i

    def deadlines(self, ctl: Controller, times: list[int]) -> None:
        """When a ring's next phase waiting on red may start (its red revert ends)."""
        red_at, timing = ctl.intervals.red_at, ctl.timers.timing
        for r, n in enumerate(self.ring_next):
            if n >= 0 and self.active[r] < 0:
                times.append(red_at[n] + timing[n].red_revert_ms)
