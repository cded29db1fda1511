"""The device's TLS key and certificate: made on the device, renewed before expiry.

Rules it keeps:
- The private key is made where it is used and never leaves it: the device makes a
  P-256 key and a certificate signing request (CSR); only the CSR travels.
- The CA side (central, holding the fleet CA) signs a CSR only for the identity asked
  (CN = the device id, which the broker's ACL ties to the MQTT username), as a client
  certificate (no CA rights), valid for at most CERT_DAYS (365); serverAuth and IP
  SANs (the page on the maintenance port) only from the CA's own record, never from
  what the request asks.
- A renewal keeps each certificate's purpose: the CA signs serverAuth and the IP SANs
  from its record of the device's maintenance address (`edge central enrol
  --maintenance FILE`, the same as flash.sh --maintenance-address), so the renewed
  certificate still serves the page. A renewal that lacks a purpose the live pair has
  is still installed (the link needs it) but logged, and the page keeps the latest
  pair that serves (`page_pair`) until the CA's record is put right.
- A certificate within RENEW_DAYS (30) of its expiry is due for renewal.
- The staged key is 600 from its creation and never replaces the live one until a
  certificate for it is checked (matches the key, issued by the fleet CA, names the
  device, valid now); then key and certificate replace the live pair with one rename
  (one PEM file holding both). A failed install removes the staged key.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AttributeOID, ExtendedKeyUsageOID, NameOID

CERT_DAYS = 365
RENEW_DAYS = 30
STAGED = "client.key.staged"
LIVE = "client.pem"  # certificate and key in one file: replaced by one rename


class CertError(ValueError):
    """A request or certificate refused; the text says why."""


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def due(cert: x509.Certificate, now: datetime.datetime) -> bool:
    """Is it time to renew (within RENEW_DAYS of expiry, or expired)?"""
    return cert.not_valid_after_utc - now <= datetime.timedelta(days=RENEW_DAYS)


def serves(cert: x509.Certificate) -> frozenset[str]:
    """What a certificate serves the page as: its IP and DNS SANs, if it has serverAuth
    (empty: a client certificate only)."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return frozenset()
    if ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        return frozenset()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return frozenset({"serverAuth"})
    names = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return frozenset({"serverAuth", *names, *san.get_values_for_type(x509.DNSName)})


def _read(path: str | Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError):
        return None


def page_pair(
    provisioned: tuple[str, str | None], renew_dir: Path, now: datetime.datetime | None = None
) -> tuple[str, str | None]:
    """The page's (certificate, key) files: of the provisioned pair and the renewed one
    (renew_dir/client.pem, key inside), the latest-expiring valid one that serves
    (serverAuth); if none serves, the latest-expiring (the link's choice)."""
    now = now or datetime.datetime.now(datetime.UTC)
    pairs = [provisioned]
    if (renew_dir / LIVE).is_file():
        pairs.append((str(renew_dir / LIVE), None))
    found = [(c, pair) for pair in pairs if (c := _read(pair[0])) is not None]
    if not found:
        return provisioned
    serving = [(c, p) for c, p in found if serves(c) and now < c.not_valid_after_utc]
    return max(serving or found, key=lambda cp: cp[0].not_valid_after_utc)[1]


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def load_maintenance(path: Path) -> dict[str, tuple[IPAddress, ...]]:
    """The CA's record of the devices' maintenance addresses (TOML: `DEVICE = "ADDRESS"`
    or a list of them): what their certificates serve the page on, at enrolment and at
    every renewal. ValueError naming the file and the entry."""
    import tomllib

    from edge.link.topics import DEVICE_ID_RE

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    out: dict[str, tuple[IPAddress, ...]] = {}
    for device, value in raw.items():
        if not DEVICE_ID_RE.fullmatch(device):
            raise ValueError(f"{path}: {device!r} is not a device id")
        values = value if isinstance(value, list) else [value]
        try:
            out[device] = tuple(ipaddress.ip_address(v) for v in values if isinstance(v, str))
        except ValueError:
            raise ValueError(f"{path}: {device}: {value!r} is not an IP address") from None
        if not values or len(out[device]) != len(values):
            raise ValueError(f"{path}: {device}: give an address or a list of them, not {value!r}")
    return out


def _write_private(path: Path, data: bytes) -> None:
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def request(directory: Path, device: str, challenge: bytes | None = None) -> bytes:
    """Make a new key (staged, 600) and return the CSR (PEM) for it; `challenge` (an
    enrolment token, edge/device/enrol.py) goes in its challengePassword, under the
    key's signature."""
    key = ec.generate_private_key(ec.SECP256R1())
    _write_private(
        directory / STAGED,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device)])
    )
    if challenge is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def sign(
    csr_pem: bytes,
    device: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    now: datetime.datetime,
    days: int = CERT_DAYS,
    server_ips: Sequence[IPAddress] = (),
) -> bytes:
    """The CA side: a client certificate for `device` from its CSR (PEM), or CertError.
    With `server_ips` (the CA's own record of the device's maintenance address, never
    taken from the request) it also serves the page: serverAuth and those IP SANs."""
    if days > CERT_DAYS:
        raise CertError(f"certificates are valid for at most {CERT_DAYS} days, not {days}")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise CertError(f"not a PEM certificate request ({exc})") from None
    if not csr.is_signature_valid:
        raise CertError("the request's signature does not verify (not made with its key)")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1 or cns[0].value != device:
        raise CertError(f"the request names {csr.subject.rfc4514_string()!r}, not CN={device}")
    pub = csr.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey) or pub.curve.name != "secp256r1":
        raise CertError("the request's key is not an EC P-256 key")
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server_ips:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device)]))
        .issuer_name(ca_cert.subject)
        .public_key(pub)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), False)
        # key identifiers: what browsers' and RFC 5280 path building expect
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(pub), False)
    )
    if server_ips:
        sans = x509.SubjectAlternativeName([x509.IPAddress(ip) for ip in server_ips])
        builder = builder.add_extension(sans, False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM)


def install(
    directory: Path,
    cert_pem: bytes,
    device: str,
    ca_cert: x509.Certificate,
    now: datetime.datetime,
    keep_staged: bool = False,
) -> Path:
    """Check the certificate against the staged key and the CA, then make the pair live
    (directory/client.pem, one rename). On any problem the staged key is removed, unless
    `keep_staged` (enrolment: its token is spent on this key, so the key is kept for the
    same request to be answered again, e.g. once a clock behind the time is set)."""
    staged = directory / STAGED
    try:
        key = serialization.load_pem_private_key(staged.read_bytes(), password=None)
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError as exc:
            raise CertError(f"not a PEM certificate ({exc})") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise CertError("the staged key is not an EC key")
        cert_pub = cert.public_key()
        if not isinstance(cert_pub, ec.EllipticCurvePublicKey) or _spki(cert_pub) != _spki(
            key.public_key()
        ):
            raise CertError("the certificate is not for the staged key")
        try:
            cert.verify_directly_issued_by(ca_cert)
        except (ValueError, TypeError, Exception):
            raise CertError("the certificate is not issued by the fleet CA") from None
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(cns) != 1 or cns[0].value != device:
            raise CertError(f"the certificate names {cert.subject.rfc4514_string()!r}")
        if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
            raise CertError("the certificate is not valid now")
        if cert.not_valid_after_utc - cert.not_valid_before_utc > datetime.timedelta(
            days=CERT_DAYS + 1
        ):
            raise CertError(f"the certificate is valid for more than {CERT_DAYS} days")
        tmp = directory / (LIVE + ".tmp")
        _write_private(tmp, cert_pem + staged.read_bytes())
        os.replace(tmp, directory / LIVE)
        staged.unlink()
        return directory / LIVE
    except BaseException:
        if not keep_staged:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
        raise
