#!/usr/bin/env python3
"""Screenshots of the technician's page for people to look at (docs/img/).

    .venv/bin/python scripts/screenshots.py [--out docs/img]

1. day: `edge run --sim single --speed 2 --web PORT` (SUMO traffic, the virtual
   board on a pty), the page after about a minute of wall time: heads, ring-barrier
   timers, detectors, the last hour's charts, the event log.
2. fault: `edge run --config examples/four_leg_protected.toml` against
   `python -m sim.virtual_board`, running with walks and detector inputs, then the
   serial line cut (`cut` on the board's stdin): the board's watchdog flashes the
   intersection; the page shows the link to the board lost and the host's events.

Needs /usr/bin/chromium (scripts/install-test-tools.sh) and the dev extras.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge import credentials  # noqa: E402
from tests.web.browser import chromium, log_in  # noqa: E402
from tests.web.simproc import SimPage, free_port  # noqa: E402

USER, PASSWORD = "tech", "screenshot only"


def _mid_green(st: dict[str, Any]) -> bool:
    """Some phase green with a second or more to run: a picture with colour in it."""
    return any(p["lamp"] == "green" and (p["timer"]["left_s"] or 0) > 1.0 for p in st["phases"])


def day(out: Path, tmp: Path) -> Path:
    creds = tmp / "technicians.json"
    credentials.set_user(creds, USER, PASSWORD, n=2**12)
    sim = SimPage(tmp / "day.log", credentials=creds, speed=2.0, duration_s=150)
    try:
        sim.log_in(USER, PASSWORD)  # reads need a session
        sim.wait(lambda st: st["mode"] == "run" and st["board"]["state"] == "RUNNING", 60)
        with chromium(1400, 1500) as ctx:
            page = ctx.new_page()
            log_in(page, sim.url, USER, PASSWORD)
            page.wait_for_selector("#live.live")
            time.sleep(60)  # two simulated minutes for the charts
            sim.wait(_mid_green, 30)
            path = out / "web-day.png"
            page.screenshot(path=str(path), full_page=True)
    finally:
        sim.stop()
    return path


def fault(out: Path, tmp: Path) -> Path:
    link = tmp / "ttyBOARD"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    board = subprocess.Popen(
        [sys.executable, "-m", "sim.virtual_board", "--link", str(link)],
        cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    assert board.stdin is not None
    port = free_port()
    creds = tmp / "technicians.json"
    credentials.set_user(creds, USER, PASSWORD, n=2**12)
    runtime = None
    try:
        deadline = time.monotonic() + 10
        while not link.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        log = open(tmp / "fault.log", "w")  # noqa: SIM115
        runtime = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "run", "--config",
             str(ROOT / "examples" / "four_leg_protected.toml"), "--port", str(link),
             "--web", str(port), "--web-host", "127.0.0.1", "--credentials", str(creds)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        page_url = f"http://127.0.0.1:{port}/"
        with chromium(1400, 1500) as ctx:
            page = ctx.new_page()
            deadline = time.monotonic() + 20
            while True:
                try:
                    page.goto(page_url)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
            log_in(page, page_url.rstrip("/"), USER, PASSWORD)
            page.wait_for_function(
                "() => document.getElementById('mode').textContent === 'run'", timeout=40_000
            )
            for mask in ("0x0001", "0x0005", "0x0105", "0x0004"):  # a few loops and a button
                board.stdin.write(f"inputs {mask}\n")
                board.stdin.flush()
                time.sleep(2.0)
            board.stdin.write("cut\n")  # the serial line cut: the board's watchdog flashes
            board.stdin.flush()
            page.wait_for_function(
                "() => document.getElementById('board-state').textContent.includes('NO LINK')",
                timeout=10_000,
            )
            time.sleep(2.0)
            path = out / "web-fault.png"
            page.screenshot(path=str(path), full_page=True)
    finally:
        if runtime is not None:
            runtime.terminate()
            runtime.wait(10)
        board.stdin.write("quit\n")
        board.stdin.close()
        board.wait(10)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edge-web-shots-") as tmp:
        for shot in (day, fault):
            print(f"wrote {shot(args.out, Path(tmp))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
