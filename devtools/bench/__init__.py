"""`edge bench NAME [--json] [--quick]`: benchmarks that print their figures.

Rules it keeps:
- BENCHES names every benchmark once: NAME -> "module:function". The function is called
  as f(json_out=..., quick=..., machine=...) and returns the exit status; its module is
  imported only when that benchmark runs. One more benchmark is one line there.
- Every figure carries `machine()`: architecture, CPU, cores, Python.
- Developer side only: `edge` finds this command through the `edge.commands` entry point
  (pyproject.toml); the device's package has neither.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
from pathlib import Path
from typing import Any

BENCHES = {
    "control": "devtools.bench.control:run_control_bench",  # step cost per example
    "board": "devtools.bench.board:run_board_bench",  # host -> pty -> virtual board
    "monitor": "devtools.bench.monitor:run_monitor_bench",  # the board's field monitor, faults
    "link": "devtools.bench.link:run_link_bench",  # the MQTT link against a real Mosquitto
    "fleet": "devtools.bench.fleet:run_fleet_bench",  # 3-node NATS cluster vs one Mosquitto
    "vision": "devtools.bench.vision:run_vision_bench",  # cameras, model, zones; 4 cameras
    "traffic": "sim.sumo.bench:run_traffic_bench",  # SUMO lockstep episodes
    "preemption": "sim.sumo.ev_bench:run_preemption_bench",  # EVs with and without priority
    "suite": "sim.sumo.suite:run_suite_bench",  # every controller on the generated suite
}


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


def run_bench(name: str, json_out: bool, quick: bool) -> int:
    if name not in BENCHES:
        raise ValueError(f"unknown benchmark {name!r} (there are {', '.join(BENCHES)})")
    module, func = BENCHES[name].split(":")
    run = getattr(importlib.import_module(module), func)
    code: int = run(json_out=json_out, quick=quick, machine=machine())
    return code


def cmd_bench(args: argparse.Namespace) -> int:
    return run_bench(args.name, json_out=args.json, quick=args.quick)


def add_bench_command(sub: Any) -> None:
    """Register `bench` on the `edge` parser's subparsers (the `edge.commands` entry point)."""
    p = sub.add_parser("bench", help="run a benchmark and print its figures")
    p.add_argument("name", choices=list(BENCHES), help="which benchmark")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p.add_argument("--quick", action="store_true", help="fewer steps (for smoke tests)")
    p.set_defaults(func=cmd_bench)
