"""Signed releases: what `edge-update` checks before it switches to a release.

A release directory (/opt/edge/releases/<release>) holds `release.json`, a signed
envelope (edge/link/signing.py, made with the release key) whose body is the manifest:

    {"type": "edge-release", "release": "<id>", "version": "0.1.0",
     "created": "2026-12-07T13:00:00Z", "files": {"venv/...": "sha256:<hex>" |
     "link:<target>", ...}, "wheels": {"<name>.whl": "<hex>", ...}}

Rules it keeps (modelled on python-tuf's targets metadata: signed hashes of every
target, a version that never goes down, statements that expire):

- A release is accepted only when its manifest verifies with a release key the device
  was provisioned with (/etc/edge/release.pub), names this very release, and every
  file and symlink under the release directory matches the manifest: none changed,
  missing or added. Python's own bytecode caches (`__pycache__`, written by the root
  updater's interpreter) and flash.sh's `.complete` marker are not release content;
  the caches are removed before the check (no signature covers them, and Python runs
  a planted .pyc in place of its signed source when its header names the source's
  mtime and size).
- (version, created) never goes down: a release below the running one is refused
  unless a rollback statement signed with a release key names that release and this
  device and has not expired, and is used once: the updater records the ids it used
  until they expire. A failed trial returning to the release that ran before
  it is not a downgrade (that release was the running one).
- `wheels` lists the sha256 of every wheel the venv was installed from; flash.sh
  installs them with `pip --require-hashes`, the third-party ones pinned in
  deploy/requirements-device.<arch>.txt.

    python -m edge.device.release sign --key release.key --release ID --version V DIR [WHEEL...]
    python -m edge.device.release rollback --key release.key --release ID --device ID|* --days N
    python -m edge.device.release verify --keys release.pub --release ID DIR
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from packaging.version import InvalidVersion, Version

from edge.link import signing
from edge.link.errors import Rejected

MANIFEST = "release.json"
NOT_CONTENT = {MANIFEST, ".complete"}  # the signature itself; flash.sh's install marker
CACHE_DIR = "__pycache__"
KIND_RELEASE = "edge-release"
KIND_ROLLBACK = "edge-rollback"


class ReleaseError(RuntimeError):
    """A release (or rollback statement) the device refuses; the text says why."""


@dataclass(frozen=True, slots=True)
class Manifest:
    release: str
    version: Version
    created: datetime.datetime
    files: Mapping[str, str]
    wheels: Mapping[str, str]

    @property
    def order(self) -> tuple[Version, datetime.datetime]:
        return (self.version, self.created)


def _utc(text: object, what: str) -> datetime.datetime:
    if not isinstance(text, str):
        raise ReleaseError(f"{what}: must be an ISO 8601 UTC time string")
    try:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ReleaseError(f"{what}: {text!r} is not an ISO 8601 time") from None
    if t.tzinfo is None:
        raise ReleaseError(f"{what}: {text!r} has no time zone")
    return t.astimezone(datetime.UTC)


def _iso(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def contents(release_dir: Path) -> dict[str, str]:
    """Every file ("sha256:<hex>") and symlink ("link:<target>") under the release, by
    path relative to it; symlinks are recorded, never followed."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(release_dir):
        here = Path(dirpath)
        for name in list(dirnames):
            p = here / name
            if name == CACHE_DIR and not p.is_symlink():
                dirnames.remove(name)
            elif p.is_symlink():  # os.walk lists a link to a directory among dirnames
                out[p.relative_to(release_dir).as_posix()] = "link:" + os.readlink(p)
                dirnames.remove(name)
        for name in filenames:
            p = here / name
            rel = p.relative_to(release_dir).as_posix()
            if rel in NOT_CONTENT:
                continue
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "link:" + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = "sha256:" + _sha256(p)
            else:
                out[rel] = "special"  # a fifo or device node is never release content
    return out


def manifest_body(
    release_dir: Path,
    release: str,
    version: str,
    wheels: Sequence[Path] = (),
    created: datetime.datetime | None = None,
) -> str:
    Version(version)  # refuse to sign what the device could not order
    body = {
        "type": KIND_RELEASE,
        "release": release,
        "version": version,
        "created": _iso(created or datetime.datetime.now(datetime.UTC)),
        "files": contents(release_dir),
        "wheels": {w.name: _sha256(w) for w in sorted(wheels)},
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def sign_release(
    release_dir: Path,
    release: str,
    version: str,
    key: Ed25519PrivateKey,
    wheels: Sequence[Path] = (),
    created: datetime.datetime | None = None,
) -> Path:
    """Write release_dir/release.json, signed with the release key (the build side)."""
    body = manifest_body(release_dir, release, version, wheels, created)
    out = release_dir / MANIFEST
    out.write_bytes(signing.sign(body, key))
    return out


def _open(raw: bytes, trusted: Mapping[str, Ed25519PublicKey], what: str) -> dict[str, object]:
    if not trusted:
        raise ReleaseError(f"{what}: no release key is provisioned on this device")
    try:
        body = json.loads(signing.open_envelope(raw, trusted))
    except Rejected as exc:
        raise ReleaseError(f"{what}: {exc.reason}") from None
    except ValueError as exc:
        raise ReleaseError(f"{what}: signed body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ReleaseError(f"{what}: signed body must be a JSON object")
    return body


def load_manifest(
    release_dir: Path, release: str, trusted: Mapping[str, Ed25519PublicKey]
) -> Manifest:
    """The release's manifest, its signature checked (not yet its files)."""
    path = release_dir / MANIFEST
    what = f"release {release}"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ReleaseError(f"{what}: unsigned (no {MANIFEST})") from None
    body = _open(raw, trusted, what)
    if body.get("type") != KIND_RELEASE:
        raise ReleaseError(f"{what}: {MANIFEST} is not a release manifest")
    if body.get("release") != release:
        raise ReleaseError(
            f"{what}: the signed manifest is for release {body.get('release')!r}, not this one"
        )
    files, wheels = body.get("files"), body.get("wheels", {})
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ReleaseError(f"{what}: manifest files: must map paths to hashes")
    if not isinstance(wheels, dict) or not all(isinstance(v, str) for v in wheels.values()):
        raise ReleaseError(f"{what}: manifest wheels: must map names to hashes")
    try:
        version = Version(str(body.get("version")))
    except InvalidVersion:
        raise ReleaseError(f"{what}: manifest version {body.get('version')!r} is invalid") from None
    return Manifest(release, version, _utc(body.get("created"), f"{what}: created"), files, wheels)


def drop_caches(release_dir: Path) -> None:
    """Remove every `__pycache__` directory (not a symlink: that is content) under the
    release: what runs from it is then compiled from the signed sources."""
    for dirpath, dirnames, _ in os.walk(release_dir):
        for name in list(dirnames):
            p = Path(dirpath) / name
            if name == CACHE_DIR and not p.is_symlink():
                shutil.rmtree(p)
                dirnames.remove(name)


def verify(release_dir: Path, release: str, trusted: Mapping[str, Ed25519PublicKey]) -> Manifest:
    """The manifest, once its signature and every file's hash check out; else ReleaseError.
    The release's bytecode caches are removed first (drop_caches)."""
    m = load_manifest(release_dir, release, trusted)
    drop_caches(release_dir)
    have = contents(release_dir)
    problems = []
    for rel in sorted(set(m.files) | set(have)):
        want, got = m.files.get(rel), have.get(rel)
        if want is None:
            problems.append(f"{rel}: not in the signed manifest")
        elif got is None:
            problems.append(f"{rel}: missing")
        elif got != want:
            problems.append(f"{rel}: does not match the signed manifest")
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise ReleaseError(f"release {release}: tampered: {'; '.join(problems[:5])}{more}")
    return m


def rollback_statement(
    release: str,
    device: str,
    key: Ed25519PrivateKey,
    expires: datetime.datetime,
) -> bytes:
    """A signed permission to go back to `release` on `device` ("*": any), until `expires`."""
    body = {
        "type": KIND_ROLLBACK,
        "release": release,
        "device": device,
        "expires": _iso(expires),
        "id": secrets.token_hex(8),
    }
    return signing.sign(json.dumps(body, sort_keys=True, separators=(",", ":")), key)


def check_rollback(
    raw: bytes,
    release: str,
    device: str | None,
    trusted: Mapping[str, Ed25519PublicKey],
    now: datetime.datetime,
    used: Mapping[str, str] | None = None,
) -> tuple[str, datetime.datetime]:
    """Raise ReleaseError unless `raw` is a valid, unexpired statement allowing `release`
    and its id is not among `used` (statements used before); returns (id, expires)."""
    body = _open(raw, trusted, "rollback statement")
    if body.get("type") != KIND_ROLLBACK:
        raise ReleaseError("rollback statement: not a rollback statement")
    if body.get("release") != release:
        raise ReleaseError(
            f"rollback statement: it allows release {body.get('release')!r}, not {release}"
        )
    if body.get("device") not in ("*", device):
        raise ReleaseError(
            f"rollback statement: it is for device {body.get('device')!r}, not {device!r}"
        )
    expires = _utc(body.get("expires"), "rollback statement: expires")
    if now >= expires:
        raise ReleaseError(f"rollback statement: expired at {_iso(expires)}")
    sid = body.get("id")
    if not isinstance(sid, str) or not sid:
        raise ReleaseError("rollback statement: no id")
    if used is not None and sid in used:
        raise ReleaseError(f"rollback statement: already used once on this device (id {sid})")
    return sid, expires


def unverified(release: str) -> Manifest | None:
    """A release without a manifest this device can verify, ordered by the version its id
    starts with (flash.sh names releases <version>-<hash>); None if it names none."""
    try:
        version = Version(release.split("-", 1)[0])
    except InvalidVersion:
        return None
    return Manifest(release, version, datetime.datetime.min.replace(tzinfo=datetime.UTC), {}, {})


def check_order(new: Manifest, running: Manifest | None) -> None:
    """Refuse a release older than the running one (version, then build time)."""
    if running is None or new.order >= running.order:
        return
    raise ReleaseError(
        f"release {new.release}: version {new.version} (built {_iso(new.created)}) is older "
        f"than the running {running.release} ({running.version}, built "
        f"{_iso(running.created)}); a downgrade needs a signed rollback statement"
    )


def trusted_keys(paths: Sequence[Path]) -> dict[str, Ed25519PublicKey]:
    """The release keys in the files that exist (a device without any refuses every release)."""
    return signing.load_trusted([p for p in paths if p.is_file()])


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.device.release", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sign", help="write DIR/release.json")
    s.add_argument("--key", required=True, help="the release key (Ed25519, PEM)")
    s.add_argument("--release", required=True)
    s.add_argument("--version", required=True)
    s.add_argument("dir")
    s.add_argument("wheels", nargs="*", help="the wheels the release was installed from")
    r = sub.add_parser("rollback", help="print a signed rollback statement")
    r.add_argument("--key", required=True)
    r.add_argument("--release", required=True)
    r.add_argument("--device", required=True, help="device id, or * for every device")
    r.add_argument("--days", type=float, default=7.0, help="valid for (default 7)")
    v = sub.add_parser("verify", help="check a release directory")
    v.add_argument("--keys", nargs="+", required=True)
    v.add_argument("--release", required=True)
    v.add_argument("dir")
    args = p.parse_args(argv)
    try:
        if args.cmd == "sign":
            key = signing.load_private(args.key)
            out = sign_release(
                Path(args.dir), args.release, args.version, key, [Path(w) for w in args.wheels]
            )
            print(f"signed {out} (key {signing.key_id(key.public_key())})")
        elif args.cmd == "rollback":
            until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=args.days)
            raw = rollback_statement(
                args.release, args.device, signing.load_private(args.key), until
            )
            sys.stdout.write(raw.decode() + "\n")
        else:
            m = verify(Path(args.dir), args.release, trusted_keys([Path(k) for k in args.keys]))
            print(f"release {m.release}: version {m.version}, {len(m.files)} files verified")
    except (OSError, ValueError, ReleaseError) as exc:
        print(f"edge.device.release: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
