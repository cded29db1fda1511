"""What goes into and comes out of the control core each step."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from edge.control.site import Site


class Lamp(IntEnum):
    """Display of one signal group or channel; also the IO board's wire code.

    For pedestrian signals RED is don't walk, GREEN is walk and FLASH_RED is
    flashing don't walk (pedestrian clearance).
    """

    DARK = 0
    RED = 1
    YELLOW = 2
    GREEN = 3
    FLASH_RED = 4
    FLASH_YELLOW = 5


# Displays during which a signal group is open to its traffic (or clearing it).
NOT_RED = frozenset({Lamp.GREEN, Lamp.YELLOW, Lamp.FLASH_YELLOW})
PED_OPEN = frozenset({Lamp.GREEN, Lamp.FLASH_RED})


# --- operator / central commands -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hold:
    """Hold these phases green once they are green (None releases all holds)."""

    phases: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class ForceOff:
    """End this phase's green as soon as its minimums allow."""

    phase: int


@dataclass(frozen=True, slots=True)
class PlaceCall:
    phase: int
    ped: bool = False


@dataclass(frozen=True, slots=True)
class Omit:
    """Omit (or with on=False restore) a phase: it is skipped even when called."""

    phase: int
    on: bool = True


@dataclass(frozen=True, slots=True)
class AllRed:
    """Clear to all red and stay there (on=False resumes)."""

    on: bool = True


@dataclass(frozen=True, slots=True)
class Flash:
    """Clear through yellow and red to flash (on=False leaves flash via start-up)."""

    on: bool = True


@dataclass(frozen=True, slots=True)
class Recover:
    """Clear a latched fault flash: the controller restarts through all red."""


@dataclass(frozen=True, slots=True)
class Automatic:
    """Drop every operator override: holds, omits, all-red, operator flash."""


@dataclass(frozen=True, slots=True)
class SetPlan:
    """Switch to another timing plan at the next safe point."""

    plan: str


@dataclass(frozen=True, slots=True)
class UseMax2:
    on: bool = True


@dataclass(frozen=True, slots=True)
class Preempt:
    """Emergency-vehicle preemption request for a configured preempt (on=False cancels)."""

    preempt: int
    on: bool = True


@dataclass(frozen=True, slots=True)
class TransitRequest:
    """Transit priority for a bus on this approach (on=False: it has passed or left)."""

    approach: str
    on: bool = True


@dataclass(frozen=True, slots=True)
class LoadSite:
    """New timing for the same intersection (plans, patterns, detector timing).

    `site` must describe the same intersection: same approaches, phases,
    overlaps, channels, conflicts, preempts and detector wiring; only plans,
    the default plan and detector delay/carryover/locking may differ. It takes
    effect with plan `plan` at the next safe point, like SetPlan.
    """

    site: Site
    plan: str


@dataclass(frozen=True, slots=True)
class SetMode:
    """Override the plan's control mode: "free" (actuated, ignoring any pattern),
    "coordinated" (the plan's pattern), "adaptive" (edge/control/adaptive.py), or
    "plan" to follow the plan's own mode again. `source` (who asked: "local",
    "central", ...) shows in the outputs' `control_reason`.
    """

    mode: str
    source: str = "local"


Command = (
    Hold
    | ForceOff
    | PlaceCall
    | Omit
    | AllRed
    | Flash
    | Recover
    | Automatic
    | SetPlan
    | UseMax2
    | Preempt
    | TransitRequest
    | SetMode
    | LoadSite
)


@dataclass(frozen=True, slots=True)
class Inputs:
    """Everything the core learns in one step.

    `occupied` holds the ids of detectors (loops and push buttons) that are
    active now; `actuations` optionally counts rising edges since the last
    step for detectors that pulsed faster than the step (from the IO board).
    """

    occupied: frozenset[int] = frozenset()
    actuations: tuple[tuple[int, int], ...] = ()
    commands: tuple[object, ...] = ()  # objects, not Command: bad ones are reported
    # Optional queue estimates, (detector or zone id, vehicles), e.g. from a camera's
    # queue zones; the adaptive mode prefers them to its loop counts for that detector.
    queues: tuple[tuple[int, float], ...] = ()
    # Optional predicted arrivals from the neighbours, (phase id, ms ahead): a new set
    # replaces the last and expires 2 s after it came; None brings nothing new (arrivals.py).
    arrivals: tuple[tuple[int, int], ...] | None = None


NO_INPUTS = Inputs()


@dataclass(frozen=True, slots=True)
class Event:
    """Something a reader greps for: `name` is stable, `subject` names the phase etc."""

    t_ms: int
    name: str
    subject: str = ""
    detail: str = ""

    def __str__(self) -> str:
        parts = [f"{self.t_ms / 1000:9.1f}s", self.name]
        if self.subject:
            parts.append(self.subject)
        if self.detail:
            parts.append(self.detail)
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class PhaseTiming:
    """SPaT for one phase: its display and when that display can/will end.

    Times are absolute ms on the caller's clock; None means not known yet
    (e.g. a resting green with no conflicting call has no maximum end).
    """

    phase: int
    lamp: Lamp
    min_end_ms: int | None
    max_end_ms: int | None
    likely_end_ms: int | None


@dataclass(frozen=True, slots=True)
class Outputs:
    t_ms: int
    mode: str
    channels: tuple[Lamp, ...]  # in the site's channel order: the IO board's output map
    phases: tuple[Lamp, ...]  # vehicle display per phase, in the site's phase order
    peds: tuple[Lamp, ...]  # pedestrian display per phase (DARK where none)
    overlaps: tuple[Lamp, ...]
    events: tuple[Event, ...] = field(default=())
    fault: str | None = None
    spat: tuple[PhaseTiming, ...] = ()  # per phase, in the site's phase order
    control: str = ""  # free, coordinated or adaptive (how greens are timed in run)
    control_reason: str = ""  # why: "plan NAME", "central command", "local command", ...
    detector_faults: tuple[int, ...] = ()  # ids of the detectors failed by diagnostics

    def restamped(
        self, t_ms: int, events: tuple[Event, ...], spat: tuple[PhaseTiming, ...] | None = None
    ) -> Outputs:
        """The same displays at another time, with this step's events (and fresh SPaT)."""
        return Outputs(
            t_ms,
            self.mode,
            self.channels,
            self.phases,
            self.peds,
            self.overlaps,
            events,
            self.fault,
            self.spat if spat is None else spat,
            self.control,
            self.control_reason,
            self.detector_faults,
        )


@dataclass(frozen=True, slots=True)
class PhaseStatus:
    """One phase's status, as the page shows it (Controller.status(); outputs.py rule 5).

    `interval` is one of: red, min_green, passage, max, rest (a green with no max
    timer running), walk, ped_clear (a green whose crossing times), yellow, red_clear.
    Times are ms left from the status's `t_ms`, never negative; None where the
    interval has no end of its own (red, rest) or the max timer does not run.
    """

    phase: int
    interval: str
    left_ms: int | None
    max_left_ms: int | None  # greens only: until max-out; None when the max timer is off
    call: bool  # a vehicle call
    ped_call: bool
    hold: bool
    omit: bool


@dataclass(frozen=True, slots=True)
class Status:
    """A read-only snapshot of the core for displays: built on request, never by step()."""

    t_ms: int  # the time of the last step
    plan: str
    phases: tuple[PhaseStatus, ...]  # in the site's phase order
    detectors: tuple[bool, ...]  # occupied now, in the site's detector order


@dataclass(frozen=True, slots=True)
class TickView:
    """The few fields the runtime's tick record (edge/tickhooks.py) copies each tick:
    built on request, cheaper than Status (no timers), never by step()."""

    t_ms: int  # the time of the last step
    intervals: tuple[int, ...]  # per phase, its vehicle interval (intervals.Interval)
    calls: tuple[bool, ...]  # per phase, a vehicle call
    present: tuple[bool, ...]  # per detector, occupied
    ped_calls: tuple[bool, ...]  # per phase, a pedestrian call
    nexts: tuple[int, ...]  # per ring, the index of the phase that times next (-1: none)
    plan: str  # the plan in force
    cycle_ms: int | None  # where the local cycle timer stands; None when not coordinated
    # per phase, when its walk or pedestrian clearance ends (ms); None in don't walk
    ped_ends: tuple[int | None, ...] = ()
