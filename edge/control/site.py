"""Frozen, validated description of one intersection, as the control core sees it.

Built once by `edge.config` from the site TOML; nothing in the core ever sees a
raw dict. All durations are integer milliseconds so that replays are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

# The hard floor of the yellow change interval, whatever a site or plan says.
ABSOLUTE_MIN_YELLOW_MS = 3000
# The floors of a walk and of a pedestrian clearance, in every plan and preempt (MUTCD 4E).
MIN_WALK_MS = 4000
MIN_PED_CLEAR_MS = 3000


class Turn(Enum):
    LEFT = "L"
    THROUGH = "T"
    RIGHT = "R"


class Recall(Enum):
    NONE = "none"
    MIN = "min"  # constant vehicle call: the phase is served every cycle
    MAX = "max"  # constant call and no gap-out: the phase runs to max
    PED = "ped"  # constant pedestrian call
    SOFT = "soft"  # call placed only when no other phase is calling


class FlashColour(Enum):
    RED = "red"
    YELLOW = "yellow"
    DARK = "dark"


class SignalKind(Enum):
    PHASE = "phase"
    OVERLAP = "overlap"
    PED = "ped"


# A signal group's identity: a phase's vehicle heads, an overlap, or a phase's
# pedestrian signal, e.g. (SignalKind.PED, 2).
SignalKey = tuple[SignalKind, int | str]


@dataclass(frozen=True, slots=True)
class Approach:
    id: str
    bearing_deg: float  # compass direction the arm points to, seen from the centre


@dataclass(frozen=True, slots=True)
class Movement:
    """One vehicle stream through the junction, e.g. N.L: from the north arm, turning left."""

    approach: str
    turn: Turn
    to: str  # the arm the stream leaves by

    @property
    def name(self) -> str:
        return f"{self.approach}.{self.turn.value}"


@dataclass(frozen=True, slots=True)
class Phase:
    id: int
    ring: int
    group: int  # barrier group (concurrency group): phases of one group may time together
    movements: tuple[Movement, ...]  # served protected (green ball / green arrow)
    permissive: tuple[Movement, ...]  # served permissive: yield to opposing traffic and peds
    ped_crossing: str | None  # arm whose crosswalk this phase's pedestrian signal serves
    dual_entry: bool
    start_up: bool  # green at the end of the start-up sequence
    flash: FlashColour  # colour of this phase's heads in flash


@dataclass(frozen=True, slots=True)
class Overlap:
    """A signal group green whenever any parent phase is green (e.g. a right-turn arrow).

    With `permissive_parents` it is a flashing-yellow-arrow (FYA) left-turn head:
    green arrow while a parent (the protected left phase) is green, flashing
    yellow arrow while a permissive parent (the opposing through) is green, a
    steady yellow arrow when either ends, red otherwise.
    """

    id: str
    parents: tuple[int, ...]
    movements: tuple[Movement, ...]
    trail_green_ms: int
    yellow_ms: int
    red_clear_ms: int
    flash: FlashColour
    permissive_parents: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Channel:
    """A load switch: which signal group drives the red/yellow/green outputs."""

    id: int
    kind: SignalKind
    source: int | str  # phase id, overlap id or ped (phase) id
    flash: FlashColour


@dataclass(frozen=True, slots=True)
class Detector:
    id: int
    input: int  # IO board input number
    ped: bool  # a push button: places pedestrian calls
    calls: tuple[int, ...]  # phases this detector calls
    extends: tuple[int, ...]  # phases whose green it extends
    delay_ms: int  # presence must last this long (phase not green) before a call
    carryover_ms: int  # output stretched this long after the presence ends
    locking: bool  # a call stays after the vehicle leaves, until the phase is served
    # Diagnostics (NTCIP 1202 max presence / no activity; 0: off). A failed loop
    # neither extends nor calls by its input: its phases are called every cycle.
    max_presence_ms: int = 0  # occupied this long without a break: stuck on
    no_activity_ms: int = 0  # no vehicle this long: dead


@dataclass(frozen=True, slots=True)
class PhaseTiming:
    min_green_ms: int
    passage_ms: int
    max_green_ms: int
    max2_green_ms: int
    yellow_ms: int
    red_clear_ms: int
    red_revert_ms: int
    walk_ms: int
    ped_clear_ms: int
    recall: frozenset[Recall]
    added_initial_ms: int  # added to the initial interval per actuation counted on red
    max_initial_ms: int
    time_before_reduction_ms: int
    time_to_reduce_ms: int
    min_gap_ms: int


@dataclass(frozen=True, slots=True)
class Pattern:
    """A coordination pattern: cycle, offset and splits (see coordination.py)."""

    id: str
    cycle_ms: int
    offset_ms: int  # local zero (coordinated phases' green start) on the common time base
    coord_phases: tuple[int, ...]
    splits_ms: dict[int, int]  # by phase id: green + yellow + red clearance
    floating: bool  # floating force-offs (each phase at most its split) instead of fixed
    transition: str  # best | shortway | longway | dwell

    def __hash__(self) -> int:
        return hash(self.id)


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    timings: dict[int, PhaseTiming]  # by phase id; frozen by convention (built once)
    use_max2: bool = False
    pattern: Pattern | None = None  # coordinated when set, free otherwise
    adaptive: bool = False  # adaptive timing (edge/control/adaptive.py); not with a pattern

    def __hash__(self) -> int:
        return hash(self.id)


@dataclass(frozen=True, slots=True)
class Preempt:
    """Emergency-vehicle preemption (NTCIP 1202): clear to, then dwell in, these greens.

    Entry may shorten a green to `min_green_ms`, a walk to `min_walk_ms` and a
    pedestrian clearance to `ped_clear_ms`; yellow and red clearance are never
    shortened. The dwell lasts at least `min_dwell_ms` and ends when the
    request is cancelled, or after `max_presence_ms` (a stuck input).
    A request that names the vehicle's arrival time (central's ETA) is put to
    the core at least `lead_ms` before that arrival: long enough to time out the
    entry and let the queue ahead of the vehicle start moving (earlier where a
    longer queue stands ahead: edge/link/priority.py). A preempt with a
    `turn` takes central's requests that name that turn for its approach (a
    through vehicle can dwell with the opposing through rather than its own
    left); the approach's preempt without one takes the rest and its receiver.
    """

    id: int
    priority: int  # lower wins when several are active
    input: int | None  # IO board preemption input, if wired
    approach: str | None  # the approach the vehicle arrives on (for central requests)
    dwell_phases: tuple[int, ...]
    min_green_ms: int
    min_walk_ms: int
    ped_clear_ms: int
    min_dwell_ms: int
    max_presence_ms: int
    lead_ms: int = 20_000
    turn: str | None = None  # L, T or R: only central's requests naming this turn


@dataclass(frozen=True, slots=True)
class TransitPriority:
    """Transit signal priority limits (see edge/control/priority.py).

    Priority time (a green held past its end, or an early green running) in
    any window of one cycle stays within `max_share` of that cycle; the cycle
    is the coordination pattern's, or `cycle_ms` when running free.
    """

    max_share: float  # 0 < share <= 0.5
    max_extension_ms: int  # one green extension, at most
    max_early_ms: int  # one early green (truncating the phases before it), at most
    cycle_ms: int  # the reference cycle when not coordinated


@dataclass(frozen=True, slots=True)
class SafetyMinimums:
    min_yellow_ms: int = ABSOLUTE_MIN_YELLOW_MS
    min_red_clear_ms: int = 1000
    min_green_ms: int = 5000


@dataclass(frozen=True, slots=True)
class Site:
    id: str
    name: str
    approaches: tuple[Approach, ...]
    phases: tuple[Phase, ...]  # in ring order within each ring
    overlaps: tuple[Overlap, ...]
    channels: tuple[Channel, ...]
    detectors: tuple[Detector, ...]
    plans: dict[str, Plan]
    default_plan: str
    safety: SafetyMinimums
    startup_flash_ms: int
    startup_all_red_ms: int
    rest_in_red: bool  # rest with every phase red when there is no demand
    simultaneous_gap_out: bool
    # Which signal groups may never show green/yellow/walk together,
    # derived from the movements (see geometry.py); keys are (kind, id).
    conflicts: frozenset[tuple[SignalKey, SignalKey]] = field(default_factory=frozenset)
    # Per-pair intergreens (RiLSA / EN 12675): intergreens[(leaving, entering)] is the
    # least time in ms from the end of `leaving`'s green (its yellow onset) to the
    # start of `entering`'s green, for a conflicting pair. A pair not listed keeps
    # the leaving group's own yellow + red clearance, as before (issue 17).
    intergreens: dict[tuple[SignalKey, SignalKey], int] = field(default_factory=dict)
    preempts: tuple[Preempt, ...] = ()
    transit: TransitPriority | None = None

    def phase(self, phase_id: int) -> Phase:
        for p in self.phases:
            if p.id == phase_id:
                return p
        raise KeyError(phase_id)
