"""A device's first certificate without the fleet CA's key on a laptop: enrolment tokens.

Central makes a short-lived, single-use enrolment token for one device id; flash.sh
provisions the token (not the fleet CA key, not a device key). On first boot the device
makes its own key (certs.request: staged 600, never leaves it) and a CSR that carries
the token in its challengePassword attribute, so the request and its authorisation
travel as one signed object. Central checks the token and signs the CSR with the fleet
CA it holds (certs.sign: CN = the device id, client certificate, a year at most).

Rules it keeps:
- A token is signed with central's Ed25519 key, names one device id, and lives at most
  TOKEN_HOURS (24) from its issue; central refuses one that is expired, not yet valid,
  for another device, signed by another key, or used before (its id is recorded by the
  caller and kept until it expires: single use).
- The CSR's own signature (made with the device's new key) covers the token: a token
  lifted from one request cannot be attached to another key without being used first.
- Central's Ledger keeps the used token ids (until they expire) and, for each request it
  signed, the certificate (a public thing), in one file written 600 with one rename: the
  same request again (the device rebooted before the answer) gets the same certificate,
  never a second one; a new request with a spent token is refused.
- The device's enrolment state (DIR/enrol.json) is written 600 with O_NOFOLLOW and one
  rename; a reboot before the answer reuses the staged key and CSR (one token, one key),
  and the token is removed once a certificate is installed (where the service may: on a
  device it is root's, 640, and spent once central recorded it).

The bootstrap connection that carries request and answer: edge/device/bootstrap.py.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import AttributeOID, NameOID

from edge.device import certs
from edge.link import signing
from edge.link.errors import Rejected

TOKEN_HOURS = 24
KIND = "edge-enrol"
STATE = "enrol.json"


class EnrolError(ValueError):
    """A token or enrolment request refused; the text says why."""


def _iso(t: datetime.datetime) -> str:
    return t.astimezone(datetime.UTC).isoformat(timespec="seconds")


def _utc(v: object, what: str) -> datetime.datetime:
    try:
        t = datetime.datetime.fromisoformat(str(v))
    except ValueError:
        raise EnrolError(f"enrolment token: {what}: not an ISO 8601 time ({v!r})") from None
    if t.tzinfo is None:
        raise EnrolError(f"enrolment token: {what}: no time zone ({v!r})")
    return t


def make_token(
    key: Ed25519PrivateKey,
    device: str,
    now: datetime.datetime,
    hours: float = TOKEN_HOURS,
) -> bytes:
    """Central: a signed token allowing one enrolment of `device`, valid for `hours`."""
    if not 0 < hours <= TOKEN_HOURS:
        raise EnrolError(f"enrolment tokens live at most {TOKEN_HOURS} h, not {hours}")
    body = {
        "type": KIND,
        "device": device,
        "id": secrets.token_hex(16),
        "issued": _iso(now),
        "expires": _iso(now + datetime.timedelta(hours=hours)),
    }
    return signing.sign(json.dumps(body, sort_keys=True, separators=(",", ":")), key)


def check_token(
    raw: bytes,
    device: str,
    trusted: Mapping[str, Ed25519PublicKey],
    now: datetime.datetime,
    used: Mapping[str, str],
) -> tuple[str, datetime.datetime]:
    """Central: (token id, expiry) if `raw` allows enrolling `device` now, else EnrolError."""
    try:
        body: Any = json.loads(signing.open_envelope(raw, trusted))
    except Rejected as exc:
        raise EnrolError(f"enrolment token: {exc}") from None
    except ValueError as exc:
        raise EnrolError(f"enrolment token: body not JSON ({exc})") from None
    if not isinstance(body, dict) or body.get("type") != KIND:
        raise EnrolError("enrolment token: not an enrolment token")
    if body.get("device") != device:
        raise EnrolError(
            f"enrolment token: it is for device {body.get('device')!r}, not {device!r}"
        )
    issued = _utc(body.get("issued"), "issued")
    expires = _utc(body.get("expires"), "expires")
    if expires - issued > datetime.timedelta(hours=TOKEN_HOURS):
        raise EnrolError(f"enrolment token: lives longer than {TOKEN_HOURS} h")
    if not issued - datetime.timedelta(minutes=5) <= now < expires:
        raise EnrolError(f"enrolment token: valid {_iso(issued)} to {_iso(expires)}, not now")
    tid = body.get("id")
    if not isinstance(tid, str) or len(tid) < 16:
        raise EnrolError("enrolment token: no id")
    if tid in used:
        raise EnrolError(f"enrolment token: already used (id {tid})")
    return tid, expires


def csr_token(csr_pem: bytes) -> bytes:
    """The token a CSR carries in its challengePassword (EnrolError if none)."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
        attr = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD)
    except x509.AttributeNotFound:
        raise EnrolError("the request carries no enrolment token (challengePassword)") from None
    except ValueError as exc:
        raise EnrolError(f"not a PEM certificate request ({exc})") from None
    return attr.value


def sign_enrolment(
    csr_pem: bytes,
    device: str,
    trusted: Mapping[str, Ed25519PublicKey],
    used: dict[str, str],
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    server_ips: Sequence[certs.IPAddress] = (),
) -> bytes:
    """Central: the device's first certificate (PEM) from its token-bearing CSR (with
    `server_ips`, the CA's record of its maintenance address, it serves the page too).
    The token's id goes into `used` (id -> expiry) only once the certificate is made;
    the caller keeps `used` (durably) until the ids expire."""
    tid, expires = check_token(csr_token(csr_pem), device, trusted, now, used)
    try:
        pem = certs.sign(csr_pem, device, ca_cert, ca_key, now, server_ips=server_ips)
    except certs.CertError as exc:
        raise EnrolError(str(exc)) from None
    used[tid] = _iso(expires)
    return pem


def csr_digest(csr_pem: bytes) -> str:
    """The name of a request in the ledger and in central's answer (SHA-256, hex)."""
    return hashlib.sha256(csr_pem).hexdigest()


class Ledger:
    """Central's record of enrolments, in one JSON file (600, replaced by one rename):
    `used` token ids -> their expiry, `answers` request digest -> {pem, expires}."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.used: dict[str, str] = {}
        self.answers: dict[str, dict[str, str]] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text())
                self.used = {str(k): str(v) for k, v in data["used"].items()}
                self.answers = {str(k): dict(v) for k, v in data["answers"].items()}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise EnrolError(f"{path}: not an enrolment ledger ({exc!r})") from None

    def _save(self, now: datetime.datetime) -> None:
        def live(expires: str) -> bool:
            return _utc(expires, "ledger") > now

        self.used = {k: v for k, v in self.used.items() if live(v)}
        self.answers = {k: v for k, v in self.answers.items() if live(v["expires"])}
        body = json.dumps({"used": self.used, "answers": self.answers}, indent=1)
        _write_private(self.path, body.encode())

    def answer(
        self,
        csr_pem: bytes,
        device: str,
        trusted: Mapping[str, Ed25519PublicKey],
        ca_cert: x509.Certificate,
        ca_key: ec.EllipticCurvePrivateKey,
        now: datetime.datetime,
        server_ips: Sequence[certs.IPAddress] = (),
    ) -> bytes:
        """The certificate for this request (sign_enrolment's checks; the same request
        again gets the same certificate), recorded before it is returned; EnrolError."""
        digest = csr_digest(csr_pem)
        done = self.answers.get(digest)
        if done is not None and _utc(done["expires"], "ledger") > now:
            cert = x509.load_pem_x509_certificate(done["pem"].encode())
            cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            if len(cns) == 1 and cns[0].value == device:
                return done["pem"].encode()
        before = set(self.used)
        pem = sign_enrolment(csr_pem, device, trusted, self.used, ca_cert, ca_key, now, server_ips)
        (tid,) = set(self.used) - before
        self.answers[digest] = {"pem": pem.decode(), "expires": self.used[tid]}
        self._save(now)
        return pem


# -- the device side --------------------------------------------------------------------


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    certs._write_private(tmp, data)
    os.replace(tmp, path)


def request(directory: Path, device: str, token: bytes) -> bytes:
    """The device: its enrolment CSR (PEM). The first call makes the key (staged, 600) and
    records the CSR in DIR/enrol.json; later calls (a reboot before the answer) return
    the same CSR for the same key."""
    state = directory / STATE
    staged = directory / certs.STAGED
    if state.is_file() and staged.is_file():
        data = json.loads(state.read_text())
        if isinstance(data, dict) and data.get("token") == token.decode():
            return str(data["csr"]).encode()
    pem = certs.request(directory, device, challenge=token)
    record = {"state": "requested", "token": token.decode(), "csr": pem.decode()}
    _write_private(state, json.dumps(record).encode())
    return pem


def install(
    directory: Path,
    cert_pem: bytes,
    device: str,
    ca_cert: x509.Certificate,
    now: datetime.datetime,
    token_file: Path | None = None,
) -> Path:
    """The device: check and install central's answer (certs.install), then forget the
    token (the state file, and `token_file` when the device may remove it)."""
    # a failed install keeps the staged key: central's token is spent on it, and the
    # same request again gets the same certificate (a new key would be refused for good)
    live = certs.install(directory, cert_pem, device, ca_cert, now, keep_staged=True)
    (directory / STATE).unlink(missing_ok=True)
    if token_file is not None:
        # on a device the token is root's (640 in /etc/edge/tls): spent, central has it used
        with contextlib.suppress(FileNotFoundError, PermissionError):
            token_file.unlink()
    return live
