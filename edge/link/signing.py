"""Ed25519 signatures for what central sends: plan bundles and commands.

The signed envelope keeps the exact bytes that were signed, as a string:

    {"body": "<JSON text of the bundle or command>", "kid": "<key id>", "sig": "<base64>"}

so no canonical-JSON rules are needed: the device verifies `sig` over
`body.encode()` with the key named by `kid` (the first 16 hex digits of the
SHA-256 of the raw public key), and only then parses `body`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.link.errors import Rejected


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private(path: str | Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def load_public(path: str | Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"{path}: not an Ed25519 public key")
    return key


def load_trusted(paths: list[str] | list[Path]) -> dict[str, Ed25519PublicKey]:
    """The central keys a device was provisioned with, by key id."""
    keys = [load_public(p) for p in paths]
    return {key_id(k): k for k in keys}


def sign(body: bytes | str, key: Ed25519PrivateKey) -> bytes:
    """Wrap a JSON body in a signed envelope (central side)."""
    text = body if isinstance(body, str) else body.decode("utf-8")
    sig = key.sign(text.encode("utf-8"))
    envelope = {
        "body": text,
        "kid": key_id(key.public_key()),
        "sig": base64.b64encode(sig).decode(),
    }
    return json.dumps(envelope, separators=(",", ":")).encode()


def open_envelope(raw: bytes, trusted: Mapping[str, Ed25519PublicKey]) -> str:
    """Verify a signed envelope; return the body text. Raises Rejected with the reason."""
    try:
        envelope = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Rejected("malformed", f"not JSON: {exc}") from None
    if not isinstance(envelope, dict):
        raise Rejected("schema", "envelope: must be an object with body, kid and sig")
    extra = sorted(set(envelope) - {"body", "kid", "sig"})
    if extra:
        raise Rejected("schema", f"envelope: unknown key(s) {', '.join(map(repr, extra))}")
    body, kid, sig = envelope.get("body"), envelope.get("kid"), envelope.get("sig")
    for name, value in (("body", body), ("kid", kid), ("sig", sig)):
        if not isinstance(value, str):
            raise Rejected(
                "bad_signature" if name == "sig" else "schema",
                f"envelope: {name}: must be a string",
            )
    assert isinstance(body, str) and isinstance(kid, str) and isinstance(sig, str)
    key = trusted.get(kid)
    if key is None:
        raise Rejected("unknown_key", f"unknown signing key {kid[:32]!r}")
    try:
        signature = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        raise Rejected("bad_signature", "signature is not base64") from None
    try:
        key.verify(signature, body.encode("utf-8"))
    except InvalidSignature:
        raise Rejected("bad_signature", f"signature does not verify with key {kid}") from None
    return body
