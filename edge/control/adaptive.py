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
3. Permissive first for flashing-yellow-arrow lefts. A protected left
   phase whose movement may also turn permissively (an FYA overlap) and that
   leads its permissive phase is skipped while the permissive arrow clears
   its lane (a lagging left is permissive first by its place in the ring). A permissive period
   failed when a left was still on the loop (`permissive_fail_ms`), the loop
   was occupied for `permissive_occ_pct` of it, or it ran `permissive_long_ms`
   or more (a long opposing green is a dense opposing stream, and a left
   waiting for a gap inside the junction is off its loop). A moving failure
   rate with hysteresis decides whether the protected left runs whenever
   called or only after a failed period; a vehicle that has waited on the
   loop for `left_wait_ms` is always called (the bound on how long a left is
   kept from its protected phase).
4. Split balancing (as SCATS balances degree of saturation). Each phase's
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
    left_wait_ms: int = 60_000  # longest a left waits on its loop before its protected call
    permissive_fail_ms: int = 5_000  # a left on the loop this long when its FYA ends: failed
    permissive_occ_pct: int = 50  # ... or its loop occupied this share of the permissive green
    permissive_long_ms: int = 30_000  # ... or the permissive green ran this long
    fail_weight_pct: int = 25  # weight of the latest permissive period in the failure rate
    protect_on_pct: int = 35  # failure rate at which the protected left runs every cycle
    protect_off_pct: int = 15  # ... and at which it goes back to permissive first


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
        nd = len(site.detectors)
        self.occ_ms = [0] * nd  # time each detector has been occupied, up to occ_at
        self.occ_at = [0] * nd
        self.occ_on = [False] * nd
        self.perm_start: dict[int, tuple[int, list[int]]] = {}  # phase -> (t, occ_ms then)
        self.zone_queue: dict[int, float] = {}  # detector/zone id -> vehicles (camera)
        self.zone_of_phase: list[list[int]] = [[] for _ in range(n)]
        for k, phases in enumerate(self.det_phases):
            for i in phases:
                self.zone_of_phase[i].append(self.det_ids[k])
        self.max_pct = [100] * n  # current max green, % of the plan's
        # Protected lefts with a permissive alternative (an FYA overlap's parent),
        # the permissive phases that offer it, and whether the last one failed.
        # A left that lags its permissive phase (after it in the same ring) is held back
        # by nobody: its permissive period has just run when its call is decided, and a
        # left still on the loop then is what the permissive arrow did not serve.
        self.fya_left: dict[int, tuple[int, ...]] = {}
        ring = [p.ring for p in site.phases]
        for o in site.overlaps:
            if o.permissive_parents:
                for pid in o.parents:
                    i = index[pid]
                    perm = tuple(index[q] for q in o.permissive_parents)
                    if not any(ring[q] == ring[i] and q < i for q in perm):
                        self.fya_left[i] = perm
        self.permissive_failed = [True] * n  # until a permissive period shows otherwise
        self.fail_rate_pct = [100] * n  # moving share of permissive periods that failed
        self.protect = [True] * n  # the left's protected phase runs whenever called

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

    def presence(self, k: int, present: bool, now: int) -> None:
        """Detector k changed state: accumulate its occupied time."""
        if self.occ_on[k]:
            self.occ_ms[k] += now - self.occ_at[k]
        self.occ_on[k], self.occ_at[k] = present, now

    def _occupied_ms(self, k: int, now: int) -> int:
        return self.occ_ms[k] + (now - self.occ_at[k] if self.occ_on[k] else 0)

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

    def left_call_counts(
        self, i: int, now: int, present: Sequence[bool], on_at: Sequence[int]
    ) -> bool:
        """Does the loop call of phase i count now (always, unless a permissive-first left)?"""
        if i not in self.fya_left or self.permissive_failed[i] or self.protect[i]:
            return True
        wait = self.params.left_wait_ms
        return any(present[k] and now >= on_at[k] + wait for k in self.stop_bar_of[i])

    def left_deadline(self, present: Sequence[bool], on_at: Sequence[int]) -> int | None:
        """When a held-back left's call will count without any input changing."""
        times = [
            on_at[k] + self.params.left_wait_ms
            for i in self.fya_left
            if not (self.permissive_failed[i] or self.protect[i])
            for k in self.stop_bar_of[i]
            if present[k]
        ]
        return min(times) if times else None

    # -- green start and end -----------------------------------------------------------

    def green_started(self, i: int, now: int) -> None:
        self.perm_start[i] = (now, [self._occupied_ms(k, now) for k in range(len(self.occ_ms))])
        self.arrivals_stop[i] = 0
        self.arrivals_setback[i] = 0

    def permissive_ended(
        self, p: int, now: int, present: Sequence[bool], on_at: Sequence[int]
    ) -> None:
        """Phase p's green ended: did each left turning permissively in it get through?"""
        prm = self.params
        for i, perm in self.fya_left.items():
            if p not in perm:
                continue
            failed = any(
                present[k] and now >= on_at[k] + prm.permissive_fail_ms for k in self.stop_bar_of[i]
            )
            start = self.perm_start.get(p)
            if start is not None and now > start[0]:
                span = now - start[0]
                failed = (
                    failed
                    or span >= prm.permissive_long_ms
                    or any(
                        (self._occupied_ms(k, now) - start[1][k]) * 100
                        >= span * prm.permissive_occ_pct
                        for k in self.stop_bar_of[i]
                    )
                )
            self.permissive_failed[i] = failed
            w = prm.fail_weight_pct
            rate = (self.fail_rate_pct[i] * (100 - w) + 100 * w * failed) // 100
            self.fail_rate_pct[i] = rate
            if rate >= prm.protect_on_pct:
                self.protect[i] = True
            elif rate <= prm.protect_off_pct:
                self.protect[i] = False

    def green_ended(self, i: int, green_ms: int, max_ms: int, reason: str) -> None:
        """Split balancing after each served green (max_ms: the balanced max it ran with)."""
        p = self.params
        if reason == "max_out":
            self.max_pct[i] = min(100, self.max_pct[i] + p.step_pct)
        elif reason == "gap_out" and green_ms * 100 < max_ms * p.short_pct:
            self.max_pct[i] = max(p.floor_pct, self.max_pct[i] - p.step_pct)
