"""`edge sim run ... --hires-log DIR`: each signal's ATSPM hi-res log, as a controller writes it.

After every controller step of every signal the recorder translates the step
(edge/atspm/indiana.py: the core's events, the detectors' presence, the phases' calls)
and keeps the events; at the end it writes, per signal (its SUMO id, made safe for a
file name):
- `DIR/<signal>/<signal>_YYYY_MM_DD_HHMM.datZ`: 15-minute ASC/3 files (edge/atspm/formats.py);
- `DIR/<signal>.csv`: the same events as TimeStamp, DeviceId, EventId, Parameter;
and `DIR/detector_config.csv` (DeviceId, Phase, Parameter, Function) for ATSPM tools:
stop-bar loops are `Presence` (split failures), setback loops `Advance` (arrivals on
green), one row per phase the loop calls or extends.
Simulated time 0 is SIM_EPOCH (a Monday, 00:00). With `samples=True` it also keeps each
tick's phase intervals and detector presence (edge/atspm/measures.py), for the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from edge.atspm.formats import Record, csv_header, csv_rows, datz, split_files
from edge.atspm.indiana import HiRes, Translator
from edge.atspm.measures import Sample
from edge.control.messages import Outputs

from sim.sumo.errors import SimError

SIM_EPOCH = datetime(2026, 1, 5)


def safe_name(tls: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", tls) or "signal"


@dataclass(slots=True)
class _Log:
    translator: Translator
    events: list[HiRes] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


class HiResRecorder:
    def __init__(self, out_dir: Path, *, samples: bool = False) -> None:
        self.out_dir = out_dir
        self.keep_samples = samples
        self.logs: dict[str, _Log] = {}
        self.signals: dict[str, Any] = {}  # tls -> the controller's _Signal
        self.kinds: dict[str, dict[int, str]] = {}  # tls -> detector id -> stop-bar | setback

    def attach(self, ctl: Any) -> None:
        """Record every step of a lockstep controller that runs edge.control (EdgeControl)."""
        if not hasattr(ctl, "on_step"):
            raise SimError(
                f"--hires-log: controller {getattr(ctl, 'name', ctl)!r} does not run the edge "
                "controller; use --controller edge (or edge-adaptive)"
            )
        ctl.on_step = self.on_step
        for d in getattr(ctl, "derivations", []):
            self.kinds[d.tls] = {det.id: det.kind for det in d.detectors}

    def on_step(self, sig: Any, t_ms: int, out: Outputs) -> None:
        log = self.logs.get(sig.tls)
        ctl = sig.controller
        if log is None:
            log = self.logs[sig.tls] = _Log(Translator(sig.site, ctl.plan.id))
            self.signals[sig.tls] = sig
        present = tuple(bool(p) for p in ctl.det_present)
        calls = tuple(bool(c) for c in ctl.vcall)
        log.events += log.translator.step(t_ms, out, present, calls)
        if self.keep_samples:
            log.samples.append(Sample(t_ms, tuple(ctl.iv), present))

    def records(self, tls: str) -> list[Record]:
        return [
            Record(SIM_EPOCH + timedelta(milliseconds=e.t_ms), e.code, e.param)
            for e in self.logs[tls].events
        ]

    def write(self) -> list[Path]:
        """The files, per signal; returns the paths written."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        config = ["DeviceId,Phase,Parameter,Function\n"]
        for tls in sorted(self.logs):
            name = safe_name(tls)
            sig = self.signals[tls]
            records = self.records(tls)
            folder = self.out_dir / name
            folder.mkdir(exist_ok=True)
            phases = [p.id for p in sig.site.phases]
            for start, chunk in split_files(records):
                path = folder / f"{name}_{start:%Y_%m_%d_%H%M}.datZ"
                path.write_bytes(datz(start, chunk, phases=phases, resource=name))
                written.append(path)
            path = self.out_dir / f"{name}.csv"
            path.write_text(csv_header() + csv_rows(name, records))
            written.append(path)
            kinds = self.kinds.get(tls, {})
            for det in sig.site.detectors:
                if det.ped:
                    continue
                function = "Advance" if kinds.get(det.id) == "setback" else "Presence"
                for phase in dict.fromkeys(det.calls + det.extends):
                    config.append(f"{name},{phase},{det.id},{function}\n")
        path = self.out_dir / "detector_config.csv"
        path.write_text("".join(config))
        written.append(path)
        return written
