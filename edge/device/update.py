"""Side-by-side releases with an atomic switch and rollback (`edge-update`).

Layout on the device (paths under --root, "/" on a Pi, the SD card's root
when provisioning):

    /opt/edge/releases/<release>/venv    one complete virtual environment each
    /opt/edge/current  -> releases/<release>   what the service runs
    /opt/edge/previous -> releases/<release>   what a rollback returns to
    /opt/edge/releases/<release>/release.json  its signed manifest (edge/device/release.py)
    /var/lib/edge-update/update-trial.json     a switched-to release not yet healthy

`switch` replaces `current` with one rename (a new symlink renamed over the
old one: the service sees the old release or the new one, never neither) and
leaves a trial marker. `check` waits up to a minute for the runtime to report
healthy (its status file rewritten after the switch with control ticks and
the board session running) and then commits (drops the marker) or rolls back
(`current` back to `previous`, the service restarted). `apply` is switch,
restart, check: what flash.sh runs on a device over SSH. On an SD card flash.sh
only switches; the `edge-update.service` unit runs `check` at every boot, so a
new release that never gets healthy is rolled back on the device itself.

Rules it keeps:
- A release is switched to only after its signed manifest and every file in it
  check out with the release key provisioned in /etc/edge/release.pub, and only if
  it is not older than the running one (or a signed rollback statement allows it;
  edge/device/release.py). A statement is used once: its id is recorded in
  /var/lib/edge-update/rollbacks-used.json before the switch, kept until it expires.
  A failed trial going back to the release that ran before it needs neither: that
  release passed the same checks when it was switched to.
- Root never follows a path the service user controls: the trial marker lives in
  /var/lib/edge-update (root's, checked through its descriptor before each write,
  written with O_NOFOLLOW relative to it), and the status file in edge's /run/edge is
  opened O_NOFOLLOW | O_NONBLOCK and read only if it is a regular file.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge.device import release as signed

log = logging.getLogger(__name__)

HEALTHY_WITHIN_S = 60.0
POLL_S = 0.5
KEEP_RELEASES = 3
STATUS_FILE = "run/edge/status.json"
STATUS_MAX_BYTES = 1 << 20
STATE_DIR = "var/lib/edge-update"  # root's: never the service user's /var/lib/edge
RELEASE_KEYS = ("etc/edge/release.pub",)
USED_STATEMENTS = "rollbacks-used.json"  # in STATE_DIR: rollback statement ids, used once


class UpdateError(RuntimeError):
    """An update step that cannot be done; says which and why."""


class Releases:
    def __init__(self, root: str | Path = "/", keys: Sequence[str | Path] | None = None) -> None:
        self.root = Path(root)
        self.base = self.root / "opt/edge"
        self.dir = self.base / "releases"
        self.state_dir = self.root / STATE_DIR
        self.trial_file = self.state_dir / "update-trial.json"
        self.key_files = [Path(k) for k in keys] if keys else [self.root / k for k in RELEASE_KEYS]
        # a rollback statement `verify` accepted, recorded as used by the step that uses it
        self._pending_statement: tuple[str, datetime.datetime, dict[str, str]] | None = None

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

    def device_id(self) -> str | None:
        try:
            with (self.root / "etc/edge/device.toml").open("rb") as f:
                dev = tomllib.load(f).get("device", {})
        except (OSError, tomllib.TOMLDecodeError):
            return None
        return str(dev["id"]) if isinstance(dev, dict) and "id" in dev else None

    def verify(
        self, release: str, rollback: bytes | None = None, order: bool = True
    ) -> signed.Manifest:
        """Signature, every file, and (with `order`) no downgrade (edge/device/release.py);
        UpdateError."""
        keys = signed.trusted_keys(self.key_files)
        self._pending_statement = None
        try:
            if not keys:
                names = ", ".join(map(str, self.key_files))
                raise signed.ReleaseError(
                    f"release {release}: no release key on this device ({names}); "
                    "re-provision it with flash.sh --release-key"
                )
            new = signed.verify(self.dir / release, release, keys)
            if not order:
                return new
            cur = self.current()
            running = None
            if cur is not None and cur != release and (self.dir / cur).is_dir():
                try:
                    running = signed.load_manifest(self.dir / cur, cur, keys)
                except signed.ReleaseError:
                    # unsigned, or signed with a release key since replaced: its id still
                    # names its version (flash.sh: <version>-<hash>), and that is the floor
                    running = signed.unverified(cur)
            if rollback is not None:
                now = datetime.datetime.now(datetime.UTC)
                used = self._used_statements(now)
                sid, expires = signed.check_rollback(
                    rollback, release, self.device_id(), keys, now, used
                )
                self._pending_statement = (sid, expires, used)
            else:
                signed.check_order(new, running)
        except signed.ReleaseError as exc:
            raise UpdateError(str(exc)) from None
        return new

    def _used_statements(self, now: datetime.datetime) -> dict[str, str]:
        """Rollback statement ids used here and not yet expired (id -> expiry)."""
        try:
            data = json.loads((self.state_dir / USED_STATEMENTS).read_text())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise UpdateError(f"{self.state_dir / USED_STATEMENTS}: not JSON ({exc})") from None
        if not isinstance(data, dict):
            raise UpdateError(f"{self.state_dir / USED_STATEMENTS}: not a JSON object")
        try:
            return {str(k): v for k, v in data.items() if datetime.datetime.fromisoformat(v) > now}
        except (TypeError, ValueError) as exc:
            raise UpdateError(f"{self.state_dir / USED_STATEMENTS}: bad entry ({exc})") from None

    def _record_statement(self) -> None:
        """Mark the statement `verify` just accepted as used, before anything switches."""
        pending, self._pending_statement = self._pending_statement, None
        if pending is None:
            return
        sid, expires, used = pending
        self._write_state(USED_STATEMENTS, {**used, sid: expires.isoformat()})

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

    def _state_fd(self) -> int:
        """The state directory's descriptor, once it is known to be ours alone."""
        self.state_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            os.close(fd)
            raise UpdateError(
                f"{self.state_dir}: owned by uid {st.st_uid} with mode "
                f"{stat.S_IMODE(st.st_mode):o}; the updater writes only in a directory of "
                f"its own user ({os.geteuid()}) that no one else may write"
            )
        return fd

    def _write_trial(self, data: dict[str, str]) -> None:
        self._write_state(self.trial_file.name, data)

    def _write_state(self, name: str, data: dict[str, str]) -> None:
        fd = self._state_fd()
        try:
            tmp = name + ".tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=fd)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            out = os.open(tmp, flags, 0o644, dir_fd=fd)
            with os.fdopen(out, "w") as f:
                f.write(json.dumps(data))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        finally:
            os.close(fd)

    def _drop_trial(self) -> None:
        if not self.state_dir.is_dir():
            return
        fd = self._state_fd()
        try:
            os.unlink(self.trial_file.name, dir_fd=fd)
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)

    def switch(self, release: str, rollback: bytes | None = None) -> str | None:
        """Point `current` at `release` once it verifies; returns the release it replaced."""
        if not (self.dir / release / "venv/bin/python").exists():
            raise UpdateError(f"release {release} is not installed under {self.dir}")
        old = self.current()
        if old == release:
            return old
        m = self.verify(release, rollback)
        self._record_statement()
        if old is not None:
            self._point("previous", old)
        self._point("current", release)
        if old is None:
            log.info("update_switched release=%s (first install: nothing to roll back to)", release)
            return None
        self._write_trial({"release": release, "previous": old})
        log.info("update_switched release=%s version=%s previous=%s", release, m.version, old)
        return old

    def trial(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.trial_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def commit(self) -> None:
        self._drop_trial()
        log.info("update_committed release=%s", self.current())
        self.prune()

    def rollback(self, statement: bytes | None = None) -> str:
        """Back to `previous`: freely while the current release is on trial (it never
        got healthy), otherwise only as a switch with a signed rollback statement."""
        prev = self.previous()
        if prev is None or not (self.dir / prev).is_dir():
            raise UpdateError("no previous release to roll back to")
        if self.trial() is None:
            if statement is None:
                raise UpdateError(
                    f"release {self.current()} is committed: going back to {prev} is a "
                    "downgrade and needs a signed rollback statement (--statement FILE)"
                )
            self.verify(prev, statement)
            self._record_statement()
        bad = self.current()
        self._point("current", prev)
        self._drop_trial()
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


def read_status(path: Path) -> bytes:
    """The status file's bytes, read as the service user's file must be read by root:
    never through a symlink, never blocking on a fifo, at most STATUS_MAX_BYTES."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        return os.read(fd, STATUS_MAX_BYTES)
    finally:
        os.close(fd)


def healthy(status_path: Path, since: float) -> tuple[bool, str]:
    """Is the runtime healthy: a status snapshot written after `since` with ticks running
    and the board session running?"""
    try:
        mtime = status_path.lstat().st_mtime
        st = json.loads(read_status(status_path))
    except FileNotFoundError:
        return False, f"no status file {status_path}"
    except OSError as exc:  # ELOOP: a symlink planted in the service's directory
        return False, f"status file not readable safely: {exc.strerror or exc}"
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
    parser.add_argument(
        "--keys", nargs="+", help="release public keys (default ROOT/etc/edge/release.pub)"
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    statement = "a signed rollback statement allowing this downgrade (edge.device.release)"
    for name in ("switch", "apply"):
        cmd = sub.add_parser(name)
        cmd.add_argument("release")
        cmd.add_argument("--statement", metavar="FILE", help=statement)
    sub.add_parser("check")
    sub.add_parser("rollback").add_argument("--statement", metavar="FILE", help=statement)
    sub.add_parser("verify").add_argument("release")
    sub.add_parser("list")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    rel = Releases(args.root, args.keys)
    status = Path(args.status_file) if args.status_file else rel.root / STATUS_FILE

    def restart() -> None:
        log.info("update_restart cmd=%r", args.restart)
        subprocess.run(args.restart, shell=True, check=False)

    try:
        stmt = Path(args.statement).read_bytes() if getattr(args, "statement", None) else None
        if args.cmd == "switch":
            rel.switch(args.release, stmt)
        elif args.cmd == "verify":
            m = rel.verify(args.release, order=False)
            print(
                f"edge-update: {args.release}: version {m.version}, {len(m.files)} files verified"
            )
        elif args.cmd == "apply":
            if rel.switch(args.release, stmt) == args.release:
                print(f"edge-update: {args.release} is already current; nothing to do")
                return 0
            restart()
            return 0 if check(rel, status, restart, args.timeout) else 1
        elif args.cmd == "check":
            return 0 if check(rel, status, restart, args.timeout) else 1
        elif args.cmd == "rollback":
            rel.rollback(stmt)
            restart()
        else:
            for r in rel.installed():
                mark = (
                    "current" if r == rel.current() else "previous" if r == rel.previous() else ""
                )
                print(f"{r} {mark}".rstrip())
    except (UpdateError, OSError) as exc:
        print(f"edge-update: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
