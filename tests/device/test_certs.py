"""The device's key made on the device, the CA signing its request, the checked install
(edge/device/certs.py; issue 20). The link transport of request and certificate is not
part of it yet.

Rules: the staged key is 600 and removed on a failed install; a certificate is
installed only for the staged key, from the fleet CA, for this device, valid now and
for a year at most; the CA side signs only the identity asked, a year at most; a
certificate within 30 days of expiry is due.
"""

from __future__ import annotations

import datetime
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from edge.device import certs
from edge.link.mosquitto import Pki

NOW = datetime.datetime.now(datetime.UTC)
DEV = "hz-0412"


def test_renewal_round_trip(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    csr = certs.request(tmp_path, DEV)
    staged = tmp_path / certs.STAGED
    assert stat.S_IMODE(staged.stat().st_mode) == 0o600
    cert_pem = certs.sign(csr, DEV, pki.ca_cert, pki.ca_key, NOW)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.not_valid_after_utc - NOW <= datetime.timedelta(days=365)
    assert not certs.due(cert, NOW) and certs.due(cert, NOW + datetime.timedelta(days=336))
    live = certs.install(tmp_path, cert_pem, DEV, pki.ca_cert, NOW)
    assert not staged.exists() and stat.S_IMODE(live.stat().st_mode) == 0o600
    ctx = ssl.create_default_context()
    ctx.load_cert_chain(live)  # the key and certificate in one file belong together


def test_the_ca_side_signs_only_what_is_asked(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    csr = certs.request(tmp_path, "someone-else")
    with pytest.raises(certs.CertError, match="not CN=hz-0412"):
        certs.sign(csr, DEV, pki.ca_cert, pki.ca_key, NOW)
    with pytest.raises(certs.CertError, match="at most 365 days"):
        certs.sign(certs.request(tmp_path, DEV), DEV, pki.ca_cert, pki.ca_key, NOW, days=1825)
    with pytest.raises(certs.CertError, match="not a PEM certificate request"):
        certs.sign(b"junk", DEV, pki.ca_cert, pki.ca_key, NOW)


def test_a_failed_install_removes_the_staged_key_and_keeps_the_live_pair(
    tmp_path: Path,
) -> None:
    pki, other = Pki(tmp_path / "pki"), Pki(tmp_path / "other")
    csr = certs.request(tmp_path, DEV)
    good = certs.sign(csr, DEV, pki.ca_cert, pki.ca_key, NOW)
    certs.install(tmp_path, good, DEV, pki.ca_cert, NOW)
    live = (tmp_path / certs.LIVE).read_bytes()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def made(why: str) -> bytes:
        csr = certs.request(tmp_path, DEV)  # a fresh staged key each time
        if why == "not for the staged key":
            csr = certs.request(elsewhere, DEV)
            return certs.sign(csr, DEV, pki.ca_cert, pki.ca_key, NOW)
        if why == "not issued by the fleet CA":
            return certs.sign(csr, DEV, other.ca_cert, other.ca_key, NOW)
        return b"junk"

    for why in ("not for the staged key", "not issued by the fleet CA", "not a PEM certificate"):
        cert_pem = made(why)
        assert (tmp_path / certs.STAGED).exists()
        with pytest.raises(certs.CertError, match=why):
            certs.install(tmp_path, cert_pem, DEV, pki.ca_cert, NOW)
        assert not (tmp_path / certs.STAGED).exists(), why
        assert (tmp_path / certs.LIVE).read_bytes() == live
