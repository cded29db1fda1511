"""Real processes for the pty tests: `edge board run` and `python -m sim.virtual_board`.

Everything waits by polling with a timeout, never by a guessed sleep.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim.virtual_board import LampChange, VirtualBoard

from hw import codec

REPO = Path(__file__).resolve().parents[2]
CROSSING = Path(__file__).resolve().parent / "crossing.toml"
POLL_S = 0.02


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def poll(cond: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


class Host:
    """`edge board run` as its own process; its log and OUTPUTS trace in files."""

    def __init__(self, tmp: Path, port: str, site: Path = CROSSING, name: str = "host") -> None:
        self.log_path = tmp / f"{name}.log"
        self.trace_path = tmp / f"{name}.trace.jsonl"
        self._log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge.cli",
                "board",
                "run",
                "--config",
                str(site),
                "--port",
                port,
                "--trace",
                str(self.trace_path),
            ],
            cwd=REPO,
            env=_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, text: str, timeout_s: float, count: int = 1) -> bool:
        return poll(lambda: self.log().count(text) >= count, timeout_s)

    def trace(self) -> list[dict[str, Any]]:
        lines = self.trace_path.read_text().splitlines() if self.trace_path.exists() else []
        return [json.loads(line) for line in lines if line.endswith("}")]

    def stats(self) -> dict[str, int]:
        """The last board_link_stats line of the log."""
        lines = [ln for ln in self.log().splitlines() if "board_link_stats" in ln]
        if not lines:
            return {}
        fields = lines[-1].split("board_link_stats", 1)[1].split()
        return {k: int(v) for k, v in (f.split("=") for f in fields)}

    def stop(self, timeout_s: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


class BoardProcess:
    """`python -m sim.virtual_board` as its own process, driven through stdin/stdout."""

    def __init__(self, link: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sim.virtual_board", "--link", str(link), *args],
            cwd=REPO,
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, name="board-events", daemon=True).start()
        ready = self.next_event("ready", 10.0)
        if ready is None:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError("virtual board did not start")
        self.path = str(ready["path"])

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(json.loads(line))

    def next_event(self, name: str, timeout_s: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                ev = self._queue.get(timeout=left)
            except queue.Empty:
                break
            self.events.append(ev)
            if ev["event"] == name:
                return ev
        return None

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.command("quit")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def board_running_green(vb: VirtualBoard) -> bool:
    return vb.state == codec.STATE_RUNNING and codec.GREEN in vb.lamps


def trace_ms(trace: list[LampChange]) -> list[tuple[float, int, int, tuple[int, ...]]]:
    """The virtual board's trace in the checker's form (ms)."""
    return [(c.t * 1000, c.state, c.fault, c.lamps) for c in trace]
