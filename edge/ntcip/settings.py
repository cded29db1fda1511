"""The agent's settings: device.toml's `[snmp]` table and its SNMPv3 users' file.

    [snmp]
    port = 161                 # UDP
    host = "127.0.0.1"         # the address to listen on (default: this device only)
    users = "snmp-users.json"  # the users' file, beside device.toml
    sets = false               # SETs refused (noAccess) unless true
    backup_s = 60              # unitBackupTime at start (0: never lapses)

The rules kept:
- Only SNMPv3 with authentication and privacy (USM HMAC-SHA-96 and AES-128-CFB):
  no community, no noAuth or authNoPriv user.
- The users' file, `{"users": {"NAME": {"auth": "...", "priv": "..."}}}`, holds
  passphrases (USM needs the secrets themselves, not hashes): it must be no one
  else's to read: 640 root:edge as the page's credentials (edge/credentials.py), 600
  elsewhere; a file readable or writable by others is refused, as are passphrases
  under 8 characters (RFC 3414) and bad user names.
- The simulator's user (`DEV_USER`) is documented in the README and used only by
  `edge run --sim ... --snmp PORT`; a device never gets it.
- The engine is the same engine across restarts (RFC 3414's timeliness and the
  managers' cached, localized keys need it): its snmpEngineID is derived from the
  device id (`engine_id`: RFC 3411's enterprise-specific format), and snmpEngineBoots
  is kept in `snmp-engine-boots` beside the device store and raised by one at every
  start of the engine (`next_boots`); without a device id pysnmp makes one per process,
  without a store (the simulator) the count starts at 1.
- Anything wrong is an `SnmpConfigError` naming the file and the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.credentials import USER_RE
from edge.web import LOOPBACK

MIN_SECRET = 8  # RFC 3414: a USM passphrase is at least 8 octets
DEFAULT_BACKUP_S = 60
# RFC 3411 SnmpEngineID: the first bit set, an enterprise number (NEMA's 1206, the arc
# NTCIP's objects live under), format 128 (enterprise-specific: 16 octets of SHA-256 of
# the device id).
ENTERPRISE = 1206
ENGINE_ID_FORMAT = 128
BOOTS_FILE = "snmp-engine-boots"
MAX_BOOTS = 2_147_483_647  # RFC 3414: latched there (the keys must then be changed)


class SnmpConfigError(ValueError):
    """The agent's settings cannot be used: what and where."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    auth: str
    priv: str

    def __repr__(self) -> str:  # never the secrets in a log
        return f"User({self.name!r})"


@dataclass(frozen=True, slots=True)
class SnmpSettings:
    port: int
    host: str = LOOPBACK
    users: tuple[User, ...] = ()
    sets: bool = False
    backup_s: int = DEFAULT_BACKUP_S
    engine_id: bytes | None = None  # None: pysnmp's own, new each process
    boots_file: Path | None = None  # None: snmpEngineBoots starts at 1 each process


def engine_id(device_id: str) -> bytes:
    """The device's snmpEngineID (RFC 3411 format, enterprise-specific): stable per device."""
    digest = hashlib.sha256(f"edge snmpEngineID {device_id}".encode()).digest()[:16]
    return (0x80000000 | ENTERPRISE).to_bytes(4, "big") + bytes([ENGINE_ID_FORMAT]) + digest


def next_boots(path: Path) -> int:
    """snmpEngineBoots for this start: the stored count plus one, stored before use."""
    try:
        text = path.read_text().strip() if path.exists() else "0"
        last = int(text)
        if not 0 <= last <= MAX_BOOTS:
            raise ValueError(f"{last} is outside 0..{MAX_BOOTS}")
    except (OSError, ValueError) as exc:
        raise SnmpConfigError(
            f"{path}: cannot read snmpEngineBoots ({exc}); remove the file to start at 1 "
            "(managers then discover the engine again)"
        ) from None
    boots = min(last + 1, MAX_BOOTS)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(f"{boots}\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise SnmpConfigError(f"{path}: cannot store snmpEngineBoots: {exc}") from None
    return boots


# The simulator's development user (README, "NTCIP 1202 over SNMP"): never on a device.
DEV_USER = User("edge-dev", "edge-dev-auth", "edge-dev-priv")


def dev_settings(port: int) -> SnmpSettings:
    """`edge run --sim ... --snmp PORT`: loopback, the development user, sets on."""
    return SnmpSettings(port, LOOPBACK, (DEV_USER,), sets=True)


def load_users(path: Path) -> tuple[User, ...]:
    try:
        st = path.stat()
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SnmpConfigError(f"{path}: cannot read the SNMP users: {exc}") from None
    if st.st_mode & (stat.S_IRWXO | stat.S_IWGRP):
        raise SnmpConfigError(
            f"{path}: mode {stat.S_IMODE(st.st_mode):o} lets others read or change the SNMP "
            "keys; make it 640 root:edge (or 600)"
        )
    users = raw.get("users") if isinstance(raw, dict) else None
    if not isinstance(users, dict) or not users:
        raise SnmpConfigError(
            f'{path}: expected {{"users": {{"NAME": {{"auth": ..., "priv": ...}}}}}}'
        )
    out = []
    for name, keys in users.items():
        if not isinstance(name, str) or not USER_RE.fullmatch(name):
            raise SnmpConfigError(f"{path}: user name {name!r}: 1-32 of a-z, 0-9, _ . -")
        if not isinstance(keys, dict) or set(keys) != {"auth", "priv"}:
            raise SnmpConfigError(f"{path}: user {name}: exactly the keys auth and priv")
        for k in ("auth", "priv"):
            v = keys[k]
            if not isinstance(v, str) or len(v) < MIN_SECRET:
                raise SnmpConfigError(
                    f"{path}: user {name}: {k} must be a passphrase of at least "
                    f"{MIN_SECRET} characters"
                )
        out.append(User(name, keys["auth"], keys["priv"]))
    return tuple(out)


def load_settings(device_path: str | os.PathLike[str]) -> SnmpSettings | None:
    """device.toml's `[snmp]` (None: no agent)."""
    import tomllib

    path = Path(device_path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SnmpConfigError(f"{path}: {exc}") from None
    table: Any = raw.get("snmp")
    if table is None:
        return None
    where = f"{path} [snmp]"
    if not isinstance(table, dict):
        raise SnmpConfigError(f"{where}: must be a table")
    unknown = set(table) - {"port", "host", "users", "sets", "backup_s"}
    if unknown:
        raise SnmpConfigError(f"{where}: unknown keys {sorted(unknown)}")
    port, host = table.get("port", 161), table.get("host", LOOPBACK)
    sets, backup_s = table.get("sets", False), table.get("backup_s", DEFAULT_BACKUP_S)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise SnmpConfigError(f"{where}: port must be 1..65535, not {port!r}")
    if not isinstance(host, str):
        raise SnmpConfigError(f"{where}: host must be an address, not {host!r}")
    if not isinstance(sets, bool):
        raise SnmpConfigError(f"{where}: sets must be true or false, not {sets!r}")
    if not isinstance(backup_s, int) or isinstance(backup_s, bool) or not 0 <= backup_s <= 65535:
        raise SnmpConfigError(f"{where}: backup_s must be 0..65535 s, not {backup_s!r}")
    users_file = table.get("users")
    if not isinstance(users_file, str):
        raise SnmpConfigError(f"{where}: users must name the SNMP users' file")
    users = load_users(path.resolve().parent / users_file)
    device = raw.get("device", {})
    dev_id, store = device.get("id"), device.get("store")
    eid = engine_id(dev_id) if isinstance(dev_id, str) and dev_id else None  # flash.sh's
    boots = path.resolve().parent / store if isinstance(store, str) else None
    boots_file = boots.parent / BOOTS_FILE if boots is not None else None
    return SnmpSettings(port, host, users, sets, backup_s, eid, boots_file)
