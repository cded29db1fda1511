"""Which movements conflict, derived from the junction's geometry.

Each arm is a point on a circle at its compass bearing. Traffic drives on the
right, so a stream enters on the counter-clockwise side of its arm and leaves
on the clockwise side of the arm it exits by. Two vehicle streams conflict
when their chords cross or when they merge into the same arm; streams from
the same arm diverge and do not conflict. A crosswalk across an arm conflicts
with every stream entering or leaving by that arm.

How a signal group shows a movement (its `Service`) decides what, if
anything, the movement yields to; yielding is what makes a conflict acceptable:
- a permissive left (a phase's `permissive`, a flashing yellow arrow) yields
  to every stream from the opposing arm and to the walk across the arm it
  turns into;
- a right turn on a phase's circular green yields to the walk across the arm
  it turns into (MUTCD 4D.04).
Nothing else yields: a through never does, nor does any turn on a green arrow
(an overlap; MUTCD: a green arrow means no conflicting movement, pedestrians
included), nor any stream against the walk across the arm it enters by (it
crosses that crosswalk before it turns). Only a left turn can be permissive:
`Stream` refuses any other. Everything else is a hard conflict that the signal
timing must separate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from edge.control.site import Approach, Movement, SignalKey, SignalKind, Turn

# How far (degrees) from the ideal heading an arm may lie and still be the
# exit of a turn; wider than 45 so that skewed and 5-leg junctions resolve.
_MAX_TURN_SKEW_DEG = 60.0
_EPS = 1.0  # half-width of an arm on the circle, in degrees


class GeometryError(ValueError):
    """A movement cannot be placed on the junction's arms."""


def resolve_movement(name: str, approaches: Sequence[Approach]) -> Movement:
    """Parse 'N.L' into a Movement, finding the arm the turn exits by."""
    try:
        arm, turn_code = name.split(".")
        turn = Turn(turn_code)
    except ValueError:
        raise GeometryError(
            f"movement {name!r} is not APPROACH.TURN with TURN one of L, T, R"
        ) from None
    by_id = {a.id: a for a in approaches}
    if arm not in by_id:
        raise GeometryError(f"movement {name!r}: no approach {arm!r}")
    bearing = by_id[arm].bearing_deg
    # Entering from an arm at bearing b means heading b+180; a right turn
    # leaves by the arm at b-90, through by b+180, left by b+90.
    wanted = {Turn.RIGHT: bearing - 90, Turn.THROUGH: bearing + 180, Turn.LEFT: bearing + 90}[turn]
    best: tuple[float, str] | None = None
    for other in approaches:
        if other.id == arm:
            continue
        off = _angle_between(other.bearing_deg, wanted)
        if best is None or off < best[0]:
            best = (off, other.id)
    if best is None or best[0] > _MAX_TURN_SKEW_DEG:
        raise GeometryError(
            f"movement {name!r}: approach {arm!r} has no arm to exit by for that turn"
        )
    return Movement(approach=arm, turn=turn, to=best[1])


def _angle_between(a: float, b: float) -> float:
    d = (a - b) % 360.0
    return min(d, 360.0 - d)


def _opposing_arm(arm: str, approaches: Sequence[Approach]) -> str | None:
    """The arm straight across, if any lies within the turn skew."""
    by_id = {a.id: a for a in approaches}
    target = by_id[arm].bearing_deg + 180.0
    candidates = [(_angle_between(a.bearing_deg, target), a.id) for a in approaches if a.id != arm]
    if not candidates:
        return None
    off, best = min(candidates)
    return best if off <= _MAX_TURN_SKEW_DEG else None


class Service(Enum):
    """How a signal group shows its movements."""

    BALL = "ball"  # a phase's circular green: its right turns yield to the walk they turn across
    ARROW = "arrow"  # a green arrow (an overlap): yields to nothing
    PERMISSIVE = "permissive"  # a permissive left: yields to opposing traffic and the walk


@dataclass(frozen=True, slots=True)
class Stream:
    """A movement as a signal group serves it."""

    movement: Movement
    service: Service

    def __post_init__(self) -> None:
        if not isinstance(self.service, Service):
            raise TypeError(f"movement {self.movement.name}: service {self.service!r}")
        if self.service is Service.PERMISSIVE and self.movement.turn is not Turn.LEFT:
            raise GeometryError(
                f"movement {self.movement.name}: only a left turn can be permissive "
                "(a through or right turn never yields to opposing traffic)"
            )

    @property
    def yields_to_opposing(self) -> bool:
        return self.service is Service.PERMISSIVE

    def yields_to_walk(self, crossing_arm: str) -> bool:
        """Does the stream yield to the walk across `crossing_arm`? Only across the arm
        it turns into, as a permissive left or a right turn on a circular green."""
        m = self.movement
        if crossing_arm != m.to:
            return False
        return self.service is Service.PERMISSIVE or (
            self.service is Service.BALL and m.turn is Turn.RIGHT
        )


def _chord(m: Movement, bearings: dict[str, float]) -> tuple[float, float]:
    return ((bearings[m.approach] - _EPS) % 360.0, (bearings[m.to] + _EPS) % 360.0)


def _chords_cross(a: tuple[float, float], b: tuple[float, float]) -> bool:
    lo, hi = sorted(a)

    def inside(x: float) -> bool:
        return lo < x < hi

    return inside(b[0]) != inside(b[1])


def vehicle_conflict(a: Stream, b: Stream, approaches: Sequence[Approach]) -> bool:
    """Do two vehicle streams conflict in a way the signals must separate?"""
    ma, mb = a.movement, b.movement
    if ma.approach == mb.approach:
        return False  # diverging from one arm
    bearings = {x.id: x.bearing_deg for x in approaches}
    crosses = ma.to == mb.to or _chords_cross(_chord(ma, bearings), _chord(mb, bearings))
    if not crosses:
        return False
    # A permissive left yields to the opposing arm's streams.
    if a.yields_to_opposing and _opposing_arm(ma.approach, approaches) == mb.approach:
        return False
    return not (b.yields_to_opposing and _opposing_arm(mb.approach, approaches) == ma.approach)


def ped_conflict(stream: Stream, crossing_arm: str) -> bool:
    """Does a vehicle stream conflict with the crosswalk across an arm?"""
    m = stream.movement
    if crossing_arm not in (m.approach, m.to):
        return False
    return not stream.yields_to_walk(crossing_arm)


@dataclass(frozen=True, slots=True)
class SignalGroup:
    """Anything with its own display: a phase's vehicle heads, an overlap, a ped signal."""

    key: SignalKey
    streams: tuple[Stream, ...]
    crossing: str | None  # for a ped signal: the arm its crosswalk crosses

    @property
    def label(self) -> str:
        kind, ident = self.key
        return f"{kind.value} {ident}"


def first_conflict(
    a: SignalGroup, b: SignalGroup, approaches: Sequence[Approach]
) -> tuple[str, str] | None:
    """The first pair of names that conflict between two signal groups, or None."""
    if a.crossing is not None and b.crossing is not None:
        return None  # two pedestrian signals never conflict
    if a.crossing is not None or b.crossing is not None:
        ped, veh = (a, b) if a.crossing is not None else (b, a)
        assert ped.crossing is not None
        for s in veh.streams:
            if ped_conflict(s, ped.crossing):
                return (s.movement.name, f"crosswalk {ped.crossing}")
        return None
    for sa in a.streams:
        for sb in b.streams:
            if vehicle_conflict(sa, sb, approaches):
                return (sa.movement.name, sb.movement.name)
    return None


def conflict_pairs(
    groups: Iterable[SignalGroup], approaches: Sequence[Approach]
) -> dict[tuple[SignalKey, SignalKey], tuple[str, str]]:
    """Every conflicting pair of signal groups (both orders), with the reason."""
    items = list(groups)
    out: dict[tuple[SignalKey, SignalKey], tuple[str, str]] = {}
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            why = first_conflict(a, b, approaches)
            if why is not None:
                out[(a.key, b.key)] = why
                out[(b.key, a.key)] = (why[1], why[0])
    return out


def signal_groups(
    phases: Iterable[tuple[int, Sequence[Movement], Sequence[Movement], str | None]],
    overlaps: Iterable[tuple[str, Sequence[Movement], bool]],
) -> list[SignalGroup]:
    """Signal groups from (phase id, movements, permissive lefts, ped crossing) and
    (overlap id, movements, flashing yellow arrow).

    A phase shows its movements on a circular green and its permissive lefts
    yielding; an overlap is a green arrow, except that a flashing-yellow-arrow
    overlap's lefts are permissive here: its green arrow shows only with a
    parent phase that serves the same left protected (edge.config checks it),
    whose own row in the table keeps the arrow's conflicts.
    """
    groups: list[SignalGroup] = []
    for pid, protected, permissive, crossing in phases:
        streams = tuple(Stream(m, Service.BALL) for m in protected) + tuple(
            Stream(m, Service.PERMISSIVE) for m in permissive
        )
        groups.append(SignalGroup((SignalKind.PHASE, pid), streams, None))
        if crossing is not None:
            groups.append(SignalGroup((SignalKind.PED, pid), (), crossing))
    for oid, movements, fya in overlaps:
        service = Service.PERMISSIVE if fya else Service.ARROW
        groups.append(
            SignalGroup(
                (SignalKind.OVERLAP, oid), tuple(Stream(m, service) for m in movements), None
            )
        )
    return groups
