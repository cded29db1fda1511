"""Side-by-side releases with an atomic switch and rollback (`edge-update`).

Layout on the device (paths under --root, "/" on a Pi, the SD card's root
when provisioning):

    /opt/edge/releases/<release>/venv    one complete virtual environment each
    /opt/edge/current  -> releases/<release>   what the service runs
    /opt/edge/previous -> releases/<release>   what a rollback returns to
    /var/lib/edge/update-trial.json      a switched-to release not yet healthy

`switch` replaces `current` with one rename (a new symlink renamed over the
old one: the service sees the old release or the new one, never neither) and
leaves a trial marker. `check` waits up to a minute for the runtime to report
healthy (its status file rewritten after the switch with control ticks and
the board session running) and then commits (drops the marker) or rolls back
(`current` back to `previous`, the service restarted). `apply` is switch,
restart, check: what flash.sh runs on a device over SSH. On an SD card flash.sh
only switches; the `edge-update.service` unit runs `check` at every boot, so a
new release that never gets healthy is rolled back on the device itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HEALTHY_WITHIN_S = 60.0
POLL_S = 0.5
KEEP_RELEASES = 3
STATUS_FILE = "run/edge/status.json"


class UpdateError(RuntimeError):
    """An update step that cannot be done; says which and why."""


class Releases:
    def __init__(self, root: str | Path = "/") -> None:
        self.root = Path(root)
        self.base = self.root / "opt/edge"
        self.dir = self.base / "releases"
        self.trial_file = self.root / "var/lib/edge/update-trial.json"

    def _link(self, name: str) -> str | None:
        p = self.base / name
        return os.readlink(p).rsplit("/", 1)[-1] if p.is_symlink() else None

    def current(self) -> str | None:
        return self._link("current")

    def previous(self) -> str | None:
        return self._link("previous")

    def installed(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.name for p in self.dir.iterdir() if p.is_dir())

    def _point(self, name: str, release: str) -> None:
        link = self.base / name
        tmp = self.base / f".{name}.tmp"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(f"releases/{release}")
        os.replace(tmp, link)  # rename(2): atomic
        fd = os.open(self.base, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def switch(self, release: str) -> str | None:
        """Point `current` at `release`; returns the release it replaced."""
        if not (self.dir / release / "venv/bin/python").exists():
            raise UpdateError(f"release {release} is not installed under {self.dir}")
        old = self.current()
        if old == release:
            return old
        if old is not None:
            self._point("previous", old)
        self._point("current", release)
        if old is None:
            log.info("update_switched release=%s (first install: nothing to roll back to)", release)
            return None
        self.trial_file.parent.mkdir(parents=True, exist_ok=True)
        trial = {"release": release, "previous": old}
        tmp = self.trial_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(trial))
        os.replace(tmp, self.trial_file)
        log.info("update_switched release=%s previous=%s", release, old)
        return old

    def trial(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.trial_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def commit(self) -> None:
        self.trial_file.unlink(missing_ok=True)
        log.info("update_committed release=%s", self.current())
        self.prune()

    def rollback(self) -> str:
        prev = self.previous()
        if prev is None or not (self.dir / prev).is_dir():
            raise UpdateError("no previous release to roll back to")
        bad = self.current()
        self._point("current", prev)
        self.trial_file.unlink(missing_ok=True)
        log.error("update_rolled_back from=%s to=%s", bad, prev)
        return prev

    def prune(self) -> list[str]:
        """Remove old releases beyond KEEP_RELEASES, never current or previous."""
        keep = {self.current(), self.previous()}
        old = [r for r in self.installed() if r not in keep]
        by_age = sorted(old, key=lambda r: (self.dir / r).stat().st_mtime)
        gone = by_age[: max(0, len(self.installed()) - KEEP_RELEASES)]
        for r in gone:
            subprocess.run(["rm", "-rf", str(self.dir / r)], check=True)
        return gone


def healthy(status_path: Path, since: float) -> tuple[bool, str]:
    """Is the runtime healthy: a status snapshot written after `since` with ticks running
    and the board session running?"""
    try:
        mtime = status_path.stat().st_mtime
        st = json.loads(status_path.read_text())
    except FileNotFoundError:
        return False, f"no status file {status_path}"
    except ValueError as exc:
        return False, f"status file unreadable: {exc}"
    if mtime < since:
        return False, "status file not written since the switch"
    if not isinstance(st, dict) or int(st.get("ticks", 0)) <= 0:
        return False, "no control ticks"
    if st.get("session") != "running":
        return False, f"board session {st.get('session')!r}, not running"
    return True, f"ticks={st['ticks']} session=running"


def check(
    rel: Releases,
    status_path: Path,
    restart: Callable[[], None],
    timeout_s: float = HEALTHY_WITHIN_S,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait for a trial release to get healthy; commit it, or roll back and restart."""
    trial = rel.trial()
    if trial is None:
        log.info("update_check nothing on trial (current=%s)", rel.current())
        return True
    # Only a snapshot written after this check began counts: it comes from the process the
    # restart (or the boot) started. The Pi has no RTC, so times from before the boot or
    # from the laptop that switched the release cannot be compared with.
    since = clock()
    deadline = since + timeout_s
    why = ""
    while clock() < deadline:
        ok, why = healthy(status_path, since)
        if ok:
            log.info("update_healthy release=%s %s", rel.current(), why)
            rel.commit()
            return True
        sleep(POLL_S)
    log.error("update_unhealthy release=%s after_s=%.0f: %s", rel.current(), timeout_s, why)
    rel.rollback()
    restart()
    return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-update", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="/", help="the device's root (default /)")
    parser.add_argument("--status-file", help=f"default ROOT/{STATUS_FILE}")
    parser.add_argument("--timeout", type=float, default=HEALTHY_WITHIN_S, help="seconds")
    parser.add_argument(
        "--restart", default="systemctl restart edge.service", help="command restarting the unit"
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("switch").add_argument("release")
    sub.add_parser("apply").add_argument("release")
    sub.add_parser("check")
    sub.add_parser("rollback")
    sub.add_parser("list")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    rel = Releases(args.root)
    status = Path(args.status_file) if args.status_file else rel.root / STATUS_FILE

    def restart() -> None:
        log.info("update_restart cmd=%r", args.restart)
        subprocess.run(args.restart, shell=True, check=False)

    try:
        if args.cmd == "switch":
            rel.switch(args.release)
        elif args.cmd == "apply":
            if rel.switch(args.release) == args.release:
                print(f"edge-update: {args.release} is already current; nothing to do")
                return 0
            restart()
            return 0 if check(rel, status, restart, args.timeout) else 1
        elif args.cmd == "check":
            return 0 if check(rel, status, restart, args.timeout) else 1
        elif args.cmd == "rollback":
            rel.rollback()
            restart()
        else:
            for r in rel.installed():
                mark = (
                    "current" if r == rel.current() else "previous" if r == rel.previous() else ""
                )
                print(f"{r} {mark}".rstrip())
    except UpdateError as exc:
        print(f"edge-update: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
