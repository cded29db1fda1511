"""The device's key made on the device, the CA signing its request, the checked install
(edge/device/certs.py; issue 20). The link transport is tests/link/test_renewal.py's.

Rules: the staged key is 600 and removed on a failed install; a certificate is
installed only for the staged key, from the fleet CA, for this device, valid now and
for a year at most; the CA side signs only the identity asked, a year at most; a
certificate within 30 days of expiry is due. The page takes the latest pair that serves
it (serverAuth), so a renewal that lost its purpose never moves the page off a working
one; the CA's record of maintenance addresses is checked entry by entry.
"""

from __future__ import annotations

import datetime
import ipaddress
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


def _pair(tmp_path: Path, pki: Pki, name: str, days: int, ips: tuple[str, ...]) -> Path:
    """A certificate and its key in one PEM file, as the CA signs them (ips: serverAuth)."""
    work = tmp_path / name
    work.mkdir()
    addrs = [ipaddress.ip_address(ip) for ip in ips]
    pem = certs.sign(
        certs.request(work, DEV), DEV, pki.ca_cert, pki.ca_key, NOW, days=days, server_ips=addrs
    )
    return certs.install(work, pem, DEV, pki.ca_cert, NOW)


def test_the_page_keeps_the_latest_pair_that_serves(tmp_path: Path) -> None:
    """A renewal without serverAuth (a CA that lost the device's maintenance address)
    leaves the page on the older pair that serves it; one with it moves the page on."""
    pki = Pki(tmp_path / "pki")
    provisioned = _pair(tmp_path, pki, "etc", 20, ("10.20.0.5",))
    renew = tmp_path / "renew"
    renew.mkdir()
    assert certs.page_pair((str(provisioned), None), renew) == (str(provisioned), None)
    client_only = _pair(tmp_path, pki, "client-only", 365, ())
    (renew / certs.LIVE).write_bytes(client_only.read_bytes())
    assert certs.serves(x509.load_pem_x509_certificate(client_only.read_bytes())) == set()
    assert certs.page_pair((str(provisioned), None), renew) == (str(provisioned), None)
    serving = _pair(tmp_path, pki, "serving", 365, ("10.20.0.5",))
    assert certs.serves(x509.load_pem_x509_certificate(serving.read_bytes())) == {
        "serverAuth", "10.20.0.5"
    }  # fmt: skip
    (renew / certs.LIVE).write_bytes(serving.read_bytes())
    assert certs.page_pair((str(provisioned), None), renew) == (str(renew / certs.LIVE), None)
    # once the provisioned one has expired, the page takes what there is
    (renew / certs.LIVE).write_bytes(client_only.read_bytes())
    later = NOW + datetime.timedelta(days=21)
    assert certs.page_pair((str(provisioned), None), renew, later)[0] == str(renew / certs.LIVE)


def test_the_cas_record_of_maintenance_addresses(tmp_path: Path) -> None:
    record = tmp_path / "maintenance.toml"
    record.write_text('hz-0412 = "10.20.0.5"\nhz-0413 = ["10.20.0.6", "fd00::6"]\n')
    assert certs.load_maintenance(record) == {
        "hz-0412": (ipaddress.ip_address("10.20.0.5"),),
        "hz-0413": (ipaddress.ip_address("10.20.0.6"), ipaddress.ip_address("fd00::6")),
    }
    for text, match in [
        ('hz-0412 = "10.20.0"\n', r"maintenance.toml: hz-0412: '10.20.0' is not an IP address"),
        ("hz-0412 = 5\n", r"hz-0412: give an address or a list of them, not 5"),
        ('"a b" = "10.0.0.1"\n', r"'a b' is not a device id"),
    ]:
        record.write_text(text)
        with pytest.raises(ValueError, match=match):
            certs.load_maintenance(record)
