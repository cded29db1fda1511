"""Central's signing keys on the device: an active and a standby key, moved by the root key.

A device is provisioned with central's active key(s) (`trusted_keys`), a standby key
(`standby_keys`) and an offline root public key (`root_key`). A key rollover is a signed
envelope (edge/link/signing.py) on the device's cmd topic, signed by the root key:

    {"type": "key_rollover", "sequence": 2, "device": "hz-0412" | "*",
     "issued_ms": ..., "expires_ms": ..., "activate": "<standby key id>",
     "revoke": ["<key id>", ...], "standby": ["<PEM public key>", ...]}

Rules it keeps:
- Only the root key can change which keys central may sign with; central's own keys
  cannot (a compromised central key cannot entrench itself).
- A rollover is applied whole or not at all, and only if its sequence is above every
  one applied before (replayed and older messages are refused), it is addressed to
  this device or all, and it has not expired.
- The key it activates must be the provisioned (or previously announced) standby key;
  revoked keys are never trusted again, not even if a re-flash provisions them.
- The state (keys, sequence, revoked ids) is written atomically next to the store
  before the rollover is acknowledged, so a restart keeps the rollover.
- A lost state cannot revert a rollover (TUF's rule: no trust before the latest root
  statement is known). A device with a root key but no saved state (first boot, or
  /var/lib/edge wiped or its file deleted) is *unconfirmed*: it accepts nothing that
  central's keys sign (commands, plans) until a root-signed statement reaches it.
  Central keeps its latest statement retained on each device's cmd topic (`edge
  central send --retain`), so it arrives at every connect: a newer one is applied
  as above; one at or below the device's own sequence confirms that nothing newer
  exists. Either way the state is then saved and the device confirmed (and the latest
  plan refused meanwhile, e.g. the retained one the broker handed over first, is
  checked again: session.py held_plan). The
  statement's expiry holds for confirming too: central re-signs the retained
  statement (offline) before it expires, or a wiped device waits, refusing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.link import signing
from edge.link.errors import Rejected

KIND = "key_rollover"
MAX_ROLLOVER_BYTES = 16_384


def _pem(key: Ed25519PublicKey) -> str:
    return signing.public_pem(key).decode()


def _load_pem(text: object, what: str) -> Ed25519PublicKey:
    if not isinstance(text, str):
        raise Rejected("schema", f"{what}: must be a PEM public key string")
    try:
        key = serialization.load_pem_public_key(text.encode())
    except ValueError as exc:
        raise Rejected("schema", f"{what}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise Rejected("schema", f"{what}: not an Ed25519 public key")
    return key


@dataclass
class Keyring:
    """The device's view of central's keys; `active` is what commands and plans verify with."""

    path: Path | None
    root: dict[str, Ed25519PublicKey]
    active: dict[str, Ed25519PublicKey]
    standby: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    sequence: int = 0
    # central's keys are trusted only once confirmed: a saved state, no root key to move
    # them, or a root statement heard since a state was lost (the rule above)
    confirmed: bool = True

    @classmethod
    def load(
        cls,
        state: Path | None,
        active: Sequence[Path],
        standby: Sequence[Path] = (),
        root: Path | None = None,
    ) -> Keyring:
        """The provisioned keys, superseded by a saved state (what rollovers made of them)."""
        ring = cls(
            state,
            signing.load_trusted([root]) if root is not None else {},
            signing.load_trusted(list(active)),
            signing.load_trusted(list(standby)),
        )
        if state is None or not state.is_file():
            ring.confirmed = not ring.root
            return ring
        data = json.loads(state.read_text())
        ring.sequence = int(data["sequence"])
        ring.revoked = set(data["revoked"])
        ring.active = {k: _load_pem(v, "state") for k, v in data["active"].items()}
        ring.standby = {k: _load_pem(v, "state") for k, v in data["standby"].items()}
        for kid in ring.revoked:
            ring.active.pop(kid, None)
            ring.standby.pop(kid, None)
        return ring

    def save(self) -> None:
        self._write(self.sequence, self.active, self.standby, self.revoked)

    def _write(
        self,
        sequence: int,
        active: dict[str, Ed25519PublicKey],
        standby: dict[str, Ed25519PublicKey],
        revoked: set[str],
    ) -> None:
        if self.path is None:
            return
        data = {
            "sequence": sequence,
            "active": {k: _pem(v) for k, v in active.items()},
            "standby": {k: _pem(v) for k, v in standby.items()},
            "revoked": sorted(revoked),
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.unlink(missing_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(data, indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def is_root_signed(self, raw: bytes) -> bool:
        """Does this envelope name the root key (so it is a rollover, not a command)?"""
        try:
            envelope = json.loads(raw)
        except (ValueError, RecursionError):
            return False
        kid = envelope.get("kid") if isinstance(envelope, dict) else None
        return isinstance(kid, str) and kid in self.root

    def apply(self, raw: bytes, device: str, now_ms: int) -> str:
        """Verify and apply a rollover; returns what changed. Raises Rejected (nothing changed)."""
        if len(raw) > MAX_ROLLOVER_BYTES:
            raise Rejected("oversized", f"key rollover is {len(raw)} bytes")
        if not self.root:
            raise Rejected("unsupported", "no root key is provisioned on this device")
        try:
            body = json.loads(signing.open_envelope(raw, self.root))
        except ValueError as exc:
            raise Rejected("malformed", f"key rollover: not JSON ({exc})") from None
        if not isinstance(body, dict) or body.get("type") != KIND:
            raise Rejected("schema", "a root-signed message must be a key_rollover")
        extra = set(body) - {
            "type", "sequence", "device", "issued_ms", "expires_ms", "activate", "revoke",
            "standby",
        }  # fmt: skip
        if extra:
            raise Rejected("schema", f"key_rollover: unknown key(s) {sorted(extra)}")
        seq, expires = body.get("sequence"), body.get("expires_ms")
        if not isinstance(seq, int) or not isinstance(expires, int):
            raise Rejected("schema", "key_rollover: sequence and expires_ms must be integers")
        if body.get("device") not in ("*", device):
            raise Rejected("wrong_device", f"key rollover for {body.get('device')!r}")
        if now_ms >= expires:
            raise Rejected("expired", f"key rollover expired {now_ms - expires} ms ago")
        if seq <= self.sequence and not self.confirmed:
            # central's latest statement is not newer than what this device holds
            try:
                self.save()
            except OSError as exc:
                raise Rejected("refused", f"key state not saved: {exc}") from None
            self.confirmed = True
            return f"sequence {self.sequence} confirmed: central's latest statement is {seq}"
        if seq <= self.sequence:
            raise Rejected("replayed", f"key rollover sequence {seq} is not above {self.sequence}")
        activate, revoke = body.get("activate"), body.get("revoke", [])
        if not isinstance(revoke, list) or not all(isinstance(k, str) for k in revoke):
            raise Rejected("schema", "key_rollover: revoke must be a list of key ids")
        standby = [_load_pem(p, "key_rollover: standby") for p in body.get("standby", [])]
        if activate is not None and activate not in self.standby:
            raise Rejected(
                "unknown_key", f"key rollover activates {activate!r}, which is not a standby key"
            )
        new_active = dict(self.active)
        if activate is not None:
            new_active[activate] = self.standby[activate]
        for kid in revoke:
            new_active.pop(kid, None)
        if not new_active:
            raise Rejected("refused", "key rollover would leave no active central key")
        if set(new_active) & set(revoke):
            raise Rejected("refused", "key rollover revokes the key it activates")
        new_standby = {k: v for k, v in self.standby.items() if k not in new_active}
        if "standby" in body:
            new_standby = {signing.key_id(k): k for k in standby}
        new_revoked = self.revoked | set(revoke)
        new_standby = {k: v for k, v in new_standby.items() if k not in new_revoked}
        # All checked: persisted first, then applied (a failed write changes nothing).
        try:
            self._write(seq, new_active, new_standby, new_revoked)
        except OSError as exc:
            raise Rejected("refused", f"key rollover not saved: {exc}") from None
        self.active.clear()
        self.active.update(new_active)
        self.standby, self.revoked, self.sequence = new_standby, new_revoked, seq
        self.confirmed = True
        return (
            f"sequence {seq}: active {', '.join(sorted(self.active))}; "
            f"revoked {', '.join(sorted(revoke)) or 'none'}; "
            f"standby {', '.join(sorted(self.standby)) or 'none'}"
        )


def rollover(
    root: Ed25519PrivateKey,
    sequence: int,
    device: str,
    now_ms: int,
    *,
    activate: str | None,
    revoke: Sequence[str] = (),
    standby: Sequence[Ed25519PublicKey] = (),
    ttl_s: float = 3600,
) -> bytes:
    """A signed rollover (the root key's side: made offline, published by central)."""
    body: dict[str, Any] = {
        "type": KIND,
        "sequence": sequence,
        "device": device,
        "issued_ms": now_ms,
        "expires_ms": now_ms + int(ttl_s * 1000),
        "activate": activate,
        "revoke": list(revoke),
        "standby": [_pem(k) for k in standby],
    }
    return signing.sign(json.dumps(body, separators=(",", ":")), root)
