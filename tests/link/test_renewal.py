"""The device's certificate renewed over the link (edge/device/certs.py; issue 20).

Through Mosquitto: a device whose certificate is within 30 days of expiry makes a new
key itself and sends its request as a `cert_request` event; central's fleet CA signs it
for that device and sends it back as a signed `certificate` command; the device checks
and installs it (the staged key never leaves the device) and connects with it next time.
A device whose certificate also serves the page (serverAuth, its maintenance address)
gets a renewal that does too, from the CA's record; the page then serves the renewed
certificate in a real TLS handshake that checks the purpose and the address.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import socket
import ssl
import stat
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography import x509
from edge.assemble import web_listen
from edge.device import certs
from edge.link import central
from edge.link.mosquitto import Mosquitto
from edge.runtime import WebOptions

from tests.link.harness import (
    Keys,
    central_config,
    collecting,
    device_config,
    events_named,
    running,
    wait_for,
)

DEV = "dev-renew"


async def _scenario(broker: Mosquitto, keys: Keys, tmp: Path) -> dict[str, Any]:
    renew = tmp / "tls"
    cfg = device_config(broker, tmp, DEV, keys, renew_dir=renew)
    cfg = replace(cfg, broker=replace(cfg.broker, renewed=str(renew / certs.LIVE)))
    out: dict[str, Any] = {}
    async with collecting(broker, ("events",), device=DEV) as col:
        async with running(cfg), central.connect(central_config(broker)) as c:
            await wait_for(lambda: bool(events_named(col, "cert_request")), 10, "cert_request")
            out["staged_mode"] = stat.S_IMODE((renew / certs.STAGED).stat().st_mode)
            csr = events_named(col, "cert_request")[0]["detail"].encode()
            _, cmd = central.certificate_command(
                keys.central, DEV, csr, broker.pki.ca_cert, broker.pki.ca_key
            )
            out["installed"] = (await central.request(c, DEV, "cmd", cmd))[-1]
            out["replayed"] = (await central.request(c, DEV, "cmd", cmd))[-1]
            _, again = central.certificate_command(  # a second answer: its key is gone
                keys.central, DEV, csr, broker.pki.ca_cert, broker.pki.ca_key
            )
            out["again"] = (await central.request(c, DEV, "cmd", again))[-1]
        out["pair"] = cfg.broker.client_pair()
        async with running(cfg):  # reconnects with the renewed certificate; not due now
            pass
        out["requests"] = len(events_named(col, "cert_request"))
    return out


def test_a_certificate_due_is_renewed_over_the_link(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    r = asyncio.run(_scenario(broker, keys, tmp_path))
    assert r["staged_mode"] == 0o600
    assert r["installed"]["status"] == "done", r["installed"]
    assert r["replayed"]["code"] == "replayed"
    assert (r["again"]["status"], r["again"]["code"]) == ("rejected", "refused")
    assert "no such file" in r["again"]["reason"].lower()  # the staged key went with the first
    live = tmp_path / "tls" / certs.LIVE
    assert r["pair"] == (str(live), None)
    assert stat.S_IMODE(live.stat().st_mode) == 0o600
    assert not (tmp_path / "tls" / certs.STAGED).exists()
    cert = x509.load_pem_x509_certificate(live.read_bytes())
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=360) < left <= datetime.timedelta(days=365)
    assert r["requests"] == 1


async def _service(broker: Mosquitto, keys: Keys, tmp: Path) -> dict[str, Any]:
    renew = tmp / "tls"
    cfg = device_config(broker, tmp, DEV, keys, renew_dir=renew)
    cfg = replace(cfg, broker=replace(cfg.broker, renewed=str(renew / certs.LIVE)))
    answered: dict[str, str] = {}
    async with central.connect(central_config(broker), persistent=True) as c:
        service = asyncio.create_task(
            central.answer_cert_requests(
                c, keys.central, broker.pki.ca_cert, broker.pki.ca_key, answered
            )
        )
        try:
            await asyncio.sleep(0.2)  # subscribed before the device asks
            async with running(cfg):
                await wait_for(lambda: (renew / certs.LIVE).exists(), 15, "the renewed pair")
        finally:
            service.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await service
    return {"answered": answered, "pair": cfg.broker.client_pair()}


def test_central_answers_renewal_requests_by_itself(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    """`edge central enrol`: no one at central hands the request over; the service signs
    it for the device whose topic it came on and the device installs it."""
    r = asyncio.run(_service(broker, keys, tmp_path))
    assert len(r["answered"]) == 1 and "refused" not in r["answered"].values()
    assert r["pair"] == (str(tmp_path / "tls" / certs.LIVE), None)


PAGE_DEV = "dev-page"
MAINTENANCE = ipaddress.ip_address("127.0.0.1")


def _provisioned_page_pair(broker: Mosquitto, tmp: Path) -> tuple[Path, Path]:
    """As flash.sh --maintenance-address makes it: clientAuth, serverAuth and the
    maintenance address; 20 days left, so due for renewal."""
    etc = tmp / "etc"
    etc.mkdir()
    csr = certs.request(etc, PAGE_DEV)
    now = datetime.datetime.now(datetime.UTC)
    pem = certs.sign(
        csr, PAGE_DEV, broker.pki.ca_cert, broker.pki.ca_key, now, days=20,
        server_ips=[MAINTENANCE],
    )  # fmt: skip
    (etc / "client.crt").write_bytes(pem)
    (etc / certs.STAGED).rename(etc / "client.key")
    return etc / "client.crt", etc / "client.key"


def _handshake(ctx: ssl.SSLContext, ca: Path) -> bytes:
    """A TLS server with the page's context; a client that trusts the fleet CA only and
    checks the purpose and the address (127.0.0.1): the certificate it was shown (DER)."""
    with socket.create_server(("127.0.0.1", 0)) as server:

        def serve() -> None:
            conn, _ = server.accept()
            with contextlib.suppress(OSError), ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        client = ssl.create_default_context(cafile=str(ca))
        port = server.getsockname()[1]
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            der = tls.getpeercert(binary_form=True)
        t.join(10)
    assert der is not None
    return der


async def _page_renewal(broker: Mosquitto, keys: Keys, tmp: Path) -> None:
    cert, key = _provisioned_page_pair(broker, tmp)
    renew = tmp / "tls"
    cfg = device_config(broker, tmp, PAGE_DEV, keys, renew_dir=renew)
    cfg = replace(
        cfg,
        broker=replace(cfg.broker, certfile=str(cert), keyfile=str(key),
                       renewed=str(renew / certs.LIVE)),
    )  # fmt: skip
    async with central.connect(central_config(broker), persistent=True) as c:
        service = asyncio.create_task(
            central.answer_cert_requests(
                c, keys.central, broker.pki.ca_cert, broker.pki.ca_key,
                maintenance={PAGE_DEV: (MAINTENANCE,)},
            )
        )  # fmt: skip
        try:
            await asyncio.sleep(0.2)  # subscribed before the device asks
            async with running(cfg):
                await wait_for(lambda: (renew / certs.LIVE).exists(), 15, "the renewed pair")
        finally:
            service.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await service


def test_a_renewal_keeps_the_page_certificate_serving_tls(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    """Before, central signed every renewal as a client certificate only: the page's
    TLS lost serverAuth and its address, and the page went on serving the old pair."""
    asyncio.run(_page_renewal(broker, keys, tmp_path))
    renewed = x509.load_pem_x509_certificate((tmp_path / "tls" / certs.LIVE).read_bytes())
    assert certs.serves(renewed) == {"serverAuth", "127.0.0.1"}
    life = renewed.not_valid_after_utc - renewed.not_valid_before_utc
    assert datetime.timedelta(days=360) < life <= datetime.timedelta(days=366)
    device = tmp_path / "device.toml"
    device.write_text(
        '[broker]\ncertfile = "etc/client.crt"\nkeyfile = "etc/client.key"\nrenew_dir = "tls"\n'
    )
    listen = web_listen(WebOptions(8080, host="0.0.0.0"), str(device))
    assert listen.tls is not None
    shown = x509.load_der_x509_certificate(_handshake(listen.tls, broker.pki.ca_cert_path))
    assert shown.serial_number == renewed.serial_number


async def _due_while_connected(broker: Mosquitto, keys: Keys, tmp: Path) -> list[Any]:
    etc = tmp / "etc"
    etc.mkdir()
    now = datetime.datetime.now(datetime.UTC)
    ca, ca_key = broker.pki.ca_cert, broker.pki.ca_key
    (etc / "client.crt").write_bytes(
        certs.sign(certs.request(etc, "dev-long"), "dev-long", ca, ca_key, now)
    )
    (etc / certs.STAGED).rename(etc / "client.key")
    cfg = device_config(broker, tmp, "dev-long", keys, renew_dir=tmp / "tls")
    cfg = replace(
        cfg,
        broker=replace(
            cfg.broker, certfile=str(etc / "client.crt"), keyfile=str(etc / "client.key")
        ),
    )
    async with collecting(broker, ("events",), device="dev-long") as col, running(cfg):
        await asyncio.sleep(0.5)
        assert not events_named(col, "cert_request")  # a year left: not due at the connect
        # 20 days from expiry now, as eleven months connected would make it (the file only
        # is read for that; the connection stays on the pair it opened with)
        csr = certs.request(tmp, "dev-long")
        (etc / "client.crt").write_bytes(certs.sign(csr, "dev-long", ca, ca_key, now, days=20))
        await wait_for(lambda: bool(events_named(col, "cert_request")), 15, "cert_request")
        return events_named(col, "cert_request")


def test_a_device_connected_for_months_still_renews(
    broker: Mosquitto, keys: Keys, tmp_path: Path, monkeypatch: Any
) -> None:
    """Before, the renewal was asked for at a connect only: a device that stayed connected
    past its certificate's expiry could not connect again."""
    import edge.device.central

    monkeypatch.setattr(edge.device.central, "RENEWAL_CHECK_EVERY_S", 0.2)
    assert len(asyncio.run(_due_while_connected(broker, keys, tmp_path))) == 1
