"""`edge j2735 --sim SCENARIO --seconds N --out FILE`: the J2735 frames a device publishes.

Runs the scenario in lockstep with SUMO (much faster than real time) with the edge
controller on every signal, and writes one hex-encoded UPER MessageFrame per line: per
signal a MAP every simulated second and a SPaT every tenth (sim/sumo/j2735.py). It needs
the simulator, a developer tool: registered in pyproject's `edge.commands` entry points,
which the device's wheel drops.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any


def add_j2735_command(sub: Any) -> None:
    p = sub.add_parser(
        "j2735", help="J2735 SPaT (10 Hz) and MAP (1 Hz) in UPER, from the simulator"
    )
    p.add_argument("--sim", required=True, metavar="SCENARIO", help="a scenario name or folder")
    p.add_argument("--seconds", type=float, required=True, help="simulated seconds")
    p.add_argument("--out", required=True, help="file: one hex MessageFrame per line")
    p.add_argument("--tls", help="only this signal (default: every signal)")
    p.add_argument("--seed", type=int, default=1, help="SUMO's random seed")
    p.add_argument(
        "--start",
        help="UTC time of the simulated start, ISO 8601 (default 2026-01-05T00:00:00)",
    )
    p.set_defaults(func=cmd_j2735)


def _fail(text: str) -> int:
    print(f"edge j2735: error: {text}", file=sys.stderr)
    return 1


def cmd_j2735(args: argparse.Namespace) -> int:
    from sim.sumo.errors import SimError
    from sim.sumo.hireslog import SIM_EPOCH
    from sim.sumo.j2735 import J2735Recorder
    from sim.sumo.lockstep import run
    from sim.sumo.scenarios import resolve

    if not args.seconds > 0:
        return _fail(f"--seconds {args.seconds:g}: give a time above 0")
    start = SIM_EPOCH.replace(tzinfo=UTC)
    if args.start:
        try:
            start = datetime.fromisoformat(args.start)
        except ValueError:
            return _fail(f"--start {args.start!r}: give an ISO 8601 time, e.g. 2026-01-05T07:59")
        start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    try:
        scenario = resolve(args.sim)
        with open(args.out, "w") as fh:
            rec = J2735Recorder(scenario, fh, tls=args.tls, start=start)
            report = run(
                scenario, "edge", args.seed, scenario.begin_s + args.seconds, attach=rec.attach
            )
    except (SimError, OSError) as exc:
        return _fail(str(exc))
    print(
        f"{args.out}: {rec.frames} frames from {len(rec.publishers)} signal(s), "
        f"{args.seconds:g} s simulated in {report['wall_s']:.1f} s"
    )
    return 0
