"""Neighbours' outflows into predicted arrivals: the projection a device and the simulator share.

An upstream signal tells its downstream neighbours what its stop-bar loops
released; each downstream projects those releases into `Inputs.arrivals`
(edge/control/arrivals.py). The device does it over the central link
(edge/link/outflow.py), the simulator in lockstep (sim/sumo/neighbours.py),
both with this module's classes, so the simulator measures what the device
runs (tests/sim/test_neighbours.py checks the sets tick for tick against the
device's path, each feed declared as a `[[neighbour]]` entry would be).
Rules it keeps (tests/test_neighbours.py checks each):

1. Releases (`Releases.step`, the upstream's side): a detector's falling edge
   is a release, at that step, with the time it stood on the loop (since its
   rising edge; a loop occupied at the first step counts from there) and
   the phases then showing green, yellow or flashing yellow. The upstream
   does not know who listens: it reports every falling edge.
2. A link (`Link`, one `[[neighbour]]` entry): a release counts for it when
   its detector is one of the link's loops and one of that loop's releasing
   phases was showing. It is due at the release time + the link's free-flow
   travel time + the time lost accelerating (rule 3), for each of the link's
   downstream phases.
3. The acceleration lag: from the speed the vehicle crossed the loop at,
   v0 = (loop length + VEHICLE_M) / time on the loop (one that stood on it
   starts nearly from rest), up to the link's speed v: (v - v0)^2 / (2 a v),
   a = ACCEL_MPS2. No time on the loop known (0) or no speed known (0): no lag.
4. Sending (`Projection.take`, called once a second): the arrivals due after now and
   within SEND_AHEAD_MS, as (phase id, ms ahead), sorted; None (nothing new)
   while there is nothing to say and the last set said nothing, so a silent
   neighbourhood leaves the core exactly as without this input. A set holds at
   most the core's MAX_PAIRS (beyond them it would report an input error and
   ignore the rest): over it, each phase keeps its soonest, shared round-robin,
   so a flood on one phase cannot crowd out another's.
5. Bounds: at most MAX_PENDING arrivals wait, shared equally by the neighbour
   devices, so one (compromised, say) cannot push out another's; over its share
   a device's earliest due are dropped first, counted in `dropped`; a release
   older than MAX_AGE_MS or due further ahead than MAX_TRAVEL_MS is not a
   prediction and is dropped.

Times in integer ms; no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from edge.control.arrivals import CALL_MS, MAX_PAIRS
from edge.control.messages import Lamp

SEND_MS = 1000  # a set once a second
SEND_AHEAD_MS = CALL_MS + 2000  # arrivals further ahead are not sent (the core's windows + margin)
VEHICLE_M = 5.0  # a car's length, for its speed over a loop
ACCEL_MPS2 = 2.6  # a car's acceleration (SUMO's passenger default)
RELEASING = (Lamp.GREEN, Lamp.YELLOW, Lamp.FLASH_YELLOW)
MAX_PENDING = 1024  # arrivals waiting at once: far more than a few links carry in 10 s
MAX_AGE_MS = 60_000  # a release older than this is history, not a prediction
MAX_TRAVEL_MS = 300_000  # a link longer than 5 minutes is not between neighbours


@dataclass(frozen=True, slots=True)
class Release:
    """A vehicle leaving an upstream stop-bar loop (rule 1)."""

    detector: int  # the upstream's detector id
    t_ms: int  # when (the receiver's clock)
    on_ms: int  # how long it stood on the loop (0: unknown)
    showing: frozenset[int]  # the upstream's phase ids showing green or yellow then


def lag_ms(speed_mps: float, length_m: float, on_ms: int) -> int:
    """Rule 3: time lost accelerating from the speed over the loop to the link's speed."""
    v = speed_mps
    if v <= 0:
        return 0
    v0 = min(v, (length_m + VEHICLE_M) * 1000 / on_ms) if on_ms > 0 else v
    return round((v - v0) ** 2 / (2 * ACCEL_MPS2 * v) * 1000)


def due_ms(t_ms: int, travel_ms: int, speed_mps: float, length_m: float, on_ms: int) -> int:
    """Rules 2-3: when a vehicle released at t_ms reaches the downstream stop line."""
    return t_ms + travel_ms + lag_ms(speed_mps, length_m, on_ms)


@dataclass(frozen=True, slots=True)
class Link:
    """One upstream neighbour's exit feeding this signal (a `[[neighbour]]` entry)."""

    device: str  # the upstream device (its link id)
    # (upstream detector id, loop length m, the upstream phases whose green releases over it)
    loops: tuple[tuple[int, float, tuple[int, ...]], ...]
    phases: tuple[int, ...]  # this signal's phases the arrivals are for
    travel_ms: int  # free flow, upstream stop line to this signal's stop line
    speed_mps: float = 0.0  # the link's speed (the lag's target); 0: no lag

    def due(self, r: Release) -> int | None:
        """Rule 2: when `r` arrives here, or None when it is not for this link."""
        for det, length_m, phases in self.loops:
            if det == r.detector and any(p in r.showing for p in phases):
                return due_ms(r.t_ms, self.travel_ms, self.speed_mps, length_m, r.on_ms)
        return None


@dataclass(slots=True)
class Projection:
    """Rules 2, 4 and 5 for one downstream signal: releases in, `Inputs.arrivals` out."""

    links: Sequence[Link]
    # each neighbour device's arrivals waiting: (phase id, due ms)
    pending: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    said: bool = False  # the last set sent was not empty
    dropped: int = 0  # arrivals dropped by rule 5
    share: int = 0  # arrivals one device may have waiting (rule 5); set from links

    def __post_init__(self) -> None:
        self.share = MAX_PENDING // max(len({link.device for link in self.links}), 1)

    def receive(self, device: str, now_ms: int, releases: Iterable[Release]) -> int:
        """Project one neighbour's releases; the arrivals added."""
        added = 0
        pending = self.pending.setdefault(device, [])
        for r in releases:
            if not 0 <= now_ms - r.t_ms <= MAX_AGE_MS:
                self.dropped += 1
                continue
            for link in self.links:
                if link.device != device:
                    continue
                due = link.due(r)
                if due is None:
                    continue
                if due - now_ms > MAX_TRAVEL_MS:
                    self.dropped += 1
                    continue
                pending.extend((p, due) for p in link.phases)
                added += len(link.phases)
        over = len(pending) - self.share
        if over > 0:
            pending.sort(key=lambda pd: pd[1])
            del pending[:over]
            self.dropped += over
        if not pending:
            del self.pending[device]  # bounded by the links' devices either way
        return added

    def take(self, now_ms: int) -> tuple[tuple[int, int], ...] | None:
        """Rule 4: the set for the core at now_ms, or None (nothing new)."""
        for device, pending in self.pending.items():
            self.pending[device] = [(p, due) for p, due in pending if due > now_ms]
        pairs = tuple(
            sorted(
                (p, due - now_ms)
                for pending in self.pending.values()
                for p, due in pending
                if due - now_ms <= SEND_AHEAD_MS
            )
        )
        if len(pairs) > MAX_PAIRS:
            pairs = _fair(pairs)
        if not pairs and not self.said:
            return None
        self.said = bool(pairs)
        return pairs


def _fair(pairs: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    """Rule 4's cap: MAX_PAIRS of the sorted `pairs`, each phase's soonest first, taken
    round-robin (every phase's first, then every phase's second, ...)."""
    rank: dict[int, int] = {}
    ranked = []
    for p, ahead in pairs:  # sorted by phase, then time: the rank within the phase
        rank[p] = rank.get(p, -1) + 1
        ranked.append((rank[p], ahead, p))
    ranked.sort()
    return tuple(sorted((p, ahead) for _r, ahead, p in ranked[:MAX_PAIRS]))


@dataclass(slots=True)
class Releases:
    """Rule 1, the upstream's side: falling edges of its detectors, step by step."""

    phase_ids: Sequence[int]  # the upstream's phase ids, in its outputs' order
    _prev: frozenset[int] = frozenset()
    _on_since: dict[int, int] = field(default_factory=dict)

    def step(self, t_ms: int, occupied: frozenset[int], lamps: Sequence[Lamp]) -> list[Release]:
        prev, self._prev = self._prev, occupied
        for det in occupied - prev:
            self._on_since[det] = t_ms
        gone = prev - occupied
        if not gone:
            return []
        showing = frozenset(
            pid for pid, lamp in zip(self.phase_ids, lamps, strict=False) if lamp in RELEASING
        )
        out = []
        for det in sorted(gone):
            on_ms = t_ms - self._on_since.pop(det, t_ms)
            out.append(Release(det, t_ms, on_ms, showing))
        return out
