"""`edge run --sim single --snmp PORT`: the NTCIP agent on the simulator, with the README's
development user, queried by net-snmp's tools (the README's commands)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from edge.ntcip.settings import DEV_USER

ROOT = Path(__file__).resolve().parents[2]
ASC = "1.3.6.1.4.1.1206.4.2.1"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def snmp(tool: str, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    u = DEV_USER
    return subprocess.run(
        [tool, "-v3", "-l", "authPriv", "-u", u.name, "-a", "SHA", "-A", u.auth, "-x", "AES",
         "-X", u.priv, "-On", "-Oq", "-r", "0", "-t", "3", f"udp:127.0.0.1:{port}", *args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_the_simulator_serves_ntcip(tmp_path: Path) -> None:
    if shutil.which("snmpget") is None:
        if os.environ.get("CI") == "1":
            raise AssertionError("net-snmp's snmpget is missing: run scripts/install-test-tools.sh")
        if os.environ.get("CI"):  # `make test` installs them (scripts/install-test-tools.sh)
            pytest.fail("net-snmp tools (apt-get install snmp) not installed")
        pytest.skip("net-snmp tools (apt-get install snmp) not installed")
    port = free_udp_port()
    log = open(tmp_path / "run.log", "w")  # noqa: SIM115 (closed below)
    # the checkout first; a PYTHONPATH given to the test (a private pysnmp) after it
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", "--sim", "single", "--speed", "4",
         "--duration", "120", "--snmp", str(port)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        greens = 0
        while time.monotonic() < deadline and not greens:
            r = snmp("snmpget", port, f"{ASC}.1.4.1.4.1")
            greens = int(r.stdout.split()[-1]) if r.returncode == 0 else 0
            time.sleep(0.5)
        assert greens, (tmp_path / "run.log").read_text()[-3000:]
        r = snmp("snmpwalk", port, f"{ASC}.1.2.1.4")  # phaseMinimumGreen of every phase
        assert r.returncode == 0 and r.stdout.count("\n") >= 2, r.stdout + r.stderr
        r = snmp("snmpwalk", port, f"{ASC}.1.2.1.1")  # phaseNumber: the site's phases
        ids = [int(line.split()[-1]) for line in r.stdout.strip().splitlines()]
        red = next(p for p in ids if p <= 8 and not greens >> (p - 1) & 1)
        r = snmp("snmpset", port, f"{ASC}.1.5.1.6.1", "i", str(1 << (red - 1)))  # VehCall
        assert r.returncode == 0, r.stderr
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
