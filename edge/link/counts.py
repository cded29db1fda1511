"""Counts and measures per interval, from the controller's inputs and outputs. Pure.

Per detector: volume (rising edges plus pulses counted by the IO board) and
occupancy (% of the interval's steps it was occupied). Per phase: green time
used, gap-outs, max-outs, force-offs and split failures. A split failure is
the ATSPM one: a green whose stop-bar detectors were occupied for at least 80%
of the green (GOR) and for at least 80% of the first 5 s of the red that
followed (ROR5), i.e. a queue that the green did not clear.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edge.control.messages import Inputs, Lamp, Outputs
from edge.control.site import Site

SPLIT_FAIL_RATIO = 0.8
ROR_WINDOW_MS = 5000


@dataclass
class _PhaseAcc:
    green_ms: int = 0
    gap_outs: int = 0
    max_outs: int = 0
    force_offs: int = 0
    split_failures: int = 0
    # split-failure tracking across interval boundaries
    green_steps: int = 0
    green_occ_steps: int = 0
    gor: float | None = None  # of the green that just ended
    red_since: int | None = None
    red_steps: int = 0
    red_occ_steps: int = 0


@dataclass
class _DetAcc:
    volume: int = 0
    occ_steps: int = 0
    present: bool = False


@dataclass
class CountsAggregator:
    site: Site
    interval_ms: int = 60_000
    start_ms: int = 0
    steps: int = 0
    last_ms: int | None = None
    phases: list[_PhaseAcc] = field(default_factory=list)
    dets: dict[int, _DetAcc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.phases = [_PhaseAcc() for _ in self.site.phases]
        self.dets = {d.id: _DetAcc() for d in self.site.detectors}
        self.index = {p.id: i for i, p in enumerate(self.site.phases)}
        # Stop-bar detectors of each phase: vehicle detectors that call it.
        self.stopbar = [
            [d.id for d in self.site.detectors if not d.ped and p.id in d.calls]
            for p in self.site.phases
        ]
        self.prev_lamps: tuple[Lamp, ...] | None = None

    def observe(self, now_ms: int, inputs: Inputs, out: Outputs) -> None:
        """One controller step: the inputs it was given and the outputs it returned."""
        step_ms = 0 if self.last_ms is None else max(0, now_ms - self.last_ms)
        self.last_ms = now_ms
        self.steps += 1
        occupied = inputs.occupied if isinstance(inputs.occupied, frozenset) else frozenset()
        for det_id, acc in self.dets.items():
            present = det_id in occupied
            if present:
                acc.occ_steps += 1
                if not acc.present:
                    acc.volume += 1
            acc.present = present
        for item in inputs.actuations:
            if isinstance(item, tuple) and len(item) == 2 and item[0] in self.dets:
                self.dets[item[0]].volume += max(0, int(item[1]))
        for ev in out.events:
            if ev.name in ("gap_out", "max_out", "force_off") and ev.subject.startswith("phase "):
                i = self.index.get(int(ev.subject[6:]))
                if i is not None:
                    acc_p = self.phases[i]
                    if ev.name == "gap_out":
                        acc_p.gap_outs += 1
                    elif ev.name == "max_out":
                        acc_p.max_outs += 1
                    else:
                        acc_p.force_offs += 1
        for i, lamp in enumerate(out.phases):
            p = self.phases[i]
            stop_occ = any(d in occupied for d in self.stopbar[i])
            was = self.prev_lamps[i] if self.prev_lamps is not None else lamp
            if lamp == Lamp.GREEN:
                p.green_ms += step_ms if was == Lamp.GREEN else 0
                if was != Lamp.GREEN:
                    p.green_steps = p.green_occ_steps = 0
                    p.red_since = None
                p.green_steps += 1
                p.green_occ_steps += stop_occ
            elif was == Lamp.GREEN:
                p.green_ms += step_ms
                p.gor = p.green_occ_steps / p.green_steps if p.green_steps else 0.0
            if lamp == Lamp.RED and was != Lamp.RED and p.gor is not None:
                p.red_since = now_ms
                p.red_steps = p.red_occ_steps = 0
            if lamp == Lamp.RED and p.red_since is not None:
                p.red_steps += 1
                p.red_occ_steps += stop_occ
                if now_ms - p.red_since >= ROR_WINDOW_MS:
                    ror = p.red_occ_steps / p.red_steps
                    if p.gor is not None and p.gor >= SPLIT_FAIL_RATIO and ror >= SPLIT_FAIL_RATIO:
                        p.split_failures += 1
                    p.red_since = None
                    p.gor = None
        self.prev_lamps = out.phases

    def due(self, now_ms: int) -> bool:
        return now_ms - self.start_ms >= self.interval_ms

    def flush(self, now_ms: int) -> dict[str, Any]:
        """Close the interval at `now_ms` and start the next; return its record."""
        steps = max(1, self.steps)
        record = {
            "start": self.start_ms,
            "end": now_ms,
            "detectors": [
                {"id": det_id, "volume": acc.volume, "occ": round(100 * acc.occ_steps / steps, 1)}
                for det_id, acc in self.dets.items()
            ],
            "phases": [
                {
                    "phase": self.site.phases[i].id,
                    "green_s": round(p.green_ms / 1000, 1),
                    "gap_outs": p.gap_outs,
                    "max_outs": p.max_outs,
                    "force_offs": p.force_offs,
                    "split_failures": p.split_failures,
                }
                for i, p in enumerate(self.phases)
            ],
        }
        for acc in self.dets.values():
            acc.volume = acc.occ_steps = 0
        for p in self.phases:
            p.green_ms = p.gap_outs = p.max_outs = p.force_offs = p.split_failures = 0
        self.start_ms = now_ms
        self.steps = 0
        return record


def on_utc(record: dict[str, Any], utc0_ms: int) -> dict[str, Any]:
    """A flushed record with its interval on UTC (the aggregator runs on the controller's
    clock, which is UTC minus `utc0_ms`), as the counts message carries it."""
    start, end = utc0_ms + record["start"], utc0_ms + record["end"]
    return {**record, "start": start, "end": end, "interval_s": round((end - start) / 1000, 1)}
