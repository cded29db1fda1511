"""A device's first certificate from an enrolment token (edge/device/enrol.py; issue 20).

Rules: central's token is signed, device-bound, at most 24 h long and used once; the
device makes its own key (600) and a CSR carrying the token; central signs only such a
request, for that device, a year at most; a reboot before the answer reuses the same
key and CSR; the token and state go once a certificate is installed.
"""

from __future__ import annotations

import datetime
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edge.device import certs, enrol
from edge.link import signing
from edge.link.mosquitto import Pki

NOW = datetime.datetime.now(datetime.UTC)
DEV = "hz-0412"
HOUR = datetime.timedelta(hours=1)


def test_enrolment_round_trip_uses_a_token_once(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    central = Ed25519PrivateKey.generate()
    trusted = {signing.key_id(central.public_key()): central.public_key()}
    token = enrol.make_token(central, DEV, NOW)
    token_file = tmp_path / "enrol.token"
    token_file.write_bytes(token)
    tls = tmp_path / "tls"
    tls.mkdir()
    csr = enrol.request(tls, DEV, token)
    assert stat.S_IMODE((tls / certs.STAGED).stat().st_mode) == 0o600
    assert stat.S_IMODE((tls / enrol.STATE).stat().st_mode) == 0o600
    key_before = (tls / certs.STAGED).read_bytes()
    assert enrol.request(tls, DEV, token) == csr  # a reboot before the answer: same key
    assert (tls / certs.STAGED).read_bytes() == key_before
    used: dict[str, str] = {}
    pem = enrol.sign_enrolment(csr, DEV, trusted, used, pki.ca_cert, pki.ca_key, NOW)
    assert len(used) == 1
    with pytest.raises(enrol.EnrolError, match="already used"):
        enrol.sign_enrolment(csr, DEV, trusted, used, pki.ca_cert, pki.ca_key, NOW)
    live = enrol.install(tls, pem, DEV, pki.ca_cert, NOW, token_file)
    cert = x509.load_pem_x509_certificate(live.read_bytes())
    assert cert.not_valid_after_utc - NOW <= datetime.timedelta(days=certs.CERT_DAYS)
    assert not token_file.exists() and not (tls / enrol.STATE).exists()
    assert not (tls / certs.STAGED).exists()


def test_central_refuses_a_bad_token(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    central, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    trusted = {signing.key_id(central.public_key()): central.public_key()}
    refused = {
        "for device 'hz-9999'": enrol.make_token(central, "hz-9999", NOW),
        "unknown signing key": enrol.make_token(other, DEV, NOW),
        "not now": enrol.make_token(central, DEV, NOW - 25 * HOUR),
        "no enrolment token": None,
    }
    for why, token in refused.items():
        d = tmp_path / why.replace(" ", "_").replace("'", "")
        d.mkdir()
        csr = certs.request(d, DEV) if token is None else enrol.request(d, DEV, token)
        with pytest.raises(enrol.EnrolError, match=why):
            enrol.sign_enrolment(csr, DEV, trusted, {}, pki.ca_cert, pki.ca_key, NOW)
    with pytest.raises(enrol.EnrolError, match="at most 24 h"):
        enrol.make_token(central, DEV, NOW, hours=48)
    # a token central did not make short (hand-built, 48 h) is refused too
    body = json.dumps(
        {
            "type": "edge-enrol",
            "device": DEV,
            "id": "a" * 32,
            "issued": (NOW - HOUR).isoformat(),
            "expires": (NOW + 47 * HOUR).isoformat(),
        }
    )
    long = signing.sign(body, central)
    with pytest.raises(enrol.EnrolError, match="lives longer than 24 h"):
        enrol.check_token(long, DEV, trusted, NOW, {})


def test_central_ledger_answers_a_request_once_and_keeps_spent_tokens(tmp_path: Path) -> None:
    """The ledger (600) survives central's restart: the same request again gets the same
    certificate (a device rebooted before the answer), another key with the same token
    is refused, and a damaged ledger is named, not taken as empty."""
    pki = Pki(tmp_path / "pki")
    central = Ed25519PrivateKey.generate()
    trusted = {signing.key_id(central.public_key()): central.public_key()}
    token = enrol.make_token(central, DEV, NOW)
    path = tmp_path / "ledger.json"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    csr = enrol.request(a, DEV, token)
    pem = enrol.Ledger(path).answer(csr, DEV, trusted, pki.ca_cert, pki.ca_key, NOW)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = enrol.Ledger(path)  # central restarted
    assert again.answer(csr, DEV, trusted, pki.ca_cert, pki.ca_key, NOW) == pem
    with pytest.raises(enrol.EnrolError, match="already used"):
        again.answer(enrol.request(b, DEV, token), DEV, trusted, pki.ca_cert, pki.ca_key, NOW)
    # once the token has expired its records go (the token is refused by its time anyway)
    later = NOW + 25 * HOUR
    other = enrol.make_token(central, "hz-0413", later)
    c = tmp_path / "c"
    c.mkdir()
    again.answer(
        enrol.request(c, "hz-0413", other), "hz-0413", trusted, pki.ca_cert, pki.ca_key, later
    )
    assert len(enrol.Ledger(path).used) == 1 and len(enrol.Ledger(path).answers) == 1
    path.write_text("{}")
    with pytest.raises(enrol.EnrolError, match="not an enrolment ledger"):
        enrol.Ledger(path)


def test_edge_central_enrol_token_writes_a_private_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli import main

    key = Ed25519PrivateKey.generate()
    (tmp_path / "central.key").write_bytes(signing.private_pem(key))
    out = tmp_path / "hz-0412.token"
    args = ["central", "enrol-token", "--key", str(tmp_path / "central.key"), "--device", DEV]
    assert main([*args, "--out", str(out), "--hours", "8"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    trusted = {signing.key_id(key.public_key()): key.public_key()}
    now = datetime.datetime.now(datetime.UTC)  # the command's clock: not the module's NOW,
    # which is taken at collection, long before this test runs in a full suite
    _tid, expires = enrol.check_token(out.read_bytes(), DEV, trusted, now, {})
    assert expires - now <= 8 * HOUR + datetime.timedelta(minutes=1)
    assert main([*args, "--out", str(tmp_path / "t2"), "--hours", "48"]) == 2
    assert "at most 24 h" in capsys.readouterr().err


def test_first_certificate_serves_the_page_at_the_cas_maintenance_address(
    tmp_path: Path,
) -> None:
    """The CA's record of a device's maintenance address gives its first certificate
    serverAuth and that address, as a renewal does (never from the request)."""
    import ipaddress

    pki = Pki(tmp_path / "pki")
    central = Ed25519PrivateKey.generate()
    trusted = {signing.key_id(central.public_key()): central.public_key()}
    tls = tmp_path / "tls"
    tls.mkdir()
    csr = enrol.request(tls, DEV, enrol.make_token(central, DEV, NOW))
    address = ipaddress.ip_address("10.20.0.5")
    ledger = enrol.Ledger(tmp_path / "ledger.json")
    pem = ledger.answer(csr, DEV, trusted, pki.ca_cert, pki.ca_key, NOW, [address])
    cert = x509.load_pem_x509_certificate(pem)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usage
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert address in names.get_values_for_type(x509.IPAddress)


def test_an_answer_installed_too_early_is_installed_once_the_clock_is_right(
    tmp_path: Path,
) -> None:
    """A device without a real-time clock boots behind the time: central's certificate is
    'not valid now' there. The staged key and request stay, so once the clock is set the
    same request gets the same certificate from the ledger and it installs; before, the
    key went with the failed install, the next request was a new key with the spent
    token, and the device was refused for good."""
    pki = Pki(tmp_path / "pki")
    central = Ed25519PrivateKey.generate()
    trusted = {signing.key_id(central.public_key()): central.public_key()}
    token = enrol.make_token(central, DEV, NOW)
    tls = tmp_path / "tls"
    tls.mkdir()
    ledger = enrol.Ledger(tmp_path / "ledger.json")
    csr = enrol.request(tls, DEV, token)
    pem = ledger.answer(csr, DEV, trusted, pki.ca_cert, pki.ca_key, NOW)
    with pytest.raises(certs.CertError, match="not valid now"):
        enrol.install(tls, pem, DEV, pki.ca_cert, NOW - HOUR)  # the clock not yet set
    again = enrol.request(tls, DEV, token)
    assert again == csr
    pem2 = ledger.answer(again, DEV, trusted, pki.ca_cert, pki.ca_key, NOW)
    assert enrol.install(tls, pem2, DEV, pki.ca_cert, NOW).is_file()
