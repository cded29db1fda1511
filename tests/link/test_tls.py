"""The link's TLS against a real Mosquitto, certificates made here (issue 20).

Rules: the broker's name must be in its certificate's subject alternative names (a CN
alone is refused); with the fleet CA's CRL configured a revoked broker certificate is
refused and a good one accepted; a device certificate the fleet CA revoked is refused by
the broker (its `crlfile`) while the others still connect; a link without TLS
(mqtt://) says so loudly.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import replace
from pathlib import Path

import aiomqtt
import pytest
from edge.link.client import BrokerConfig
from edge.link.config import load_device_config
from edge.link.mosquitto import Mosquitto, Pki, mosquitto_binary


def _broker(folder: Path, san: bool = True) -> Mosquitto:
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed (scripts/install-test-tools.sh)")
    b = Mosquitto(folder)
    if not san:  # the same name as CN only, as a CA issuing without SANs would
        b.pki.issue("localhost", server=True, san=False)
    return b


async def _connect(config: BrokerConfig, device: str = "dev-tls") -> None:
    async with aiomqtt.Client(
        config.host,
        config.port,
        identifier=device,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=config.tls_context(),
        timeout=5,
    ) as client:
        await client.publish(f"edge/v1/{device}/events", b"x", qos=1)


def _refused(config: BrokerConfig) -> str:
    with pytest.raises(aiomqtt.MqttError) as err:
        asyncio.run(_connect(config))
    return str(err.value)


def test_a_broker_named_only_in_its_cn_is_refused(tmp_path: Path) -> None:
    with _broker(tmp_path / "b", san=False) as b:
        config = replace(b.client_config("dev-tls"), host="localhost")
        assert "certificate verify failed" in _refused(config)
    with _broker(tmp_path / "ok") as b:  # the same name as a SAN: accepted
        asyncio.run(_connect(replace(b.client_config("dev-tls"), host="localhost")))


def test_a_revoked_broker_certificate_is_refused(tmp_path: Path) -> None:
    with _broker(tmp_path / "b") as b:
        config = b.client_config("dev-tls")
        other, _ = b.pki.issue("retired-broker", server=True)
        asyncio.run(_connect(replace(config, crlfile=str(b.pki.crl([other])))))
        revoked = replace(config, crlfile=str(b.pki.crl([b.server_cert])))
        assert "certificate revoked" in _refused(revoked)


def test_a_revoked_device_certificate_is_refused_by_the_broker(tmp_path: Path) -> None:
    """Issue 20: an enrolment token stolen before first boot enrols the thief's key once;
    central revokes that certificate and the broker must refuse it."""
    with _broker(tmp_path / "b") as b:
        thief, device = b.client_config("dev-tls"), b.client_config("dev-good")
        asyncio.run(_connect(thief))
        b.revoke(["dev-tls"])
        _refused(thief)
        asyncio.run(_connect(device, "dev-good"))


def test_the_context_refuses_old_tls_and_cn_fallback(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    ctx = BrokerConfig("localhost", 8883, str(pki.ca_cert_path)).tls_context()
    assert ctx is not None
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert ctx.check_hostname and not ctx.hostname_checks_common_name


def test_plain_mqtt_is_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "device.toml").write_text(
        '[device]\nid = "dev-1"\nsite = "s.toml"\nstore = "e.db"\ntrusted_keys = ["c.pub"]\n'
        '[broker]\nhost = "broker.city"\nport = 1883\n'
    )
    cfg = load_device_config(tmp_path / "device.toml")
    with caplog.at_level(logging.WARNING):
        assert cfg.broker.warn_if_plain("device dev-1")
    assert "link_insecure" in caplog.text and "plain MQTT (no TLS)" in caplog.text
    assert not replace(cfg.broker, cafile="ca.crt").warn_if_plain("device dev-1")
