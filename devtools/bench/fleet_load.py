"""The fleet bench's capacity load: pre-encoded MQTT 3.1.1 packets over raw TLS sockets, so
the generator and the counting subscriber cost far less CPU per message than a broker.

Rules it keeps:
- Every simulated device is its own TLS connection with its own certificate (the broker's
  per-device ACL applies), CONNECT with a clean session, then its packets are built once:
  SPaT (QoS 0) as one fixed PUBLISH, a QoS 1 events message a second with its sequence
  number and packet id. Each tick (50 ms) a device's due packets go out in one write
  (one TLS record: the per-write cost is most of a sender's CPU per message).
- A QoS 1 message counts as acknowledged only when its PUBACK (packet id) has come back.
- The counter (central's side, one connection per filter set) parses only the MQTT framing,
  counts QoS 0 and QoS 1 PUBLISHes, PUBACKs each QoS 1 one, and keeps (device, seq) of the
  QoS 1 ones so the bench checks that every acknowledged one arrived.
- Each process reports its own CPU seconds (time.process_time) over the measured window,
  so the figures say whether the load side or the broker was the limit.
"""

from __future__ import annotations

import os
import selectors
import socket
import ssl
import struct
import time
from typing import Any

from edge.link import topics
from edge.link.client import BrokerConfig

TICK_S = 0.05  # a device's due packets go out in one write each tick
NICE = 10


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id: str, keepalive_s: int = 60) -> bytes:
    body = _str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive_s) + _str(client_id)
    return b"\x10" + _varint(len(body)) + body


def publish_packet(topic: str, payload: bytes, qos: int = 0, pid: int = 0) -> bytes:
    body = _str(topic) + (struct.pack("!H", pid) if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + _varint(len(body)) + body


def subscribe_packet(pid: int, filters: list[str], qos: int = 1) -> bytes:
    body = struct.pack("!H", pid) + b"".join(_str(f) + bytes([qos]) for f in filters)
    return b"\x82" + _varint(len(body)) + body


def _open(cfg: BrokerConfig, host: str, port: int, client_id: str) -> ssl.SSLSocket:
    """TCP + TLS + CONNECT, and the CONNACK read (blocking); the socket left non-blocking."""
    ctx = cfg.tls_context()
    assert ctx is not None
    raw = socket.create_connection((host, port), timeout=30)
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s = ctx.wrap_socket(raw, server_hostname=host)
    s.sendall(connect_packet(client_id))
    ack = b""
    while len(ack) < 4:
        chunk = s.recv(4 - len(ack))
        if not chunk:
            raise ConnectionError(f"{client_id}: closed before CONNACK")
        ack += chunk
    if ack[0] != 0x20 or ack[3] != 0:
        raise ConnectionError(f"{client_id}: CONNACK refused ({ack.hex()})")
    s.setblocking(False)
    return s


class _Conn:
    __slots__ = ("acked", "credit", "inbuf", "name", "out", "pending", "pid", "seq", "sock")

    def __init__(self, name: str, sock: ssl.SSLSocket) -> None:
        self.name = name
        self.sock = sock
        self.out = bytearray()
        self.inbuf = b""
        self.credit = 0.0
        self.seq = 0
        self.pid = 0
        self.pending: dict[int, int] = {}  # packet id -> seq
        self.acked: list[int] = []

    def flush(self) -> None:
        while self.out:
            try:
                n = self.sock.send(self.out)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return
            del self.out[:n]

    def read_acks(self) -> None:
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return
        if not data:
            raise ConnectionError(f"{self.name}: closed by the broker")
        buf = self.inbuf + data
        i = 0
        while len(buf) - i >= 4 and buf[i] == 0x40:  # PUBACK: 0x40 0x02 id id
            pid = (buf[i + 2] << 8) | buf[i + 3]
            seq = self.pending.pop(pid, None)
            if seq is not None:
                self.acked.append(seq)
            i += 4
        self.inbuf = buf[i:]


def load_worker(
    devices: list[tuple[str, BrokerConfig]],
    rate_hz: float,
    go: Any,
    out: Any,
) -> None:
    """`rate_hz` SPaT a second per device (QoS 0) and one QoS 1 events message a second,
    from the common start until `finish` is set; then the counts and CPU seconds."""
    os.nice(NICE)
    ready, start, finish = go
    conns = []
    for name, cfg in devices:
        conns.append(_Conn(name, _open(cfg, cfg.host, cfg.port, name)))
    spat = {c.name: publish_packet(topics.topic(c.name, "spat"), _spat(c.name), 0) for c in conns}
    events_topic = {c.name: topics.topic(c.name, "events") for c in conns}
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    ready.release()
    start.wait()
    cpu0, t0 = time.process_time(), time.monotonic()
    sent0 = sent1 = 0
    next_q1 = t0
    last = t0
    k = 0
    while not finish.is_set():
        now = time.monotonic()
        # what is due since the last tick (a late tick sends more, not less)
        due, last = rate_hz * min(now - last, 1.0), now
        q1_due = now >= next_q1
        if q1_due:
            next_q1 += 1.0
        for c in conns:
            c.credit += due
            n = int(c.credit)
            if n:
                c.credit -= n
                c.out += spat[c.name] * n
                sent0 += n
            if q1_due:
                c.seq += 1
                c.pid = c.pid % 65535 + 1
                c.pending[c.pid] = c.seq
                body = f'{{"dev":"{c.name}","seq":{c.seq},"events":[]}}'.encode()
                c.out += publish_packet(events_topic[c.name], body, 1, c.pid)
                sent1 += 1
            c.flush()
        for key, _ev in sel.select(0):
            key.data.read_acks()
        k += 1
        delay = t0 + k * TICK_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    window = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    # the rest acknowledged (up to 10 s), then the figures
    end = time.monotonic() + 10
    while time.monotonic() < end and any(c.pending or c.out for c in conns):
        for c in conns:
            c.flush()
        for key, _ev in sel.select(0.05):
            key.data.read_acks()
    for c in conns:
        c.sock.close()
    out.put(
        {
            "spat_sent": sent0,
            "q1_sent": sent1,
            "acked": {c.name: c.acked for c in conns},
            "unacked": sum(len(c.pending) for c in conns),
            "cpu_s": cpu,
            "window_s": window,
            "sent_per_s": (sent0 + sent1) / window,
        }
    )


def _spat(name: str) -> bytes:
    from devtools.bench.link import _spat_payload

    return _spat_payload(name, 0, int(time.time() * 1000))


def count_worker(
    cfg: BrokerConfig,
    client_id: str,
    filters: list[str],
    counts: Any,
    ready: Any,
    stop: Any,
    out: Any,
) -> None:
    """Central's side: subscribe (QoS 1) and count what arrives until `stop`; counts[0]
    QoS 0, counts[1] QoS 1, published every 0.1 s; then the QoS 1 (device, seq) pairs."""
    os.nice(NICE)
    s = _open(cfg, cfg.host, cfg.port, client_id)
    s.setblocking(True)
    s.sendall(subscribe_packet(1, filters))
    s.settimeout(0.1)
    q0 = q1 = 0
    seqs: dict[str, list[int]] = {}
    buf = b""
    subscribed = False
    last_pub = 0.0
    cpu0 = time.process_time()
    while not stop.is_set():
        try:
            data = s.recv(1 << 18)
        except (TimeoutError, ssl.SSLWantReadError):
            data = b""
        else:
            if not data:
                raise ConnectionError(f"{client_id}: closed by the broker")
        buf += data
        i, n = 0, len(buf)
        acks = bytearray()
        while i + 2 <= n:
            # fixed header: type/flags, remaining length (varint)
            h = buf[i]
            j, mult, length = i + 1, 1, 0
            while j < n:
                d = buf[j]
                length += (d & 0x7F) * mult
                mult *= 128
                j += 1
                if not d & 0x80:
                    break
            else:
                break
            if j + length > n:
                break
            kind = h & 0xF0
            if kind == 0x30:
                if h & 0x06:
                    tl = (buf[j] << 8) | buf[j + 1]
                    pid_at = j + 2 + tl
                    acks += b"\x40\x02" + buf[pid_at : pid_at + 2]
                    payload = buf[pid_at + 2 : j + length]
                    q1 += 1
                    a = payload.find(b'"dev":"') + 7
                    b = payload.find(b'"', a)
                    c = payload.find(b'"seq":') + 6
                    seqs.setdefault(payload[a:b].decode(), []).append(
                        int(payload[c : payload.find(b",", c)])
                    )
                else:
                    q0 += 1
            elif kind == 0x90:
                subscribed = True
                ready.set()
            i = j + length
        buf = buf[i:]
        if acks:
            s.sendall(acks)
        now = time.monotonic()
        if now - last_pub >= 0.1:
            counts[0], counts[1], counts[2] = q0, q1, int((time.process_time() - cpu0) * 1e6)
            last_pub = now
    counts[0], counts[1], counts[2] = q0, q1, int((time.process_time() - cpu0) * 1e6)
    out.put({"seqs": seqs, "subscribed": subscribed})
    s.close()
