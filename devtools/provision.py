"""The Python half of flash.sh: check every input, then stage the device's files.

`check` validates everything before anything is touched and prints every
problem at once, each naming the option and what is wrong (exit 2). `stage`
writes the files the device gets into a staging tree (etc/edge/...,
etc/systemd/system/...) that flash.sh then compares file by file with the
target, so a second run with the same inputs changes nothing. Secrets that
are salted or random when made (the technician's password hash, the client
key and certificate) are taken over from the target when they still match
the inputs, for the same reason.

    python -m devtools.provision check --device-id ID --site SITE ... [--target DIR]
    python -m devtools.provision stage --out DIR --existing TARGET_ROOT ... < password

With `--snmp-user NAME` the NTCIP agent's SNMPv3 user is staged (etc/edge/snmp-users.json,
600 in the stage, 640 root:edge on the device) with device.toml's `[snmp]` table: its
auth and priv passphrases are the next two lines of stdin (after the technician's
password); empty lines make random ones, printed once. Without passphrases a user the
target already has is kept as it is.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from edge import credentials
from edge.link.topics import DEVICE_ID_RE

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
CERT_DAYS = 365  # a year at most (issue 20); renewed over the link within 30 days of expiry
RENEW_BEFORE_DAYS = 30
SSH_RE = re.compile(r"^[a-z_][a-z0-9_.-]*@[A-Za-z0-9.:_-]+$")
ETC = "etc/edge"
SNMP_USERS = "snmp-users.json"
MIN_SNMP_PASSPHRASE = 8  # as edge/ntcip/settings.py's MIN_SECRET
# The agent's [snmp] table: all addresses (central polls it), an unprivileged port (the
# service has no capabilities; map 161 to it in the cabinet's router), SETs off.
SNMP_TABLE = ["", "[snmp]", 'host = "0.0.0.0"', "port = 1161", f'users = "{SNMP_USERS}"']


@dataclass(frozen=True, slots=True)
class Broker:
    host: str
    port: int
    tls: bool


def parse_broker(url: str) -> Broker:
    """mqtts://host[:port] (TLS, client certificate) or mqtt://host[:port] (plain)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtts", "mqtt"):
        raise ValueError(f"--broker {url}: use mqtts://HOST[:PORT] (or mqtt:// without TLS)")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"--broker {url}: the port is not a number in 1..65535") from None
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(
            f"--broker {url}: expected only a host and a port, e.g. mqtts://broker:8883"
        )
    tls = parts.scheme == "mqtts"
    return Broker(parts.hostname, port or (8883 if tls else 1883), tls)


def _load_cert(path: str, what: str, problems: list[str]) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        problems.append(f"{what} {path}: not a readable PEM certificate ({exc})")
        return None


def _load_key(path: str, what: str, problems: list[str]) -> CertificateIssuerPrivateKeyTypes | None:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        problems.append(f"{what} {path}: not a readable unencrypted PEM private key ({exc})")
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        problems.append(f"{what} {path}: expected an EC (P-256) key")
        return None
    return key


def _pub_bytes(obj: x509.Certificate | CertificateIssuerPrivateKeyTypes) -> bytes:
    pub = obj.public_key()
    return pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception):
        return False
    return True


def cert_problems(
    cert: x509.Certificate,
    key: CertificateIssuerPrivateKeyTypes | None,
    ca: x509.Certificate,
    device: str,
    now: datetime.datetime,
    server_ips: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address] = (),
) -> list[str]:
    """Why this client certificate cannot be the device's (empty: it can)."""
    out = []
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or cns[0].value != device:
        out.append(f"its CN is {cns[0].value if cns else None!r}, not the device id {device!r}")
    if key is not None and _pub_bytes(cert) != _pub_bytes(key):
        out.append("it does not belong to the given key")
    if not _signed_by(cert, ca):
        out.append("it is not signed by the --ca-cert CA")
    if cert.not_valid_after_utc < now + datetime.timedelta(days=RENEW_BEFORE_DAYS):
        out.append(f"it expires on {cert.not_valid_after_utc:%Y-%m-%d}")
    if server_ips:
        try:
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            have = set(sans.get_values_for_type(x509.IPAddress))
        except x509.ExtensionNotFound:
            have, eku = set(), x509.ExtendedKeyUsage([])
        if ExtendedKeyUsageOID.SERVER_AUTH not in eku or not set(server_ips) <= have:
            out.append("it does not serve the page on --maintenance-address (serverAuth, IP)")
    return out


def issue_client_cert(
    ca_cert: x509.Certificate,
    ca_key: CertificateIssuerPrivateKeyTypes,
    device: str,
    server_ips: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address] = (),
) -> tuple[bytes, bytes]:
    """An offline lab's new P-256 key and certificate with CN = device id (PEM cert, PEM
    key), signed as central signs one (edge/device/certs.sign): a year, clientAuth, and
    with `server_ips` serverAuth and those IP SANs (the page on the maintenance port)."""
    from edge.device import certs

    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the fleet CA key must be an EC (P-256) key")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device)]))
        .sign(key, hashes.SHA256())
    )
    csr_pem = csr.public_bytes(serialization.Encoding.PEM)
    cert_pem = certs.sign(csr_pem, device, ca_cert, ca_key, now, server_ips=server_ips)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


# -- check ------------------------------------------------------------------------------


def check(args: argparse.Namespace) -> list[str]:
    """Every problem with the inputs, each naming the option at fault."""
    from edge.board.config import BoardConfigError, board_config
    from edge.config import ConfigError, load_config
    from edge.link.signing import load_public

    problems: list[str] = []
    if not DEVICE_ID_RE.match(args.device_id or ""):
        problems.append(
            f"--device-id {args.device_id!r}: use 1-64 of A-Z a-z 0-9 '-' '_' (it names the "
            "device's MQTT topics and certificate)"
        )
    try:
        config = load_config(args.site)
        board_config(config.site)
    except ConfigError as exc:
        problems += [f"--site {args.site}: {p}" for p in exc.problems]
    except BoardConfigError as exc:
        problems.append(f"--site {args.site}: the IO board cannot take it: {exc}")
    except OSError as exc:
        problems.append(f"--site {args.site}: cannot read it: {exc}")
    if args.central_key:
        try:
            load_public(args.central_key)
        except (OSError, ValueError) as exc:
            problems.append(f"--central-key {args.central_key}: not an Ed25519 public key ({exc})")
    for opt, path in (
        ("--central-standby-key", args.central_standby_key),
        ("--root-key", args.root_key),
    ):
        if not path:
            continue
        if not args.central_key:
            problems.append(f"{opt} needs --central-key (it is the key rollovers move from)")
        try:
            load_public(path)
        except (OSError, ValueError) as exc:
            problems.append(f"{opt} {path}: not an Ed25519 public key ({exc})")
    if args.ca_crl:
        try:
            x509.load_pem_x509_crl(Path(args.ca_crl).read_bytes())
        except (OSError, ValueError) as exc:
            problems.append(
                f"--ca-crl {args.ca_crl}: not a PEM certificate revocation list ({exc})"
            )
    problems += release_key_problems(args.release_key)
    if args.hashes is not None and not Path(args.hashes).is_file():
        problems.append(
            f"no pinned wheel hashes {args.hashes}: on a computer with internet run "
            "scripts/wheelhouse.sh --arch ARCH --hashes, review the file and commit it"
        )
    broker = None
    if args.broker:
        try:
            broker = parse_broker(args.broker)
        except ValueError as exc:
            problems.append(str(exc))
        if not args.central_key:
            problems.append(
                "--broker needs --central-key (plans from central are verified with it)"
            )
    _check_tls(args, broker, problems)
    if args.technician:
        if not credentials.USER_RE.fullmatch(args.technician):
            problems.append(
                f"--technician {args.technician!r}: use 1-32 of a-z 0-9 '_' '.' '-', "
                "starting with a letter"
            )
        pw_file = args.technician_password_file
        if pw_file and not Path(pw_file).is_file():
            problems.append(f"--technician-password-file {pw_file}: no such file")
    elif args.technician_password_file:
        problems.append("--technician-password-file needs --technician USER")
    if args.snmp_user and not credentials.USER_RE.fullmatch(args.snmp_user):
        problems.append(
            f"--snmp-user {args.snmp_user!r}: use 1-32 of a-z 0-9 '_' '.' '-', "
            "starting with a letter"
        )
    if args.target:
        problems += target_problems(Path(args.target))
    if args.ssh and not SSH_RE.match(args.ssh):
        problems.append(f"--ssh {args.ssh!r}: expected USER@HOST")
    if bool(args.target) == bool(args.ssh):
        problems.append("give exactly one of --target ROOTFS_DIR and --ssh USER@HOST")
    if args.board and not Path(args.board).exists():
        problems.append(f"--board {args.board}: no such serial port (is the IO board plugged in?)")
    if args.wheelhouse is not None:
        problems += wheelhouse_problems(Path(args.wheelhouse), Path(args.requirements))
    return problems


def release_key_problems(path: str | None) -> list[str]:
    """The release key signs the release flash.sh builds; the device trusts its public half."""
    from edge.link.signing import load_private

    if not path:
        return [
            "--release-key is required: the Ed25519 key that signs releases (the device "
            "refuses unsigned ones); make one with `edge central keygen` and keep it offline"
        ]
    try:
        load_private(path)
    except (OSError, ValueError, TypeError) as exc:
        return [f"--release-key {path}: not an Ed25519 private key ({exc})"]
    return []


def enrol_token_problems(path: str, device: str, central_key: str | None) -> list[str]:
    """The enrolment token central made for this device: signed with --central-key, for
    this device id, not expired (edge/device/enrol.py); central checks it again."""
    from edge.device import enrol
    from edge.link.signing import key_id, load_public

    if not central_key:
        return [f"--enrol-token {path} needs --central-key (the token is signed with it)"]
    try:
        raw = Path(path).read_bytes()
        pub = load_public(central_key)
    except (OSError, ValueError) as exc:
        return [f"--enrol-token {path}: cannot read it ({exc})"]
    now = datetime.datetime.now(datetime.UTC)
    try:
        enrol.check_token(raw, device, {key_id(pub): pub}, now, {})
    except enrol.EnrolError as exc:
        return [
            f"--enrol-token {path}: {exc}; ask central for a new one (edge central enrol-token)"
        ]
    return []


def _check_tls(args: argparse.Namespace, broker: Broker | None, problems: list[str]) -> None:
    if args.old_ca_key:
        problems.append(
            "--ca-key is gone: the fleet CA key stays with central. Give --enrol-token FILE "
            "(central's single-use token for this device; the device makes its own key) or, "
            "in an offline lab without central, --offline-lab-ca-key FILE"
        )
    given = [
        o
        for o in ("ca_cert", "ca_key", "client_cert", "client_key", "enrol_token")
        if getattr(args, o)
    ]
    if broker is None or not broker.tls:
        if given:
            opts = ", ".join("--" + o.replace("_", "-") for o in given)
            problems.append(f"{opts}: only used with --broker mqtts://...")
        return
    ways = [o for o in ("ca_key", "client_cert", "enrol_token") if getattr(args, o)]
    if len(ways) > 1:
        opts = ", ".join(
            "--" + o.replace("_", "-").replace("ca-key", "offline-lab-ca-key") for o in ways
        )
        problems.append(f"{opts}: give one way to the device's certificate")
        return
    if not args.ca_cert:
        problems.append(
            "--broker mqtts://... needs --ca-cert (the fleet CA the broker's cert chains to)"
        )
        return
    ca = _load_cert(args.ca_cert, "--ca-cert", problems)
    now = datetime.datetime.now(datetime.UTC)
    if args.client_cert or args.client_key:
        if not (args.client_cert and args.client_key):
            problems.append("--client-cert and --client-key go together")
            return
        cert = _load_cert(args.client_cert, "--client-cert", problems)
        key = _load_key(args.client_key, "--client-key", problems)
        if cert is not None and ca is not None and key is not None:
            problems += [
                f"--client-cert {args.client_cert}: {p}"
                for p in cert_problems(cert, key, ca, args.device_id, now)
            ]
    if args.maintenance_address:
        try:
            ipaddress.ip_address(args.maintenance_address)
        except ValueError:
            problems.append(
                f"--maintenance-address {args.maintenance_address!r}: not an IP address"
            )
        if not args.ca_key:
            problems.append(
                "--maintenance-address goes with --offline-lab-ca-key (with --enrol-token "
                "central adds it from its own record of the device)"
            )
    if args.enrol_token:
        problems += enrol_token_problems(args.enrol_token, args.device_id, args.central_key)
        if not 1 <= args.enrol_port <= 65535:
            problems.append(f"--enrol-port {args.enrol_port}: a port is 1-65535")
    elif args.client_cert or args.client_key:
        pass
    elif args.ca_key:
        key = _load_key(args.ca_key, "--offline-lab-ca-key", problems)
        if key is not None and ca is not None and _pub_bytes(ca) != _pub_bytes(key):
            problems.append(
                f"--offline-lab-ca-key {args.ca_key}: not the key of --ca-cert {args.ca_cert}"
            )
    else:
        problems.append(
            "--broker mqtts://... needs the device's certificate: --enrol-token FILE (the "
            "device makes its key and enrols), or --client-cert and --client-key"
        )


def target_problems(root: Path) -> list[str]:
    """Is `root` a mounted Raspberry Pi OS (Debian) root filesystem we may write?"""
    if not root.is_dir():
        return [f"--target {root}: no such directory (is the SD card's root partition mounted?)"]
    if root.resolve() == Path("/"):
        return ["--target /: that is this computer's own root; use --ssh for a running Pi"]
    out = []
    for f in ("etc/passwd", "etc/group"):
        if not (root / f).is_file():
            out.append(f"--target {root}: no {f}: not a root filesystem (the boot partition?)")
    if (root / "etc/group").is_file():
        groups = {ln.split(":")[0] for ln in (root / "etc/group").read_text().splitlines()}
        for g in ("dialout", "video"):
            if g not in groups:
                out.append(f"--target {root}: no group {g!r} in etc/group (not Raspberry Pi OS?)")
    if not target_python(root):
        out.append(f"--target {root}: no Python 3.11+ (usr/lib/python3.N) in the image")
    return out


def target_python(root: Path) -> str | None:
    """The image's Python version ("3.11"), from usr/lib/python3.N."""
    found = []
    for p in (root / "usr/lib").glob("python3.*"):
        m = re.fullmatch(r"python3\.(\d+)", p.name)
        if m and int(m.group(1)) >= 11:
            found.append(int(m.group(1)))
    return f"3.{max(found)}" if found else None


def wheelhouse_problems(wheelhouse: Path, requirements: Path) -> list[str]:
    if not wheelhouse.is_dir():
        return [
            f"--wheelhouse {wheelhouse}: no such directory; make it on a computer with internet: "
            "scripts/wheelhouse.sh --arch aarch64"
        ]
    have = {
        re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower() + "==" + w.name.split("-")[1]
        for w in wheelhouse.glob("*.whl")
    }
    missing = [r for r in pinned(requirements) if r.lower() not in have]
    if missing:
        return [
            f"--wheelhouse {wheelhouse}: no wheel for {', '.join(missing)} "
            "(re-run scripts/wheelhouse.sh for the device's architecture)"
        ]
    return []


def pinned(requirements: Path) -> list[str]:
    return [
        ln.split("#")[0].strip()
        for ln in requirements.read_text().splitlines()
        if ln.split("#")[0].strip()
    ]


# -- stage --------------------------------------------------------------------------------


def stage(
    args: argparse.Namespace, password: str | None, snmp: tuple[str, str] = ("", "")
) -> list[str]:
    """Write the device's files under args.out; returns what was taken over from the target."""
    out = Path(args.out)
    existing = Path(args.existing) if args.existing else None
    etc = out / ETC
    (etc / "tls").mkdir(parents=True, exist_ok=True)
    kept: list[str] = []
    shutil.copyfile(args.site, etc / "site.toml")
    broker = parse_broker(args.broker) if args.broker else None
    lines = [
        "# Written by flash.sh: this device's identity and its link to central.",
        "[device]",
        f'id = "{args.device_id}"',
        'site = "site.toml"',
        'store = "../../var/lib/edge/edge.db"',
    ]
    if args.central_key:
        shutil.copyfile(args.central_key, etc / "central.pub")
        lines.append('trusted_keys = ["central.pub"]')
        if args.central_standby_key:
            shutil.copyfile(args.central_standby_key, etc / "central-standby.pub")
            lines.append('standby_keys = ["central-standby.pub"]')
        if args.root_key:
            shutil.copyfile(args.root_key, etc / "root.pub")
            lines.append('root_key = "root.pub"')
    if args.release_key:
        from edge.link.signing import load_private, public_pem

        release_pub = public_pem(load_private(args.release_key).public_key())
        (etc / "release.pub").write_bytes(release_pub)
    if broker is not None:
        lines += ["", "[broker]", f'host = "{broker.host}"', f"port = {broker.port}"]
        if broker.tls:
            lines.append('cafile = "tls/ca.crt"')
            if not args.enrol_token:
                lines += ['certfile = "tls/client.crt"', 'keyfile = "tls/client.key"']
            # the key the device makes itself and the certificate central signs for it
            lines.append('renew_dir = "../../var/lib/edge/tls"')
            shutil.copyfile(args.ca_cert, etc / "tls/ca.crt")
            if args.ca_crl:
                shutil.copyfile(args.ca_crl, etc / "tls/ca.crl")
                lines.append('crlfile = "tls/ca.crl"')
            if args.enrol_token:
                # no key or certificate from here: the device makes its key at first boot
                # and enrols with the token (edge/device/enrol.py)
                _write_secret(etc / "tls/enrol.token", Path(args.enrol_token).read_bytes())
                lines += ['enrol_token = "tls/enrol.token"', f"enrol_port = {args.enrol_port}"]
            else:
                kept += _stage_client_cert(args, etc, existing)
    if args.snmp_user:
        lines += SNMP_TABLE
        kept += _stage_snmp_user(args.snmp_user, snmp, etc, existing)
    (etc / "device.toml").write_text("\n".join(lines) + "\n")
    if args.technician and password is not None:
        kept += _stage_technician(args.technician, password, etc, existing)
    units = out / "etc/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    for name in ("edge.service", "edge-update.service"):
        text = (DEPLOY / name).read_text().replace("@PORT@", args.device_port)
        (units / name).write_text(text)
    return kept


def _stage_client_cert(args: argparse.Namespace, etc: Path, existing: Path | None) -> list[str]:
    if args.client_cert:
        shutil.copyfile(args.client_cert, etc / "tls/client.crt")
        _write_secret(etc / "tls/client.key", Path(args.client_key).read_bytes())
        return []
    problems: list[str] = []
    ca = _load_cert(args.ca_cert, "--ca-cert", problems)
    ca_key = _load_key(args.ca_key, "--offline-lab-ca-key", problems)
    if ca is None or ca_key is None:
        raise ValueError("; ".join(problems))
    if existing is not None:
        old_cert = existing / ETC / "tls/client.crt"
        old_key = existing / ETC / "tls/client.key"
        if old_cert.is_file() and old_key.is_file():
            quiet: list[str] = []
            cert = _load_cert(str(old_cert), "", quiet)
            key = _load_key(str(old_key), "", quiet)
            now = datetime.datetime.now(datetime.UTC)
            ips = maintenance_ips(args)
            if (
                cert
                and key
                and not quiet
                and not cert_problems(cert, key, ca, args.device_id, now, ips)
            ):
                shutil.copyfile(old_cert, etc / "tls/client.crt")
                _write_secret(etc / "tls/client.key", old_key.read_bytes())
                return ["client certificate (still valid for this device and CA)"]
    cert_pem, key_pem = issue_client_cert(ca, ca_key, args.device_id, maintenance_ips(args))
    (etc / "tls/client.crt").write_bytes(cert_pem)
    _write_secret(etc / "tls/client.key", key_pem)
    return []


def maintenance_ips(
    args: argparse.Namespace,
) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(args.maintenance_address)] if args.maintenance_address else []


def _write_secret(path: Path, data: bytes) -> None:
    """A private key in the stage: 600 from its creation (the stage travels to the device)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _stage_snmp_user(
    user: str, given: tuple[str, str], etc: Path, existing: Path | None
) -> list[str]:
    """The SNMPv3 user's file: the passphrases given, else the target's for this user,
    else new random ones (printed once: central needs them)."""
    old = existing / ETC / SNMP_USERS if existing is not None else None
    if not any(given) and old is not None and old.is_file():
        try:
            users = json.loads(old.read_text()).get("users", {})
        except (OSError, ValueError, AttributeError):
            users = {}
        if isinstance(users, dict) and list(users) == [user]:
            _write_secret(etc / SNMP_USERS, old.read_bytes())
            return [f"SNMP user {user} (same passphrases)"]
    auth, priv = (g or secrets.token_urlsafe(18) for g in given)
    data = {"users": {user: {"auth": auth, "priv": priv}}}
    _write_secret(etc / SNMP_USERS, (json.dumps(data, indent=2) + "\n").encode())
    made = [f"{k} {v}" for k, v, g in (("auth", auth, given[0]), ("priv", priv, given[1])) if not g]
    if made:
        print(f"SNMP user {user}: {' '.join(made)} (made now, shown once: give them to central)")
    return []


def _stage_technician(user: str, password: str, etc: Path, existing: Path | None) -> list[str]:
    target = etc / "technicians.json"
    old = existing / ETC / "technicians.json" if existing is not None else None
    if old is not None and old.is_file():
        shutil.copyfile(old, target)
        if credentials.check(target, user, password):
            return [f"technician {user} (same password)"]
    credentials.set_user(target, user, password)
    return []


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m devtools.provision")
    p.add_argument("command", choices=["check", "stage"])
    p.add_argument("--device-id", required=True)
    p.add_argument("--site", required=True)
    p.add_argument("--target")
    p.add_argument("--ssh")
    p.add_argument("--board")
    p.add_argument("--broker")
    p.add_argument("--central-key")
    p.add_argument("--release-key")
    p.add_argument("--central-standby-key")
    p.add_argument("--root-key")
    p.add_argument("--ca-crl")
    p.add_argument("--hashes")
    p.add_argument("--ca-cert")
    # the fleet CA's private key on this computer: an offline lab only (a normal flash
    # gives --enrol-token and the key stays with central); --ca-key is refused by name
    p.add_argument("--offline-lab-ca-key", dest="ca_key")
    p.add_argument("--ca-key", dest="old_ca_key", help=argparse.SUPPRESS)
    p.add_argument("--enrol-token")
    # the broker's bootstrap listener the token-only device enrols through
    p.add_argument("--enrol-port", type=int, default=8884)
    # the cabinet maintenance port's address: the page's certificate names it (serverAuth)
    p.add_argument("--maintenance-address")
    p.add_argument("--client-cert")
    p.add_argument("--client-key")
    p.add_argument("--technician")
    p.add_argument("--technician-password-file")
    p.add_argument("--snmp-user")
    p.add_argument("--device-port", default="/dev/serial0")
    p.add_argument("--wheelhouse")
    p.add_argument("--requirements", default=str(DEPLOY / "requirements-device.txt"))
    p.add_argument("--out")
    p.add_argument("--existing")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # flash.sh hands the technician's password on stdin (never on the command line).
    password = sys.stdin.readline().rstrip("\n") if args.technician else None
    # then the SNMP user's auth and priv passphrases (empty: made here)
    snmp = ("", "")
    if args.snmp_user:
        snmp = (sys.stdin.readline().rstrip("\n"), sys.stdin.readline().rstrip("\n"))
    if args.command == "check":
        problems = check(args)
        if password is not None and len(password) < credentials.MIN_PASSWORD:
            problems.append(
                f"--technician {args.technician}: the password needs at least "
                f"{credentials.MIN_PASSWORD} characters"
            )
        for what, phrase in zip(("auth", "priv"), snmp, strict=True):
            if phrase and len(phrase) < MIN_SNMP_PASSPHRASE:
                problems.append(
                    f"--snmp-user {args.snmp_user}: the {what} passphrase needs at least "
                    f"{MIN_SNMP_PASSPHRASE} characters (RFC 3414)"
                )
        for problem in problems:
            print(f"flash.sh: {problem}", file=sys.stderr)
        return 2 if problems else 0
    try:
        kept = stage(args, password, snmp)
    except (OSError, ValueError, credentials.CredentialError) as exc:
        print(f"flash.sh: staging failed: {exc}", file=sys.stderr)
        return 1
    for what in kept:
        print(f"kept from the device: {what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
