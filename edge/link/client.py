"""The asyncio shell around one MQTT connection (aiomqtt 2.x, paho underneath).

Lifetime as aiomqtt intends it: reconnection is ours, in a loop with
jittered exponential backoff. On every connect: a last will ("offline",
retained) registered in CONNECT, the retained birth status, the device's
subscriptions, then the spool drained in order. A lost connection loses
nothing: spooled rows are deleted only after their PUBACK and are all sent
again after a reconnect (central drops duplicates by stream and sequence number).

Protocol level: MQTT 5 first; a broker that refuses it (CONNACK "unsupported protocol
version": RabbitMQ 3.10, NATS 2.9) gets MQTT 3.1.1 from then on, with the same
guarantees: what MQTT 5 carried in properties goes in the payload (`correlation_in`):
a request's correlation is the digest of its bytes (`request_digest`), and the ack or
state answering it carries that as `"corr"` (hex). A clustered broker's other nodes
(`BrokerConfig.alternates`) are tried at once after a failed connect, the backoff only
between rounds of all nodes (edge.link.reconnect); a connect waits `CONNECT_TIMEOUT_S`
for its CONNACK, less than a publish may wait, so a node that cannot take a session
now (a cluster electing leaders) is left for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import sqlite3
import ssl
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.link import topics
from edge.link.messages import status_offline, with_seq
from edge.link.reconnect import Reconnect
from edge.store import SpoolRow, Store

log = logging.getLogger(__name__)

# Small messages must not wait for Nagle + delayed ACK (~40 ms a hop); paho does not set it.
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
SPOOL_WINDOW = 64  # spooled messages in flight at once
PUBLISH_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0  # TCP + TLS + CONNACK, then the next node
# The largest packet the broker may send this device (MQTT 5 CONNECT Maximum Packet Size;
# larger ones it drops for us): a neighbour's outflow (a topic another device writes) must
# not make the process that runs the tick read hundreds of megabytes (the broker's own
# bound). Far above the 64 KiB plan bundle, so central's oversized messages still reach the
# device and get their rejection ack.
MAX_PACKET_BYTES = 4 * 1024 * 1024
PROTOCOLS = ("auto", "5", "3.1.1")


def refused_v5(exc: BaseException) -> bool:
    """Whether a connect failed because the broker does not speak MQTT 5."""
    return isinstance(exc, aiomqtt.MqttCodeError) and "protocol version" in str(exc).lower()


def closed_before_connack_fails(client: aiomqtt.Client) -> aiomqtt.Client:
    """Make a connect fail at once when the broker closes the connection before its
    CONNACK. aiomqtt 2.x ignores a disconnect before the CONNACK and waits out its whole
    timeout (`CONNECT_TIMEOUT_S`): a cluster node that is shutting down closes a half-made
    connection that way, and the device should be on its way to the next node."""
    paho_client = client._client  # aiomqtt has no hook for this
    inner: Callable[..., None] | None = paho_client.on_disconnect

    def on_disconnect(*args: Any) -> None:
        pending = client._connected
        if not pending.done():
            reason = args[3] if len(args) > 3 else "?"
            pending.set_exception(aiomqtt.MqttError(f"closed before CONNACK ({reason})"))
        if inner is not None:
            inner(*args)

    paho_client.on_disconnect = on_disconnect
    return client


def request_digest(payload: bytes) -> bytes:
    """On MQTT 3.1.1, a request's correlation: the first 16 bytes of its SHA-256. Central
    computes the same over what it published, so an ack names exactly that request."""
    return hashlib.sha256(payload).digest()[:16]


def correlation_in(payload: str, correlation: bytes) -> str:
    """A JSON object text with `"corr": <hex>` added (MQTT 3.1.1's CorrelationData)."""
    assert payload.startswith("{") and len(payload) > 2
    return f'{{"corr":"{correlation.hex()}",{payload[1:]}'


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    host: str
    port: int
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    crlfile: str | None = None  # the fleet CA's revocation list (PEM): a revoked broker fails
    renewed: str | None = None  # a renewed certificate + key (edge/device/certs.py), if newer
    username: str | None = None
    password: str | None = None
    keepalive_s: int = 20
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    # more nodes of a clustered broker: a client moves to the next after a failed connect
    alternates: tuple[tuple[str, int], ...] = ()

    # "5", "3.1.1", or "auto" (5, then 3.1.1 where the broker refuses 5)
    protocol: str = "auto"

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"broker protocol {self.protocol!r}: one of {', '.join(PROTOCOLS)}")

    def endpoints(self) -> tuple[tuple[str, int], ...]:
        return ((self.host, self.port), *self.alternates)

    def tls_context(self, client: bool = True) -> ssl.SSLContext | None:
        """The fleet CA only, TLS 1.2 or later, the broker's name in its certificate's
        subject alternative names (never the CN), and with crlfile the CA's CRL checked.
        `client=False`: no client certificate (the bootstrap connection), same checks."""
        if self.cafile is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.cafile)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.hostname_checks_common_name = False
        if self.crlfile is not None:
            ctx.load_verify_locations(cafile=self.crlfile)
            ctx.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        if client and self.has_client_cert():
            ctx.load_cert_chain(*self.client_pair())
        return ctx

    def has_client_cert(self) -> bool:
        """A provisioned pair, or one the device made and central signed (enrolled)."""
        return bool(self.certfile) or (self.renewed is not None and os.path.isfile(self.renewed))

    def client_pair(self) -> tuple[str, str | None]:
        """(certificate file, key file): the renewed pair once it outlasts the provisioned
        one; an enrolled device (no provisioned pair) has only the renewed one."""
        if self.certfile is None:
            assert self.renewed is not None
            return self.renewed, None
        if self.renewed is None or not os.path.isfile(self.renewed):
            return self.certfile, self.keyfile
        from cryptography import x509

        def expiry(path: str) -> float:
            try:
                with open(path, "rb") as f:
                    cert = x509.load_pem_x509_certificate(f.read())
            except (OSError, ValueError):
                return 0.0
            return cert.not_valid_after_utc.timestamp()

        if expiry(self.renewed) > expiry(self.certfile):
            return self.renewed, None
        return self.certfile, self.keyfile

    def warn_if_plain(self, who: str) -> bool:
        """Log loudly when the link would run without TLS (mqtt://); True if it would."""
        if self.cafile is not None:
            return False
        log.warning(
            "link_insecure: %s connects to %s:%d over plain MQTT (no TLS): anyone on the "
            "network path can read and inject its traffic; use mqtts:// with the fleet CA",
            who,
            self.host,
            self.port,
        )
        return True


class LinkHandler(Protocol):
    def birth(self) -> str: ...

    async def on_message(
        self, leaf: str, payload: bytes, correlation: bytes | None, retained: bool
    ) -> None: ...

    def on_connected(self) -> None: ...

    def on_disconnected(self, reason: str) -> None: ...

    def on_outflow(self, device: str, payload: bytes) -> None: ...


def _connect_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.MaximumPacketSize = MAX_PACKET_BYTES
    return props


def correlation_of(message: aiomqtt.Message) -> bytes | None:
    props = message.properties
    data = getattr(props, "CorrelationData", None) if props is not None else None
    return bytes(data) if isinstance(data, bytes | bytearray) else None


class LinkClient:
    """One device's connection to the broker; `run()` until cancelled."""

    def __init__(
        self,
        device: str,
        broker: BrokerConfig,
        handler: LinkHandler,
        store: Store | None,
        db: Executor | None,
    ) -> None:
        self.device = device
        self.broker = broker
        self.handler = handler
        self.store = store
        self.db = db
        self.client: aiomqtt.Client | None = None
        self.spool_ready = asyncio.Event()
        self.connected = asyncio.Event()
        self.outbox: deque[tuple[str, str, bytes | None]] = deque(maxlen=256)
        self.outbox_ready = asyncio.Event()
        self.reconnect = Reconnect(
            len(broker.endpoints()), broker.backoff_min_s, broker.backoff_max_s
        )
        self.connects = 0
        self.sent_spooled = 0
        self.v5 = broker.protocol != "3.1.1"  # the level of the next connect
        # The upstream neighbours whose `outflow` this device reads (its [[neighbour]]s).
        self.neighbours: frozenset[str] = frozenset()

    def topic(self, leaf: str) -> str:
        return topics.topic(self.device, leaf)

    async def _db(self, fn: Callable[..., object], *args: object) -> object:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.db, fn, *args)

    # -- the connection loop -------------------------------------------------------------

    async def run(self) -> None:
        status = self.topic("status")
        self.broker.warn_if_plain(f"device {self.device}")
        while True:
            reason = "closed"
            host, port = self.broker.endpoints()[self.reconnect.endpoint]
            retry_now = False
            try:
                async with closed_before_connack_fails(
                    aiomqtt.Client(
                        host,
                        port,
                        identifier=self.device,
                        username=self.broker.username,
                        password=self.broker.password,
                        protocol=(
                            aiomqtt.ProtocolVersion.V5 if self.v5 else aiomqtt.ProtocolVersion.V311
                        ),
                        will=aiomqtt.Will(status, status_offline(self.device), qos=1, retain=True),
                        keepalive=self.broker.keepalive_s,
                        tls_context=self.broker.tls_context(),
                        timeout=CONNECT_TIMEOUT_S,
                        max_inflight_messages=SPOOL_WINDOW,
                        socket_options=NODELAY,
                        properties=_connect_properties() if self.v5 else None,
                    )
                ) as client:
                    self.client = client
                    self.connects += 1
                    await client.publish(
                        status, self.handler.birth(), qos=1, retain=True, timeout=PUBLISH_TIMEOUT_S
                    )
                    await client.subscribe(
                        [(self.topic(leaf), 1) for leaf in topics.DEVICE_SUBSCRIBES],
                        timeout=PUBLISH_TIMEOUT_S,
                    )
                    if self.neighbours:  # QoS 0, as published: a late release is no use
                        await client.subscribe(
                            [(topics.topic(n, "outflow"), 0) for n in sorted(self.neighbours)],
                            timeout=PUBLISH_TIMEOUT_S,
                        )
                    self.reconnect.connected()
                    self.connected.set()
                    self.handler.on_connected()
                    log.info("link up: %s:%d (MQTT %s)", host, port, "5" if self.v5 else "3.1.1")
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(self._receive(client))
                        tg.create_task(self._drain_spool(client))
                        tg.create_task(self._drain_outbox(client))
            except* aiomqtt.MqttError as group:
                reason = "; ".join(str(e) for e in group.exceptions)[:300]
                if (
                    self.v5
                    and self.broker.protocol == "auto"
                    and any(refused_v5(e) for e in group.exceptions)
                ):
                    log.warning("link: %s:%d refuses MQTT 5; using MQTT 3.1.1", host, port)
                    self.v5 = False
                    retry_now = True
            except* (OSError, TimeoutError) as group:
                reason = "; ".join(repr(e) for e in group.exceptions)[:300]
            except* Exception as group:
                # Anything else (a bug, a handler's error) must not end the link, nor through
                # it the runtime: logged with its traceback, then reconnected like any loss.
                reason = "; ".join(repr(e) for e in group.exceptions)[:300]
                log.error("link_error (%s): reconnecting", reason, exc_info=group)
            finally:
                was_up = self.connected.is_set()
                self.client = None
                self.connected.clear()
            if was_up:
                self.handler.on_disconnected(reason)
            if retry_now:
                continue
            # the next node of a cluster: at once after a failed connect, soon after a lost link
            delay = self.reconnect.lost() if was_up else self.reconnect.failed()
            log.warning("link down (%s); reconnecting in %.1f s", reason, delay)
            await asyncio.sleep(delay)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            parsed = topics.parse(str(message.topic))
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if parsed is not None and parsed[1] == "outflow" and parsed[0] in self.neighbours:
                if message.retain:  # sent live once a second: a retained one is stale
                    log.debug("dropped a retained outflow from %s", parsed[0])
                    continue
                try:  # parsed and projected at once, never waiting (edge/link/outflow.py)
                    self.handler.on_outflow(parsed[0], payload)
                except Exception:
                    log.exception("dropped an outflow from %s: handler failed", parsed[0])
                continue
            if (
                parsed is None
                or parsed[0] != self.device
                or parsed[1] not in topics.DEVICE_SUBSCRIBES
            ):
                log.warning("dropped a message on unexpected topic %s", message.topic)
                continue
            corr = correlation_of(message) if self.v5 else request_digest(payload)
            try:
                await self.handler.on_message(parsed[1], payload, corr, bool(message.retain))
            except Exception:  # one bad message must never take the link down
                log.exception("dropped a message on %s: handler failed", message.topic)

    # -- outgoing ----------------------------------------------------------------------

    async def _drain_spool(self, client: aiomqtt.Client) -> None:
        """Send spooled rows in order, QoS 1; delete each only after its PUBACK."""
        if self.store is None:
            return
        store = self.store
        after = 0
        undeleted: list[int] = []  # acknowledged, but the store failed to forget them yet
        read_failing = False
        while True:
            try:
                rows = await self._db(store.spool_pending, after, SPOOL_WINDOW)
            except sqlite3.Error as exc:
                # the rows stay stored; read again each second (the link stays up for SPaT)
                if not read_failing:
                    log.error("link_spool_read_failed error=%r: retrying each second", exc)
                read_failing = True
                await asyncio.sleep(1.0)
                continue
            if read_failing:
                log.warning("link_spool_read_recovered")
                read_failing = False
            assert isinstance(rows, list)
            if not rows:
                self.spool_ready.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.spool_ready.wait(), 1.0)
                continue

            async def send(row: SpoolRow) -> int:
                stream, seq = store.wire(row.seq)
                await client.publish(
                    self.topic(row.kind),
                    with_seq(self.device, seq, row.body, stream),
                    qos=1,
                    timeout=PUBLISH_TIMEOUT_S,
                )
                return row.seq

            acked = await asyncio.gather(*(send(r) for r in rows))
            self.sent_spooled += len(acked)
            after = rows[-1].seq
            undeleted.extend(acked)
            try:
                await self._db(store.spool_delete, undeleted)
                undeleted = []
            except sqlite3.Error as exc:
                # delivered; kept until a delete succeeds (a resend after a reconnect is
                # dropped by central by its sequence number)
                log.error("link_spool_delete_failed rows=%d error=%r", len(undeleted), exc)

    async def _drain_outbox(self, client: aiomqtt.Client) -> None:
        while True:
            while self.outbox:
                leaf, payload, corr = self.outbox[0]
                props = None
                if corr is not None and self.v5:
                    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                    props.CorrelationData = corr
                elif corr is not None:
                    payload = correlation_in(payload, corr)
                await client.publish(
                    self.topic(leaf), payload, qos=1, properties=props, timeout=PUBLISH_TIMEOUT_S
                )
                self.outbox.popleft()
            self.outbox_ready.clear()
            await self.outbox_ready.wait()

    def send_reliable(self, leaf: str, payload: str, correlation: bytes | None = None) -> None:
        """Queue an ack or state reply (QoS 1, kept across a reconnect, bounded)."""
        self.outbox.append((leaf, payload, correlation))
        self.outbox_ready.set()

    def spooled(self) -> None:
        """Tell the sender that new rows are in the spool."""
        self.spool_ready.set()

    async def publish_now(
        self, leaf: str, payload: str | bytes, qos: int = 0, retain: bool = False
    ) -> bool:
        """Best effort (SPaT, status updates): dropped while disconnected."""
        client = self.client
        if client is None:
            return False
        try:
            await client.publish(
                self.topic(leaf), payload, qos=qos, retain=retain, timeout=PUBLISH_TIMEOUT_S
            )
        except aiomqtt.MqttError:
            return False
        return True
