"""The NEMA dual-ring actuated controller: a pure state machine.

    controller.step(now_ms, inputs) -> outputs

Rules this file keeps (the safety invariants; tests/control checks each):

1. Ring-barrier: phases of one ring time one at a time, in ring order; phases
   of different rings time together only inside one barrier group. Leaving a
   group (a barrier crossing) waits until every ring is ready, and the new
   group starts only when every ring has finished its clearance.
2. Every green that ends goes through yellow (the plan's value, never below
   the site minimum, never below 3.0 s) and then red clearance (the plan's
   value, never below the site minimum). Nothing shortens a running yellow or
   red clearance: intervals keep the durations they started with, so a plan
   change waits for a safe point and never applies mid-clearance.
3. A green never ends before its minimum green (plus added initial), nor while
   its pedestrian walk or pedestrian clearance is timing. Only emergency
   preemption shortens these, and only to the preempt's configured minimums
   (never below the site minimum green); only a fault flash cuts a green short.
4. A signal group starts green (or walk) only when every conflicting signal
   group, from the site's movement-derived conflict table, is red with its
   clearance finished. This gate is independent of the ring structure, so a
   trailing overlap or a bad sequence decision can delay a green, never
   overlap a conflicting one.
5. Anything the core cannot make sense of (unknown detector, time running
   backwards, a malformed command) is reported as an event and ignored;
   an internal error latches fault flash. The core never raises from step().

The core reads no clock and does no I/O: `now_ms` is the caller's time.
"""

from __future__ import annotations

from edge.control import commands, control_mode, coordination, transit
from edge.control.adaptive import Adaptive
from edge.control.coordinator import Coordinator
from edge.control.detectors import Detectors
from edge.control.intervals import Gate, Interval, Intervals, build_gates, gate_clear
from edge.control.messages import (
    Event,
    Inputs,
    Lamp,
    Outputs,
    PhaseTiming,
)
from edge.control.monitor import Monitor
from edge.control.overlaps import Overlaps
from edge.control.pedestrians import Pedestrians
from edge.control.preemption import Preemption
from edge.control.priority import TransitState
from edge.control.site import ABSOLUTE_MIN_YELLOW_MS, FlashColour, Recall, SignalKind, Site
from edge.control.site import PhaseTiming as Timing
from edge.control.states import (
    ADAPTIVE,
    ALL_RED,
    COORDINATED,
    DONT_WALK,
    FAULT,
    FLASH,
    FREE,
    GREEN,
    NEVER,
    PED_CLEAR,
    RED,
    RUN,
    STARTUP_ALL_RED,
    STARTUP_FLASH,
    YELLOW,
)

_VEH_LAMP = (Lamp.RED, Lamp.GREEN, Lamp.YELLOW, Lamp.RED, Lamp.GREEN, Lamp.FLASH_YELLOW)
_PED_LAMP = (Lamp.RED, Lamp.GREEN, Lamp.FLASH_RED)
_FLASH_LAMP = {
    FlashColour.RED: Lamp.FLASH_RED,
    FlashColour.YELLOW: Lamp.FLASH_YELLOW,
    FlashColour.DARK: Lamp.DARK,
}
_MAX_PASSES = 64  # transitions chained in one step; more means a logic loop


class Controller:
    """One intersection's signal controller. Construct, then call step() every 100 ms."""

    def __init__(self, site: Site, now_ms: int = 0, plan: str | None = None) -> None:
        self.site = site
        self.plan = site.plans[plan or site.default_plan]
        self.overlaps = Overlaps(len(site.overlaps))  # overlaps.py owns their state
        self._build_indexes()
        n = len(site.phases)
        # Every phase's vehicle interval and its times (intervals.py: the transition table).
        self.intervals = Intervals([p.id for p in site.phases], now_ms)
        self.min_end = [0] * n
        self.pass_end = [0] * n
        self.max_end = [NEVER] * n
        self.max_from = [NEVER] * n  # when the max timer started (gap reduction)
        self.vcall = [False] * n
        self.peds = Pedestrians(n)  # pedestrians.py owns the crossings' state
        self.actu_red = [0] * n
        self.ext_count = [0] * n
        self.nl_count = [0] * n
        self.timing: list[Timing] = [self.plan.timings[p.id] for p in site.phases]
        self.hold = [False] * n
        self.omit = [False] * n
        self.force_off = [False] * n
        self.use_max2 = self.plan.use_max2
        self.coordinator = Coordinator(now_ms)  # coordinator.py owns its state
        # Control mode: the plan's own unless a SetMode overrides it (and who did).
        self.adaptive = Adaptive(site)
        self.mode_override: tuple[str, str] | None = None  # (mode, source)
        self.control = FREE
        self.control_reason = ""
        self._resolve_control(now_ms)
        nr = len(self.ring_seq)
        self.active = [-1] * nr
        self.ring_next = [-1] * nr
        # Phases of each ring still ahead in the current barrier group.
        self.ring_later = [0] * nr
        self.ring_prev = [-1] * nr  # the phase whose service last ended in the ring
        self.ready_latch = [False] * nr
        self.group = 0
        self.pending_group = -1
        self.entry = [-1] * nr
        self.dets = Detectors(site, self.index, now_ms)  # detectors.py owns their state
        self.mode = STARTUP_FLASH
        self.mode_end = now_ms + site.startup_flash_ms
        self.all_red_req = False
        self.flash_req = False
        self.pending_plan: str | None = None
        self.pending_site: Site | None = None  # new timing waiting for a safe point
        self.fault: str | None = None
        self.preempt = Preemption(site, self.index, self.ring_of, len(self.ring_seq))
        self.monitor = Monitor(site)
        # The site minimums hold even for a Site built without edge.config's checks.
        self.min_yellow_ms = max(site.safety.min_yellow_ms, ABSOLUTE_MIN_YELLOW_MS)
        self.min_red_ms = site.safety.min_red_clear_ms
        self.min_green_ms = site.safety.min_green_ms
        self.last_now = now_ms
        self.last_occupied: frozenset[int] = frozenset()
        self.deadline = now_ms
        self.events: list[Event] = [Event(now_ms, "mode", STARTUP_FLASH)]
        # Transit signal priority (edge/control/priority.py), when the site configures it.
        self.transit = (
            TransitState(site, site.transit, self.events) if site.transit is not None else None
        )
        self._outputs: Outputs | None = None
        self._dirty = True  # displays changed: rebuild outputs and run the monitor
        self._timers_dirty = False  # only SPaT timing changed (e.g. a detector extended a green)

    @property
    def iv(self) -> list[Interval]:
        """Each phase's vehicle interval (the tick hooks and tests read it)."""
        return self.intervals.iv

    # Preemption's state, as the runtime and tests read it.
    @property
    def pre(self) -> int:
        """The preempt (index) being served, -1 when none."""
        return self.preempt.serving

    @property
    def pre_requests(self) -> dict[int, int]:
        return self.preempt.requests

    @property
    def pre_index(self) -> dict[int, int]:
        return self.preempt.index

    @property
    def coord(self) -> coordination.CoordPoints | None:
        """The coordination pattern's points in force, None when not coordinated."""
        return self.coordinator.points

    # The crossings' state, as the page (edge/web/live.py) reads it.
    @property
    def ped_iv(self) -> list[int]:
        return self.peds.iv

    @property
    def ped_end(self) -> list[int]:
        return self.peds.end

    @property
    def pcall(self) -> list[bool]:
        return self.peds.call

    @property
    def det_present(self) -> list[bool]:
        """Each detector's presence now (the page and the tick hooks read it)."""
        return self.dets.present

    # -- indexes built once -------------------------------------------------------

    def _build_indexes(self) -> None:
        site = self.site
        phases = site.phases
        self.index = {p.id: i for i, p in enumerate(phases)}
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
        self.conf_mask = [
            (self.ring_mask[self.ring_of[i]] | ~self.group_mask[self.group_of[i]]) & ~(1 << i)
            for i in range(len(phases))
        ]
        self.all_mask = (1 << len(phases)) - 1
        self.conf_mask = [m & self.all_mask for m in self.conf_mask]
        # Phases after each ring position, within that position's group.
        self.later_mask = [
            [
                sum(1 << j for j in seq[pos + 1 :] if self.group_of[j] == self.group_of[i])
                for pos, i in enumerate(seq)
            ]
            for seq in self.ring_seq
        ]
        self.has_ped = [p.ped_crossing is not None for p in phases]
        self.has_veh = [bool(p.movements or p.permissive) for p in phases]
        # Conflict gates (rule 4, intervals.py), from the site's conflict table.
        self.veh_gate, self.ped_gate, ov_gates = build_gates(site, self.has_ped)
        self.overlaps.build_indexes(site, self.index, ov_gates)
        self.start_phases = [i for i, p in enumerate(phases) if p.start_up]
        self.channel_src: list[tuple[int, int]] = []  # (0 veh / 1 ped / 2 overlap, index)
        for ch in site.channels:
            if ch.kind is SignalKind.PHASE:
                self.channel_src.append((0, self.index[int(ch.source)]))
            elif ch.kind is SignalKind.PED:
                self.channel_src.append((1, self.index[int(ch.source)]))
            else:
                self.channel_src.append((2, self.overlaps.index[str(ch.source)]))
        self.flash_channels = tuple(_FLASH_LAMP[ch.flash] for ch in site.channels)
        self._spat_red = tuple(PhaseTiming(p.id, Lamp.RED, None, None, None) for p in phases)
        self._spat_flash = tuple(
            PhaseTiming(
                p.id, _FLASH_LAMP[p.flash] if self.has_veh[i] else Lamp.DARK, None, None, None
            )
            for i, p in enumerate(phases)
        )

    # -- the step -----------------------------------------------------------------

    def step(self, now: int, inputs: Inputs) -> Outputs:
        """Advance to `now` (ms) with this step's inputs; return what to display."""
        if now < self.last_now:
            t = self.last_now
            self._event(t, "input_error", "", f"time went backwards ({now} < {t})")
            for cmd in inputs.commands:
                self._event(t, "command_rejected", type(cmd).__name__, "sent with a bad time")
            return self._emit(self.last_now)
        self.last_now = now
        if inputs.queues:
            self._zone_queues(now, inputs.queues)
        occupied = inputs.occupied
        if type(occupied) is not frozenset:
            occupied = self._coerce_occupied(now, occupied)
        quiet = (
            now < self.deadline
            and not inputs.commands
            and not inputs.actuations
            and (occupied is self.last_occupied or occupied == self.last_occupied)
        )
        if quiet:
            assert self._outputs is not None
            return self._outputs.restamped(now, ())
        try:
            if inputs.commands:
                commands.apply_all(self, now, inputs.commands)
            if occupied != self.last_occupied or inputs.actuations or now >= self.dets.deadline:
                self.dets.update(self, now, occupied, inputs.actuations)
                self.last_occupied = occupied
            self._advance(now)
            self.deadline = self._next_deadline(now)
        except Exception as exc:  # rule 5: never raise, never keep running on bad state
            self._enter_fault(now, f"internal error: {type(exc).__name__}: {exc}")
            self.deadline = NEVER
        return self._emit(now)

    def _zone_queues(self, now: int, queues: object) -> None:
        """Queue estimates per detector or zone id (a camera's); bad ones are reported."""
        good: list[tuple[int, float]] = []
        for item in queues if isinstance(queues, tuple) else ((queues,)):
            try:
                det_id, veh = item
                if det_id not in self.dets.index or not 0 <= float(veh) < 1e6:
                    raise ValueError
                good.append((det_id, float(veh)))
            except (TypeError, ValueError):
                self._event(now, "input_error", "queues", f"bad queue estimate {item!r}")
        self.adaptive.set_zone_queues(good)

    def _coerce_occupied(self, now: int, occupied: object) -> frozenset[int]:
        """Accept any iterable of ids; anything else keeps the last known detector states."""
        try:
            ids: frozenset[int] = frozenset(occupied)  # type: ignore[call-overload]
            return ids
        except TypeError:
            self._event(now, "input_error", "occupied", f"not a set of detector ids: {occupied!r}")
            return self.last_occupied

    def _emit(self, now: int) -> Outputs:
        if self._timers_dirty and not self._dirty and self._outputs is not None:
            self._outputs = self._outputs.restamped(now, (), self.spat())
        self._timers_dirty = False
        if self._dirty or self._outputs is None:
            self._outputs = self._build_outputs(now)
            self._dirty = False
            reason = self.monitor.check(now, self._outputs)
            if reason is not None and self.mode != FAULT:
                self._enter_fault(now, reason)
                self._outputs = self._build_outputs(now)
                self._dirty = False
        events = tuple(self.events)
        self.events.clear()
        return self._outputs.restamped(now, events)

    # -- inputs ---------------------------------------------------------------------

    def _event(self, now: int, name: str, subject: str = "", detail: str = "") -> None:
        self.events.append(Event(now, name, subject, detail))

    def _gap(self, i: int, now: int) -> int:
        """Passage (allowable gap) now, after gap reduction (adaptive: by the queues waiting)."""
        t = self.timing[i]
        if self.control == ADAPTIVE:
            return self.adaptive.gap_ms(t.passage_ms, self._waiting(i))
        if t.time_to_reduce_ms <= 0 or self.max_from[i] == NEVER:
            return t.passage_ms
        into = now - self.max_from[i] - t.time_before_reduction_ms
        if into <= 0:
            return t.passage_ms
        if into >= t.time_to_reduce_ms:
            return t.min_gap_ms
        span = t.passage_ms - t.min_gap_ms
        return t.passage_ms - span * into // t.time_to_reduce_ms

    # -- the sequencer ----------------------------------------------------------------

    def _set_recalls(self) -> None:
        recalls = [self.plan.timings[p.id].recall for p in self.site.phases]
        pts = self.coordinator.points
        coord = pts.coord if pts is not None else (False,) * len(recalls)
        # Coordinated phases are served every cycle, as if on recall.
        self.recall_veh = [
            Recall.MIN in r or Recall.MAX in r or coord[i] for i, r in enumerate(recalls)
        ]
        self.recall_ped = [Recall.PED in r and self.has_ped[i] for i, r in enumerate(recalls)]
        self.recall_soft = [Recall.SOFT in r for r in recalls]

    def _calls(self) -> int:
        """Bitmask of phases with a serviceable call (not green, not omitted).

        Recalls act as calls here; a soft recall calls only when nothing else does.
        """
        mask = 0
        soft = 0
        pcall = self.peds.call
        for i, v in enumerate(self.intervals.iv):
            if v == GREEN or self.omit[i]:
                continue
            if self.recall_ped[i]:
                pcall[i] = True
            loop = self.nl_count[i] and (
                self.control != ADAPTIVE
                or self.adaptive.left_call_counts(
                    i, self.last_now, self.dets.present, self.dets.on_at
                )
            )
            if self.vcall[i] or pcall[i] or loop or self.recall_veh[i]:
                mask |= 1 << i
            elif self.recall_soft[i]:
                soft |= 1 << i
        return mask or soft

    def _advance(self, now: int) -> None:
        mode = self.mode
        if mode in (STARTUP_FLASH, STARTUP_ALL_RED):
            if now < self.mode_end:
                return
            if mode == STARTUP_FLASH:
                self._start_mode(now, STARTUP_ALL_RED, self.site.startup_all_red_ms)
                if now < self.mode_end:
                    return
            self._start_run(now)
        if self.mode in (FLASH, FAULT):
            return
        if self.coordinator.points is not None:
            self.coordinator.tick(self, now)
        for _ in range(_MAX_PASSES):
            if not self._pass(now):
                break
        else:
            raise RuntimeError("sequencer did not settle")

    def _pass(self, now: int) -> bool:
        """One pass over rings, barrier, overlaps and modes; True if anything changed."""
        changed = False
        if self.pending_plan is not None and self._at_safe_point():
            # Before any green starts in this pass, so new greens time on the new plan.
            self._apply_plan(now)
            changed = True
        calls = self._calls()
        # No green starts while clearing to, or resting in, all red or flash.
        stopping = self.all_red_req or self.flash_req or self.mode == ALL_RED
        preempt = self.preempt
        if self.transit is not None and (stopping or preempt.serving >= 0):
            self.transit.close(now)  # rule 5 of priority.py: preemption and stops win
        if preempt.requests or preempt.serving >= 0:
            changed |= preempt.select(self, now, stopping)
            if preempt.serving >= 0:
                changed |= preempt.run_pass(self, now)
                changed |= self.overlaps.advance(self, now)
                return changed
        # Calls behind a ring's position in this group need a trip round the barrier.
        here = self.group_mask[self.group]
        wrap = 0
        for r, a in enumerate(self.active):
            behind = self.ring_mask[r] & here & ~self.ring_later[r]
            wrap |= calls & behind & ~(1 << a if a >= 0 else 0)
        cross_demand = (calls & ~self.group_mask[self.group]) | wrap
        ready_all = True
        for r, a in enumerate(self.active):
            if a >= 0 and self.intervals.iv[a] != GREEN:
                changed |= self._clearance(now, r, a)
                a = self.active[r]
            if a >= 0 and self.intervals.iv[a] == GREEN:
                changed |= self.peds.advance(self, now, a, calls, cross_demand)
                demand = (calls & self.conf_mask[a]) | cross_demand
                changed |= self._max_timer(now, a, demand)
                local = calls & self.ring_later[r] if self.pending_group < 0 else 0
                can_end = self._can_end(now, a)
                reason = self._end_reason(now, a) if can_end else ""
                if self.transit is not None and can_end and not stopping:
                    reason = transit.end_reason(self, now, a, reason, bool(demand | local))
                if local and reason and not stopping:
                    self._start_yellow(now, a, reason)
                    self.ring_next[r] = (local & -local).bit_length() - 1
                    changed = True
                    ready_all = False
                    continue
                if reason and (stopping or (not demand and self.site.rest_in_red)):
                    self._start_yellow(now, a, reason if stopping else "gap_out")
                    changed = True
                    continue
                ready = bool(reason) and not local
                if not self.site.simultaneous_gap_out:
                    ready = ready or self.ready_latch[r]
                    self.ready_latch[r] = ready
                ready_all &= ready
            elif a < 0:
                nxt = self.ring_next[r]
                if nxt >= 0:
                    ready_all = False
                    if not stopping and self._may_start(now, nxt):
                        self._start_green(now, r, nxt)
                        changed = True
                elif self.pending_group < 0 and not stopping:
                    local = calls & self.ring_later[r]
                    if local:
                        ready_all = False
                        nxt = (local & -local).bit_length() - 1
                        if self._may_start(now, nxt):
                            self._start_green(now, r, nxt)
                            changed = True
                        else:
                            self.ring_next[r] = nxt
            elif self.ring_next[r] >= 0:
                ready_all = False
        changed |= self._barrier(now, calls, cross_demand, ready_all, stopping)
        changed |= self.overlaps.advance(self, now)
        changed |= self._modes(now, stopping)
        return changed

    def _clearance(self, now: int, r: int, i: int) -> bool:
        ivs = self.intervals
        if now < ivs.end[i]:
            return False
        if ivs.iv[i] == YELLOW:
            ivs.red_clear(i, now, max(self.timing[i].red_clear_ms, self.min_red_ms))
            self._event(now, "phase_red_clear", f"phase {self.site.phases[i].id}")
            self._dirty = True
            if now < ivs.end[i]:
                return True
        ivs.red(i)
        self.active[r] = -1
        self.ring_prev[r] = i
        self._event(now, "phase_red", f"phase {self.site.phases[i].id}")
        self._dirty = True
        return True

    def _max_timer(self, now: int, i: int, demand: int) -> bool:
        if demand and self.max_end[i] == NEVER:
            t = self.timing[i]
            self.max_from[i] = now
            max_ms = t.max2_green_ms if self.use_max2 else t.max_green_ms
            if self.control == ADAPTIVE:
                max_ms = self.adaptive.max_green_ms(i, max_ms, t.min_green_ms)
            self.max_end[i] = now + max_ms
            self._timers_dirty = True
            return False
        if not demand and self.max_end[i] != NEVER:
            self.max_end[i] = NEVER
            self.max_from[i] = NEVER
            self._timers_dirty = True
        return False

    def _can_end(self, now: int, i: int) -> bool:
        return (
            now >= self.min_end[i]
            and self.peds.iv[i] == DONT_WALK
            and not (self.hold[i] and not (self.all_red_req or self.flash_req))
        )

    def _end_reason(self, now: int, i: int) -> str:
        if self.force_off[i]:
            return "force_off"
        if self.all_red_req or self.flash_req:
            return "stop"
        if self.coordinator.points is not None:
            return self.coordinator.end_reason(self, now, i)
        if now >= self.max_end[i]:
            return "max_out"
        t = self.timing[i]
        if Recall.MAX in t.recall:
            return ""
        if self.ext_count[i] == 0 and now >= self.pass_end[i]:
            return "gap_out"
        return ""

    # -- control mode ----------------------------------------------------------------------

    def _resolve_control(self, now: int) -> None:
        """The control mode in force (control_mode.py), then coordination and recalls."""
        before = (self.control, self.control_reason)
        self.control, self.control_reason = control_mode.resolve(self.plan, self.mode_override)
        self.coordinator.set(self, self.control == COORDINATED, now)
        self._set_recalls()
        if (self.control, self.control_reason) != before:
            self._dirty = True

    def _waiting(self, i: int) -> float:
        """Vehicles queued on the phases that must wait for phase i to end."""
        present = self.dets.present
        total = 0.0
        mask = self.conf_mask[i]
        for j in range(len(self.intervals.iv)):
            if mask >> j & 1 and self.intervals.iv[j] != GREEN and not self.omit[j]:
                total += self.adaptive.queue(j, present)
        return total

    def _barrier(
        self, now: int, calls: int, cross_demand: int, ready_all: bool, stopping: bool
    ) -> bool:
        changed = False
        if self.pending_group < 0:
            if not (cross_demand and ready_all) or stopping:
                return False
            target = self._target_group(calls)
            if target < 0:
                return False
            self.pending_group = target
            for r, a in enumerate(self.active):
                self.entry[r] = self._entry_phase(r, target, calls)
                if a >= 0 and self.intervals.iv[a] == GREEN:
                    self._start_yellow(now, a, self._end_reason(now, a) or "gap_out")
                self.ready_latch[r] = False
            self._event(now, "barrier_cross", f"group {target + 1}")
            changed = True
        if any(a >= 0 for a in self.active):
            return changed
        self._enter_group(now, self.pending_group, start=not stopping)
        return True

    def _enter_group(self, now: int, g: int, start: bool) -> None:
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
                if self._may_start(now, e):
                    self._start_green(now, r, e)

    def _target_group(self, calls: int) -> int:
        for step in range(1, self.ngroups + 1):
            g = (self.group + step) % self.ngroups
            if calls & self.group_mask[g]:
                return g
        return -1

    def _entry_phase(self, r: int, g: int, calls: int) -> int:
        seq = self.ring_seq[r]
        in_group = [i for i in seq if self.group_of[i] == g and not self.omit[i]]
        for i in in_group:
            if calls >> i & 1:
                return i
        for i in in_group:
            if self.site.phases[i].dual_entry:
                return i
        return -1

    def _may_start(self, now: int, i: int) -> bool:
        if now < self.intervals.red_at[i] + self.timing[i].red_revert_ms:
            return False
        return self._gate_clear(self.veh_gate[i])

    def _gate_clear(self, gate: Gate) -> bool:
        return gate_clear(gate, self.intervals.iv, self.peds.iv, self.overlaps.iv)

    def _start_green(self, now: int, r: int, i: int) -> None:
        if self.pending_plan is not None and self._at_safe_point():
            self._apply_plan(now)  # a green starting at a safe point times on the new plan
        t = self.plan.timings[self.site.phases[i].id]
        self.timing[i] = t
        added = min(self.actu_red[i] * t.added_initial_ms, t.max_initial_ms)
        self.intervals.green(i, now)
        self.min_end[i] = now + max(t.min_green_ms, added, self.min_green_ms)
        self.pass_end[i] = now + t.passage_ms
        self.max_end[i] = NEVER
        self.max_from[i] = NEVER
        self.actu_red[i] = 0
        self.vcall[i] = False
        self.force_off[i] = False
        self.adaptive.green_started(i, now)
        self.active[r] = i
        self.ring_next[r] = -1
        self.ring_later[r] = self.later_mask[r][self.pos_of[i]]
        self.ready_latch[r] = False
        self._dirty = True
        self._event(now, "phase_green", f"phase {self.site.phases[i].id}")
        if self.transit is not None:
            self.transit.green_started(now, i)

    def _start_yellow(self, now: int, i: int, reason: str) -> None:
        pid = self.site.phases[i].id
        if self.control == ADAPTIVE:
            self.adaptive.permissive_ended(i, now, self.dets.present, self.dets.on_at)
            if self.max_end[i] != NEVER:
                max_ms = self.max_end[i] - self.max_from[i]
                self.adaptive.green_ended(i, now - self.intervals.green_at[i], max_ms, reason)
        if reason in ("gap_out", "max_out", "force_off"):
            self._event(now, reason, f"phase {pid}")
        if self.transit is not None:
            self.transit.green_ended(now, i)
        self.intervals.yellow(i, now, max(self.timing[i].yellow_ms, self.min_yellow_ms))
        self.max_end[i] = NEVER
        self.max_from[i] = NEVER
        self.force_off[i] = False
        if self.dets.recall_at_yellow(i):
            self.vcall[i] = True  # a locking call kept, or a failed loop: served every cycle
        self._dirty = True
        self._event(now, "phase_yellow", f"phase {pid}")

    def _all_clear(self) -> bool:
        return (
            self.intervals.all_clear()
            and all(v == DONT_WALK for v in self.peds.iv)
            and self.overlaps.all_red()
        )

    def _modes(self, now: int, stopping: bool) -> bool:
        if self.mode == RUN and stopping and self._all_clear():
            if self.flash_req:
                self._start_mode(now, FLASH, NEVER)
                self._event(now, "flash_enter", "", "operator flash")
            else:
                self._start_mode(now, ALL_RED, NEVER)
                self._event(now, "all_red_enter")
            return True
        if self.mode == ALL_RED and not self.all_red_req:
            if self.flash_req:
                self._start_mode(now, FLASH, NEVER)
                self._event(now, "flash_enter", "", "operator flash")
                return True
            self._event(now, "all_red_exit")
            self._start_mode(now, RUN, NEVER)
            self._resume(now)
            return True
        if self.mode == ALL_RED and self.flash_req:
            self._start_mode(now, FLASH, NEVER)
            self._event(now, "flash_enter", "", "operator flash")
            return True
        return False

    def _resume(self, now: int) -> None:
        """From all red with no phase timing: serve whatever is called next."""
        if any(a >= 0 for a in self.active):
            return
        calls = self._calls()
        target = self._target_group(calls)
        if target < 0:
            target = self.group_of[self.start_phases[0]] if self.start_phases else 0
        self.pending_group = target
        for r in range(len(self.ring_seq)):
            self.entry[r] = self._entry_phase(r, target, calls)

    def _at_safe_point(self) -> bool:
        return (
            self.intervals.at_safe_point()
            and all(v != PED_CLEAR for v in self.peds.iv)
            and self.overlaps.at_safe_point()
        )

    def _apply_plan(self, now: int) -> None:
        assert self.pending_plan is not None
        if self.pending_site is not None:
            # Same intersection, new timing: the indexes built from it are rebuilt
            # (detector locking may have changed); the running state stays.
            self.site = self.pending_site
            self.pending_site = None
            self._build_indexes()
            self.dets.build_indexes(self.site, self.index)
            self.dets.deadline = now  # detector diagnostics may have changed: look again
            self._event(now, "site_loaded", self.site.id)
            transit.settings(self, now)
        self.plan = self.site.plans[self.pending_plan]
        self.use_max2 = self.plan.use_max2
        self._resolve_control(now)
        if self.transit is not None:
            self.transit.retune(now, transit.cycle(self))
        self.pending_plan = None
        self._event(now, "plan_applied", self.plan.id)
        self._dirty = True

    def _start_mode(self, now: int, mode: str, duration_ms: int) -> None:
        self.mode = mode
        self.mode_end = now + duration_ms if duration_ms != NEVER else NEVER
        self._dirty = True
        self._event(now, "mode", mode)
        if mode in (STARTUP_ALL_RED, FLASH, ALL_RED):
            # Flash ended any red interval: count red from now.
            self.intervals.all_red(None if mode == ALL_RED else now)
            self.peds.clear()
            self.overlaps.clear()
            self.active = [-1] * len(self.active)
            self.ring_next = [-1] * len(self.ring_next)
            self.entry = [-1] * len(self.entry)
            self.pending_group = -1

    def _start_run(self, now: int) -> None:
        self._start_mode(now, RUN, NEVER)
        self.vcall = [True] * len(self.vcall)  # NEMA start-up: every phase called once
        if self.start_phases:
            self.group = self.group_of[self.start_phases[0]]
            self.ring_later = [m & self.group_mask[self.group] for m in self.ring_mask]
            for i in self.start_phases:
                r = self.ring_of[i]
                if self._may_start(now, i):
                    self._start_green(now, r, i)
                else:
                    self.ring_next[r] = i
        else:
            self._resume(now)

    def _enter_fault(self, now: int, reason: str) -> None:
        self.fault = reason
        self._start_mode(now, FAULT, NEVER)
        self.all_red_req = False
        self.flash_req = False
        self._event(now, "fault_flash", "", reason)

    # -- time and outputs ----------------------------------------------------------------

    def _next_deadline(self, now: int) -> int:
        """The next time a timer can change anything without an input changing.

        Every rule compares `now >= T`, so only future T's matter: a timer
        that has run out and changed nothing (a gapped-out green resting with
        no conflicting call) waits for an input. Transitions that unblock
        others (a clearance ending, then a gate opening) chain within one
        step, in _advance's passes.
        """
        if self.mode in (STARTUP_FLASH, STARTUP_ALL_RED):
            return self.mode_end
        if self.mode in (FLASH, FAULT):
            return NEVER
        times = [self.dets.deadline]
        if self.control == ADAPTIVE:
            left = self.adaptive.left_deadline(self.dets.present, self.dets.on_at)
            if left is not None:
                times.append(left)
        if self.coordinator.points is not None:
            self.coordinator.deadlines(self, now, times)
        self.preempt.deadlines(self, times)
        if self.transit is not None and (t := self.transit.deadline()) is not None:
            times.append(t)
        for i, v in enumerate(self.intervals.iv):
            if v == GREEN:
                times += (self.min_end[i], self.max_end[i], self.pass_end[i])
                if self.peds.iv[i] != DONT_WALK:
                    times.append(self.peds.end[i])
            elif v != RED:
                times.append(self.intervals.end[i])
        for r, n in enumerate(self.ring_next):
            if n >= 0 and self.active[r] < 0:
                times.append(self.intervals.red_at[n] + self.timing[n].red_revert_ms)
        self.overlaps.deadlines(times)
        return min((t for t in times if t > now), default=NEVER)

    def _build_outputs(self, now: int) -> Outputs:
        mode = self.mode
        n = len(self.intervals.iv)
        if mode in (STARTUP_FLASH, FLASH, FAULT):
            veh = tuple(
                _FLASH_LAMP[p.flash] if self.has_veh[i] else Lamp.DARK
                for i, p in enumerate(self.site.phases)
            )
            peds = (Lamp.DARK,) * n
            ovs = tuple(_FLASH_LAMP[o.flash] for o in self.site.overlaps)
            return Outputs(
                now, mode, self.flash_channels, veh, peds, ovs, (), self.fault, self.spat(),
                self.control, self.control_reason, self.dets.failed_ids,
            )  # fmt: skip
        veh = tuple(
            _VEH_LAMP[v] if self.has_veh[i] else Lamp.DARK for i, v in enumerate(self.intervals.iv)
        )
        peds = tuple(
            _PED_LAMP[v] if self.has_ped[i] else Lamp.DARK for i, v in enumerate(self.peds.iv)
        )
        ovs = tuple(_VEH_LAMP[v] for v in self.overlaps.iv)
        srcs = (veh, peds, ovs)
        channels = tuple(srcs[kind][idx] for kind, idx in self.channel_src)
        return Outputs(
            now, mode, channels, veh, peds, ovs, (), self.fault, self.spat(),
            self.control, self.control_reason, self.dets.failed_ids,
        )  # fmt: skip

    def spat(self) -> tuple[PhaseTiming, ...]:
        """Signal phase and timing: each phase's display and when it can/will end.

        Absolute times on the caller's clock; a min end in the past means the
        phase may end at any moment. Built when a display or timer changes.
        """
        if self.mode != RUN and self.mode != ALL_RED:
            return self._spat_flash
        out = list(self._spat_red)
        for i, v in enumerate(self.intervals.iv):
            if v == GREEN:
                lo = max(self.min_end[i], self.peds.end[i] if self.peds.iv[i] else 0)
                hi = None if self.max_end[i] == NEVER else max(self.max_end[i], lo)
                likely = hi if self.ext_count[i] else max(lo, min(self.pass_end[i], hi or NEVER))
                out[i] = PhaseTiming(self.site.phases[i].id, Lamp.GREEN, lo, hi, likely)
            elif v == YELLOW:
                end = self.intervals.end[i]
                out[i] = PhaseTiming(self.site.phases[i].id, Lamp.YELLOW, end, end, end)
        return tuple(out)
