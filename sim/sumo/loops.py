"""The simulator's detector loops: what a real presence loop shows, tick by tick.

Rules this module keeps:
- Each derived detector is a SUMO induction loop (E1) with the detector's
  position and length: a vehicle occupies it from the moment its front
  crosses the loop's start to the moment its back leaves the loop's end,
  times SUMO interpolates inside the step. So every vehicle that crosses the
  loop is on it for a while, however short, and a vehicle standing on it
  occupies it throughout.
- The controller ticks every 100 ms; SUMO reports a step only once it has
  run. A step's record, (T - S, T] for a step of S ms ending at T, is cut
  into 100 ms slices, slice k = (T - S + k*100, T - S + (k+1)*100], each
  occupied when a vehicle was on the loop at any moment of it (as a board
  sampling a detector card at 10 Hz sees it: the card holds a short pulse
  for a sample). `occupied` gives the slice that ends at a tick, for a
  controller whose ticks run behind SUMO (edge_control.py: no latency);
  `replayed` gives slice k to the tick at T + k*100, for one that ticks
  after the step (a fixed latency of one step less one tick: 0.9 s at 1 s
  steps, none at 0.1 s). Neither ever shows a tick what came after it.
- Cost: one subscription per loop (the vehicles on it during the step);
  `getVehicleData` only for the loops that had one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sim.sumo.derive import Derivation

TICK_MS = 100
_NONE: list[frozenset[int]] = [frozenset()]
_LAST_STEP_VEHICLE_NUMBER = 0x10  # traci constant, same value for libsumo


def loop_id(tls: str, det_id: int) -> str:
    return f"edge.{tls}.{det_id}"


def loop_elements(derivations: Sequence[Derivation]) -> list[str]:
    """The `<inductionLoop>` elements of every derived detector."""
    return [
        f'<inductionLoop id="{loop_id(d.tls, det.id)}" lane="{det.lane}" '
        f'pos="{det.pos_m:.2f}" length="{det.length_m:.2f}" period="86400" '
        'file="NUL" friendlyPos="true"/>'
        for d in derivations
        for det in d.detectors
    ]


def slices(vehicles: Sequence[tuple[float, float]], start_ms: int, step_ms: int) -> int:
    """Bit k set: a vehicle was on the loop during slice k of the step from `start_ms`.

    `vehicles` are (entry, exit) in seconds, exit < 0 for one still on at the
    step's end. Slice k is (start + k*100, start + (k+1)*100] ms.
    """
    n = max(step_ms // TICK_MS, 1)
    full = (1 << n) - 1
    mask = 0
    for entry_s, exit_s in vehicles:
        first = _slice(entry_s * 1000 - start_ms, n)
        last = n - 1 if exit_s < 0 else _slice(exit_s * 1000 - start_ms, n, leaving=True)
        if last >= first:
            mask |= (full >> (n - 1 - last)) & ~((1 << first) - 1)
        if mask == full:
            break
    return mask


def _slice(offset_ms: float, n: int, leaving: bool = False) -> int:
    # Entering at offset x (x in (k*100, (k+1)*100]) is on in slice k; one there at the
    # step's start (x <= 0) from slice 0. Leaving at x: on in slice k for x > k*100.
    k = int(-(-offset_ms // TICK_MS)) - 1  # ceil(x / 100) - 1
    if leaving and offset_ms <= 0:
        return -1
    return min(max(k, 0), n - 1)


class Loops:
    """Every derived detector of a run, as induction loops read per SUMO step."""

    def __init__(self, derivations: Sequence[Derivation]) -> None:
        self.loops = [
            (d.tls, det.id, loop_id(d.tls, det.id)) for d in derivations for det in d.detectors
        ]
        self._of = {sumo_id: (tls, det_id) for tls, det_id, sumo_id in self.loops}
        self._start_ms = 0  # the latest step read began here...
        self._step_ms = TICK_MS  # ...and lasted this long
        self._read_ms: int | None = None  # when the latest update ran
        # per signal, the detectors on in each 100 ms slice of the latest step
        # (one set: the same all step)
        self._slices: dict[str, list[frozenset[int]]] = {d.tls: _NONE for d in derivations}

    def start(self, sim: Any) -> None:
        for _, _, sumo_id in self.loops:
            sim.inductionloop.subscribe(sumo_id, [_LAST_STEP_VEHICLE_NUMBER])

    def update(self, sim: Any, t_ms: int) -> None:
        """Read the SUMO step that has just ended at `t_ms` (since the previous update)."""
        last, self._read_ms = self._read_ms, t_ms
        if last is None:  # SUMO has not stepped yet
            return
        results = sim.inductionloop.getAllSubscriptionResults()
        step_ms = t_ms - last
        self._start_ms, self._step_ms = t_ms - step_ms, step_ms
        n = max(step_ms // TICK_MS, 1)
        full = (1 << n) - 1
        on: dict[str, list[tuple[int, int]]] = {}  # per signal: (detector id, slice bits)
        for sumo_id, got in results.items():
            if got.get(_LAST_STEP_VEHICLE_NUMBER, 0) > 0 and sumo_id in self._of:
                data = sim.inductionloop.getVehicleData(sumo_id)
                mask = slices([(v[2], v[3]) for v in data], self._start_ms, step_ms)
                if mask:
                    tls, det_id = self._of[sumo_id]
                    on.setdefault(tls, []).append((det_id, mask))
        for tls in self._slices:
            dets = on.get(tls)
            if not dets:
                self._slices[tls] = _NONE
            elif all(m == full for _, m in dets):  # the same all step: one set
                self._slices[tls] = [frozenset(i for i, _ in dets)]
            else:
                self._slices[tls] = [frozenset(i for i, m in dets if m >> k & 1) for k in range(n)]

    def occupied(self, tls: str, t_ms: int) -> frozenset[int]:
        """Signal `tls`'s detectors on in the 100 ms up to the tick at `t_ms`.

        For the ticks of the step just read, (start, start + step]: no latency.
        """
        got = self._slices[tls]
        if len(got) == 1:
            return got[0]
        k = (t_ms - self._start_ms - 1) // TICK_MS
        return got[min(max(k, 0), len(got) - 1)]

    def replayed(self, tls: str, t_ms: int) -> frozenset[int]:
        """For a controller that ticks after the step (T, T + 100, ...): the step's
        slices in order, a fixed latency of one step less one tick."""
        return self.occupied(tls, t_ms - self._step_ms + TICK_MS)

    def during_step(self, tls: str) -> frozenset[int]:
        """The detectors on at any moment of the latest step."""
        return frozenset().union(*self._slices[tls])
