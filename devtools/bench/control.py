"""`edge bench control`: the controller's step cost per example, on scripted random traffic.

Only step() is timed: the traffic inputs are recorded first (a run with feedback), then
replayed on a fresh controller. Figures: us_per_step, steps_per_s, sim_speedup, rss_mb.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

from edge.config import load_site
from edge.control.controller import Controller
from edge.control.messages import Inputs, Outputs
from edge.demand import RandomDemand

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STEP_MS = 100


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


def run_control_bench(json_out: bool, quick: bool, machine: str) -> int:
    steps = 20_000 if quick else 200_000
    rows = bench_control(steps)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if json_out:
        print(
            json.dumps(
                {
                    "bench": "control",
                    "machine": machine,
                    "rss_mb": round(rss_mb, 1),
                    "configs": rows,
                }
            )
        )
        return 0
    print(f"edge bench control: {steps} steps of 100 ms per config ({machine})")
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
