"""The bootstrap connection: a device that holds only central's enrolment token gets its
first certificate, then joins the normal (mutual TLS) link.

flash.sh with `--enrol-token` provisions the token, the fleet CA's certificate and the
broker's address, no key and no certificate. At the central link's first start the
device makes its key and CSR (edge/device/enrol.py: staged 600, never leaves it),
connects to the broker's bootstrap listener (`[broker] enrol_port`), publishes the CSR
on `edge/enrol/<device>/csr` and waits on `edge/enrol/<device>/cert` for central's
answer (`edge central enrol`), then installs the certificate next to the key as
`renew_dir/client.pem` (600) and returns: the link connects with it.

Rules it keeps:
- The bootstrap connection checks the broker as the link does (the fleet CA only, the
  name in the SANs, TLS 1.2+, the CRL when given): no insecure TLS, and no enrolment
  at all without TLS (config.py refuses an enrol_token without cafile).
- It sends no client certificate and asks for nothing but its own request's answer;
  the broker's bootstrap ACL allows a username (the device id) only those two topics.
- Only an answer naming this request (the SHA-256 of the CSR) is taken; the certificate
  is installed only if it is for the staged key, from the fleet CA, for this device,
  valid now and a year at most (certs.install). A refusal is logged with central's
  reason and asked again after a backoff (the same request: one token, one key).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Callable
from pathlib import Path

import aiomqtt
from cryptography import x509

from edge.device import enrol
from edge.link import topics
from edge.link.client import CONNECT_TIMEOUT_S, NODELAY, PUBLISH_TIMEOUT_S
from edge.link.config import DeviceConfig

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 30.0  # central answers in well under a second; then ask again


def needed(cfg: DeviceConfig) -> bool:
    """Has this device a token but no certificate yet (provisioned or enrolled)?"""
    return cfg.enrol_token is not None and not cfg.broker.has_client_cert()


async def request_once(cfg: DeviceConfig, timeout_s: float = ANSWER_TIMEOUT_S) -> Path:
    """One enrolment over the bootstrap listener: the installed certificate's path, or
    EnrolError (central refused, or its answer is not for this key), aiomqtt.MqttError,
    OSError or TimeoutError (no answer within timeout_s)."""
    b, renew, token_file = cfg.broker, cfg.renew_dir, cfg.enrol_token
    if renew is None or token_file is None or b.cafile is None:
        raise enrol.EnrolError("enrolment needs enrol_token, renew_dir and cafile")
    token = token_file.read_bytes().strip()
    renew.mkdir(mode=0o700, parents=True, exist_ok=True)
    csr = enrol.request(renew, cfg.device, token)
    digest = enrol.csr_digest(csr)
    async with aiomqtt.Client(
        b.host,
        cfg.enrol_port,
        identifier=f"enrol-{cfg.device}",
        username=cfg.device,  # the bootstrap ACL's %u: this device's two topics only
        protocol=(
            aiomqtt.ProtocolVersion.V311 if b.protocol == "3.1.1" else aiomqtt.ProtocolVersion.V5
        ),
        tls_context=b.tls_context(client=False),
        timeout=CONNECT_TIMEOUT_S,
        socket_options=NODELAY,
    ) as client:
        await client.subscribe(topics.enrol_topic(cfg.device, "cert"), qos=1)
        await client.publish(
            topics.enrol_topic(cfg.device, "csr"), csr, qos=1, timeout=PUBLISH_TIMEOUT_S
        )
        async with asyncio.timeout(timeout_s):
            async for msg in client.messages:
                try:
                    answer = json.loads(msg.payload if isinstance(msg.payload, bytes) else b"")
                except ValueError:
                    continue
                if not isinstance(answer, dict) or answer.get("csr") != digest:
                    continue  # another request's answer (an earlier one of this device)
                if "cert" not in answer:
                    raise enrol.EnrolError(f"central refused it: {answer.get('error', '?')}")
                ca = x509.load_pem_x509_certificate(Path(b.cafile).read_bytes())
                now = datetime.datetime.now(datetime.UTC)
                pem = str(answer["cert"]).encode()
                try:
                    return enrol.install(renew, pem, cfg.device, ca, now, token_file)
                except ValueError as exc:  # CertError: the staged key is kept, asked again
                    raise enrol.EnrolError(f"central's certificate not installed: {exc}") from None
    raise TimeoutError("the broker closed the bootstrap connection")


async def probe(cfg: DeviceConfig) -> str | None:
    """flash.sh's self-test on the laptop: does the bootstrap listener answer, its
    certificate checked as the device will? None if so, else why not. It makes no key
    and sends no request: the token is the device's to spend, at its first boot."""
    b = cfg.broker
    try:
        async with aiomqtt.Client(
            b.host,
            cfg.enrol_port,
            identifier=f"probe-{cfg.device}",
            username=cfg.device,
            tls_context=b.tls_context(client=False),
            timeout=CONNECT_TIMEOUT_S,
        ):
            return None
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"[:200]


async def enrol_until_done(
    cfg: DeviceConfig, failed: Callable[[str], None], timeout_s: float = ANSWER_TIMEOUT_S
) -> Path:
    """request_once until a certificate is installed; each failure goes to `failed` (its
    reason) and the next try waits the broker's backoff, doubling up to its maximum."""
    delay = cfg.broker.backoff_min_s
    while True:
        try:
            live = await request_once(cfg, timeout_s)
        except (enrol.EnrolError, aiomqtt.MqttError, OSError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("enrol_failed: %s; asking again in %.1f s", reason, delay)
            failed(reason[:200])
            await asyncio.sleep(delay)
            delay = min(cfg.broker.backoff_max_s, delay * 2)
            continue
        log.info("enrolled: %s (the link connects with it)", live)
        return live
