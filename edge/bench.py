"""Benchmarks that print their figures: `edge bench NAME [--json]`."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import time
from pathlib import Path

from edge.config import load_site
from edge.control.controller import Controller
from edge.control.messages import Inputs, Outputs
from edge.demand import RandomDemand

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STEP_MS = 100


def machine() -> str:
    """Architecture, CPU model, cores and Python: the record every figure carries."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cpu = f"{model or 'unknown CPU'}, {os.cpu_count()} cores"
    return f"{platform.machine()}, {cpu}, python {platform.python_version()}"


def bench_control(steps: int) -> list[dict[str, object]]:
    """Controller step cost per example, driven by scripted random traffic.

    The traffic inputs are generated up front so that only step() is timed.
    """
    rows: list[dict[str, object]] = []
    for path in sorted(EXAMPLES.glob("*.toml")):
        site = load_site(path)
        # Record one input sequence by running with feedback, then replay it timed.
        ctl = Controller(site)
        demand = RandomDemand(site, seed=7, veh_per_hour=500)
        inputs: list[Inputs] = []
        out: Outputs | None = None
        for k in range(steps):
            now = k * STEP_MS
            inp = demand.inputs(now, STEP_MS, out)
            inputs.append(inp)
            out = ctl.step(now, inp)
        ctl = Controller(site)
        step = ctl.step
        t0 = time.perf_counter()
        for k, inp in enumerate(inputs):
            step(k * STEP_MS, inp)
        wall = time.perf_counter() - t0
        us = wall / steps * 1e6
        rows.append(
            {
                "config": path.name,
                "phases": len(site.phases),
                "steps": steps,
                "us_per_step": round(us, 2),
                "steps_per_s": round(steps / wall),
                "sim_speedup": round(STEP_MS / 1000 * steps / wall),
            }
        )
    return rows


def run_bench(name: str, json_out: bool, quick: bool) -> int:
    if name == "link":  # the MQTT link against a real Mosquitto (edge/link/bench.py)
        from edge.link.bench import run_link_bench

        return run_link_bench(json_out=json_out, quick=quick, machine=machine())
    if name == "board":  # host -> pty -> virtual board (edge/board/bench.py)
        from edge.board.bench import run_board_bench

        return run_board_bench(json_out=json_out, quick=quick, machine=machine())
    if name in ("traffic", "preemption"):  # SUMO lockstep episodes (sim/sumo/bench.py)
        from sim.sumo.bench import run_preemption_bench, run_traffic_bench

        run = run_traffic_bench if name == "traffic" else run_preemption_bench
        return run(json_out=json_out, quick=quick, machine=machine())
    if name == "suite":  # every controller on the generated suite (sim/sumo/suite.py)
        from sim.sumo.suite import run_suite_bench

        return run_suite_bench(json_out=json_out, quick=quick, machine=machine())
    if name == "vision":  # cameras, model, zones; the runtime with 4 cameras (edge/vision/bench.py)
        from edge.vision.bench import run_vision_bench

        return run_vision_bench(json_out=json_out, quick=quick, machine=machine())
    if name != "control":
        raise ValueError(f"unknown benchmark {name!r}")
    steps = 20_000 if quick else 200_000
    rows = bench_control(steps)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if json_out:
        print(
            json.dumps(
                {"bench": name, "machine": machine(), "rss_mb": round(rss_mb, 1), "configs": rows}
            )
        )
        return 0
    print(f"edge bench control: {steps} steps of 100 ms per config ({machine()})")
    header = f"{'config':<28}{'phases':>7}{'us/step':>10}{'steps/s':>11}{'x real time':>13}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['config']!s:<28}{r['phases']!s:>7}{r['us_per_step']!s:>10}"
            f"{r['steps_per_s']!s:>11}{r['sim_speedup']!s:>13}"
        )
    print(f"peak RSS {rss_mb:.1f} MB")
    return 0
