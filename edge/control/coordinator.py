"""Coordination in the sequencer: the local cycle timer and the ends it imposes.

coordination.py turns a pattern into points in the cycle and keeps the offset
transition's arithmetic; this module keeps the state the controller runs it
with and the rules of how the sequencer uses it:

1. A pattern applies only while the control mode is coordinated (a SetMode
   override, else the plan's own). Setting it (a plan, new timing, a mode
   change) starts the local timer where the phases are now: a coordinated
   green reads its time since green (at most its yield point), another green
   its split start plus its time since green; with nothing green, in step.
2. The offset transition advances by the time since the last step, and the
   dwell method only while a coordinated phase rests green at its yield point;
   being pulled into step asks for a step every 100 ms.
3. Under coordination a green ends by force-off or gap-out, never max-out:
   a coordinated phase holds (no gap-out) until its yield point and yields
   only within its permissive period (never while dwelling into step); a
   non-coordinated one is forced off outside its split, or (floating force-
   offs) once it has had its split's green. Minimums, walks and clearances
   still hold: the controller asks here only once a green may end.

State owned here: the resolved points (None: not coordinated), how far (ms)
the local timer lags the desired one, and when the transition last advanced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.control import coordination
from edge.control.site import Recall
from edge.control.states import GREEN

if TYPE_CHECKING:
    from edge.control.controller import Controller


class Coordinator:
    def __init__(self, now: int) -> None:
        self.points: coordination.CoordPoints | None = None
        self.shift = 0
        self.t = now

    def set(self, ctl: Controller, coordinated: bool, now: int) -> None:
        """Resolve the plan's pattern; start the local timer where the phases are now."""
        pattern = ctl.plan.pattern if coordinated else None
        if pattern is None:
            self.points = None
            return
        pts = coordination.resolve(pattern, ctl.site.phases, ctl.plan.timings)
        # Where the local timer should read, judged from what is green now.
        local = None
        for i, v in enumerate(ctl.intervals.iv):
            if v == GREEN:
                elapsed = now - ctl.intervals.green_at[i]
                if pts.coord[i]:
                    local = min(elapsed, (pts.force_off[i] - pts.start[i]) % pts.cycle_ms)
                elif local is None:
                    local = (pts.start[i] + elapsed) % pts.cycle_ms
        desired = (now - pattern.offset_ms) % pts.cycle_ms
        self.shift = 0 if local is None else (desired - local) % pts.cycle_ms
        self.t = now
        self.points = pts

    def cycle_pos(self, ctl: Controller, now: int) -> int:
        assert self.points is not None and ctl.plan.pattern is not None
        return (now - ctl.plan.pattern.offset_ms - self.shift) % self.points.cycle_ms

    def tick(self, ctl: Controller, now: int) -> None:
        """Advance the offset transition by the time since the last step (rule 2)."""
        pts, pattern = self.points, ctl.plan.pattern
        assert pts is not None and pattern is not None
        dt, self.t = now - self.t, now
        if self.shift == 0:
            return
        c = self.cycle_pos(ctl, now)
        at_yield = any(
            pts.coord[i]
            and v == GREEN
            and coordination.in_window(c, pts.force_off[i], pts.permissive_end[i])
            for i, v in enumerate(ctl.intervals.iv)
        )
        self.shift = coordination.step_shift(
            self.shift, dt, pts.cycle_ms, pattern.transition, at_yield
        )
        if self.shift == 0:
            ctl._event(now, "offset_in_step", pattern.id)

    def end_reason(self, ctl: Controller, now: int, i: int) -> str:
        """Termination under coordination (rule 3): force-offs and yield points, no max-out."""
        pts, pattern = self.points, ctl.plan.pattern
        assert pts is not None and pattern is not None
        c = self.cycle_pos(ctl, now)
        if pts.coord[i]:
            if pattern.transition == "dwell" and self.shift:
                return ""  # dwelling in the coordinated phase until in step
            if coordination.in_window(c, pts.force_off[i], pts.permissive_end[i]):
                return "force_off"  # yield point reached, within the permissive period
            return ""
        if not coordination.in_window(c, pts.start[i], pts.force_off[i]):
            return "force_off"  # outside its split
        if pattern.floating and now >= ctl.intervals.green_at[i] + pts.split_green[i]:
            return "force_off"
        if Recall.MAX in ctl.timers.timing[i].recall:
            return ""
        if ctl.timers.ext_count[i] == 0 and now >= ctl.timers.pass_end[i]:
            return "gap_out"
        return ""

    def deadlines(self, ctl: Controller, now: int, times: list[int]) -> None:
        """Add the times at which coordination may end a green by itself."""
        pts = self.points
        assert pts is not None
        if self.shift:
            times.append(now + 100)  # the timer is being pulled into step
        c = self.cycle_pos(ctl, now)
        cyc = pts.cycle_ms
        for i, v in enumerate(ctl.intervals.iv):
            if v == GREEN:
                for point in (pts.start[i], pts.force_off[i]):
                    times.append(now + coordination.until(c, point, cyc))
                if pts.coord[i]:
                    times.append(now + coordination.until(c, pts.permissive_end[i], cyc))
                elif ctl.plan.pattern is not None and ctl.plan.pattern.floating:
                    times.append(ctl.intervals.green_at[i] + pts.split_green[i])
