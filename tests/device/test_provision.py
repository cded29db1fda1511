"""What flash.sh stages for the device (devtools/provision.py), issue 20's part.

Rules: the staged client key is never readable by others (the stage travels to the device
over SSH); certificates are valid for a year at most; the device gets the release key's
public half only, and the standby and root keys and the CA's CRL when given.
"""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from devtools import provision
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
        "--ca-cert", str(pki.ca_cert_path), "--ca-key", str(ca_key), "--ca-crl", str(crl),
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
