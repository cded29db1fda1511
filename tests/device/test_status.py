"""`edge status`: the runtime's snapshot, the store (read-only) and the releases, for a
technician; exit 1 when the runtime is not running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from edge.store import Store

from tests.board.procs import REPO


def edge_status(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "status", "--root", str(root),
         "--status-file", str(root / "run/edge/status.json"),
         "--device", str(root / "etc/edge/device.toml"), *args],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60,
    )  # fmt: skip


def test_status_for_a_technician(tmp_path: Path) -> None:
    root = tmp_path
    (root / "etc/edge").mkdir(parents=True)
    (root / "etc/edge/device.toml").write_text(
        '[device]\nid = "hz-0412"\nsite = "site.toml"\nstore = "../../var/lib/edge/edge.db"\n'
    )
    (root / "var/lib/edge").mkdir(parents=True)
    db = root / "var/lib/edge/edge.db"
    s = Store(db)
    s.save_plan(3, "d3", b"env3", 1000)
    s.mark_plan_applied(3, 2000)
    s.save_plan(4, "d4", b"env4", 3000)
    s.spool_append("events", "{}", 4000)
    s.log_events([(5000, "plan_accepted", "v4", "plan day at the next safe point")])
    s.close()
    (root / "opt/edge/releases/0.1.0-a/venv").mkdir(parents=True)
    (root / "opt/edge/current").symlink_to("releases/0.1.0-a")
    (root / "run/edge").mkdir(parents=True)
    status = root / "run/edge/status.json"
    snapshot = {
        "site": "board-test", "plan": "fast", "mode": "run", "session": "running",
        "board_state": "RUNNING", "ticks": 1234, "jitter_ms": {"p50": 0.8, "p99": 1.6, "max": 2},
        "board_firmware": "hw-0.1.0", "board_config_hash": "1a2b3c4d", "link": None,
        "cameras": None, "board_fault": "RED_FAIL",
        "board_fault_class": "absence of red (red lamp failure)", "board_fault_channels": [2],
        "board_fault_record": "RED_FAIL (absence of red (red lamp failure)), channels 2, "
        "5000 ms after boot 3 (this boot)",
    }  # fmt: skip
    status.write_text(json.dumps(snapshot))
    r = edge_status(root)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for text in (
        "device hz-0412, release 0.1.0-a",
        "mode run, plan fast, 1234 ticks, jitter p99 1.6 ms",
        "session running, board RUNNING, firmware hw-0.1.0, config 1a2b3c4d",
        "fault RED_FAIL (absence of red (red lamp failure)), channels 2",
        "fault record: RED_FAIL (absence of red (red lamp failure)), channels 2, 5000 ms",
        "central   not configured",
        "cameras   none configured",
        "plans     active v3, pending v4, high-water v4",
        "spool     1 rows to send",
        "plan_accepted v4 plan day at the next safe point",
    ):
        assert text in out, out
    assert not (root / "var/lib/edge/edge.db-shm").exists()  # read-only: nothing created
    js = json.loads(edge_status(root, "--json").stdout)
    assert js["store"]["active_plan"]["version"] == 3

    old = time.time() - 120
    os.utime(status, (old, old))
    r = edge_status(root)
    assert r.returncode == 1 and "-- STALE (1" in r.stdout, r.stdout
    status.unlink()
    r = edge_status(root)
    assert r.returncode == 1 and "NOT RUNNING?" in r.stdout


def test_edge_run_without_a_broker_keeps_the_event_log(tmp_path: Path) -> None:
    from tests.board.procs import CROSSING, BoardProcess, poll

    root = tmp_path
    (root / "etc/edge").mkdir(parents=True)
    (root / "etc/edge/site.toml").write_bytes(CROSSING.read_bytes())
    (root / "etc/edge/device.toml").write_text(
        '[device]\nid = "hz-0412"\nsite = "site.toml"\nstore = "../../var/lib/edge/edge.db"\n'
    )
    (root / "var/lib/edge").mkdir(parents=True)
    (root / "run/edge").mkdir(parents=True)
    board = BoardProcess(tmp_path / "ttyB")
    status = root / "run/edge/status.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "run", "--config", str(root / "etc/edge/site.toml"),
         "--port", board.path, "--device", str(root / "etc/edge/device.toml"),
         "--status-file", str(status), "--status-every", "1"],
        env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert poll(lambda: status.exists() and '"session": "running"' in status.read_text(), 20)
        time.sleep(1.5)  # one more flush of the event log
        r = edge_status(root)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "central   not configured" in r.stdout
        assert "mode" in r.stdout.split("events    (newest last)")[1], r.stdout
    finally:
        proc.terminate()
        proc.wait(15)
        board.close()
    s = Store(root / "var/lib/edge/edge.db")
    try:
        names = {e[1] for e in s.recent_events(1000)}
    finally:
        s.close()
    assert {"mode", "phase_green"} <= names, names


def test_status_shows_the_agency_interfaces_the_device_runs(tmp_path: Path) -> None:
    # the real extensions' status fields, through the runtime's snapshot, to `edge status`
    from edge.atspm.device import HiResLog
    from edge.atspm.store import HiResStore
    from edge.j2735.device import J2735, J2735Config
    from edge.ntcip.agent import NtcipAgent
    from edge.ntcip.settings import dev_settings

    from tests.web.inproc import make_runtime

    rt = make_runtime()
    hires = rt.add(HiResLog(tmp_path / "hires.sqlite"))
    hires.store = HiResStore(tmp_path / "hires.sqlite", hires.max_bytes)
    j2735 = rt.add(J2735(J2735Config(None, mqtt=False), None))
    agent = rt.add(NtcipAgent(dev_settings(0)))
    try:
        agent.requests, agent.bulk_refused, agent.sets_refused = 7, 1, 2
        j2735.udp_errors = 3
        (tmp_path / "etc/edge").mkdir(parents=True)
        (tmp_path / "etc/edge/device.toml").write_text('[device]\nid = "hz-0412"\n')
        (tmp_path / "run/edge").mkdir(parents=True)
        (tmp_path / "run/edge/status.json").write_text(json.dumps(rt.status()))
        r = edge_status(tmp_path)
    finally:
        agent.stop()
        hires.store.close()
    assert r.returncode == 0, r.stderr
    for text in (
        "atspm     hi-res log 0.0 of ",
        "j2735     0 frames to RSU -, 0 over MQTT, 3 send errors, 0 ticks dropped, no MAP",
        f"ntcip     port {agent.port}: 7 requests, 1 GETBULK refused (tooBig), SETs 0 accepted "
        "/ 2 refused",
    ):
        assert text in r.stdout, r.stdout


def test_status_never_opens_the_store_through_a_link(tmp_path: Path) -> None:
    """`sudo edge status` reads the service's store as root: a symlink the service user
    planted as edge.db (or its -wal / -shm) must not make root's SQLite open, create or
    write the file it points to."""
    root = tmp_path
    (root / "etc/edge").mkdir(parents=True)
    (root / "etc/edge/device.toml").write_text(
        '[device]\nid = "hz-0412"\nsite = "site.toml"\nstore = "../../var/lib/edge/edge.db"\n'
    )
    lib = root / "var/lib/edge"
    lib.mkdir(parents=True)
    real = tmp_path / "elsewhere.db"  # a database root can read but the service must not name
    s = Store(real)
    s.log_events([(5000, "secret_event", "x", "not the service's")])
    s.close()
    (lib / "edge.db").symlink_to(real)
    js = json.loads(edge_status(root, "--json").stdout)
    assert js["store"] is None and "symbolic link" in js["store_error"], js
    # a real store with planted -wal/-shm links: read, and the link targets untouched
    (lib / "edge.db").unlink()
    s = Store(lib / "edge.db")
    s.log_events([(6000, "plan_accepted", "v1", "ok")])
    s.close()
    victim = tmp_path / "victim"
    victim.write_bytes(b"root's file\n")
    for side in ("edge.db-wal", "edge.db-shm"):
        (lib / side).unlink(missing_ok=True)
        (lib / side).symlink_to(victim)
    js = json.loads(edge_status(root, "--json").stdout)
    assert victim.read_bytes() == b"root's file\n"
    assert js["store"] is None and "symbolic link" in js["store_error"], js
