#!/usr/bin/env python3
"""Tick jitter of `edge run --sim` without the page, with it, and with three browsers open.

    .venv/bin/python scripts/web_jitter.py [--seconds 60] [--scenario single] [--json]

Each run is a real `edge run --sim SCENARIO --speed 1` (the device's real-time
case) for SECONDS of wall time; the figures are the runtime's own
`tick_jitter_total` line (lateness of each 100 ms tick against its planned time,
wall ms) and its `tick_overrun` warnings. "3 browsers" is three separate
headless Chromium processes (fresh profiles) on the page's live view, on the
same machine as the runtime (worse than a cabinet, where the laptop's browser
runs elsewhere).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge import credentials  # noqa: E402
from tests.web.browser import chromiums, log_in  # noqa: E402
from tests.web.simproc import SimPage  # noqa: E402

TOTAL = re.compile(r"tick_jitter_total ticks=(\d+) p50_ms=([\d.]+) p99_ms=([\d.]+) max_ms=([\d.]+)")


class CpuSampler(threading.Thread):
    """CPU seconds of one process, sampled from /proc until it exits (its last value stays)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.cpu_s = 0.0
        self.started = time.monotonic()
        self.wall_s = 0.0

    def run(self) -> None:
        tck = os.sysconf("SC_CLK_TCK")
        while True:
            try:
                fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return
            if fields[0] == "Z":
                return
            self.cpu_s = (int(fields[11]) + int(fields[12])) / tck
            self.wall_s = time.monotonic() - self.started
            time.sleep(0.5)


def one_run(
    tmp: Path, name: str, scenario: str, seconds: float, web: bool, browsers: int, nice: int
) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    creds = tmp / f"{name}-technicians.json"
    credentials.set_user(creds, "tech", "jitter only", n=2**12)
    sim = SimPage(tmp / f"{name}.log", credentials=creds, scenario=scenario, speed=1.0,
                  duration_s=seconds, web=web)  # fmt: skip
    cpu = CpuSampler(sim.proc.pid)
    cpu.start()
    if web:
        sim.log_in("tech", "jitter only")  # reads need a session
        sim.wait(lambda st: st["mode"] == "run" and st["board"]["state"] == "RUNNING", 60)
        with chromiums(browsers, nice=nice) as contexts:
            for ctx in contexts:
                page = ctx.new_page()
                log_in(page, sim.url, "tech", "jitter only")
                page.wait_for_selector("#live.live")
            sim.wait_exit(seconds + 60)  # the browsers stay open until the runtime's end
    else:
        sim.wait_exit(seconds + 60)
    text = (tmp / f"{name}.log").read_text(errors="replace")
    m = TOTAL.findall(text)
    if not m:
        raise SystemExit(f"{name}: no tick_jitter_total in the log:\n{text[-2000:]}")
    ticks, p50, p99, mx = m[-1]
    return {
        "run": name,
        "ticks": int(ticks),
        "p50_ms": float(p50),
        "p99_ms": float(p99),
        "max_ms": float(mx),
        "overruns": text.count("tick_overrun"),
        "runtime_cpu_pct": round(100 * cpu.cpu_s / max(cpu.wall_s, 1e-9), 1),
        "load_1min_before": round(load_before, 2),
        "load_1min_after": round(os.getloadavg()[0], 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--scenario", default="single")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--browser-nice", type=int, default=0,
        help="run the browsers at this nice level (10: as if they ran on another machine)",
    )  # fmt: skip
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-web-jitter-") as tmp:
        for name, web, browsers in (("no page", False, 0), ("page, no browser", True, 0),
                                    ("page, 3 browsers", True, 3)):  # fmt: skip
            rows.append(one_run(Path(tmp), name, args.scenario, args.seconds, web, browsers,
                                args.browser_nice))  # fmt: skip
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "runs": rows}))
        return 0
    print(f"tick jitter, edge run --sim {args.scenario} --speed 1, {args.seconds:g} s each, "
          f"{os.cpu_count()} CPUs, browsers at nice {args.browser_nice}")  # fmt: skip
    print(f"{'run':<18} {'ticks':>6} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'overruns':>8} "
          f"{'runtime cpu %':>13} {'load before/after':>18}")  # fmt: skip
    for r in rows:
        print(f"{r['run']:<18} {r['ticks']:>6} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
              f"{r['max_ms']:>7.2f} {r['overruns']:>8} {r['runtime_cpu_pct']:>13.1f} "
              f"{r['load_1min_before']:>8.2f}/{r['load_1min_after']:<8.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
