"""Lockstep runner: SUMO and the controllers advance together on one simulated clock.

The controllers tick every 100 ms, always. SUMO's step length is 1.0 s by
default (0.1 s on request, `step_length_s`):
- 1.0 s is SUMO's own default and what the Hangzhou baselines in
  shared/data were measured with; SUMO itself costs ~10x less per simulated
  second than at 0.1 s (the Hangzhou 4x4 hour: 13 s against 144 s for SUMO
  alone), which is what makes >= 50x real time possible on 16 signals.
  Between SUMO steps the controllers take ten 100 ms ticks; the edge
  controllers' loops (sim/sumo/loops.py) give each tick what the loop showed
  in its own 100 ms slice of the step SUMO has just run (passage times SUMO
  interpolates inside the step), other inputs are sampled at the step (and
  `finish` runs the last step's ticks at the end). SUMO shows each display from
  the start of its step (sample and hold), so a display is up to 0.9 s late, never early, and
  an interval of D s shows for floor(D) or ceil(D) s: a 3.0 s yellow stays
  3 s, and no clearance shrinks below a whole second of its length.
- 0.1 s matches the controller tick exactly: every yellow, clearance and
  passage gap shows in SUMO as timed. Use it to study timing detail.

A run: build the controller (deriving site configs as needed), write the
additional files it needs, start SUMO with the scenario's .sumocfg and its own
options (step length, seed, end and outputs added; its additional files kept),
step, close, and read the report from SUMO's tripinfo and statistics.
Without an end time it runs until every vehicle has left (or the hard limit).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.sumo import engine
from sim.sumo.controllers import make_controller
from sim.sumo.errors import SimError
from sim.sumo.hireslog import HiResRecorder
from sim.sumo.metrics import QueueSampler, build_report, read_statistics, read_trips
from sim.sumo.network import signal_junctions
from sim.sumo.scenarios import Scenario

STEP_MS = 100  # the controller tick
STEP_LENGTHS_S = (1.0, 0.1)
QUEUE_SAMPLE_MS = 1000
HARD_LIMIT_S = 24 * 3600.0  # without --end: give up when vehicles are still in after this

Observer = Callable[[Any, int], None]


def sumo_args(
    scenario: Scenario,
    seed: int,
    end_s: float,
    step_s: float,
    workdir: Path,
    extra: list[Path],
    scale: float = 1.0,
) -> list[str]:
    args = ["-c", str(scenario.sumocfg)] if scenario.sumocfg else ["-n", str(scenario.net)]
    additionals = [*scenario.additionals, *extra]
    if additionals:
        args += ["--additional-files", ",".join(str(p) for p in additionals)]
    args += [
        "--step-length", f"{step_s:g}",
        "--seed", str(seed),
        "--end", f"{end_s:g}",
        "--tripinfo-output", str(workdir / "tripinfo.xml"),
        "--tripinfo-output.write-unfinished", "true",
        "--statistic-output", str(workdir / "statistics.xml"),
        "--log", str(workdir / "sumo.log"),
        "--no-step-log", "true",
        "--no-warnings", "true",
        "--duration-log.disable", "true",
    ]  # fmt: skip
    if scale != 1.0:
        args += ["--scale", f"{scale:g}"]  # demand scaling: SUMO thins or repeats vehicles
    return args


def run(
    scenario: Scenario,
    controller: str,
    seed: int,
    end_s: float | None = None,
    *,
    step_length_s: float = 1.0,
    use_traci: bool = False,
    observer: Observer | None = None,
    workdir: Path | None = None,
    preemption: bool = True,
    scale: float = 1.0,
    hires: HiResRecorder | None = None,
    attach: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Run one episode; return the report. SimError with a clear message on any failure.

    `hires` records every signal's ATSPM hi-res log (sim/sumo/hireslog.py) and writes
    its files at the end. `attach` is handed the controller before the run starts (a
    recorder hooks its steps: sim/sumo/j2735.py).

    `preemption=False` runs the edge controllers without emergency-vehicle
    preemption (the comparison for the EV figures). `scale` multiplies the
    scenario's demand (SUMO's --scale): 0.5 is half the traffic.
    """
    if not 0 < scale <= 10:
        raise SimError(f"--scale {scale:g}: give a demand factor above 0 and at most 10")
    if step_length_s not in STEP_LENGTHS_S:
        raise SimError(f"step length {step_length_s:g} s: choose one of {STEP_LENGTHS_S}")
    with tempfile.TemporaryDirectory(prefix="edge-sim-") as tmp:
        work = workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        return _run(
            scenario,
            controller,
            seed,
            end_s,
            step_length_s,
            use_traci,
            observer,
            work,
            preemption,
            scale,
            hires,
            attach,
        )


def _run(
    scenario: Scenario,
    controller: str,
    seed: int,
    end_s: float | None,
    step_s: float,
    use_traci: bool,
    observer: Observer | None,
    work: Path,
    preemption: bool = True,
    scale: float = 1.0,
    hires: HiResRecorder | None = None,
    attach: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    wall_start = time.perf_counter()
    ctl = make_controller(controller, scenario, preemption, scale)
    if hires is not None:
        hires.attach(ctl)
    if attach is not None:
        attach(ctl)
    extra = ctl.prepare(scenario, work)
    begin_ms = round(scenario.begin_s * 1000)
    if end_s is not None and end_s * 1000 <= begin_ms:
        raise SimError(
            f"--end {end_s:g} s is not after the scenario's begin ({scenario.begin_s:g} s)"
        )
    end_ms = round(end_s * 1000) if end_s is not None else None
    sumo_end = end_s if end_s is not None else scenario.begin_s + HARD_LIMIT_S
    approaches = {
        f"{j.tls}:{leg.edge}": leg.edge
        for j in signal_junctions(scenario.net)
        for leg in j.legs
        if leg.incoming
    }
    queues = QueueSampler(approaches)
    args = sumo_args(scenario, seed, sumo_end, step_s, work, extra, scale)
    sim = engine.start(args, use_traci=use_traci)
    ticks = round(step_s * 1000 / STEP_MS)  # controller ticks per SUMO step
    t_ms = begin_ms
    notes: list[str] = []
    emergency: set[str] = set()
    buses: set[str] = set()
    try:
        ctl.start(sim, t_ms)
        queues.start(sim)
        while True:
            if end_ms is not None:
                if t_ms >= end_ms:
                    break
            elif t_ms > begin_ms and sim.simulation.getMinExpectedNumber() == 0:
                break
            if t_ms - begin_ms >= HARD_LIMIT_S * 1000:
                notes.append(f"stopped at the {HARD_LIMIT_S:g} s limit with vehicles still in")
                break
            for k in range(ticks):
                ctl.step(sim, t_ms + k * STEP_MS, sensed=k == 0)
                if k == 0:
                    ctl.apply(sim)
            sim.simulationStep()
            t_ms += ticks * STEP_MS
            if observer is not None:
                observer(sim, t_ms)
            if (t_ms - begin_ms) % QUEUE_SAMPLE_MS == 0:
                queues.sample(sim, (t_ms - begin_ms) / 1000)
        finish = getattr(ctl, "finish", None)  # a controller that ticks behind SUMO
        if finish is not None:
            finish(sim, t_ms)
        vclass = {v: sim.vehicletype.getVehicleClass(v) for v in sim.vehicletype.getIDList()}
        emergency = {v for v, c in vclass.items() if c == "emergency"}
        buses = {v for v, c in vclass.items() if c == "bus"}
    except SimError:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # libsumo/traci raise their own types; a dead SUMO too
        log = _log_tail(work / "sumo.log")
        raise SimError(f"SUMO failed at {t_ms / 1000:.1f} s: {exc}{log}") from None
    finally:
        engine.close(sim)
    if hires is not None:
        notes.append(f"hi-res log: {len(hires.write())} files in {hires.out_dir}")
    wall_s = time.perf_counter() - wall_start
    report = build_report(
        controller=controller,
        seed=seed,
        scenario=scenario.name,
        step_length_s=step_s,
        simulated_s=(t_ms - begin_ms) / 1000,
        wall_s=wall_s,
        trips=read_trips(work / "tripinfo.xml"),
        stats=read_statistics(work / "statistics.xml"),
        queues=queues,
        emergency_types=emergency,
        bus_types=buses,
        notes=ctl.notes() + notes,
    )
    ev = getattr(ctl, "emergency", None)
    report["preemption"] = ev is not None and ev.preempt
    report["preempt_requests"] = ev.requests if ev is not None else 0
    tsp = getattr(ctl, "transit", None)
    report["transit_priority"] = tsp is not None and tsp.enabled
    report["transit_requests"] = tsp.requests if tsp is not None else 0
    if ev is not None:
        cycles = getattr(ctl, "cycles_s", None)
        report.update(ev.trace.summary(cycles(report["simulated_s"]) if cycles else None))
    return report


def _log_tail(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if "rror" in x]
    except OSError:
        return ""
    return ("\n  " + "\n  ".join(lines[-5:])) if lines else ""


def write_report(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
