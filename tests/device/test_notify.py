"""sd_notify from a real `edge run`: READY after the first ticks, WATCHDOG=1 while the
control tick runs, none once it hangs (while the process is still alive), STOPPING at exit."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge.device.notify import Watchdog, notify, watchdog_interval_s

from tests.board.procs import CROSSING, REPO, BoardProcess


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.2)
    try:
        yield s, path
    finally:
        s.close()


def test_notify_and_interval(notify_socket: tuple[socket.socket, str]) -> None:
    s, path = notify_socket
    assert notify("READY=1", {"NOTIFY_SOCKET": path})
    assert s.recv(100) == b"READY=1"
    assert not notify("READY=1", {})
    assert watchdog_interval_s({"WATCHDOG_USEC": "4000000"}) == 2.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}) is None
    w = Watchdog({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    assert w.check(ticks=5, last_ticks=0)
    assert s.recv(100).startswith(b"READY=1")
    assert s.recv(100) == b"WATCHDOG=1"
    assert not w.check(ticks=5, last_ticks=5)  # no tick since the last feed: nothing sent
    with pytest.raises(TimeoutError):
        s.recv(100)


def test_watchdog_fed_only_while_the_tick_runs(
    notify_socket: tuple[socket.socket, str], tmp_path: Path
) -> None:
    s, path = notify_socket
    board = BoardProcess(tmp_path / "ttyB")
    log = tmp_path / "run.log"
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        NOTIFY_SOCKET=path,
        WATCHDOG_USEC="1000000",
        EDGE_RUNTIME_FAIL="control-tick-hang:4",
    )
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "run", "--config", CROSSING, "--port", board.path],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
        )  # fmt: skip
    got: list[tuple[float, bytes]] = []
    try:
        end = time.monotonic() + 20
        while time.monotonic() < end and proc.poll() is None:
            try:
                got.append((time.monotonic(), s.recv(200)))
            except TimeoutError:
                continue
        proc.wait(10)
        while True:
            try:
                got.append((time.monotonic(), s.recv(200)))
            except TimeoutError:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        board.close()
    text = log.read_text()
    assert proc.returncode == 1, text
    kinds = [m.split(b"\n")[0] for _, m in got]
    assert kinds[0] == b"READY=1", kinds
    feeds = [t for t, m in got if m == b"WATCHDOG=1"]
    assert len(feeds) >= 5  # every 0.5 s for the ~4 s the tick ran
    stopping = [t for t, m in got if m == b"STOPPING=1"]
    assert stopping, kinds
    # the tick hung; the process lived on >= 1.5 s (until the supervisor's 2 s stall check)
    # and in that time the watchdog was not fed
    assert stopping[0] - feeds[-1] >= 1.5
    assert "watchdog_withheld" in text and "tick_stalled" in text
