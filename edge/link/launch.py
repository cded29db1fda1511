"""Start and stop a broker process of ours (Mosquitto, a NATS node) for tests, benchmarks and
development; never a system service.

Rules it keeps:
- The child gets room for a fleet's connections (RLIMIT_NOFILE raised to 65,536 or the hard
  limit) and writes stdout and stderr to its log file (appended: a restarted node's log
  goes on); we keep no handle on the log.
- Started means listening: until a TCP connect to each of its ports succeeds; a child that exits
  first raises with the tail of its log, one that does not listen in time raises too.
- Stopping: a signal (default SIGTERM, a clean shutdown), SIGKILL if it hangs.
"""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import time
from pathlib import Path


def _limits() -> None:  # room for a fleet's connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def start_listening(
    argv: list[str], log_path: Path, port: int | tuple[int, ...], name: str, timeout_s: float
) -> subprocess.Popen[bytes]:
    """Start `argv` and wait until it listens on loopback `port` (each of them)."""
    ports = (port,) if isinstance(port, int) else port
    log = open(log_path, "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(argv, stdout=log, stderr=log, preexec_fn=_limits)
    log.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited: {log_path.read_text()[-2000:]}")
        try:
            for p in ports:
                with socket.create_connection(("127.0.0.1", p), timeout=0.2):
                    pass
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    listed = " and ".join(str(p) for p in ports)
    raise RuntimeError(f"{name} did not listen on {listed} within {timeout_s} s")


def stop_process(
    proc: subprocess.Popen[bytes] | None, timeout_s: float, sig: signal.Signals = signal.SIGTERM
) -> None:
    """`sig`, then SIGKILL if it has not exited within `timeout_s`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
