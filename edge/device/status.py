"""`edge status`: the device's state for a technician at the cabinet's console.

Reads what the running service leaves behind, never disturbing it: the status
snapshot `edge run --status-file` rewrites every 10 s, the SQLite store (plans, spool,
event log) and the release links under /opt/edge.

Root (`sudo edge status`) never follows a path the service user controls: the store
and its WAL are opened without following links, must be regular files owned by the
owner of their directory, and are copied into a private directory that SQLite reads
(it never opens, creates or writes the service's files).
"""

from __future__ import annotations

import argparse
import datetime
import errno
import json
import os
import shutil
import sqlite3
import stat
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

from edge.device.update import read_status

STALE_S = 30.0  # the snapshot is rewritten every 10 s: older means the runtime is not running


def _copy_checked(src: Path, owner: int, dst: Path) -> bool:
    """Copy the service's file `src` to root's `dst` through one descriptor opened without
    following a link, only if it is a regular file owned by `owner`; False if none."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(f"{src}: a symbolic link, not the service's store") from None
        raise
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{src}: not a regular file")
        if st.st_uid != owner:
            raise OSError(f"{src}: owned by uid {st.st_uid}, not the service's {owner}")
        with dst.open("xb") as out:
            shutil.copyfileobj(f, out)
    return True


def _store_rows(db_path: Path) -> dict[str, Any] | None:
    # `sudo edge status` runs as root in a directory the service user owns: SQLite would
    # follow a link planted as the store or its -wal/-shm (and create or write them). So
    # the store and its WAL are copied through checked descriptors into a private
    # directory and the copy is read; the live files are never opened by SQLite here.
    try:
        owner = os.stat(db_path.parent).st_uid  # the service's state directory
    except FileNotFoundError:
        return None
    with tempfile.TemporaryDirectory(prefix="edge-status-") as tmp:
        copy = Path(tmp) / "edge.db"
        if not _copy_checked(db_path, owner, copy):
            return None
        _copy_checked(db_path.with_name(db_path.name + "-wal"), owner, Path(tmp) / "edge.db-wal")
        return _read_store(copy)


def _read_store(path: Path) -> dict[str, Any]:
    db = sqlite3.connect(path)
    try:
        hw = db.execute("SELECT value FROM meta WHERE key = 'plan_high_water'").fetchone()
        active = db.execute(
            "SELECT version, applied_ms FROM plans WHERE applied_ms IS NOT NULL "
            "ORDER BY version DESC LIMIT 1"
        ).fetchone()
        after = active[0] if active else 0
        pending = db.execute(
            "SELECT version, received_ms FROM plans WHERE applied_ms IS NULL AND version > ? "
            "ORDER BY version DESC LIMIT 1",
            (after,),
        ).fetchone()
        spool = db.execute("SELECT COUNT(*), MIN(created_ms) FROM spool").fetchone()
        events = db.execute(
            "SELECT t_ms, name, subject, detail FROM event_log ORDER BY id DESC LIMIT 10"
        ).fetchall()
    finally:
        db.close()
    return {
        "plan_high_water": int(hw[0]) if hw else 0,
        "active_plan": {"version": active[0], "applied_ms": active[1]} if active else None,
        "pending_plan": {"version": pending[0], "received_ms": pending[1]} if pending else None,
        "spool_rows": int(spool[0]),
        "spool_oldest_ms": spool[1],
        "events": [list(e) for e in reversed(events)],
    }


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def interfaces(rt: dict[str, Any]) -> dict[str, str]:
    """The agency interfaces' health, one line each, from the runtime's status (its
    extensions' `status_fields`): only those the device runs. The page shows the same."""
    out: dict[str, str] = {}
    h = rt.get("hires_log")
    if isinstance(h, dict) and "bytes" not in h:
        out["atspm"] = "hi-res log: its store is not open yet"
    elif isinstance(h, dict):
        size = f"{h.get('bytes', 0) / 1e6:.1f} of {h.get('max_bytes', 0) / 1e6:.0f} MB"
        text = f"hi-res log {size}, since {_when(h.get('oldest_ms') or None)}"
        text += f", {h.get('lost', 0)} events lost, {h.get('dropped_ticks', 0)} ticks dropped"
        out["atspm"] = text + (" -- WRITES FAILING" if h.get("write_failing") else "")
    j = rt.get("j2735")
    if isinstance(j, dict):
        text = f"{j.get('sent_udp', 0)} frames to RSU {j.get('rsu') or '-'}, "
        text += f"{j.get('sent_mqtt', 0)} over MQTT, {j.get('udp_errors', 0)} send errors, "
        text += f"{j.get('dropped_ticks', 0)} ticks dropped" + ("" if j.get("map") else ", no MAP")
        out["j2735"] = text
    n = rt.get("ntcip")
    if isinstance(n, dict):
        text = f"port {n.get('port')}: {n.get('requests', 0)} requests, "
        text += f"{n.get('bulk_refused', 0)} GETBULK refused (tooBig), SETs "
        text += (
            f"{n.get('sets_accepted', 0)} accepted / {n.get('sets_refused', 0)} refused"
            if n.get("sets")
            else "off"
        )
        out["ntcip"] = text + (" -- BACKUP MODE (no SET in time)" if n.get("backup_mode") else "")
    return out


def collect(status_file: Path, device_toml: Path, root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"status_file": str(status_file)}
    try:
        # run as root (sudo edge status): the service's file, never through a link
        out["runtime"] = json.loads(read_status(status_file))
        out["status_age_s"] = round(time.time() - status_file.stat().st_mtime, 1)
    except (OSError, ValueError) as exc:
        out["runtime"] = None
        out["runtime_error"] = str(exc)
    try:
        dev = tomllib.loads(device_toml.read_text())
        out["device"] = dev.get("device", {}).get("id")
        out["broker"] = dev.get("broker")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        out["device"] = None
        out["device_error"] = str(exc)
        dev = {}
    try:
        store = device_toml.parent / dev.get("device", {}).get("store", "")
        out["store"] = _store_rows(store) if dev.get("device", {}).get("store") else None
    except (OSError, sqlite3.Error) as exc:
        out["store"] = None
        out["store_error"] = str(exc)
    opt = root / "opt/edge"
    out["release"] = {
        name: (Path(str((opt / name).readlink())).name if (opt / name).is_symlink() else None)
        for name in ("current", "previous")
    }
    out["update_trial"] = (root / "var/lib/edge-update/update-trial.json").exists()
    return out


def render(s: dict[str, Any]) -> str:
    lines = [
        f"edge status: device {s.get('device') or '?'}, release {s['release']['current'] or '?'}"
        + (f" (previous {s['release']['previous']})" if s["release"]["previous"] else "")
        + (" -- NEW RELEASE ON TRIAL" if s["update_trial"] else "")
    ]
    rt = s.get("runtime")
    if rt is None:
        lines.append(f"runtime   NOT RUNNING? no status ({s.get('runtime_error')})")
        lines.append("          try: systemctl status edge; journalctl -u edge -n 50")
    else:
        age = s.get("status_age_s", 0.0)
        stale = f" -- STALE ({age:.0f} s old): is edge.service running?" if age > STALE_S else ""
        j = rt.get("jitter_ms", {})
        lines.append(
            f"runtime   site {rt.get('site')}, mode {rt.get('mode')}, plan {rt.get('plan')}, "
            f"{rt.get('ticks')} ticks, jitter p99 {j.get('p99', 0):.1f} ms{stale}"
        )
        failed = rt.get("detector_faults") or []
        if failed:
            lines.append(
                "detectors FAILED: "
                + ", ".join(str(d) for d in failed)
                + " (stuck or dead loops: their phases are called every cycle; see the log)"
            )
        lines.append(
            f"board     session {rt.get('session')}, board {rt.get('board_state')}, firmware "
            f"{rt.get('board_firmware') or '-'}, config {rt.get('board_config_hash') or '-'}"
        )
        if rt.get("board_fault") not in (None, "NONE", "POWER_ON"):
            chans = ", ".join(str(c) for c in rt.get("board_fault_channels") or []) or "-"
            lines.append(
                f"          fault {rt.get('board_fault')} ({rt.get('board_fault_class')}), "
                f"channels {chans}"
            )
        if rt.get("board_fault_record"):
            lines.append(f"          fault record: {rt.get('board_fault_record')}")
        link = rt.get("link")
        if link is None:
            lines.append(
                "central   not configured" if not s.get("broker") else "central   not running"
            )
        else:
            state = (
                "connected" if link.get("connected") else f"DISCONNECTED ({link.get('last_error')})"
            )
            clock = link.get("clock_offset_ms")
            lines.append(
                f"central   {state} {link.get('broker')}, plan v{link.get('plan_version')}, "
                f"spool {link.get('spool_rows')} rows, clock "
                + (f"{clock:+d} ms to central" if clock is not None else "not compared yet")
            )
        cams = rt.get("cameras")
        lines.append(
            "cameras   none configured"
            if cams is None
            else "cameras   " + ", ".join(f"{c.get('id')} {c.get('health')}" for c in cams)
        )
        lines += [f"{name:<9} {text}" for name, text in interfaces(rt).items()]
    st = s.get("store")
    if s.get("store_error"):
        lines.append(f"store     not read: {s['store_error']}")
    if st is not None:
        a, p = st["active_plan"], st["pending_plan"]
        lines.append(
            f"plans     active {('v' + str(a['version'])) if a else 'the site file'}, pending "
            f"{('v' + str(p['version'])) if p else 'none'}, high-water v{st['plan_high_water']}"
        )
        lines.append(
            f"spool     {st['spool_rows']} rows to send (oldest {_when(st['spool_oldest_ms'])})"
        )
        if st["events"]:
            lines.append("events    (newest last)")
            for t, name, subject, detail in st["events"]:
                lines.append(f"  {_when(t)}  {name} {subject} {detail}".rstrip())
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    s = collect(Path(args.status_file), Path(args.device), Path(args.root))
    if args.json:
        print(json.dumps(s, indent=1))
    else:
        print(render(s))
    rt = s.get("runtime")
    return 0 if rt is not None and s.get("status_age_s", 0) <= STALE_S else 1


def add_status_command(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="the device's state for a technician (runtime, board, central, plans, events)",
        description="Exit 0 when the runtime is running (a fresh status snapshot), else 1.",
    )
    p.add_argument(
        "--status-file", default="/run/edge/status.json", help="the runtime's status snapshot"
    )
    p.add_argument("--device", default="/etc/edge/device.toml", help="the device's identity file")
    p.add_argument("--root", default="/", help="where /opt/edge is")
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.set_defaults(func=cmd_status)
