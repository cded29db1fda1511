"""What emergency vehicles met at each signal, and how soon each signal recovered.

A passage is an emergency vehicle crossing a signal's stop line (the signal
stops being the next one on its route). For each passage:

- at the signal (the issue 17 goal's "delay per signal"): the SUMO time loss
  the vehicle gathered from entering the signal's approach until it left the
  signal's junction. The approach begins at the first simulation step at
  which the vehicle is on a normal (not a junction's internal) lane, the
  signal is the next on its route and its stop line is at most `APPROACH_M`
  ahead; the junction is left at the first step after the passage at which
  the vehicle is on a normal lane again. Upstream of the approach the loss is
  mid-block car following (SUMO's cars do not pull over), which no signal
  causes; inside it lie the signal's queue and display, and car following
  still (the vehicle wants 1.2 times the limit: behind a car at the limit it
  loses a sixth of its time). So the window's *halted* time is given too: the
  steps at which the vehicle was slower than SUMO's halting speed (0.1 m/s),
  what a queue or a red cost it;
- between stop lines: the SUMO time loss the vehicle gathered since it passed
  the signal before (or since it departed), mid-block included;
- recovery: seconds from the passage until the halting vehicles on the
  signal's approaches are back to their level before the vehicle came (the
  mean over the `REF_S` before it was first within reach of the signal:
  the receiver's range or central's lead). Not back within `WATCH_S`: the
  recovery counts as `WATCH_S`; a passage whose watch is still open when
  the run ends is left out.

The same trace runs with preemption off, so the two runs are measured alike.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

APPROACH_M = 150.0  # a signal's approach: about 20 queued cars a lane
HALT_MPS = 0.1  # SUMO's halting speed
REF_S = 120.0  # the "normal" queue: its mean over this long before the vehicle came
WATCH_S = 600.0  # a signal not recovered this long after a passage counts as this


@dataclass(slots=True)
class _Watch:
    ref: float  # halting vehicles before the vehicle came
    passed_s: float = -1.0  # when it passed the stop line (-1: not yet)


@dataclass(slots=True)
class EvTrace:
    edges: dict[str, tuple[str, ...]]  # signal -> its approach edges
    history: dict[str, deque[tuple[float, int]]] = field(default_factory=dict)
    next_tls: dict[str, str] = field(default_factory=dict)  # vehicle -> signal ahead
    loss_at_pass: dict[str, float] = field(default_factory=dict)  # vehicle -> loss then
    watching: dict[tuple[str, str], _Watch] = field(default_factory=dict)  # (veh, tls)
    delays: list[tuple[str, float]] = field(default_factory=list)  # (tls, s) per passage
    # vehicle -> (signal, time loss when it entered that signal's approach); the same
    # once it has passed the stop line, until it is off the junction
    approach: dict[str, tuple[str, float]] = field(default_factory=dict)
    leaving: dict[str, tuple[str, float]] = field(default_factory=dict)
    at_signal: list[tuple[str, float]] = field(default_factory=list)  # (tls, s) per passage
    halted: dict[str, float] = field(default_factory=dict)  # vehicle -> s halted in its window
    halted_at_signal: list[float] = field(default_factory=list)  # s per passage, as at_signal
    recoveries: list[tuple[str, float]] = field(default_factory=list)  # (tls, s) per passage

    def sample(self, sim: Any, t_s: float) -> None:
        """Every step: halting vehicles per signal, and recoveries that completed."""
        for tls, edges in self.edges.items():
            halting = sum(sim.edge.getLastStepHaltingNumber(e) for e in edges)
            h = self.history.setdefault(tls, deque())
            h.append((t_s, halting))
            while h and h[0][0] < t_s - REF_S:
                h.popleft()
        for key, w in list(self.watching.items()):
            if w.passed_s < 0:
                continue
            tls = key[1]
            waited = t_s - w.passed_s
            if self.history[tls][-1][1] <= w.ref or waited >= WATCH_S:
                self.recoveries.append((tls, min(waited, WATCH_S)))
                del self.watching[key]

    def reach(self, vid: str, tls: str) -> None:
        """The vehicle is within reach of the signal (it would be requested now)."""
        if (vid, tls) not in self.watching and tls in self.edges:
            h = self.history.get(tls) or deque([(0.0, 0)])
            self.watching[(vid, tls)] = _Watch(sum(n for _, n in h) / len(h))

    def ahead(self, sim: Any, vid: str, tls: str | None, dist_m: float, t_s: float) -> None:
        """The signal now ahead of the vehicle (None: none) and its stop line's distance;
        a change of signal is a passage."""
        prev = self.next_tls.get(vid)
        internal = str(sim.vehicle.getRoadID(vid)).startswith(":")
        if (vid in self.approach or vid in self.leaving) and sim.vehicle.getSpeed(vid) < HALT_MPS:
            dt = float(sim.simulation.getDeltaT())  # ahead() runs once a SUMO step
            self.halted[vid] = self.halted.get(vid, 0.0) + dt
        left = vid in self.leaving and not internal
        opens = (
            tls is not None
            and tls in self.edges
            and not internal
            and dist_m <= APPROACH_M
            and self.approach.get(vid, ("",))[0] != tls
        )
        if prev == tls and not left and not opens:
            return
        loss = float(sim.vehicle.getTimeLoss(vid))
        if left:
            tls_left, entered = self.leaving.pop(vid)
            self.at_signal.append((tls_left, loss - entered))
            self.halted_at_signal.append(self.halted.pop(vid, 0.0))
        if prev != tls:
            if prev is not None and prev in self.edges:
                self.delays.append((prev, loss - self.loss_at_pass.get(vid, 0.0)))
                w = self.watching.get((vid, prev))
                if w is not None:
                    w.passed_s = t_s
                a = self.approach.pop(vid, None)
                if a is not None and a[0] == prev:
                    if internal:
                        self.leaving[vid] = a
                    else:  # passed and off the junction within one step
                        self.at_signal.append((prev, loss - a[1]))
                        self.halted_at_signal.append(self.halted.pop(vid, 0.0))
            self.loss_at_pass[vid] = loss if prev is not None else 0.0
            if tls is None:
                self.next_tls.pop(vid, None)
            else:
                self.next_tls[vid] = tls
        if opens:
            self.approach[vid] = (str(tls), loss)
            self.halted[vid] = 0.0

    def gone(self, vid: str) -> None:
        self.next_tls.pop(vid, None)
        self.loss_at_pass.pop(vid, None)
        self.approach.pop(vid, None)
        self.leaving.pop(vid, None)
        self.halted.pop(vid, None)
        for key in [k for k in self.watching if k[0] == vid and self.watching[k].passed_s < 0]:
            del self.watching[key]

    def summary(self, cycle_s: dict[str, float] | None = None) -> dict[str, Any]:
        """Per-passage figures for the report; `cycle_s`: each signal's mean cycle."""
        delays = [d for _, d in self.delays]
        at = [d for _, d in self.at_signal]
        rec = [r for _, r in self.recoveries]
        within = None
        if cycle_s and self.recoveries:
            ok = [r <= 2 * cycle_s[t] for t, r in self.recoveries if t in cycle_s]
            within = round(100 * sum(ok) / len(ok), 1) if ok else None
        return {
            "ev_passages": len(delays),
            "ev_signal_delay_median_s": round(statistics.median(delays), 2) if delays else None,
            "ev_signal_delay_p90_s": _p90(delays),
            # per passage, approach to junction exit (the module's "at the signal")
            "ev_at_signal_s": [round(d, 2) for d in at],
            "ev_at_signal_median_s": round(statistics.median(at), 2) if at else None,
            "ev_at_signal_p90_s": _p90(at),
            # of which halted (SUMO's halting speed), per passage: what a queue or red cost
            "ev_halted_at_signal_s": [round(h, 1) for h in self.halted_at_signal],
            "ev_recovery_median_s": round(statistics.median(rec), 1) if rec else None,
            "ev_recovered_2_cycles_pct": within,
            "cycle_s": {t: round(c, 1) for t, c in sorted((cycle_s or {}).items())},
        }


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(0.9 * len(s)))], 2)
