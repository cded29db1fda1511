"""An independent checker of the safety rules, fed with the controller's outputs.

It knows only the site (plans, rings, groups, conflict table, intergreens) and
what was displayed when; it does not look inside the controller. Each rule
raises AssertionError naming the step, the signal and the rule.

Intergreens (issue 17): no signal group's green (a vehicle green or flashing
yellow arrow, a walk) starts before, for every listed pair it enters, the
pair's intergreen has elapsed since the leaving group's green last ended (a
change to any other display, flash included). A phase whose every conflicting
pair is listed may have a red clearance down to the site's minimum.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edge.control.messages import AllRed, Flash, Hold, Lamp, Omit, Outputs, Preempt, SetPlan
from edge.control.site import ABSOLUTE_MIN_YELLOW_MS, Plan, SignalKey, SignalKind, Site

_BLOCKING = (Hold, Omit, AllRed, Flash, Preempt)
_FLASHING = frozenset({"startup_flash", "flash", "fault_flash"})


@dataclass
class _Phase:
    lamp: Lamp = Lamp.DARK
    since: int = 0
    plan: Plan | None = None  # plan in force when the green started
    yellow_end: int | None = None
    red_clear_ms: int = 0
    ped: Lamp = Lamp.DARK
    ped_since: int = 0
    # Preemption was active during the running green / walk / clearance.
    green_preempted: bool = False
    ped_preempted: bool = False


@dataclass
class InvariantChecker:
    site: Site
    check_service: bool = True
    phases: list[_Phase] = field(default_factory=list)
    plan: Plan | None = None
    pending_plan: str | None = None
    blocked: bool = False  # an operator command that may legitimately delay service
    waiting_since: dict[int, int] = field(default_factory=dict)
    steps: int = 0
    preempting: bool = False  # between preempt_enter and preempt_exit

    def __post_init__(self) -> None:
        self.phases = [_Phase() for _ in self.site.phases]
        self.plan = self.site.plans[self.site.default_plan]
        self.index = {p.id: i for i, p in enumerate(self.site.phases)}
        self.preempts = self.site.preempts
        keys = [(SignalKind.PHASE, p.id) for p in self.site.phases]
        self.conflicting = [
            [j for j, kb in enumerate(keys) if (ka, kb) in self.site.conflicts] for ka in keys
        ]
        self.same_ring = [
            [j for j, q in enumerate(self.site.phases) if q.ring == p.ring and q.id != p.id]
            for p in self.site.phases
        ]
        # The longest a served call can wait: every phase to max, with peds and clearances.
        cycle = 0
        for plan in self.site.plans.values():
            total = 0
            for t in plan.timings.values():
                green = max(t.max_green_ms, t.max2_green_ms, t.min_green_ms + t.max_initial_ms)
                ped = t.walk_ms + t.ped_clear_ms
                total += max(green, ped + t.min_green_ms) + t.yellow_ms + t.red_revert_ms + 200
            cycle = max(cycle, total)
        ig = self.site.intergreens
        self.service_bound_ms = 2 * cycle + self.site.startup_all_red_ms + 1000
        self.service_bound_ms += 2 * len(self.site.phases) * max(ig.values(), default=0)
        # Intergreens: every signal group as (outputs field, index, key).
        groups: list[tuple[int, int, SignalKey]] = []
        for i, p in enumerate(self.site.phases):
            if p.movements or p.permissive:
                groups.append((0, i, (SignalKind.PHASE, p.id)))
            if p.ped_crossing is not None:
                groups.append((1, i, (SignalKind.PED, p.id)))
        groups += [(2, k, (SignalKind.OVERLAP, o.id)) for k, o in enumerate(self.site.overlaps)]
        self.groups = groups
        self.enters = [
            [(c, ig[(kc, kg)]) for c, (_, _, kc) in enumerate(groups) if (kc, kg) in ig]
            for _, _, kg in groups
        ]
        self.group_lamp = [Lamp.DARK] * len(groups)
        self.green_end: list[int | None] = [None] * len(groups)
        # A phase whose every conflicting pair is listed: its red clearance may be the floor.
        self.all_listed = [
            bool(ig)
            and all((a, b) in ig for a, b in self.site.conflicts if a == (SignalKind.PHASE, p.id))
            for p in self.site.phases
        ]

    def commands(self, now: int, commands: tuple[object, ...]) -> None:
        for cmd in commands:
            if isinstance(cmd, _BLOCKING):
                self.blocked = True
            if isinstance(cmd, SetPlan) and cmd.plan in self.site.plans:
                self.pending_plan = cmd.plan

    def call(self, now: int, phase_index: int) -> None:
        """A call the controller must serve (a locking detector, a push button)."""
        if self.phases[phase_index].lamp != Lamp.GREEN:
            self.waiting_since.setdefault(phase_index, now)

    def check(self, now: int, out: Outputs) -> None:
        self.steps += 1
        exited = False
        for ev in out.events:
            if ev.name == "preempt_enter":
                self.preempting = True
            if ev.name == "preempt_exit":
                self.preempting, exited = False, True
            if ev.name == "plan_applied":
                self.plan = self.site.plans[ev.subject]
            if ev.name == "fault_flash":
                raise AssertionError(f"t={now}: fault flash: {ev.detail}")
        flashing = out.mode in _FLASHING
        self._intergreens(now, out, flashing)
        if flashing:
            for st in self.phases:
                st.lamp, st.since, st.yellow_end, st.ped = Lamp.FLASH_RED, now, None, Lamp.DARK
            self.waiting_since.clear()
            return
        greens = [i for i, lamp in enumerate(out.phases) if lamp in (Lamp.GREEN, Lamp.YELLOW)]
        for i in greens:
            for j in greens:
                if j in self.conflicting[i] or j in self.same_ring[i]:
                    raise AssertionError(
                        f"t={now}: phases {self._id(i)} and {self._id(j)} shown together"
                    )
        # Preemption may shorten greens, walks and ped clearances to its minimums.
        shortened = self.preempting or exited
        for i, lamp in enumerate(out.phases):
            self._phase(now, i, lamp, shortened)
            self._ped(now, i, out.peds[i], out.phases[i], shortened)
        if self.check_service and not self.blocked:
            for i, since in self.waiting_since.items():
                if now - since > self.service_bound_ms:
                    raise AssertionError(
                        f"t={now}: call on phase {self._id(i)} waiting {now - since} ms, "
                        f"over the {self.service_bound_ms} ms bound"
                    )

    def _intergreens(self, now: int, out: Outputs, flashing: bool) -> None:
        fields = (out.phases, out.peds, out.overlaps)
        for g, (f, i, key) in enumerate(self.groups):
            lamp = Lamp.DARK if flashing else fields[f][i]
            before = self.group_lamp[g]
            if lamp == before:
                continue
            greens = (Lamp.GREEN,) if key[0] is SignalKind.PED else (Lamp.GREEN, Lamp.FLASH_YELLOW)
            if before in greens and lamp not in greens:
                self.green_end[g] = now
            # Leaving a flashing yellow arrow for its green arrow is one green.
            if lamp in greens and before not in greens:
                for c, ms in self.enters[g]:
                    ended = self.green_end[c]
                    assert ended is None or now - ended >= ms, (
                        f"t={now}: {key} green {now - ended} ms after {self.groups[c][2]}'s "
                        f"green ended; their intergreen is {ms} ms"
                    )
            self.group_lamp[g] = lamp

    def _id(self, i: int) -> int:
        return self.site.phases[i].id

    def _phase(self, now: int, i: int, lamp: Lamp, shortened: bool) -> None:
        st = self.phases[i]
        phase = self.site.phases[i]
        st.green_preempted |= shortened
        shortened = st.green_preempted
        if lamp == st.lamp:
            return
        held = now - st.since
        pid = self._id(i)
        if st.lamp == Lamp.GREEN and st.plan is not None and lamp != Lamp.GREEN:
            t = st.plan.timings[pid]
            assert lamp == Lamp.YELLOW or not (phase.movements or phase.permissive), (
                f"t={now}: phase {pid} green ended in {lamp.name}"
            )
            min_green = t.min_green_ms
            if shortened:
                floor = self.site.safety.min_green_ms
                min_green = min([min_green] + [max(p.min_green_ms, floor) for p in self.preempts])
            assert held >= min_green, f"t={now}: phase {pid} green {held} < min green"
        if st.lamp == Lamp.YELLOW and st.plan is not None:
            t = st.plan.timings[pid]
            assert held >= max(t.yellow_ms, ABSOLUTE_MIN_YELLOW_MS), (
                f"t={now}: phase {pid} yellow {held} ms < {t.yellow_ms} ms"
            )
            st.yellow_end = now
            st.red_clear_ms = t.red_clear_ms
            if self.all_listed[i]:
                st.red_clear_ms = self.site.safety.min_red_clear_ms
        if lamp == Lamp.GREEN:
            for j in self.conflicting[i] + self.same_ring[i]:
                other = self.phases[j]
                if other.yellow_end is not None:
                    gap = now - other.yellow_end
                    assert gap >= other.red_clear_ms, (
                        f"t={now}: phase {pid} green {gap} ms after phase {self._id(j)} "
                        f"yellow ended; its red clearance is {other.red_clear_ms} ms"
                    )
            st.plan = self.plan
            self.waiting_since.pop(i, None)
        st.lamp, st.since = lamp, now
        st.green_preempted = self.preempting

    def _ped(self, now: int, i: int, ped: Lamp, veh: Lamp, shortened: bool) -> None:
        st = self.phases[i]
        st.ped_preempted |= shortened
        shortened = st.ped_preempted
        pid = self._id(i)
        phase = self.site.phases[i]
        if ped in (Lamp.GREEN, Lamp.FLASH_RED) and phase.movements:
            assert veh == Lamp.GREEN, f"t={now}: ped {pid} {ped.name} without its green"
        if ped == st.ped:
            return
        held = now - st.ped_since
        if phase.movements and st.plan is not None:
            walk_ms, clear_ms = st.plan.timings[pid].walk_ms, st.plan.timings[pid].ped_clear_ms
        else:  # a pedestrian-only phase: its green is not displayed, so any plan may apply
            walk_ms = min(p.timings[pid].walk_ms for p in self.site.plans.values())
            clear_ms = min(p.timings[pid].ped_clear_ms for p in self.site.plans.values())
        if shortened and self.preempts:
            walk_ms = min([walk_ms] + [p.min_walk_ms for p in self.preempts])
            clear_ms = min([clear_ms] + [p.ped_clear_ms for p in self.preempts])
        if st.ped == Lamp.GREEN:
            assert ped == Lamp.FLASH_RED, f"t={now}: ped {pid} walk ended without clearance"
            assert held >= walk_ms, f"t={now}: ped {pid} walk {held} ms < {walk_ms} ms"
        if st.ped == Lamp.FLASH_RED:
            assert held >= clear_ms, f"t={now}: ped {pid} clearance {held} ms < {clear_ms} ms"
            # The board refuses a change interval turning back to GO (BAD_SEQUENCE).
            assert ped != Lamp.GREEN, f"t={now}: ped {pid} clearance returned to walk"
        if ped == Lamp.GREEN:
            self.waiting_since.pop(i, None)
        st.ped, st.ped_since = ped, now
        st.ped_preempted = self.preempting
