"""`edge run --device DEVICE.toml` with an `[snmp]` table, on a virtual board, queried
with net-snmp's tools as a central system would: the agent serves the running
controller, a SET from the configured user places a call, another user is refused."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.board.procs import CROSSING, REPO, BoardProcess, poll  # phases 2 and 4

if shutil.which("snmpget") is None:
    if os.environ.get("CI") == "1":
        raise RuntimeError("net-snmp's snmpget is missing: run scripts/install-test-tools.sh")
    # `make test` installs them (scripts/install-test-tools.sh); a bare checkout may lack them.
    if os.environ.get("CI"):
        pytest.fail("net-snmp tools (apt-get install snmp) not installed", pytrace=False)
    pytest.skip("net-snmp tools (apt-get install snmp) not installed", allow_module_level=True)

ASC = "1.3.6.1.4.1.1206.4.2.1"
USER, AUTH, PRIV = "central", "central-auth-key", "central-priv-key"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def snmp(tool: str, port: int, *args: str, auth: str = AUTH) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool, "-v3", "-l", "authPriv", "-u", USER, "-a", "SHA", "-A", auth, "-x", "AES",
         "-X", PRIV, "-On", "-Oq", "-r", "0", "-t", "3", f"udp:127.0.0.1:{port}", *args],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


def test_edge_run_serves_ntcip_to_a_central_system(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "site.toml").write_bytes(CROSSING.read_bytes())
    users = etc / "snmp-users.json"
    users.write_text(json.dumps({"users": {USER: {"auth": AUTH, "priv": PRIV}}}))
    users.chmod(0o600)
    (etc / "device.toml").write_text(
        '[device]\nid = "hz-0412"\nsite = "site.toml"\n\n'
        '[snmp]\nusers = "snmp-users.json"\nsets = true\nbackup_s = 30\n'
    )
    port = free_udp_port()
    status = tmp_path / "status.json"
    board = BoardProcess(tmp_path / "ttyB")
    # the checkout first; a PYTHONPATH given to the test (a private pysnmp) after it
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", "--config", str(etc / "site.toml"),
         "--port", board.path, "--device", str(etc / "device.toml"), "--snmp", str(port),
         "--status-file", str(status), "--status-every", "1"],
        env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert poll(lambda: status.exists() and '"session": "running"' in status.read_text(), 20)

        def greens() -> int:
            r = snmp("snmpget", port, f"{ASC}.1.4.1.4.1")
            return int(r.stdout.split()[-1]) if r.returncode == 0 else 0

        assert poll(lambda: greens() != 0, 30), "no green phase reported"
        r = snmp("snmpwalk", port, f"{ASC}.1.4")
        assert r.returncode == 0 and f".{ASC}.1.4.1.11.1 " in r.stdout, r.stdout + r.stderr
        # a call on phases 1..8: the site has only 2 and 4, so the SET is refused whole
        r = snmp("snmpset", port, f"{ASC}.1.5.1.6.1", "i", "255")
        assert r.returncode != 0 and "wrongValue" in r.stdout + r.stderr
        r = snmp("snmpset", port, f"{ASC}.1.5.1.6.1", "i", str(0b1010))  # phases 2 and 4
        assert r.returncode == 0, r.stderr
        assert poll(lambda: '"sets_accepted": 1' in status.read_text(), 10)
        r = snmp("snmpget", port, f"{ASC}.1.1.0", auth="wrong-auth-key")
        assert r.returncode != 0 and "Authentication failure" in r.stderr
    finally:
        proc.terminate()
        proc.wait(15)
        board.close()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
