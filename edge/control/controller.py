"""The NEMA dual-ring actuated controller: a pure state machine.

    controller.step(now_ms, inputs) -> outputs

Rules this file keeps (the safety invariants; tests/control checks each; the
feature module named keeps the rule, and cites it by this number):

1. Ring-barrier (rings.py): phases of one ring time one at a time, in ring
   order; phases of different rings time together only inside one barrier
   group. Leaving a group (a barrier crossing) waits until every ring is
   ready, and the new group starts only when every ring has finished its
   clearance.
2. Every green that ends goes through yellow (the plan's value, never below
   the site minimum, never below 3.0 s) and then red clearance (the plan's, or
   the shortest intergreen when the site lists every conflicting pair:
   intergreens.py; never below the site minimum) (intervals.py). Nothing
   shortens a running yellow or red clearance, so a plan change waits for a
   safe point and never applies mid-clearance.
3. A green never ends before its minimum green (plus added initial), nor while
   its pedestrian walk or pedestrian clearance is timing (timing.py). Only
   emergency preemption shortens these, and only to the preempt's configured
   minimums (never below the site minimum green); only a fault flash cuts a
   green short.
4. A signal group starts green (or walk) only when every conflicting signal
   group, from the site's movement-derived conflict table, is red with its
   clearance finished (the conflict gate, intervals.py), and each listed
   pair's intergreen has elapsed since the conflicting group's green ended
   (intergreens.py). This gate is independent of the ring structure: a bad
   sequence decision can delay a green, never overlap a conflicting one.
5. Anything the core cannot make sense of (unknown detector, time running
   backwards, a malformed command) is reported as an event and ignored; an
   internal error, an illegal interval move included, latches fault flash
   (modes.py). The core never raises from step().

The core reads no clock and does no I/O: `now_ms` is the caller's time. This
file is the step that calls the features (docs/architecture.md) in this order:

1. Time check (time running backwards: reported, outputs unchanged), queue
   estimates; a quiet step (no input changed, no deadline reached) returns the
   last outputs restamped.
2. Commands (commands.py), in the order given.
3. Detectors (detectors.py): edges, pulses, carryover, delay, diagnostics;
   the neighbours' predicted arrivals (arrivals.py).
4. Modes (modes.py): start-up flash, start-up all red, run; flash and fault
   flash stop here.
5. Coordination (coordinator.py): the offset transition advances.
6. Passes, until nothing changes (more than 64 is a logic loop: a fault). Each:
   a pending plan or new timing at a safe point; calls (timing.py); transit
   released by stops and preemption (transit.py); preemption (preemption.py)
   takes the rings while it serves; else the rings and barrier (rings.py: each
   ring's clearance, crossing (pedestrians.py), max timer and end of green
   (timing.py, coordinator.py, transit.py), the next phase); overlaps
   (overlaps.py); all red and flash entry (modes.py).
7. The next deadline: each feature adds the times it may change something.
8. Outputs (outputs.py), rebuilt only when a display or timer changed; the
   monitor (monitor.py) checks every rebuild.
"""

from __future__ import annotations

from edge.control import commands, control_mode, coordination, intergreens, outputs, transit
from edge.control.adaptive import Adaptive
from edge.control.arrivals import Arrivals
from edge.control.coordinator import Coordinator
from edge.control.detectors import Detectors
from edge.control.intervals import Gate, Interval, Intervals, build_gates, gate_clear
from edge.control.messages import Event, Inputs, Outputs, Status, TickView
from edge.control.modes import Modes
from edge.control.monitor import Monitor
from edge.control.outputs import Display
from edge.control.overlaps import Overlaps
from edge.control.pedestrians import Pedestrians
from edge.control.preemption import Preemption
from edge.control.priority import TransitState
from edge.control.rings import Rings
from edge.control.site import ABSOLUTE_MIN_YELLOW_MS, Site
from edge.control.states import (
    ADAPTIVE,
    ALL_RED,
    COORDINATED,
    FAULT,
    FLASH,
    FREE,
    NEVER,
    PED_CLEAR,
    RUN,
    STARTUP_ALL_RED,
    STARTUP_FLASH,
)
from edge.control.timing import PhaseTimers

_MAX_PASSES = 64  # transitions chained in one step; more means a logic loop


class Controller:
    """One intersection's signal controller. Construct, then call step() every 100 ms."""

    def __init__(self, site: Site, now_ms: int = 0, plan: str | None = None) -> None:
        self.site = site
        self.plan = site.plans[plan or site.default_plan]
        n = len(site.phases)
        # Each feature's state lives in its module (docs/architecture.md).
        self.overlaps = Overlaps(len(site.overlaps))
        self.rings = Rings(site)
        self.display = Display()
        self._build_indexes()
        self.intervals = Intervals([p.id for p in site.phases], now_ms)
        self.timers = PhaseTimers(site, self.plan)
        self.peds = Pedestrians([p.id for p in site.phases])
        # Operator state (commands.py sets it; the sequencer reads it every pass).
        self.hold = [False] * n
        self.omit = [False] * n
        self.force_off = [False] * n
        self.pending_plan: str | None = None
        self.pending_site: Site | None = None  # new timing waiting for a safe point
        self.coordinator = Coordinator(now_ms)
        self.adaptive = Adaptive(site)
        self.arrivals = Arrivals()  # neighbours' predicted arrivals (arrivals.py)
        # Control mode: the plan's own unless a SetMode overrides it (and who did).
        self.mode_override: tuple[str, str] | None = None  # (mode, source)
        self.control = FREE
        self.control_reason = ""
        self._resolve_control(now_ms)
        self.dets = Detectors(site, self.index, now_ms)
        self.modes = Modes(now_ms + site.startup_flash_ms)
        self.preempt = Preemption(site, self.index, self.rings.ring_of, len(self.rings.ring_seq))
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
        self._dirty = True  # displays changed: rebuild outputs and run the monitor
        self._timers_dirty = False  # only SPaT timing changed (e.g. a detector extended a green)

    # -- read-only views, as the runtime, the page and tests read them ------------------

    @property
    def mode(self) -> str:
        return self.modes.mode

    @property
    def fault(self) -> str | None:
        return self.modes.fault

    @property
    def iv(self) -> list[Interval]:
        """Each phase's vehicle interval."""
        return self.intervals.iv

    @property
    def vcall(self) -> list[bool]:
        """Each phase's vehicle call."""
        return self.timers.vcall

    @property
    def pre(self) -> int:
        """The preempt (index) being served, -1 when none."""
        return self.preempt.serving

    @property
    def coord(self) -> coordination.CoordPoints | None:
        """The coordination pattern's points in force, None when not coordinated."""
        return self.coordinator.points

    @property
    def det_present(self) -> list[bool]:
        """Each detector's presence now (the page and the tick hooks read it)."""
        return self.dets.present

    def status(self) -> Status:
        """Each phase's interval, timers and calls, for displays (outputs.py rule 5)."""
        return outputs.status(self)

    def tick_view(self) -> TickView:
        """What the runtime's tick record reads each tick, copied (outputs.py rule 6)."""
        return outputs.tick_view(self)

    # -- indexes built from the site (again on new timing) --------------------------------

    def _build_indexes(self) -> None:
        site = self.site
        phases = site.phases
        self.index = {p.id: i for i, p in enumerate(phases)}
        self.rings.build_indexes(site)
        self.has_ped = [p.ped_crossing is not None for p in phases]
        self.has_veh = [bool(p.movements or p.permissive) for p in phases]
        self.veh_gate, self.ped_gate, ov_gates = build_gates(site, self.has_ped, intergreens.waits)
        self.overlaps.build_indexes(site, self.index, ov_gates)
        self.ig = intergreens.Intergreens(site, (*self.veh_gate, *self.ped_gate, *ov_gates))
        self.display.build_indexes(site, self.index, self.overlaps.index, self.has_veh)

    # -- the step -----------------------------------------------------------------

    def step(self, now: int, inputs: Inputs) -> Outputs:
        """Advance to `now` (ms) with this step's inputs; return what to display."""
        if now < self.last_now:
            t = self.last_now
            self._event(t, "input_error", "", f"time went backwards ({now} < {t})")
            for cmd in inputs.commands:
                self._event(t, "command_rejected", type(cmd).__name__, "sent with a bad time")
            return self.display.emit(self, self.last_now)
        self.last_now = now
        if inputs.queues:
            self.adaptive.set_zone_queues(self.dets.zone_queues(self, now, inputs.queues))
        occupied = inputs.occupied
        if type(occupied) is not frozenset:
            occupied = self.dets.coerce_occupied(self, now, occupied)
        quiet = (
            now < self.deadline
            and not inputs.commands
            and not inputs.actuations
            and (occupied is self.last_occupied or occupied == self.last_occupied)
            and inputs.arrivals is None
        )
        if quiet:
            last = self.display.last
            assert last is not None
            return last.restamped(now, ())
        try:
            if inputs.commands:
                commands.apply_all(self, now, inputs.commands)
            if occupied != self.last_occupied or inputs.actuations or now >= self.dets.deadline:
                self.dets.update(self, now, occupied, inputs.actuations)
                self.last_occupied = occupied
            if inputs.arrivals is not None:
                self.arrivals.receive(self, now, inputs.arrivals)
            self.arrivals.refresh(now)
            self._advance(now)
            self.deadline = self._next_deadline(now)
        except Exception as exc:  # rule 5: never raise, never keep running on bad state
            self._enter_fault(now, f"internal error: {type(exc).__name__}: {exc}")
            self.deadline = NEVER
        return self.display.emit(self, now)

    def _event(self, now: int, name: str, subject: str = "", detail: str = "") -> None:
        self.events.append(Event(now, name, subject, detail))

    def _enter_fault(self, now: int, reason: str) -> None:
        self.modes.enter_fault(self, now, reason)

    # -- the sequencer ----------------------------------------------------------------

    def _advance(self, now: int) -> None:
        mode = self.modes.mode  # run and all red need nothing of modes.advance (a busy step)
        if mode != RUN and mode != ALL_RED and not self.modes.advance(self, now):
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
        calls = self.timers.calls(self)
        modes = self.modes  # no green starts while clearing to, or in, all red or flash
        stopping = modes.all_red_req or modes.flash_req or modes.mode == ALL_RED
        preempt = self.preempt
        if self.transit is not None and (stopping or preempt.serving >= 0):
            self.transit.close(now)  # rule 5 of priority.py: preemption and stops win
        if preempt.requests or preempt.serving >= 0:
            changed |= preempt.select(self, now, stopping)
            if preempt.serving >= 0:
                changed |= preempt.run_pass(self, now)
                changed |= self.overlaps.advance(self, now)
                return changed
        changed |= self.rings.serve(self, now, calls, stopping)
        changed |= self.overlaps.advance(self, now)
        changed |= self.modes.after_pass(self, now, stopping)
        return changed

    def _may_start(self, now: int, i: int) -> bool:
        """Phase i may start green: its red revert has passed and its gate is clear."""
        if now < self.intervals.red_at[i] + self.timers.timing[i].red_revert_ms:
            return False
        return self._gate_clear(self.veh_gate[i])

    def _gate_clear(self, gate: Gate) -> bool:
        if gate[3] and self.last_now < self.ig.opens_at(self, gate[3]):
            return False
        return gate_clear(gate, self.intervals.iv, self.peds.iv, self.overlaps.iv)

    def _start_green(self, now: int, r: int, i: int) -> None:
        """Ring r starts phase i green; every feature hears of it."""
        if self.pending_plan is not None and self._at_safe_point():
            self._apply_plan(now)  # a green starting at a safe point times on the new plan
        self.intervals.green(i, now)
        self.timers.green_started(self, i, now)
        self.force_off[i] = False
        self.adaptive.green_started(i, now)
        self.rings.green_started(r, i)
        self._dirty = True
        self._event(now, "phase_green", f"phase {self.site.phases[i].id}")
        if self.transit is not None:
            self.transit.green_started(now, i)

    def _start_yellow(self, now: int, i: int, reason: str) -> None:
        """Phase i's green ends for `reason`; every feature hears of it."""
        pid = self.site.phases[i].id
        timers = self.timers
        if self.rings.ended_held(i) and reason == "max_out":
            reason = "gap_out"  # rings rule 2a held a green that had gapped out
        if self.control == ADAPTIVE:
            self.adaptive.permissive_ended(i, now, self.dets.present, self.dets.on_at)
            if timers.max_end[i] != NEVER:
                max_ms = timers.max_end[i] - timers.max_from[i]
                self.adaptive.green_ended(i, now - self.intervals.green_at[i], max_ms, reason)
        if reason in ("gap_out", "max_out", "force_off"):
            self._event(now, reason, f"phase {pid}")
        self.arrivals.green_ended(i, reason)
        if self.transit is not None:
            self.transit.green_ended(now, i)
        self.intervals.yellow(i, now, max(timers.timing[i].yellow_ms, self.min_yellow_ms))
        timers.green_ended(i)
        self.force_off[i] = False
        if self.dets.recall_at_yellow(i):
            timers.vcall[i] = True  # a locking call kept, or a failed loop: served every cycle
        self._dirty = True
        self._event(now, "phase_yellow", f"phase {pid}")

    # -- plans and control mode -----------------------------------------------------------

    def _at_safe_point(self) -> bool:
        """No yellow, red clearance, pedestrian clearance, nor overlap clearing (rule 2)."""
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
        self.timers.use_max2 = self.plan.use_max2
        self._resolve_control(now)
        if self.transit is not None:
            self.transit.retune(now, transit.cycle(self))
        self.pending_plan = None
        self._event(now, "plan_applied", self.plan.id)
        self._dirty = True

    def _resolve_control(self, now: int) -> None:
        """The control mode in force (control_mode.py), then coordination and recalls."""
        before = (self.control, self.control_reason)
        self.control, self.control_reason = control_mode.resolve(self.plan, self.mode_override)
        self.coordinator.set(self, self.control == COORDINATED, now)
        self.timers.set_recalls(self)
        if (self.control, self.control_reason) != before:
            self._dirty = True

    # -- time -------------------------------------------------------------------------------

    def _next_deadline(self, now: int) -> int:
        """The next time a timer can change anything without an input changing.

        Every rule compares `now >= T`, so only future T's matter: a timer
        that has run out and changed nothing (a gapped-out green resting with
        no conflicting call) waits for an input. Transitions that unblock
        others (a clearance ending, then a gate opening) chain within one
        step, in _advance's passes.
        """
        mode = self.modes.mode
        if mode in (STARTUP_FLASH, STARTUP_ALL_RED):
            return self.modes.end
        if mode in (FLASH, FAULT):
            return NEVER
        times = [self.dets.deadline]
        if self.control == ADAPTIVE:
            left = self.adaptive.left_deadline(self.dets.present, self.dets.on_at)
            if left is not None:
                times.append(left)
        if self.coordinator.points is not None:
            self.coordinator.deadlines(self, now, times)
        if self.preempt.requests or self.preempt.serving >= 0:  # (a busy step's cost)
            self.preempt.deadlines(self, times)
        if self.transit is not None and (t := self.transit.deadline()) is not None:
            times.append(t)
        self.timers.deadlines(self, times)
        self.rings.deadlines(self, times)
        if self.overlaps.iv:
            self.overlaps.deadlines(times)
        self.ig.deadlines(self, times)  # a gate held by an intergreen opens by itself
        self.arrivals.deadlines(times)
        future = [t for t in times if t > now]
        return min(future) if future else NEVER
