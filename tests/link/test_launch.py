"""The broker launcher (edge.link.launch): a child that exits before it listens raises with
its log's tail, one that never listens raises and is not left running, and a stop that a
child ignores ends in SIGKILL."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from edge.link.launch import start_listening, stop_process
from edge.link.mosquitto import free_port


def test_a_child_that_exits_first_is_named_with_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('bad config line 3'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match=r"broker-x exited: bad config line 3"):
        start_listening(argv, tmp_path / "x.log", free_port(), "broker-x", 30)


def test_a_child_that_never_listens_is_not_left_running(tmp_path: Path) -> None:
    log = tmp_path / "pid.log"
    argv = [sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(60)"]
    with pytest.raises(RuntimeError, match="did not listen"):
        start_listening(argv, log, free_port(), "broker-y", 1.0)
    pid = int(log.read_text().split()[0])
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_a_stop_the_child_ignores_ends_in_sigkill(tmp_path: Path) -> None:
    port = free_port()
    code = (
        "import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(60)"
    )
    proc = start_listening([sys.executable, "-c", code], tmp_path / "z.log", port, "z", 30)
    stop_process(proc, 0.5)
    assert proc.returncode == -signal.SIGKILL
