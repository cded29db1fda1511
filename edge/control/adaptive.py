"""Adaptive timing: green times from queues, arrivals and occupancy, decided every step.

Pure and deterministic like the rest of the core; the controller owns it and
calls it from its hooks (detector edges, green start and end, gap and max).
The method, its parameters and the measurements behind them are in
docs/adaptive.md. In short, it changes only *when* a green ends, never the
ring-barrier sequence, the minimums or the clearances:

1. Queue per phase. Vehicles waiting at a red phase are counted from its
   loops: rising edges on its setback loops and its stop-bar loops since its
   green ended, at least one per occupied stop-bar loop. A camera (or any
   other source) may give a queue estimate per detector or zone id
   (`Inputs.queues`); where given it replaces the loop count for that
   detector.
2. Gap by the queue that waits (queue-clearance actuation). A green is
   extended by its detectors as usual, but the allowable gap shrinks from
   the plan's passage to `min_gap_ms` as the vehicles waiting on conflicting
   phases grow toward `full_queue_veh`: once a platoon has passed, a few
   stragglers do not hold a full queue at red. With nobody waiting the gap is
   the plan's passage, so light traffic is served as actuated.
3. Split balancing (as SCATS balances degree of saturation). Each phase's
   maximum green moves between `floor_pct` of the plan's maximum and the
   plan's maximum: up by `step_pct` after a max-out (its queue did not
   clear), down by `step_pct` after a green that gapped out well short of
   it. The plan's maximum stays the hard cap, so the longest wait any call
   sees is no longer than in actuated operation (the bounded-wait proof in
   tests/control/test_properties.py drives the adaptive mode too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edge.control.site import Site


@dataclass(frozen=True, slots=True)
class AdaptiveParams:
    """Tuning of the adaptive mode (docs/adaptive.md explains each)."""

    min_gap_ms: int = 1000  # the shortest allowable gap, with a full queue waiting elsewhere
    full_queue_veh: float = 6.0  # conflicting vehicles waiting at which the gap is shortest
    step_pct: int = 10  # split balancing: max green change per served green, % of the plan max
    floor_pct: int = 100  # split balancing: lowest max green, % of the plan max (100: off)
    short_pct: int = 60  # a green that gapped out below this % of its max lowers the max


DEFAULT_PARAMS = AdaptiveParams()


class Adaptive:
    """Per-phase queue estimates, gaps and maximum greens for one intersection."""

    def __init__(self, site: Site, params: AdaptiveParams = DEFAULT_PARAMS) -> None:
        self.params = params
        index = {p.id: i for i, p in enumerate(site.phases)}
        n = len(site.phases)
        self.n = n
        # Which phases each detector counts for: stop-bar loops (they call) and
        # setback loops (extend only) both see every vehicle of their lane.
        self.det_phases: list[tuple[int, ...]] = []
        self.det_stop_bar: list[bool] = []
        self.det_ids: list[int] = []
        for d in site.detectors:
            phases = d.calls or d.extends
            self.det_phases.append(tuple(index[p] for p in phases) if not d.ped else ())
            self.det_stop_bar.append(bool(d.calls) and not d.ped)
            self.det_ids.append(d.id)
        self.stop_bar_of: list[list[int]] = [[] for _ in range(n)]
        for k, phases in enumerate(self.det_phases):
            for i in phases:
                if self.det_stop_bar[k]:
                    self.stop_bar_of[i].append(k)
        self.arrivals_stop = [0] * n  # stop-bar rising edges while the phase is not green
        self.arrivals_setback = [0] * n  # setback rising edges while the phase is not green
        self.zone_queue: dict[int, float] = {}  # detector/zone id -> vehicles (camera)
        self.zone_of_phase: list[list[int]] = [[] for _ in range(n)]
        for k, phases in enumerate(self.det_phases):
            for i in phases:
                self.zone_of_phase[i].append(self.det_ids[k])
        self.max_pct = [100] * n  # current max green, % of the plan's

    # -- inputs ----------------------------------------------------------------------

    def count(self, k: int, pulses: int, green: Sequence[bool]) -> None:
        """Detector k saw `pulses` vehicles arrive; count them for its red phases."""
        for i in self.det_phases[k]:
            if green[i]:
                continue
            if self.det_stop_bar[k]:
                self.arrivals_stop[i] += pulses
            else:
                self.arrivals_setback[i] += pulses

    def set_zone_queues(self, queues: Sequence[tuple[int, float]]) -> None:
        """Queue estimates (vehicles) per detector or zone id from a camera; latest wins."""
        for det_id, veh in queues:
            self.zone_queue[det_id] = max(0.0, float(veh))

    # -- estimates ---------------------------------------------------------------------

    def queue(self, i: int, present: Sequence[bool]) -> float:
        """Vehicles waiting at phase i (meaningful while it is not green)."""
        zones = [self.zone_queue[z] for z in self.zone_of_phase[i] if z in self.zone_queue]
        if zones:
            return sum(zones)
        occupied = sum(1 for k in self.stop_bar_of[i] if present[k])
        return float(max(occupied, self.arrivals_stop[i], self.arrivals_setback[i]))

    def gap_ms(self, passage_ms: int, waiting_veh: float) -> int:
        """The allowable gap of a green with `waiting_veh` vehicles queued on conflicting phases."""
        p = self.params
        floor = min(p.min_gap_ms, passage_ms)
        share = min(waiting_veh / p.full_queue_veh, 1.0) if p.full_queue_veh > 0 else 1.0
        return passage_ms - int((passage_ms - floor) * share)

    def max_green_ms(self, i: int, plan_max_ms: int, min_green_ms: int) -> int:
        """The balanced maximum green of phase i: never above the plan's, never below its min."""
        return max(plan_max_ms * self.max_pct[i] // 100, min(min_green_ms, plan_max_ms))

    # -- green start and end -----------------------------------------------------------

    def green_started(self, i: int) -> None:
        self.arrivals_stop[i] = 0
        self.arrivals_setback[i] = 0

    def green_ended(self, i: int, green_ms: int, max_ms: int, reason: str) -> None:
        """Split balancing after each served green (max_ms: the balanced max it ran with)."""
        p = self.params
        if reason == "max_out":
            self.max_pct[i] = min(100, self.max_pct[i] + p.step_pct)
        elif reason == "gap_out" and green_ms * 100 < max_ms * p.short_pct:
            self.max_pct[i] = max(p.floor_pct, self.max_pct[i] - p.step_pct)
