"""What flash.sh stages for the device (devtools/provision.py), issue 20's part.

Rules: the staged client key is never readable by others (the stage travels to the device
over SSH); certificates are valid for a year at most; the device gets the release key's
public half only, and the standby and root keys and the CA's CRL when given.
"""

from __future__ import annotations

import datetime
import io
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from devtools import provision
from edge.device import enrol
from edge.link import signing
from edge.link.config import load_device_config
from edge.link.mosquitto import Pki

from tests.board.procs import CROSSING


def test_the_stage_keeps_keys_private_and_certificates_short(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    ca_key = tmp_path / "ca.key"
    ca_key.write_bytes(
        pki.ca_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    keys = {}
    for name in ("central", "standby", "root", "release"):
        key = signing.generate()
        keys[name] = key
        (tmp_path / f"{name}.pub").write_bytes(signing.public_pem(key.public_key()))
    (tmp_path / "release.key").write_bytes(signing.private_pem(keys["release"]))
    crl = pki.crl([])
    out = tmp_path / "stage"
    args = [
        "--device-id", "hz-0412", "--site", str(CROSSING), "--target", str(tmp_path),
        "--broker", "mqtts://broker.city:8883", "--central-key", str(tmp_path / "central.pub"),
        "--central-standby-key", str(tmp_path / "standby.pub"),
        "--root-key", str(tmp_path / "root.pub"), "--release-key", str(tmp_path / "release.key"),
        "--ca-cert", str(pki.ca_cert_path), "--offline-lab-ca-key", str(ca_key),
        "--ca-crl", str(crl),
    ]  # fmt: skip
    assert provision.main(["stage", "--out", str(out), *args]) == 0
    etc = out / "etc/edge"
    assert stat.S_IMODE((etc / "tls/client.key").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((etc / "tls/client.crt").read_bytes())
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= datetime.timedelta(days=366)
    assert (etc / "release.pub").read_bytes() == (tmp_path / "release.pub").read_bytes()
    assert b"PRIVATE" not in b"".join(p.read_bytes() for p in etc.rglob("*.pub"))
    cfg = load_device_config(etc / "device.toml")
    assert cfg.standby_keys == (etc / "central-standby.pub",) and cfg.root_key == etc / "root.pub"
    assert cfg.broker.crlfile == str(etc / "tls/ca.crl")
    assert cfg.renew_dir == etc / "../../var/lib/edge/tls"


def test_a_release_key_is_required_and_checked(tmp_path: Path) -> None:
    assert provision.release_key_problems(None)[0].startswith("--release-key is required")
    pub = tmp_path / "k.pub"
    pub.write_bytes(signing.public_pem(signing.generate().public_key()))
    assert "not an Ed25519 private key" in provision.release_key_problems(str(pub))[0]


def test_an_snmp_user_is_staged_private_with_its_table_and_made_passphrases_shown_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.ntcip.settings import engine_id, load_settings

    key = signing.generate()
    (tmp_path / "release.key").write_bytes(signing.private_pem(key))
    args = [
        "--device-id", "hz-0412", "--site", str(CROSSING), "--target", str(tmp_path),
        "--release-key", str(tmp_path / "release.key"), "--snmp-user", "central",
    ]  # fmt: skip

    def stage(out: Path, stdin: str, existing: Path | None = None) -> str:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        more = ["--existing", str(existing)] if existing else []
        assert provision.main(["stage", "--out", str(out), *args, *more]) == 0
        return capsys.readouterr().out

    # given on stdin: used, never printed
    assert "central-auth-1" not in stage(tmp_path / "a", "central-auth-1\ncentral-priv-1\n")
    users = tmp_path / "a/etc/edge" / provision.SNMP_USERS
    assert stat.S_IMODE(users.stat().st_mode) == 0o600
    settings = load_settings(tmp_path / "a/etc/edge/device.toml")
    assert settings is not None and settings.port == 1161 and not settings.sets
    assert [(u.name, u.auth, u.priv) for u in settings.users] == [
        ("central", "central-auth-1", "central-priv-1")
    ]
    assert settings.engine_id == engine_id("hz-0412")
    # none given: made, printed once; the next run keeps them and prints nothing
    shown = stage(tmp_path / "b", "\n\n")
    made = json.loads((tmp_path / "b/etc/edge" / provision.SNMP_USERS).read_text())
    keys = made["users"]["central"]
    assert f"auth {keys['auth']} priv {keys['priv']}" in shown and len(keys["priv"]) >= 16
    again = stage(tmp_path / "c", "", existing=tmp_path / "b")
    assert keys["auth"] not in again and "SNMP user central (same passphrases)" in again
    assert (tmp_path / "c/etc/edge" / provision.SNMP_USERS).read_bytes() == json.dumps(
        made, indent=2
    ).encode() + b"\n"
    # a short passphrase is refused before anything is staged
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n\n"))
    assert provision.main(["check", *args]) == 2
    assert "the auth passphrase needs at least 8" in capsys.readouterr().err


def test_a_normal_flash_needs_no_fleet_ca_key(tmp_path: Path) -> None:
    """The device's first certificate comes from central's enrolment token: the stage holds
    the token (600) and no client key or certificate; the fleet CA key is refused under
    its old name and taken only as --offline-lab-ca-key."""
    pki = Pki(tmp_path / "pki")
    central, release = signing.generate(), signing.generate()
    (tmp_path / "central.pub").write_bytes(signing.public_pem(central.public_key()))
    (tmp_path / "release.key").write_bytes(signing.private_pem(release))
    now = datetime.datetime.now(datetime.UTC)
    (tmp_path / "token").write_bytes(enrol.make_token(central, "hz-0412", now))
    (tmp_path / "other").write_bytes(enrol.make_token(central, "hz-9999", now))
    base = [
        "--device-id", "hz-0412", "--site", str(CROSSING), "--target", str(tmp_path),
        "--broker", "mqtts://broker.city:8883", "--central-key", str(tmp_path / "central.pub"),
        "--release-key", str(tmp_path / "release.key"), "--ca-cert", str(pki.ca_cert_path),
    ]  # fmt: skip
    args = provision._parser().parse_args(
        ["check", *base, "--enrol-token", str(tmp_path / "token")]
    )
    assert not [p for p in provision.check(args) if "enrol" in p or "ca-key" in p]
    args = provision._parser().parse_args(
        ["check", *base, "--enrol-token", str(tmp_path / "other")]
    )
    assert any("it is for device 'hz-9999'" in p for p in provision.check(args))
    args = provision._parser().parse_args(["check", *base, "--ca-key", str(tmp_path / "token")])
    assert any(p.startswith("--ca-key is gone") for p in provision.check(args))
    out = tmp_path / "stage"
    stage = ["stage", "--out", str(out), *base, "--enrol-token", str(tmp_path / "token")]
    assert provision.main(stage) == 0
    etc = out / "etc/edge"
    assert stat.S_IMODE((etc / "tls/enrol.token").stat().st_mode) == 0o600
    assert not (etc / "tls/client.key").exists() and not (etc / "tls/client.crt").exists()
    cfg = load_device_config(etc / "device.toml")
    assert cfg.enrol_token == etc / "tls/enrol.token" and cfg.broker.certfile is None
    assert cfg.enrol_port == 8884  # the broker's bootstrap listener (flash.sh --enrol-port)


def test_the_page_certificate_names_the_maintenance_address(tmp_path: Path) -> None:
    """With --maintenance-address the device certificate also serves the page: a browser's
    checks (serverAuth, the address in its IP SANs, chain to the fleet CA) pass; without
    it the certificate stays client-only (a browser refuses it)."""
    import ipaddress

    from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

    pki = Pki(tmp_path / "pki")
    ca_key = tmp_path / "ca.key"
    ca_key.write_bytes(
        pki.ca_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "central.pub").write_bytes(signing.public_pem(signing.generate().public_key()))
    (tmp_path / "release.key").write_bytes(signing.private_pem(signing.generate()))
    base = [
        "--device-id", "hz-0412", "--site", str(CROSSING), "--target", str(tmp_path),
        "--broker", "mqtts://broker.city:8883", "--central-key", str(tmp_path / "central.pub"),
        "--release-key", str(tmp_path / "release.key"), "--ca-cert", str(pki.ca_cert_path),
        "--offline-lab-ca-key", str(ca_key),
    ]  # fmt: skip
    addr = ipaddress.ip_address("192.168.50.1")
    verifier = (
        PolicyBuilder().store(Store([pki.ca_cert])).build_server_verifier(x509.IPAddress(addr))
    )
    results = {}
    for name, extra in (("plain", []), ("page", ["--maintenance-address", str(addr)])):
        out = tmp_path / name
        assert provision.main(["stage", "--out", str(out), *base, *extra]) == 0
        cert = x509.load_pem_x509_certificate((out / "etc/edge/tls/client.crt").read_bytes())
        try:
            verifier.verify(cert, [])
            results[name] = "accepted"
        except VerificationError as exc:
            results[name] = "refused" if name == "plain" else f"refused: {exc}"
    assert results == {"plain": "refused", "page": "accepted"}
    args = provision._parser().parse_args(["check", *base, "--maintenance-address", "cabinet"])
    assert any("not an IP address" in p for p in provision.check(args))
