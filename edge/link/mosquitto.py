"""A real Mosquitto for tests, benchmarks and development: its own CA and
certificates (made with `cryptography`), a TLS listener that requires client
certificates (the CN is the MQTT username), the ACL from topics.acl_file,
persistence, and a process started and stopped here on a free loopback port.

The bootstrap broker, a second Mosquitto process beside it, lets a device that holds
only an enrolment token ask for its first certificate (edge/device/enrol.py). Its
bootstrap listener (`bootstrap_port`) shows the broker's certificate as the link does,
asks for no client certificate, is anonymous with the username the device id, and has
its own ACL (topics.bootstrap_acl_file: publish the device's own request, read its own
answer, nothing else); central's enrolment service reaches it on a mutual-TLS listener
(`bootstrap_central_port`, only `central` on edge/enrol/#). A process of its own because
Mosquitto keeps one client-id space across its listeners: an anonymous client on a
listener of the link's broker that used a device's id would take over (and drop) that
device's link session.

Never the system service: every broker here is a child process with a
generated config in a directory of its own.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.link.client import BrokerConfig
from edge.link.launch import start_listening, stop_process
from edge.link.topics import ENROL_ROOT, acl_file, bootstrap_acl_file


def mosquitto_binary() -> str | None:
    for cand in (shutil.which("mosquitto"), "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


class Pki:
    """A CA in `directory`, and certificates signed by it (ECDSA P-256)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_cert_path = self.dir / "ca.crt"
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge test CA")])
        now = datetime.datetime.now(datetime.UTC)
        self.ca_name = name
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_cert_path.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, server: bool = False, san: bool = True) -> tuple[Path, Path]:
        """(cert path, key path) for a client (CN = MQTT username) or the broker (its names
        as subject alternative names; san=False leaves them out, as a bad CA would)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server and san:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        if server:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False
            )
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False
            )
        cert = builder.sign(self.ca_key, hashes.SHA256())
        cert_path = self.dir / f"{common_name}.crt"
        key_path = self.dir / f"{common_name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key_path, key)
        return cert_path, key_path

    def crl(self, revoked: list[Path], days: float = 7.0) -> Path:
        """The CA's certificate revocation list (PEM) naming the certificates in `revoked`."""
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.ca_name)
            .last_update(now - datetime.timedelta(minutes=5))
            .next_update(now + datetime.timedelta(days=days))
        )
        for path in revoked:
            serial = x509.load_pem_x509_certificate(path.read_bytes()).serial_number
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(now - datetime.timedelta(minutes=1))
                .build()
            )
        out = self.dir / "ca.crl"
        out.write_bytes(
            builder.sign(self.ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
        )
        return out


@dataclass
class Mosquitto:
    """The link's broker process (TLS, client certificates required, the device ACL,
    persistence on) and the bootstrap broker's process beside it."""

    directory: Path
    port: int = 0
    max_connections: int = -1
    bootstrap_port: int = 0
    bootstrap_central_port: int = 0
    bootstrap_max_connections: int = 64  # enrolments are rare; a flood finds a small door
    # The fleet CA's CRL on the link listener: a revoked device certificate is refused at
    # the handshake (read at start; republish before its next update, or every device is
    # refused). None: no device revoked yet.
    crlfile: Path | None = None

    def __post_init__(self) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError(
                "mosquitto is not installed: run scripts/install-test-tools.sh (apt-get, as root)"
            )
        self.binary = binary
        self.directory.mkdir(parents=True, exist_ok=True)
        self.pki = Pki(self.directory / "pki")
        self.server_cert, self.server_key = self.pki.issue("localhost", server=True)
        self.port = self.port or free_port()
        self.bootstrap_port = self.bootstrap_port or free_port()
        self.bootstrap_central_port = self.bootstrap_central_port or free_port()
        (self.directory / "data").mkdir(exist_ok=True)
        self.acl_path = self.directory / "acl"
        self.acl_path.write_text(acl_file(("central",)))
        self.bootstrap_acl_path = self.directory / "acl-bootstrap"
        self.bootstrap_acl_path.write_text(bootstrap_acl_file())
        self.bootstrap_central_acl_path = self.directory / "acl-bootstrap-central"
        self.bootstrap_central_acl_path.write_text(
            # central reads all that reaches this broker (what tests watch for leaks)
            f"user central\ntopic readwrite {ENROL_ROOT}/#\ntopic read #\n"
        )
        self.conf_path = self.directory / "mosquitto.conf"
        self.log_path = self.directory / "mosquitto.log"
        self.conf_path.write_text(self.config())
        self.bootstrap_conf_path = self.directory / "bootstrap.conf"
        self.bootstrap_log_path = self.directory / "bootstrap.log"
        self.bootstrap_conf_path.write_text(self.bootstrap_config())
        self.proc: subprocess.Popen[bytes] | None = None
        self.bootstrap_proc: subprocess.Popen[bytes] | None = None
        self._clients: dict[str, tuple[Path, Path]] = {}

    def _tls(self) -> list[str]:
        return [
            f"cafile {self.pki.ca_cert_path}",
            f"certfile {self.server_cert}",
            f"keyfile {self.server_key}",
        ]

    def _common(self) -> list[str]:
        return [
            # each listener its own authentication and ACL
            "per_listener_settings true",
            # Stay the user that started it (as root it would switch to `mosquitto`,
            # which cannot read a private temporary directory).
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages false",
            # small messages must not wait for Nagle + delayed ACK (~40 ms a hop)
            "set_tcp_nodelay true",
        ]

    def config(self) -> str:
        d = self.directory
        return "\n".join(
            [
                "# generated by edge.link.mosquitto: the link's broker",
                *self._common(),
                "persistence true",
                f"persistence_location {d / 'data'}/",
                "autosave_interval 1",
                "max_queued_messages 1000000",
                "max_inflight_messages 0",
                "# the link: a fleet CA certificate required, its CN the username",
                f"listener {self.port} 127.0.0.1",
                f"max_connections {self.max_connections}",
                *self._tls(),
                "require_certificate true",
                *([f"crlfile {self.crlfile}"] if self.crlfile else []),
                "use_identity_as_username true",
                "allow_anonymous false",
                f"acl_file {self.acl_path}",
                "",
            ]
        )

    def bootstrap_config(self) -> str:
        """The bootstrap broker: requests are live (no persistence); a client id here
        can never meet a device's link session."""
        return "\n".join(
            [
                "# generated by edge.link.mosquitto: the bootstrap broker (enrolment)",
                *self._common(),
                "persistence false",
                "# devices: a device's first certificate (its token, no client certificate)",
                f"listener {self.bootstrap_port} 127.0.0.1",
                f"max_connections {self.bootstrap_max_connections}",
                *self._tls(),
                "require_certificate false",
                "allow_anonymous true",
                f"acl_file {self.bootstrap_acl_path}",
                "max_qos 1",
                "# central's enrolment service: a fleet CA certificate, CN central",
                f"listener {self.bootstrap_central_port} 127.0.0.1",
                *self._tls(),
                "require_certificate true",
                "use_identity_as_username true",
                "allow_anonymous false",
                f"acl_file {self.bootstrap_central_acl_path}",
                "",
            ]
        )

    def client_config(self, name: str, backoff_max_s: float = 2.0) -> BrokerConfig:
        """Broker settings for a client whose certificate CN is `name`."""
        if name not in self._clients:
            self._clients[name] = self.pki.issue(name)
        cert, key = self._clients[name]
        return BrokerConfig(
            "127.0.0.1",
            self.port,
            str(self.pki.ca_cert_path),
            str(cert),
            str(key),
            backoff_min_s=0.2,
            backoff_max_s=backoff_max_s,
        )

    def bootstrap_client_config(self, name: str = "central") -> BrokerConfig:
        """Central's settings for the bootstrap broker's enrolment listener."""
        return replace(self.client_config(name), port=self.bootstrap_central_port)

    def start(self, timeout_s: float = 10.0) -> None:
        argv = [self.binary, "-c", str(self.conf_path)]
        self.proc = start_listening(argv, self.log_path, self.port, "mosquitto", timeout_s)
        if self.bootstrap_proc is None:
            self.bootstrap_proc = start_listening(
                [self.binary, "-c", str(self.bootstrap_conf_path)],
                self.bootstrap_log_path,
                (self.bootstrap_port, self.bootstrap_central_port),
                "mosquitto (bootstrap)",
                timeout_s,
            )

    def revoke(self, names: list[str]) -> None:
        """Revoke these clients' certificates at the broker: the fleet CA's CRL naming
        them becomes the link listener's `crlfile`, and the broker restarts to read it."""
        self.crlfile = self.pki.crl([self._clients[n][0] for n in names])
        self.conf_path.write_text(self.config())
        if self.proc is not None:
            self.stop()
            self.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """The link's broker: SIGTERM (Mosquitto saves its persistence file), SIGKILL if
        it hangs. The bootstrap broker goes on (see close)."""
        proc, self.proc = self.proc, None
        stop_process(proc, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Both processes."""
        self.stop(timeout_s)
        proc, self.bootstrap_proc = self.bootstrap_proc, None
        stop_process(proc, timeout_s)

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
