"""Detectors: presence and pulses turned into calls and extensions; loop diagnostics.

Rules this module keeps (tests/control/test_properties.py, test_detector_faults.py
and test_bad_input.py check them):

1. An unknown detector id is reported once (event `input_error`), a malformed
   pulse count, presence that is not a set of ids (the last presence is kept)
   or a bad queue estimate every time; none changes anything else.
2. A rising edge, or a pulse the board counted, is an actuation: a push button
   calls its phases' crossings (not one that walks now); a loop counts towards
   added initial on a phase that is not green, calls it at once when locking
   with no delay, and restarts the passage timer of a green it extends.
3. A loop extends its phases' greens while occupied and for its carryover
   after; when that ends, the passage timer of a green it extends runs from then.
4. A loop calls once occupied for its delay (none: at once; the call holds
   through carryover). A locking loop's call stays until its phase is served
   (and is placed again at yellow while the loop still calls); a non-locking
   loop's call lasts only as long as its output does.
5. Diagnostics (NTCIP 1202): a loop occupied past its max presence (stuck on)
   or with no vehicle past its no activity (dead) fails (event
   `detector_fault`): it neither calls nor extends, and its phases are called
   every cycle instead (a minimum recall). It recovers (`detector_recovered`)
   when it behaves again or new timing turns its check off. The outputs name
   the failed loops.
6. The deadline is the next time carryover, delay or a diagnostic may change
   something by itself; with no input change before it, the step is quiet.

State owned here, per detector: presence, when it went on and off, its last
activity, its extension and call outputs, its fault; the failed ids, the
deadline, the unknown ids reported; and the indexes built from the site
(rebuilt with new timing, the state kept).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edge.control.site import Site
from edge.control.states import GREEN, NEVER, WALK

if TYPE_CHECKING:
    from edge.control.controller import Controller


class Detectors:
    def __init__(self, site: Site, index: dict[int, int], now: int) -> None:
        nd = len(site.detectors)
        self.present = [False] * nd
        self.on_at = [0] * nd
        self.off_at = [-NEVER] * nd
        self.ext = [False] * nd
        self.call = [False] * nd
        self.fault = [""] * nd  # "", "max_presence" or "no_activity" (docs/adaptive.md)
        self.seen_at = [now] * nd  # last edge or pulse, for no activity
        self.failed_ids: tuple[int, ...] = ()  # detectors failed now, for the outputs
        self.deadline = now  # a first pass sets the diagnostic deadlines
        self.reported_unknown: set[int] = set()
        self.build_indexes(site, index)

    def build_indexes(self, site: Site, index: dict[int, int]) -> None:
        """From the site (again on new timing: locking may have changed)."""
        self.index = {d.id: k for k, d in enumerate(site.detectors)}
        self.calls = [[index[p] for p in d.calls] for d in site.detectors]
        self.extends = [[index[p] for p in d.extends] for d in site.detectors]
        self.locking_calls: list[list[int]] = [[] for _ in site.phases]
        self.fault_calls: list[list[int]] = [[] for _ in site.phases]  # vehicle loops calling i
        for k, d in enumerate(site.detectors):
            if not d.ped:
                for i in self.calls[k]:
                    self.fault_calls[i].append(k)
                    if d.locking:
                        self.locking_calls[i].append(k)

    def coerce_occupied(self, ctl: Controller, now: int, occupied: object) -> frozenset[int]:
        """Rule 1: any iterable of ids; anything else keeps the last known presence."""
        try:
            ids: frozenset[int] = frozenset(occupied)  # type: ignore[call-overload]
            return ids
        except TypeError:
            ctl._event(now, "input_error", "occupied", f"not a set of detector ids: {occupied!r}")
            return ctl.last_occupied

    def zone_queues(self, ctl: Controller, now: int, queues: object) -> list[tuple[int, float]]:
        """Rule 1: queue estimates per detector or zone id (a camera's); bad ones reported."""
        good: list[tuple[int, float]] = []
        for item in queues if isinstance(queues, tuple) else ((queues,)):
            try:
                det_id, veh = item
                if det_id not in self.index or not 0 <= float(veh) < 1e6:
                    raise ValueError
                good.append((det_id, float(veh)))
            except (TypeError, ValueError):
                ctl._event(now, "input_error", "queues", f"bad queue estimate {item!r}")
        return good

    def recall_at_yellow(self, i: int) -> bool:
        """Phase i's green ends: call it again? A locking loop still calling (rule 4),
        or a failed loop that calls it (rule 5: served every cycle)."""
        call, fault = self.call, self.fault
        return any(call[k] for k in self.locking_calls[i]) or any(
            fault[k] for k in self.fault_calls[i]
        )

    def update(
        self,
        ctl: Controller,
        now: int,
        occupied: frozenset[int],
        actuations: tuple[tuple[int, int], ...],
    ) -> None:
        """This step's presence and pulses: calls, extensions, diagnostics (rules 1-5)."""
        for det_id in occupied:
            if det_id not in self.index and det_id not in self.reported_unknown:
                self.reported_unknown.add(det_id)
                ctl._event(now, "input_error", f"detector {det_id}", "unknown detector id")
        pulses: dict[int, int] = {}
        for item in actuations:
            try:
                det_id, count = item
                k = self.index[det_id]
                pulses[k] = pulses.get(k, 0) + max(0, int(count))
            except (KeyError, TypeError, ValueError):
                ctl._event(now, "input_error", "actuations", f"bad actuation {item!r}")
        deadline = NEVER
        dets = ctl.site.detectors
        for k, det in enumerate(dets):
            present = det.id in occupied
            pulse = pulses.get(k, 0)
            if present and not self.present[k]:
                pulse += 1
                self.on_at[k] = now
                ctl.adaptive.presence(k, True, now)
            elif not present and self.present[k]:
                self.off_at[k] = now
                self.seen_at[k] = now  # activity: no-activity counts from here
                ctl.adaptive.presence(k, False, now)
            self.present[k] = present
            if pulse:
                self.seen_at[k] = now
            if not det.ped and (det.max_presence_ms or det.no_activity_ms or self.fault[k]):
                deadline = min(deadline, self._diagnose(ctl, now, k, present))
            failed = bool(self.fault[k])
            if pulse and not failed:
                self._actuated(ctl, now, k, det.ped)
                if not det.ped:
                    ctl.adaptive.count(k, pulse, [v == GREEN for v in ctl.intervals.iv])
            if det.ped:
                continue
            if failed:  # its phases are called every cycle instead (recall_at_yellow)
                for i in self.calls[k]:
                    if ctl.intervals.iv[i] != GREEN and not ctl.timers.vcall[i]:
                        ctl.timers.vcall[i] = True
                        ctl._timers_dirty = True
            out = not failed and (present or now < self.off_at[k] + det.carryover_ms)
            if out and not present:
                deadline = min(deadline, self.off_at[k] + det.carryover_ms)
            if out != self.ext[k]:
                self.ext[k] = out
                for i in self.extends[k]:
                    ctl.timers.ext_count[i] += 1 if out else -1
                    if not out and ctl.intervals.iv[i] == GREEN:
                        ctl.timers.pass_end[i] = now + ctl.timers.gap(ctl, i, now)
                ctl._timers_dirty = True
            qualified = out and (
                self.call[k] or det.delay_ms == 0 or now >= self.on_at[k] + det.delay_ms
            )
            if out and not qualified:
                deadline = min(deadline, self.on_at[k] + det.delay_ms)
            if qualified != self.call[k]:
                self.call[k] = qualified
                for i in self.calls[k]:
                    if det.locking:
                        if qualified and ctl.intervals.iv[i] != GREEN:
                            ctl.timers.vcall[i] = True
                    else:
                        ctl.timers.nl_count[i] += 1 if qualified else -1
                ctl._timers_dirty = True
        self.deadline = deadline

    def _diagnose(self, ctl: Controller, now: int, k: int, present: bool) -> int:
        """Detector k stuck on (max presence) or dead (no activity)? Returns the next
        time the answer may change by itself. A fault clears when the loop behaves
        (stuck on goes off, dead sees a vehicle) or new timing turns its check off."""
        det = ctl.site.detectors[k]
        fault = self.fault[k]
        if (fault == "max_presence" and not (present and det.max_presence_ms)) or (
            fault == "no_activity" and (self.seen_at[k] == now or not det.no_activity_ms)
        ):  # behaving again, or new timing turned the check off
            self.fault[k] = fault = ""
            ctl._event(now, "detector_recovered", f"detector {det.id}", "")
            self.failed_ids = tuple(i for i in self.failed_ids if i != det.id)
            ctl._dirty = True  # the outputs name the failed detectors
        if fault:
            return NEVER
        if present and det.max_presence_ms:
            at, why = self.on_at[k] + det.max_presence_ms, "max_presence"
            limit = det.max_presence_ms
            what = "occupied for"
        elif not present and det.no_activity_ms:
            at, why = self.seen_at[k] + det.no_activity_ms, "no_activity"
            limit = det.no_activity_ms
            what = "no vehicle for"
        else:
            return NEVER
        if now < at:
            return at
        self.fault[k] = why
        self.failed_ids = tuple(sorted((*self.failed_ids, det.id)))
        ctl._event(
            now,
            "detector_fault",
            f"detector {det.id}",
            f"{why}: {what} {limit / 1000:g} s; its phases are called every cycle",
        )
        ctl._dirty = True  # the outputs name the failed detectors
        return NEVER

    def _actuated(self, ctl: Controller, now: int, k: int, ped: bool) -> None:
        """A rising edge (or a pulse counted by the board) on detector k."""
        ctl._timers_dirty = True
        for i in self.calls[k]:
            if ped:
                if not (ctl.intervals.iv[i] == GREEN and ctl.peds.iv[i] == WALK):
                    ctl.peds.call[i] = True
            elif ctl.intervals.iv[i] != GREEN:
                ctl.timers.actu_red[i] += 1
                if ctl.site.detectors[k].locking and ctl.site.detectors[k].delay_ms == 0:
                    ctl.timers.vcall[i] = True
        if not ped:
            for i in self.extends[k]:
                if ctl.intervals.iv[i] == GREEN:
                    ctl.timers.pass_end[i] = max(
                        ctl.timers.pass_end[i], now + ctl.timers.gap(ctl, i, now)
                    )
