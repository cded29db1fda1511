"""Technician credentials for the device's local page: scrypt hashes in a JSON file.

Set at provisioning (`flash.sh`, or `edge passwd` on the device). There is no default
password: with no file, or no user in it, every manual action is refused. The rules:

- The file maps user names to `scrypt$N$r$p$salt$hash` strings (hex), so a leaked file
  does not give the password away. New hashes use N=2^17, r=8, p=1 (OWASP's current
  scrypt recommendation; 128 MiB and about a second on a Pi 4, once per login, not
  per request). A hash stored with other parameters still verifies with its own (a
  file from an older release keeps working); `weak_users` names those below today's
  cost, so the runtime can say so at start (the service cannot rewrite the file: it is
  root's, and /etc is read-only to it), and `edge passwd` rehashes the one it sets.
- A check of an unknown user costs what a known user's does (a dummy hash with the
  file's own parameters): the time of a refusal does not tell which names exist.
- The file is replaced atomically. On a device (a group `edge` exists) `edge passwd`
  writes it 640 owner:edge (root:edge when run as root), so the service user can read
  it and not change it; elsewhere 600 (`file_owner` decides; testable without root).
"""

from __future__ import annotations

import grp
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

# scrypt cost (OWASP 2024: N=2^17, r=8, p=1): 128 MiB per check.
N, R, P = 2**17, 8, 1
KEY_BYTES = 32
MAX_MEM = 2**28  # a stored hash that needs more than 256 MiB is refused, not computed
MIN_PASSWORD = 8
USER_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
SERVICE_GROUP = "edge"


class CredentialError(ValueError):
    """A credentials file or a new user/password that cannot be used; says which and why."""


@dataclass(frozen=True, slots=True)
class FileOwner:
    """Who the credentials file belongs to and its mode; uid/gid None: left as created."""

    mode: int
    uid: int | None = None
    gid: int | None = None


def file_owner(group: str = SERVICE_GROUP, euid: int | None = None) -> FileOwner:
    """640 owner:`group` when `group` exists (a device: the service reads, root writes),
    else 600 (a laptop, a test: the file is the writer's own)."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return FileOwner(0o600)
    return FileOwner(0o640, os.geteuid() if euid is None else euid, gid)


def hash_password(password: str, salt: bytes | None = None, n: int = N) -> str:
    """A new hash (`n` lower than N only for tests that need cheap files)."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=R, p=P, dklen=KEY_BYTES, maxmem=MAX_MEM
    )
    return f"scrypt${n}${R}${P}${salt.hex()}${key.hex()}"


def _params(stored: str) -> tuple[int, int, int] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        return int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        return None


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches `stored`; False for a wrong password or a bad hash."""
    params = _params(stored)
    if params is None:
        return False
    n, r, p = params
    parts = stored.split("$")
    try:
        salt, want = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
        got = hashlib.scrypt(
            password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(want), maxmem=MAX_MEM
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


def weak_users(users: dict[str, str]) -> list[str]:
    """Users whose hash costs less than today's N (or cannot be read): re-set them."""
    return sorted(u for u, h in users.items() if (_params(h) or (0, 0, 0)) < (N, R, P))


def load(path: str | Path) -> dict[str, str]:
    """The users in `path` (name -> hash); an empty dict when the file does not exist."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise CredentialError(f"{p}: cannot read credentials: {exc}") from exc
    users = data.get("users") if isinstance(data, dict) else None
    if not isinstance(users, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in users.items()
    ):
        raise CredentialError(f'{p}: expected {{"users": {{"name": "scrypt$..."}}}}')
    return dict(users)


def check(path: str | Path, user: str, password: str) -> bool:
    return check_user(load(path), user, password)


def _dummy(users: dict[str, str]) -> str:
    """A hash no password matches, at the file's highest cost (today's with no file)."""
    n, r, p = max((x for x in map(_params, users.values()) if x is not None), default=(N, R, P))
    return f"scrypt${n}${r}${p}${'00' * 16}${'00' * KEY_BYTES}"


def check_user(users: dict[str, str], user: str, password: str) -> bool:
    """An unknown user costs the same scrypt as a known one: the time of a refusal does not
    tell which user names exist."""
    stored = users.get(user)
    ok = verify_password(password, stored if stored is not None else _dummy(users))
    return stored is not None and ok


def set_user(
    path: str | Path,
    user: str,
    password: str,
    *,
    owner: FileOwner | None = None,
    n: int = N,
) -> None:
    """Add or replace `user`; the file is replaced atomically with `owner`'s mode and
    owner (default: 600, the writer's own)."""
    if not USER_RE.fullmatch(user):
        raise CredentialError(
            f"user name {user!r}: use 1-32 of a-z, 0-9, '_', '.', '-', starting with a letter"
        )
    if len(password) < MIN_PASSWORD:
        raise CredentialError(f"password for {user}: at least {MIN_PASSWORD} characters")
    own = owner if owner is not None else FileOwner(0o600)
    p = Path(path)
    users = load(p)
    users[user] = hash_password(password, n=n)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"users": users}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        if own.uid is not None and own.gid is not None:
            try:
                os.chown(tmp, own.uid, own.gid)
            except PermissionError as exc:
                raise CredentialError(
                    f"{p}: cannot give it to uid {own.uid} gid {own.gid} (the service's "
                    f"group): run edge passwd as root ({exc.strerror})"
                ) from exc
        os.chmod(tmp, own.mode)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
