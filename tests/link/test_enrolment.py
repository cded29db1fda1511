"""A device flashed with only an enrolment token gets its first certificate over the
broker's bootstrap listener, then joins the normal link (edge/device/bootstrap.py,
edge/device/enrol.py, edge.link.central.answer_enrolments; issue 20).

Through a real Mosquitto with the bootstrap listener its generator writes: the device
makes its key (600, never published), central signs its token-bearing request, the
device installs the certificate and connects with mutual TLS. Refused, each with
central's reason: a spent token, a token for another device, a token central did not
sign. The bootstrap ACL keeps a client (its username the device id it claims) to its
own request and its own answer: a request on another device's topic never reaches
central, a subscription to another device's answer (by name or wildcard) gets nothing,
the link's tree is closed to it, and a client without a username can do nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import ssl
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from edge.device import bootstrap, certs, enrol
from edge.link import central, signing
from edge.link.mosquitto import Mosquitto

from tests.link.harness import (
    Keys,
    collecting,
    enrolling_config,
    events_named,
    running,
    wait_for,
)
from tests.link.schemas import check

NOW = datetime.datetime.now(datetime.UTC)


@asynccontextmanager
async def enrolment_service(
    broker: Mosquitto, keys: Keys, ledger: Path, watched: tuple[str, ...] = ()
) -> AsyncIterator[list[tuple[str, bytes]]]:
    """`edge central enrol`'s enrolment half, and every message on the enrolment topics
    (and `watched`) as central's rights see them (topic, payload), in the broker's order."""
    seen: list[tuple[str, bytes]] = []
    trusted = {signing.key_id(keys.central.public_key()): keys.central.public_key()}
    book = enrol.Ledger(ledger)
    async with (
        central.connect(broker.bootstrap_client_config(), identifier="central-enrol") as c,
        central.connect(broker.bootstrap_client_config(), identifier="central-spy") as spy,
    ):
        for f in ("edge/enrol/#", *watched):
            await spy.subscribe(f, qos=1)

        async def watch() -> None:
            async for m in spy.messages:
                seen.append(
                    (str(m.topic), bytes(m.payload) if isinstance(m.payload, bytes) else b"")
                )

        tasks = [
            asyncio.create_task(
                central.answer_enrolments(c, trusted, broker.pki.ca_cert, broker.pki.ca_key, book)
            ),
            asyncio.create_task(watch()),
        ]
        await asyncio.sleep(0.3)  # subscribed before a device asks
        try:
            yield seen
        finally:
            for t in tasks:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t


def test_a_token_only_device_enrols_then_joins_the_link(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    dev = "hz-enrol-1"
    cfg = enrolling_config(
        broker, tmp_path / "dev", dev, keys, enrol.make_token(keys.central, dev, NOW)
    )
    assert bootstrap.needed(cfg) and not cfg.broker.has_client_cert()

    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with (
            enrolment_service(broker, keys, tmp_path / "ledger.json") as seen,
            collecting(broker, ("events",), device=dev) as col,
        ):
            async with running(cfg) as rt:  # returns once the mutual-TLS link is up
                out["connected"] = rt.client.connected.is_set()
                await wait_for(lambda: bool(events_named(col, "enrolled")), 10, "enrolled")
            out["seen"] = list(seen)
        return out

    r = asyncio.run(go())
    assert r["connected"]
    live = cfg.renew_dir / certs.LIVE  # type: ignore[operator]
    assert stat.S_IMODE(live.stat().st_mode) == 0o600
    pair = live.read_bytes()
    cert = x509.load_pem_x509_certificate(pair)
    key = serialization.load_pem_private_key(pair, None)
    assert cert.public_key() == key.public_key()  # the key made here, the certificate for it
    assert cert.subject.rfc4514_string() == f"CN={dev}"
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=360) < left <= datetime.timedelta(days=certs.CERT_DAYS)
    assert cfg.broker.client_pair() == (str(live), None)
    # the token and the enrolment state are gone; the key never crossed the broker
    assert not cfg.enrol_token.exists()  # type: ignore[union-attr]
    assert not (cfg.renew_dir / enrol.STATE).exists()  # type: ignore[operator]
    topics_seen = [t for t, _ in r["seen"]]
    assert topics_seen == [f"edge/enrol/{dev}/csr", f"edge/enrol/{dev}/cert"]
    _check_schemas(r["seen"])
    assert not any(b"PRIVATE KEY" in p for _, p in r["seen"])
    assert not bootstrap.needed(cfg)


def _check_schemas(seen: list[tuple[str, bytes]]) -> None:
    """What crossed the bootstrap listener is what asyncapi.yaml's enrol channels say."""
    for topic, payload in seen:
        leaf = topic.rsplit("/", 1)[1]
        check(f"enrol_{leaf}", json.dumps(payload.decode()) if leaf == "csr" else payload)


async def _refused(cfg: Any) -> str:
    with pytest.raises(enrol.EnrolError) as err:
        await bootstrap.request_once(cfg, timeout_s=10)
    return str(err.value)


def test_a_spent_wrong_or_foreign_token_is_refused(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    dev = "hz-enrol-2"
    token = enrol.make_token(keys.central, dev, NOW)
    first = enrolling_config(broker, tmp_path / "a", dev, keys, token)
    spent = enrolling_config(broker, tmp_path / "b", dev, keys, token)  # a second key
    foreign = enrolling_config(
        broker, tmp_path / "c", dev, keys, enrol.make_token(keys.central, "hz-other", NOW)
    )
    rogue = enrolling_config(
        broker, tmp_path / "d", dev, keys, enrol.make_token(keys.rogue, dev, NOW)
    )

    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with enrolment_service(broker, keys, tmp_path / "ledger.json") as seen:
            out["first"] = await bootstrap.request_once(first, timeout_s=10)
            out["spent"] = await _refused(spent)
            out["foreign"] = await _refused(foreign)
            out["rogue"] = await _refused(rogue)
            out["seen"] = list(seen)
        return out

    r = asyncio.run(go())
    assert r["first"] == first.renew_dir / certs.LIVE  # type: ignore[operator]
    assert "already used" in r["spent"]
    assert "it is for device 'hz-other'" in r["foreign"]
    assert "unknown" in r["rogue"] and "key" in r["rogue"]
    answers = [json.loads(p) for t, p in r["seen"] if t.endswith("/cert")]
    assert sum("error" in a for a in answers) == 3  # refusals match the schema too
    _check_schemas(r["seen"])
    for cfg in (spent, foreign, rogue):
        assert not cfg.broker.has_client_cert()


def test_the_same_request_again_gets_the_same_certificate(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    """A device that reboots before the answer asks again with the same key and request
    (enrol.json): central answers with the certificate it made, it does not refuse it as
    a spent token, and it never signs a second one."""
    dev = "hz-enrol-3"
    cfg = enrolling_config(
        broker, tmp_path / "dev", dev, keys, enrol.make_token(keys.central, dev, NOW)
    )
    ledger = tmp_path / "ledger.json"
    cfg.renew_dir.mkdir()  # type: ignore[union-attr]
    csr = enrol.request(cfg.renew_dir, dev, cfg.enrol_token.read_bytes())  # type: ignore[arg-type, union-attr]

    async def go() -> list[tuple[str, bytes]]:
        async with enrolment_service(broker, keys, ledger) as seen:
            async with aiomqtt.Client(  # the first boot: asked, lost power before the answer
                "127.0.0.1",
                broker.bootstrap_port,
                username=dev,
                tls_context=cfg.broker.tls_context(client=False),
            ) as c:
                await c.publish(f"edge/enrol/{dev}/csr", csr, qos=1)
            await wait_for(lambda: len(seen) >= 2, 10, "central's first answer")
            await bootstrap.request_once(cfg, timeout_s=10)
            return list(seen)

    seen = asyncio.run(go())
    answers = [p for t, p in seen if t.endswith("/cert")]
    assert len(answers) == 2 and answers[0] == answers[1] and b'"cert"' in answers[0]
    assert len(enrol.Ledger(ledger).used) == 1


def test_the_bootstrap_acl_keeps_a_client_to_its_own_topics(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    """Without the bootstrap ACL (or with `topic readwrite #` in it) each of these
    reaches its target; with it, none does."""
    victim, attacker = "hz-victim", "hz-attacker"
    tls = ssl.create_default_context(cafile=str(broker.pki.ca_cert_path))
    # a valid request for the victim (its token, a key): only the topic is wrong
    vcfg = enrolling_config(
        broker, tmp_path / "v", victim, keys, enrol.make_token(keys.central, victim, NOW)
    )
    vcfg.renew_dir.mkdir()  # type: ignore[union-attr]
    csr = enrol.request(vcfg.renew_dir, victim, vcfg.enrol_token.read_bytes())  # type: ignore[arg-type, union-attr]

    def client(user: str | None) -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", broker.bootstrap_port, username=user, tls_context=tls)

    async def go() -> dict[str, Any]:
        got: dict[str, list[str]] = {"attacker": [], "victim": []}
        ledger = tmp_path / "ledger.json"
        watched = (f"edge/v1/{attacker}/#", f"edge/v1/{victim}/#")
        async with (
            enrolment_service(broker, keys, ledger, watched) as seen,
            central.connect(broker.bootstrap_client_config()) as c,
            client(attacker) as a,
            client(victim) as v,
            client(None) as anon,
        ):
            for f in (f"edge/enrol/{victim}/cert", "edge/enrol/+/cert", "#", "edge/v1/#"):
                await a.subscribe(f, qos=1)
            await v.subscribe(f"edge/enrol/{victim}/cert", qos=1)

            async def rx(who: str, cl: aiomqtt.Client) -> None:
                async for m in cl.messages:
                    got[who].append(str(m.topic))

            tasks = [asyncio.create_task(rx("attacker", a)), asyncio.create_task(rx("victim", v))]
            await a.publish(f"edge/enrol/{victim}/csr", csr, qos=1)  # another device's topic
            await a.publish(f"edge/v1/{attacker}/status", b"{}", qos=1, retain=True)
            await a.publish(f"edge/v1/{victim}/events", b"{}", qos=1)
            await anon.publish(f"edge/enrol/{victim}/csr", csr, qos=1)
            await c.publish(f"edge/enrol/{victim}/cert", b'{"csr": "x", "error": "test"}', qos=1)
            await wait_for(lambda: bool(got["victim"]), 10, "the victim's own answer")
            await a.publish(f"edge/enrol/{attacker}/csr", b"not a request", qos=1)
            await wait_for(lambda: len(seen) >= 3, 10, "central's answer to the attacker's own")
            for t in tasks:
                t.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            return {"got": got, "seen": list(seen)}

    r = asyncio.run(go())
    assert r["got"]["victim"] == [f"edge/enrol/{victim}/cert"]
    # the attacker's own request reached central and was answered (to it): the ACL works
    # by username, and central refused the garbage with a reason. What it sent before
    # (on the same connection) would have reached central's spy first: nothing did.
    assert r["got"]["attacker"] == [f"edge/enrol/{attacker}/cert"]
    assert [t for t, _ in r["seen"]] == [
        f"edge/enrol/{victim}/cert",
        f"edge/enrol/{attacker}/csr",
        f"edge/enrol/{attacker}/cert",
    ]
    assert b"not a PEM certificate request" in r["seen"][2][1]


def test_a_token_only_flash_self_tests_the_bootstrap_listener_without_enrolling(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    """flash.sh's stage for an SD card with --enrol-token alone (no CA key, no client
    certificate) and its self-test, which runs on the laptop: it checks the bootstrap
    listener as the device will and leaves the token unspent and no key made there."""
    from devtools import provision
    from edge.device import selftest
    from edge.link.config import load_device_config

    from tests.board.procs import CROSSING

    dev = "hz-flash-1"
    token = tmp_path / "token"
    token.write_bytes(enrol.make_token(keys.central, dev, NOW))
    (tmp_path / "release.key").write_bytes(signing.private_pem(signing.generate()))
    out = tmp_path / "stage"
    args = [
        "stage", "--out", str(out), "--device-id", dev, "--site", str(CROSSING),
        "--broker", f"mqtts://127.0.0.1:{broker.port}", "--central-key", str(keys.central_pub),
        "--release-key", str(tmp_path / "release.key"), "--ca-cert", str(broker.pki.ca_cert_path),
        "--enrol-token", str(token), "--enrol-port", str(broker.bootstrap_port),
    ]  # fmt: skip
    assert provision.main(args) == 0
    etc = out / "etc/edge"
    cfg = load_device_config(etc / "device.toml")
    assert cfg.enrol_port == broker.bootstrap_port and bootstrap.needed(cfg)
    st = asyncio.run(selftest.run_here(str(etc / "device.toml"), None, 20))
    (check,) = [c for c in selftest.checks(st, None) if c.name == "broker"]
    assert check.verdict == "OK" and "bootstrap listener" in check.detail, check
    assert (etc / "tls/enrol.token").read_bytes() == token.read_bytes()
    assert not cfg.renew_dir.exists()  # type: ignore[union-attr]
    # the listener unreachable: a FAIL naming it, with the fix
    st["link"] = {"enrol": True, "connected": False, "broker": "x:1", "last_error": "refused"}
    (check,) = [c for c in selftest.checks(st, None) if c.name == "broker"]
    assert check.verdict == "FAIL" and "enrol_port" in check.fix


def test_a_retained_request_is_cleared_not_answered(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    """The bootstrap ACL cannot refuse the retain flag (Mosquitto's retain_available is
    global): a request left retained, before central subscribes or while it listens,
    is cleared by central and never answered, so the broker keeps none of them."""
    dev = "hz-retain"
    tls = ssl.create_default_context(cafile=str(broker.pki.ca_cert_path))

    def client() -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", broker.bootstrap_port, username=dev, tls_context=tls)

    async def retained_now() -> list[bytes]:
        found: list[bytes] = []
        async with central.connect(broker.bootstrap_client_config()) as c:
            await c.subscribe(f"edge/enrol/{dev}/csr", qos=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):  # a retained message comes at once
                    async for m in c.messages:
                        found.append(bytes(m.payload) if isinstance(m.payload, bytes) else b"")
        return found

    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with client() as d:
            await d.publish(f"edge/enrol/{dev}/csr", b"before", qos=1, retain=True)
        out["stored"] = await retained_now()
        async with enrolment_service(broker, keys, tmp_path / "ledger.json") as seen:
            async with client() as d:
                await d.publish(f"edge/enrol/{dev}/csr", b"during", qos=1, retain=True)
                await d.publish(f"edge/enrol/{dev}/csr", b"live", qos=1)
            await wait_for(lambda: any(t.endswith("/cert") for t, _ in seen), 10, "an answer")
            out["answers"] = [p for t, p in seen if t.endswith("/cert")]
        out["left"] = await retained_now()
        return out

    r = asyncio.run(go())
    assert r["stored"] == [b"before"]  # the broker did keep it
    assert len(r["answers"]) == 1 and enrol.csr_digest(b"live").encode() in r["answers"][0]
    assert r["left"] == []


def test_a_bootstrap_client_cannot_take_over_a_devices_link_session(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    """Review of issue 20: Mosquitto keeps one client-id space across its listeners, so
    an anonymous client on a bootstrap listener of the link's broker, using a device's
    id, took over (dropped) that device's session; the bootstrap broker is its own
    process now."""
    cert, key = broker.pki.issue("hz-linked")
    mtls = ssl.create_default_context(cafile=str(broker.pki.ca_cert_path))
    mtls.load_cert_chain(cert, key)
    anon = ssl.create_default_context(cafile=str(broker.pki.ca_cert_path))

    async def go() -> bool:
        async with (
            aiomqtt.Client(
                "127.0.0.1", broker.port, identifier="hz-linked", tls_context=mtls
            ) as dev,
            aiomqtt.Client(
                "127.0.0.1",
                broker.bootstrap_port,
                identifier="hz-linked",
                username="anyone",
                tls_context=anon,
            ),
        ):
            try:  # the device's link still carries a QoS 1 publish
                await dev.publish("edge/v1/hz-linked/events", b"{}", qos=1, timeout=5)
            except aiomqtt.MqttError:
                return False
            return True

    assert asyncio.run(go())
