"""`edge run` as a real process against `python -m sim.virtual_board` on a real pty.

Start-up through flash and all red to RUN; SIGTERM hands the board to flash
at once (HOST_FLASH), logs the reason and exits 0; a second `edge run` on the
same board recovers it; an error injected in a task takes the same shutdown
path and exits 1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hw import codec
from tests.board.procs import CROSSING, REPO, BoardProcess, poll

START_S = 15.0


class RunHost:
    """`edge run` as its own process, its log in a file."""

    def __init__(self, tmp: Path, port: str, name: str, **env: str) -> None:
        self.log_path = tmp / f"{name}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115
        e = dict(os.environ, PYTHONUNBUFFERED="1", **env)
        e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
        cmd = [sys.executable, "-m", "edge.cli", "run", "--config", str(CROSSING)]
        self.proc = subprocess.Popen(
            [*cmd, "--port", port],
            cwd=REPO,
            env=e,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._log.close()


def lamps_until(board: BoardProcess, pred: Any, timeout_s: float) -> dict[str, Any] | None:
    """The first lamp event matching pred within timeout_s."""
    found: list[dict[str, Any]] = []

    def seen() -> bool:
        ev = board.next_event("lamps", 0.2)
        if ev is not None and pred(ev):
            found.append(ev)
        return bool(found)

    poll(seen, timeout_s)
    return found[0] if found else None


def running_green(ev: dict[str, Any]) -> bool:
    return bool(ev["state"] == codec.STATE_RUNNING and codec.GREEN in ev["lamps"])


def host_flash(ev: dict[str, Any]) -> bool:
    return bool(ev["state"] == codec.STATE_FLASH and ev["fault"] == codec.FAULT_HOST_FLASH)


def test_sigterm_hands_board_to_flash_and_restart_recovers(
    tmp_path: Path, board: BoardProcess
) -> None:
    host = RunHost(tmp_path, board.path, "first")
    try:
        assert lamps_until(board, running_green, START_S), host.log()
        states = [ev["state"] for ev in board.events if ev["event"] == "lamps"]
        assert codec.STATE_ALL_RED in states  # start-up: flash, all red, then run
        host.proc.send_signal(signal.SIGTERM)
        assert host.proc.wait(5) == 0
        assert lamps_until(board, host_flash, 2.0), host.log()
        log = host.log()
        assert "shutdown_handover board_state=FLASH" in log
        assert "runtime_exit reason=signal:SIGTERM code=0" in log
        assert "tick_jitter_total" in log
    finally:
        host.close()
    again = RunHost(tmp_path, board.path, "second")
    try:
        assert lamps_until(board, running_green, START_S), again.log()
        assert "board_handover_found" in again.log()
        again.proc.send_signal(signal.SIGINT)
        assert again.proc.wait(5) == 0
        assert "runtime_exit reason=signal:SIGINT code=0" in again.log()
    finally:
        again.close()


def test_error_in_a_task_takes_the_shutdown_path(tmp_path: Path, board: BoardProcess) -> None:
    host = RunHost(tmp_path, board.path, "failing", EDGE_RUNTIME_FAIL="schedule:4")
    try:
        assert lamps_until(board, running_green, START_S), host.log()
        assert host.proc.wait(10) == 1
        assert lamps_until(board, host_flash, 2.0), host.log()
        log = host.log()
        assert "task_failed task=schedule" in log
        assert "shutdown_handover board_state=FLASH" in log
        assert "runtime_exit reason=task_failed:schedule:InjectedFault code=1" in log
    finally:
        host.close()


def test_a_failing_extension_is_restarted_and_the_intersection_runs_on(
    tmp_path: Path, board: BoardProcess
) -> None:
    # `status` restarts as the extensions do (central, web, the event log):
    # it fails 4 s in, and is started again; the lamps never leave normal operation.
    host = RunHost(tmp_path, board.path, "extension", EDGE_RUNTIME_FAIL="status:4")
    try:
        assert lamps_until(board, running_green, START_S), host.log()
        deadline = time.monotonic() + 15
        while "task_restart task=status" not in host.log() and time.monotonic() < deadline:
            assert host.proc.poll() is None, host.log()
            time.sleep(0.2)
        log = host.log()
        assert "task_failed task=status" in log and "the intersection runs on" in log
        assert "task_restart task=status" in log
        assert host.proc.poll() is None and "shutdown_handover" not in log
        lamps_until(board, lambda _ev: False, 1.0)  # take every lamp change so far
        # every lamp change since start-up was normal operation: no flash of any kind
        lamps = [ev for ev in board.events if ev["event"] == "lamps"]
        first_run = next(i for i, ev in enumerate(lamps) if ev["state"] == codec.STATE_RUNNING)
        assert all(ev["state"] == codec.STATE_RUNNING for ev in lamps[first_run:])
    finally:
        host.close()


def test_a_hung_control_tick_is_caught_by_the_supervisor(
    tmp_path: Path, board: BoardProcess
) -> None:
    host = RunHost(tmp_path, board.path, "hung", EDGE_RUNTIME_FAIL="control-tick-hang:4")
    try:
        assert lamps_until(board, running_green, START_S), host.log()
        assert host.proc.wait(10) == 1
        # the board's watchdog (500 ms) flashes it before the supervisor sees a 2 s stall
        assert lamps_until(board, lambda ev: ev["state"] == codec.STATE_FLASH, 2.0), host.log()
        log = host.log()
        assert "tick_stalled" in log
        assert "runtime_exit reason=tick_stalled code=1" in log
    finally:
        host.close()
