"""The central side, as a library: sign and push plan bundles, send commands,
collect what devices publish. `edge central ...` and the tests use it.

Central's ingest keeps a persistent session (MQTT 5: clean_start false, a session
expiry; MQTT 3.1.1: clean_session false) with QoS 1 subscriptions, so the broker
queues counts and events for it while it is away; it drops duplicates by (device,
stream, seq): a device's store numbers its messages in its own random stream, so a
re-flashed device (a fresh store, numbered from 1 again) is a new stream, not a run of
duplicates (edge.store's stream rules; no stream: the device's legacy stream). A counts
or events message whose stream or seq is not what the schema says is refused and logged
(`Collected.rejected`). On a broker without MQTT 5 (negotiated down as in
edge.link.client), an ack is matched by the `"corr"` in its payload: the digest of the
request central published.
On a NATS cluster (edge.link.nats) each ingest worker takes one partition of devices
and releases each device's counts and events in sequence order per stream
(edge.link.inorder).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.device import certs, enrol
from edge.link import topics
from edge.link.client import NODELAY, BrokerConfig, refused_v5, request_digest
from edge.link.errors import Rejected
from edge.link.inorder import GAP_TIMEOUT_S, InOrder, Released
from edge.link.messages import command_body, spooled_key
from edge.link.plans import bundle_body
from edge.link.signing import sign

log = logging.getLogger(__name__)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def signed_bundle(
    key: Ed25519PrivateKey,
    device: str,
    version: int,
    plans: Mapping[str, Any],
    default_plan: str,
    *,
    ttl_s: float = 3600,
    schedule: dict[str, Any] | None = None,
    detectors: list[dict[str, Any]] | None = None,
    patterns: dict[str, Any] | None = None,
) -> bytes:
    t = now_ms()
    body = bundle_body(
        device,
        version,
        t,
        t + int(ttl_s * 1000),
        plans,
        default_plan,
        schedule,
        detectors or [],
        patterns,
    )
    return sign(body, key)


def signed_command(
    key: Ed25519PrivateKey,
    device: str,
    command: dict[str, Any],
    *,
    ttl_s: float = 60,
    command_id: str | None = None,
) -> tuple[str, bytes]:
    cid = command_id or uuid.uuid4().hex
    t = now_ms()
    return cid, sign(command_body(device, cid, t, t + int(ttl_s * 1000), command), key)


def certificate_command(
    key: Ed25519PrivateKey,
    device: str,
    csr_pem: bytes,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    server_ips: Sequence[certs.IPAddress] = (),
) -> tuple[str, bytes]:
    """Central's answer to a device's `cert_request` event: the fleet CA signs the request
    for that device only (edge/device/certs.py), sent as a signed `certificate` command;
    with `server_ips` (the CA's record of its maintenance address) it serves the page."""
    now = datetime.datetime.now(datetime.UTC)
    pem = certs.sign(csr_pem, device, ca_cert, ca_key, now, server_ips=server_ips)
    return signed_command(key, device, {"kind": "certificate", "pem": pem.decode()})


async def answer_cert_requests(
    client: aiomqtt.Client,
    key: Ed25519PrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    answered: dict[str, str] | None = None,
    maintenance: Mapping[str, Sequence[certs.IPAddress]] | None = None,
) -> None:
    """Central's renewal service (`edge central enrol`), until cancelled: every
    `cert_request` event a device publishes on its own events topic (the broker's ACL
    ties the topic to the certificate's CN) is signed for that device only and sent back
    as a signed `certificate` command; a device in `maintenance` (the CA's record,
    certs.load_maintenance) gets serverAuth and its addresses, so the renewal still
    serves its page. A request already answered (by its digest, in `answered`) is not
    signed twice; one the CA refuses is logged with the reason."""
    record = maintenance or {}
    seen = answered if answered is not None else {}
    await client.subscribe(f"{topics.ROOT}/+/events", qos=1)
    async for msg in client.messages:
        parsed = topics.parse(topics.unpartitioned(str(msg.topic)))
        if parsed is None or parsed[1] != "events":
            continue
        device = parsed[0]
        try:
            batch = json.loads(msg.payload if isinstance(msg.payload, bytes) else b"")
            events = [e for e in batch["events"] if e.get("name") == "cert_request"]
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        for e in events:
            csr = str(e.get("detail", "")).encode()
            digest = hashlib.sha256(csr).hexdigest()
            if digest in seen:
                continue
            try:
                cid, cmd = certificate_command(
                    key, device, csr, ca_cert, ca_key, record.get(device, ())
                )
            except certs.CertError as exc:
                log.warning("cert_refused device=%s reason=%s", device, exc)
                seen[digest] = "refused"
                continue
            await client.publish(topics.topic(device, "cmd"), cmd, qos=1)
            seen[digest] = cid
            log.info("cert_signed device=%s command=%s", device, cid)


async def answer_enrolments(
    client: aiomqtt.Client,
    trusted: Mapping[str, Ed25519PublicKey],
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    ledger: enrol.Ledger,
    maintenance: Mapping[str, Sequence[certs.IPAddress]] | None = None,
) -> None:
    """Central's enrolment service (`edge central enrol`), until cancelled: each request
    a device publishes on the bootstrap listener (`edge/enrol/<device>/csr`, its token in
    the CSR) is checked and signed for that device (enrol.Ledger.answer: a valid, unused
    token for that id; the same request again gets the same certificate) and answered on
    `edge/enrol/<device>/cert` with the certificate, or the reason it was refused; both
    name the request by its digest. A device in `maintenance` gets serverAuth and its
    addresses, as on renewal. A retained request (anyone may store one there) is
    cleared, never answered: requests are live."""
    record = maintenance or {}
    requests = f"{topics.ENROL_ROOT}/+/csr"
    if speaks_v5(client):  # a live message keeps its retain flag (3.1.1: at subscribe only)
        await client.subscribe(requests, options=SubscribeOptions(qos=1, retainAsPublished=True))
    else:
        await client.subscribe(requests, qos=1)
    async for msg in client.messages:
        device = topics.parse_enrol(str(msg.topic))
        if device is None:
            continue
        csr = msg.payload if isinstance(msg.payload, bytes) else b""
        if msg.retain:
            if csr:
                await client.publish(str(msg.topic), b"", qos=1, retain=True)
            continue
        answer: dict[str, str] = {"csr": enrol.csr_digest(csr)}
        try:
            now = datetime.datetime.now(datetime.UTC)
            answer["cert"] = ledger.answer(
                csr, device, trusted, ca_cert, ca_key, now, record.get(device, ())
            ).decode()
            log.info("enrolled device=%s", device)
        except (enrol.EnrolError, OSError) as exc:
            answer["error"] = str(exc)[:300]
            log.warning("enrol_refused device=%s reason=%s", device, exc)
        await client.publish(topics.enrol_topic(device, "cert"), json.dumps(answer), qos=1)


def _props(correlation: bytes, response_topic: str) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.CorrelationData = correlation
    props.ResponseTopic = response_topic
    return props


@asynccontextmanager
async def connect(
    broker: BrokerConfig,
    identifier: str | None = None,
    persistent: bool = False,
    timeout_s: float = 10.0,
) -> AsyncIterator[aiomqtt.Client]:
    """A central client; `persistent` keeps its session (and queued QoS 1 messages) for 1 h
    (MQTT 5) or until it comes back (3.1.1). MQTT 5 unless the broker refuses it or
    `broker.protocol` says 3.1.1; each of the broker's endpoints in turn until one answers."""
    broker.warn_if_plain("central")
    name = identifier or f"central-{uuid.uuid4().hex[:8]}"
    v5 = broker.protocol != "3.1.1"
    last: Exception | None = None
    for host, port in [*broker.endpoints(), *broker.endpoints()]:
        props = None
        if persistent and v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 3600
        client = aiomqtt.Client(
            host,
            port,
            identifier=name,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            tls_context=broker.tls_context(),
            # paho refuses clean_start on 3.1.1 unless it is its default
            clean_start=(not persistent) if v5 else MQTT_CLEAN_START_FIRST_ONLY,
            clean_session=None if v5 else not persistent,
            properties=props,
            timeout=timeout_s,
            keepalive=20,
            socket_options=NODELAY,
        )
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            last = exc
            if v5 and broker.protocol == "auto" and refused_v5(exc):
                v5 = False
            continue
        try:
            yield client
        finally:
            await client.__aexit__(None, None, None)
        return
    raise aiomqtt.MqttError(f"no broker endpoint answered ({last})")


def speaks_v5(client: aiomqtt.Client) -> bool:
    return int(client._client.protocol) == int(aiomqtt.ProtocolVersion.V5)


async def request(
    client: aiomqtt.Client,
    device: str,
    leaf: str,
    payload: bytes,
    *,
    until: tuple[str, ...] = ("accepted", "rejected", "done"),
    timeout_s: float = 10.0,
    retain: bool = False,
    times: list[float] | None = None,
    others: list[aiomqtt.Message] | None = None,
) -> list[dict[str, Any]]:
    """Publish to a device's plan/cmd topic; collect its acks (matched by correlation
    data) until one has a status in `until` (or timeout). Other messages that arrive
    meanwhile go to `others` (when given)."""
    ack_topic = topics.topic(device, "ack")
    v5 = speaks_v5(client)
    corr = uuid.uuid4().bytes if v5 else request_digest(payload)
    got: list[dict[str, Any]] = []
    await client.subscribe(ack_topic, qos=1)
    await client.publish(
        topics.topic(device, leaf),
        payload,
        qos=1,
        retain=retain,
        properties=_props(corr, ack_topic) if v5 else None,
    )
    try:
        async with asyncio.timeout(timeout_s):
            async for msg in client.messages:
                if str(msg.topic) != ack_topic:
                    if others is not None:
                        others.append(msg)
                    continue
                ack = json.loads(msg.payload if isinstance(msg.payload, bytes) else b"{}")
                if v5:
                    data = getattr(msg.properties, "CorrelationData", None)
                else:
                    data = bytes.fromhex(ack.pop("corr", ""))
                if data != corr:
                    continue
                got.append(ack)
                if times is not None:
                    times.append(time.monotonic())
                if ack.get("status") in until:
                    break
    except TimeoutError:
        pass
    return got


@dataclass
class Collected:
    """What central has received from devices, deduplicated by (device, stream, seq)."""

    by_kind: dict[str, dict[tuple[str, str, int], dict[str, Any]]] = field(
        default_factory=lambda: {"counts": {}, "events": {}}
    )
    duplicates: int = 0
    received: int = 0
    rejected: list[str] = field(default_factory=list)  # "topic: why", each refused message
    stream_order: dict[str, list[str]] = field(default_factory=dict)  # first seen first
    spat: dict[str, int] = field(default_factory=dict)
    status: dict[str, dict[str, Any]] = field(default_factory=dict)
    acks: list[dict[str, Any]] = field(default_factory=list)
    raw: list[tuple[str, bytes]] = field(default_factory=list)
    keep_raw: bool = False

    def add(self, topic: str, payload: bytes) -> None:
        parsed = topics.parse(topics.unpartitioned(topic))
        if parsed is None:
            return
        device, leaf = parsed
        if self.keep_raw:
            self.raw.append((topic, payload))
        if leaf == "spat":
            self.spat[device] = self.spat.get(device, 0) + 1
            return
        try:
            obj = json.loads(payload)
        except ValueError:
            return
        if leaf == "status":
            self.status[device] = obj
        elif leaf == "ack":
            self.acks.append(obj)
        elif leaf in self.by_kind:
            try:
                if not isinstance(obj, dict):
                    raise Rejected("schema", f"{leaf} from {device} must be a JSON object")
                stream, seq = spooled_key(obj, f"{leaf} from {device}")
            except Rejected as exc:
                log.warning("ingest_rejected topic=%s %s", topic, exc)
                self.rejected.append(f"{topic}: {exc}"[:300])
                return
            self.received += 1
            streams = self.stream_order.setdefault(device, [])
            if stream not in streams:
                streams.append(stream)
            key = (device, stream, seq)
            if key in self.by_kind[leaf]:
                self.duplicates += 1
            else:
                self.by_kind[leaf][key] = obj

    def last_seqs(self) -> dict[tuple[str, str], int]:
        """Each (device, stream)'s highest sequence number here."""
        last: dict[tuple[str, str], int] = {}
        for kind in self.by_kind.values():
            for d, st, s in kind:
                last[d, st] = max(s, last.get((d, st), s))
        return last

    def streams(self, device: str) -> list[str]:
        """The device's streams here, the first seen first ("": its legacy stream)."""
        return list(self.stream_order.get(device, []))

    def seqs(self, device: str, stream: str | None = None) -> set[int]:
        """The device's sequence numbers here, in `stream` (None: in every stream)."""
        return {
            s
            for kind in self.by_kind.values()
            for (d, st, s) in kind
            if d == device and stream in (None, st)
        }


async def collect(
    client: aiomqtt.Client, into: Collected, leaves: tuple[str, ...], device: str = "+"
) -> None:
    """Subscribe (QoS 1) and add everything that arrives to `into`, until cancelled."""
    for leaf in leaves:
        await client.subscribe(f"{topics.ROOT}/{device}/{leaf}", qos=1)
    async for msg in client.messages:
        payload = msg.payload if isinstance(msg.payload, bytes) else b""
        into.add(str(msg.topic), payload)


async def ingest_partition(
    broker: BrokerConfig,
    partition: int,
    into: Collected,
    stop: asyncio.Event,
    gap_timeout_s: float = GAP_TIMEOUT_S,
) -> None:
    """One of central's ingest workers on a NATS cluster (edge.link.nats): a persistent
    session (id `ingest-<partition>`) on its partition of devices, so the cluster holds
    its QoS 1 messages while it is away; reconnects (to the next node) until `stop`.
    Counts and events reach `into` in each device's sequence order per stream, duplicates
    dropped (edge.link.inorder): a message behind a gap waits for the gap's redelivery, up
    to `gap_timeout_s`; a new stream (a re-flashed device) starts at 1; a stream `into`
    already has continues after its last number, and what is missing below that (a
    redelivery after a restart) is still taken, once."""
    from edge.link.nats import ingest_filter

    loop = asyncio.get_running_loop()
    order: InOrder[tuple[str, bytes]] = InOrder(gap_timeout_s)
    for (device, stream), last in into.last_seqs().items():
        # its holes: still to come
        order.expect(device, last + 1, into.seqs(device, stream), stream)

    def add(released: list[Released[tuple[str, bytes]]]) -> None:
        for r in released:
            into.add(*r.payload)

    def take(topic: str, payload: bytes) -> None:
        parsed = topics.parse(topics.unpartitioned(topic))
        if parsed is not None and parsed[1] in into.by_kind:
            try:
                obj = json.loads(payload)
                stream, seq = spooled_key(obj, "")
            except (ValueError, TypeError, AttributeError, Rejected):
                pass  # not held: `into` refuses it, saying why
            else:
                add(order.push(parsed[0], seq, (topic, payload), loop.time(), stream))
                return
        into.add(topic, payload)

    async def expire() -> None:
        while True:
            await asyncio.sleep(0.5)
            add(order.expire(loop.time()))

    timer = asyncio.create_task(expire())
    try:
        while not stop.is_set():
            try:
                async with connect(broker, identifier=f"ingest-{partition}", persistent=True) as c:
                    await c.subscribe(ingest_filter(partition), qos=1)
                    async for msg in c.messages:
                        take(str(msg.topic), msg.payload if isinstance(msg.payload, bytes) else b"")
            except aiomqtt.MqttError:
                await asyncio.sleep(0.3)
    finally:
        timer.cancel()
        add(order.flush())  # stopping: what is held goes out, in order
