"""Technician credentials for the device's local page: scrypt hashes in a JSON file.

Set at provisioning (`flash.sh`, or `edge passwd` on the device). There is no default
password: with no file, or no user in it, every manual action is refused. The file
maps user names to `scrypt$N$r$p$salt$hash` strings (hex), so a leaked file does not
give the password away, and is written atomically with mode 0600.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from pathlib import Path

# scrypt cost: ~50 ms and 16 MiB on a Pi 4, once per manual action, not per request.
N, R, P = 2**14, 8, 1
KEY_BYTES = 32
MIN_PASSWORD = 8
USER_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")


class CredentialError(ValueError):
    """A credentials file or a new user/password that cannot be used; says which and why."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=KEY_BYTES)
    return f"scrypt${N}${R}${P}${salt.hex()}${key.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True if `password` matches `stored`; False for a wrong password or a bad hash."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, want = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
        got = hashlib.scrypt(
            password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(want), maxmem=2**26
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


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


_UNKNOWN_USER = f"scrypt${N}${R}${P}${'00' * 16}${'00' * KEY_BYTES}"


def check_user(users: dict[str, str], user: str, password: str) -> bool:
    """An unknown user costs the same scrypt as a known one: the time of a refusal does not
    tell which user names exist."""
    stored = users.get(user)
    ok = verify_password(password, stored if stored is not None else _UNKNOWN_USER)
    return stored is not None and ok


def set_user(path: str | Path, user: str, password: str) -> None:
    """Add or replace `user`; the file is replaced atomically, readable by its owner only."""
    if not USER_RE.fullmatch(user):
        raise CredentialError(
            f"user name {user!r}: use 1-32 of a-z, 0-9, '_', '.', '-', starting with a letter"
        )
    if len(password) < MIN_PASSWORD:
        raise CredentialError(f"password for {user}: at least {MIN_PASSWORD} characters")
    p = Path(path)
    users = load(p)
    users[user] = hash_password(password)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"users": users}, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
