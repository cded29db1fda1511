"""`edge bench fleet [--json] [--quick]`: a city fleet on the 3-node NATS cluster
(edge.link.nats) next to one Mosquitto, on this machine.

Rules it keeps:
- Capacity first, on each broker: the raw-socket load (devtools.bench.fleet_load,
  EDGE_BENCH_FLEET_CAPACITY_HZ SPaT a second per device, default 100, and one QoS 1
  message a second) from several processes, counted by raw subscribers; messages/s
  delivered and the CPU (% of one core) of broker, load and counters over one window, so
  the figures say which side was the limit.
- Then the fleet as devices behave: several processes (EDGE_BENCH_FLEET_WORKERS, default
  2), each with many simulated devices: one TLS connection and certificate each, SPaT at
  10 Hz (QoS 0) and one sequence-numbered QoS 1 events message a second. A device keeps
  each QoS 1 message until its PUBACK and, after a reconnect (to the next node), sends
  every unacknowledged one again in order before anything new: the device spool's rule.
- Central's ingest is one process per partition (EDGE_BENCH_FLEET_PARTITIONS, default
  2), a persistent session each, releasing each device's QoS 1 messages in sequence
  order as central does (edge.link.inorder); on Mosquitto the same workers share
  `$share/ingest/...` subscriptions (which split a device's messages between workers).
- Each simulated device reconnects with the device link's policy (edge.link.reconnect)
  and fails a connect the broker closes before its CONNACK at once, as the link does;
  only the devices' first connects are capped per process (32 at a time).
- On the cluster the leader of the QoS 1 stream (the worst node to lose) is SIGKILLed
  mid-run and restarted, then a rolling restart as an operator does it
  (NatsCluster.rolling_restart: every replica current, lame duck, the node leading
  nothing, the ingest off it, stop, start, current again, next); the devices run until
  a third of a run after each.
  Figures: every device reconnects (reconnect p50/p99/max in s, and
  `reconnect_breakdown`: when each device noticed, its failed connects and the time in
  them, queued, asleep), QoS 1 messages lost after dedup (acked by the broker, never at
  central, after waiting past JetStream's redelivery), duplicates and per-device order
  as delivered to the ingest and after its in-order release, the QoS 1 stream's state
  at the end, and the control tick's jitter of one real device (`edge run`'s runtime
  and central link) on the cluster.
- It fails loudly (`failures`: FAIL rows, "ok": false, exit status 1) on any
  acknowledged QoS 1 message lost, or any duplicate or out-of-order message after
  central's ingest; each QoS 1 message's sends and deliveries are traced so a loss can
  be placed in time and node.
- Everything runs nice'd; the machine's load average is part of the record.

    edge bench fleet [--json] [--quick]
    EDGE_BENCH_FLEET_DEVICES=300 EDGE_BENCH_FLEET_SECONDS=20 edge bench fleet --json
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import multiprocessing as mp
import os
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from edge.link import topics
from edge.link.client import CONNECT_TIMEOUT_S, BrokerConfig, closed_before_connack_fails
from edge.link.inorder import InOrder, Released
from edge.link.mosquitto import Mosquitto
from edge.link.nats import NatsCluster, ingest_filter
from edge.link.reconnect import Reconnect
from paho.mqtt.enums import CallbackAPIVersion

from devtools.bench.link import _cpu_s, _pct, _spat_payload

NICE = 10
RUN_SEQS = 1_000_000  # each run's sequence numbers: (base, base + RUN_SEQS]


# --- the simulated devices (one worker process holds many) -----------------------------------


class SimDevice:
    """A device's link without its runtime: reconnects as the device link does
    (edge.link.reconnect, the same CONNACK wait) and resends what is unacknowledged, in
    order, before anything new."""

    def __init__(self, name: str, cfg: BrokerConfig, seq_base: int) -> None:
        self.name = name
        self.cfg = cfg
        self.client: aiomqtt.Client | None = None
        self.seq = seq_base
        self.unacked: OrderedDict[int, bytes] = OrderedDict()
        self.infos: dict[int, paho.MQTTMessageInfo] = {}
        self.acked_max = 0
        self.acked: set[int] = set()
        # each QoS 1 message's sends, [epoch s, port], and when its PUBACK was seen
        self.sent: dict[int, list[list[float]]] = {}
        self.acked_at: dict[int, float] = {}
        self.port = 0
        self.down_since: float | None = None
        self.reconnects: list[tuple[float, float]] = []  # (lost at, up again at), epoch s
        # per outage, where its time went: [failed attempts, s in them, s queued for a
        # connect slot, s asleep between attempts], and each failed attempt's kind
        self.outages: list[list[float]] = []
        self.failures: dict[str, int] = {}
        # per outage: [port lost, [[port tried, kind, s], ...] failed connects, port reached]
        self.paths: list[list[Any]] = []
        self.connects = 0

    def poll_acks(self) -> None:
        for seq, info in list(self.infos.items()):
            if info.is_published():
                del self.infos[seq]
                self.unacked.pop(seq, None)
                self.acked.add(seq)
                self.acked_at[seq] = time.time()

    def send_q1(self, seq: int) -> None:
        c = self.client
        if c is None:
            return
        info = c._client.publish(topics.topic(self.name, "events"), self.unacked[seq], qos=1)
        if info.rc == 0:
            self.infos[seq] = info
            self.sent.setdefault(seq, []).append([round(time.time(), 3), self.port])

    async def run(self, stop: asyncio.Event, sem: asyncio.Semaphore) -> None:
        eps = self.cfg.endpoints()
        policy = Reconnect(len(eps), self.cfg.backoff_min_s, self.cfg.backoff_max_s)
        outage = [0.0, 0.0, 0.0, 0.0]
        path: list[Any] = [0, [], 0]
        while not stop.is_set():
            host, port = eps[policy.endpoint]
            was_up = False
            t_queue = time.monotonic()
            t_try = t_queue
            # the first connects of hundreds of devices in one process are spread by a
            # cap; a reconnect is not (a real fleet's devices do not wait for each other)
            first = self.connects == 0
            try:
                async with sem if first else contextlib.nullcontext():
                    t_try = time.monotonic()
                    c = closed_before_connack_fails(
                        aiomqtt.Client(
                            host,
                            port,
                            identifier=self.name,
                            protocol=aiomqtt.ProtocolVersion.V311,
                            tls_context=self.cfg.tls_context(),
                            keepalive=10,
                            timeout=CONNECT_TIMEOUT_S,
                            max_inflight_messages=64,
                        )
                    )
                    await c.__aenter__()
                self.connects += 1
                was_up = True
                policy.connected()
                if self.down_since is not None:
                    self.reconnects.append((self.down_since, time.time()))
                    outage[2] += t_try - t_queue
                    self.outages.append(outage)
                    path[2] = port
                    self.paths.append(path)
                    self.down_since = None
                outage = [0.0, 0.0, 0.0, 0.0]
                path = [port, [], 0]
                self.infos.clear()
                self.port = port
                self.client = c
                for seq in list(self.unacked):  # the spool's rule: the old ones first
                    self.send_q1(seq)
                try:
                    async for _ in c.messages:  # ends when the connection does
                        pass
                finally:
                    self.client = None
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(c.__aexit__(None, None, None), 2)
            except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
                if self.client is None and self.down_since is not None:  # a failed connect
                    kind = _failure_kind(exc)
                    self.failures[kind] = self.failures.get(kind, 0) + 1
                    outage[0] += 1
                    outage[1] += time.monotonic() - t_try
                    path[1].append([port, kind, round(time.monotonic() - t_try, 2)])
                    outage[2] += t_try - t_queue
            self.client = None
            if stop.is_set():
                return
            if self.down_since is None:
                self.down_since = time.time()
            delay = policy.lost() if was_up else policy.failed()
            outage[3] += delay
            await asyncio.sleep(delay)


def _failure_kind(exc: BaseException) -> str:
    """A failed connect, by what the device saw: refused (the node is down), timeout
    (no CONNACK in time), connack (a refusing CONNACK), closed (closed before CONNACK)."""
    text = str(exc).lower()
    if isinstance(exc, ConnectionRefusedError) or ("refused" in text and "connack" not in text):
        return "refused"
    if "timed out" in text or isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiomqtt.MqttCodeError):
        return "connack"
    return "closed"


async def _sim_main(devices: list[tuple[str, BrokerConfig]], go: Any, base: int, out: Any) -> None:
    stop = asyncio.Event()
    sem = asyncio.Semaphore(32)
    sims = [SimDevice(n, c, base) for n, c in devices]
    tasks = [asyncio.create_task(s.run(stop, sem)) for s in sims]
    # every device connected (or 120 s), then wait for the common start
    end = time.monotonic() + 120
    while time.monotonic() < end and any(s.client is None for s in sims):
        await asyncio.sleep(0.1)
    ready, start, finish = go
    ready.release()
    while not start.is_set():
        await asyncio.sleep(0.02)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    k = 0
    spat = 0
    while not finish.is_set():
        now_ms = time.time_ns() // 1_000_000
        for s in sims:
            c = s.client
            if c is None:
                continue
            info = c._client.publish(
                topics.topic(s.name, "spat"), _spat_payload(s.name, k, now_ms), qos=0
            )
            spat += info.rc == 0
        if k % 10 == 0:
            for s in sims:
                s.poll_acks()
                s.seq += 1
                s.unacked[s.seq] = (
                    f'{{"dev":"{s.name}","seq":{s.seq},"events":[{{"t":{now_ms},'
                    f'"name":"phase_green","subject":"phase 2","detail":"","src":"control"}}]}}'
                ).encode()
                s.send_q1(s.seq)
        k += 1
        delay = t0 + k * 0.1 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    # every device connected again and the rest acknowledged (or resent after a
    # reconnect), for up to 60 s
    end = loop.time() + 60
    while loop.time() < end and any(s.unacked or s.client is None for s in sims):
        for s in sims:
            s.poll_acks()
        await asyncio.sleep(0.2)
    connected = sum(1 for s in sims if s.client is not None)
    stop.set()
    for s in sims:
        if s.client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.client.__aexit__(None, None, None), 2)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    out.put(
        {
            "spat": spat,
            "acked": {s.name: sorted(s.acked) for s in sims},
            "unacked": sum(len(s.unacked) for s in sims),
            "reconnects": {s.name: s.reconnects for s in sims},
            "outages": {s.name: s.outages for s in sims},
            "paths": {s.name: s.paths for s in sims},
            "failures": [s.failures for s in sims],
            "connected_at_end": connected,
            "sent": {s.name: s.sent for s in sims},
            "acked_at": {s.name: s.acked_at for s in sims},
        }
    )


def _sim(devices: list[tuple[str, BrokerConfig]], go: Any, base: int, out: Any) -> None:
    os.nice(NICE)
    logging.basicConfig(level=logging.CRITICAL)  # each lost connection is counted, not logged
    asyncio.run(_sim_main(devices, go, base, out))


# --- central's ingest (one process per partition) ---------------------------------------------


def _ingest(
    cfg: BrokerConfig, client_id: str, filters: list[str], counts: Any, ready: Any, out: Any
) -> None:
    """counts[0] SPaT, counts[1] QoS 1 messages received (published every 0.2 s). The QoS
    1 ones go through central's in-order release (edge.link.inorder) as `edge central`'s
    ingest does; `arrivals` is its output, what central's consumers see, `trace` what the
    broker delivered."""
    os.nice(NICE)
    spat = q1 = 0
    order: InOrder[None] = InOrder()
    arrivals: dict[str, list[int]] = {}
    # each QoS 1 delivery: [seq, epoch s, port of the ingest connection, MQTT dup flag]
    trace: dict[str, list[list[float]]] = {}
    at = [0]
    stop = threading.Event()

    def take(released: list[Released[None]]) -> None:
        for r in released:
            arrivals.setdefault(r.device, []).append(r.seq)

    def on_message(_c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        nonlocal spat, q1
        parsed = topics.parse(topics.unpartitioned(msg.topic))
        if parsed is None:
            return
        if parsed[1] == "spat":
            spat += 1
            return
        p = msg.payload
        i = p.find(b'"seq":')
        q1 += 1
        seq = int(p[i + 6 : p.find(b",", i)])
        trace.setdefault(parsed[0], []).append([seq, round(time.time(), 3), at[0], msg.dup])
        take(order.push(parsed[0], seq, None, time.monotonic()))

    def report() -> dict[str, Any]:
        stats = {"duplicates": order.duplicates, "gaps": order.gaps, "late": order.late}
        return {"arrivals": arrivals, "trace": trace, "order": stats}

    eps = cfg.endpoints()
    endpoint = 0
    c = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv311,
        clean_session=False,
    )
    ctx = cfg.tls_context()
    assert ctx is not None
    c.tls_set_context(ctx)
    c.on_message = on_message
    c.max_queued_messages_set(0)
    c.on_connect = lambda cl, *a: cl.subscribe([(f, 1) for f in filters])
    leaving = False

    def on_subscribe(*_a: Any) -> None:
        nonlocal leaving
        ready.set()
        if leaving:  # subscribed on another node: tell the operator
            leaving = False
            out.send("moved")

    c.on_subscribe = on_subscribe

    def pump() -> None:
        while not stop.is_set():
            counts[0], counts[1] = spat, q1
            time.sleep(0.2)

    threading.Thread(target=pump, daemon=True).start()
    # paho's loop reconnects to the same address; on a failure we move to the next node
    while not stop.is_set():
        host, port = eps[endpoint]
        at[0] = port
        try:
            c.connect(host, port, keepalive=10)
            while True:
                rc = c.loop(0.5)
                take(order.expire(time.monotonic()))
                if rc != paho.MQTT_ERR_SUCCESS:
                    break
                if out.poll():
                    cmd = out.recv()
                    if cmd == "snap":  # what was released so far, and go on
                        out.send(report())
                        continue
                    if isinstance(cmd, tuple) and cmd[0] == "expect":  # a run starts
                        for dev in cmd[2]:
                            order.expect(dev, cmd[1])
                        continue
                    if isinstance(cmd, tuple):  # ("leave", port): that node is to stop
                        if port == cmd[1]:
                            leaving = True
                            c.disconnect()  # the session stays; the loop goes on
                        else:
                            out.send("moved")
                        continue
                    stop.set()
                    break
        except (OSError, ValueError):
            time.sleep(0.3)
        if not stop.is_set():
            endpoint = (endpoint + 1) % len(eps)
    counts[0], counts[1] = spat, q1
    take(order.flush())
    out.send(report())
    with contextlib.suppress(Exception):
        c.disconnect()


class Ingest:
    def __init__(self, configs: list[tuple[BrokerConfig, str, list[str]]]) -> None:
        ctx = mp.get_context("spawn")
        self.counts = [ctx.Array("q", 2) for _ in configs]
        self.ready = [ctx.Event() for _ in configs]
        self.pipes = [ctx.Pipe() for _ in configs]
        self.trace: dict[str, list[list[float]]] = {}
        self.order: dict[str, int] = {}  # the in-order release's counts, summed
        self.procs = [
            ctx.Process(target=_ingest, args=(cfg, cid, f, n, r, child))
            for (cfg, cid, f), n, r, (_parent, child) in zip(
                configs, self.counts, self.ready, self.pipes, strict=True
            )
        ]
        for p in self.procs:
            p.start()
        for r in self.ready:
            if not r.wait(60):
                raise RuntimeError("an ingest worker did not subscribe in 60 s")

    def totals(self) -> tuple[int, int]:
        return sum(c[0] for c in self.counts), sum(c[1] for c in self.counts)

    def drain(self, quiet_s: float = 12.0, limit_s: float = 90.0) -> None:
        """Until nothing arrived for `quiet_s` (longer than the cluster's ack_wait, after
        which it sends again what a lost ingest connection never acknowledged)."""
        end, last, since = time.monotonic() + limit_s, (-1, -1), time.monotonic()
        while time.monotonic() < end and time.monotonic() - since < quiet_s:
            now = self.totals()
            if now != last:
                last, since = now, time.monotonic()
            time.sleep(0.2)

    def leave(self, port: int, timeout_s: float = 30.0) -> None:
        """Every worker connected to the node on `port` disconnects (its persistent
        session stays) and subscribes on another node; returns when all have."""
        for parent, _child in self.pipes:
            parent.send(("leave", port))
        for parent, _child in self.pipes:
            if not parent.poll(timeout_s):
                raise RuntimeError(f"an ingest worker did not leave port {port} in {timeout_s} s")
            parent.recv()

    def expect(self, devices: list[str], seq: int) -> None:
        """A run starts: each device's next sequence number is `seq`."""
        for parent, _child in self.pipes:
            parent.send(("expect", seq, devices))

    def arrivals(self) -> dict[str, list[int]]:
        """What every worker has released so far (they go on)."""
        merged: dict[str, list[int]] = {}
        for parent, _child in self.pipes:
            parent.send("snap")
        for parent, _child in self.pipes:
            if parent.poll(30):
                for dev, seqs in parent.recv()["arrivals"].items():
                    merged.setdefault(dev, []).extend(seqs)
        return merged

    def stop(self) -> dict[str, list[int]]:
        arrivals: dict[str, list[int]] = {}
        for parent, _child in self.pipes:
            parent.send("stop")
        for parent, _child in self.pipes:
            if parent.poll(30):
                got = parent.recv()
                for dev, seqs in got["arrivals"].items():
                    arrivals.setdefault(dev, []).extend(seqs)
                for dev, recs in got["trace"].items():
                    self.trace.setdefault(dev, []).extend(recs)
                for k, v in got["order"].items():
                    self.order[k] = self.order.get(k, 0) + v
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        return arrivals


# --- one run -------------------------------------------------------------------------------


def _run(
    devices: list[tuple[str, BrokerConfig]],
    ingest: Ingest,
    pids: Any,
    seconds: float,
    workers: int,
    base: int,
    during: Any = None,
) -> dict[str, Any]:
    """One run; its sequence numbers start above `base` (runs share the ingest)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    # (a worker's devices are connected, start, finish)
    go = (ctx.Semaphore(0), ctx.Event(), ctx.Event())
    procs = [
        ctx.Process(target=_sim, args=(devices[w::workers], go, base, out)) for w in range(workers)
    ]
    for p in procs:
        p.start()
    for _ in procs:
        if not go[0].acquire(timeout=180):
            raise RuntimeError("the simulated devices did not connect in 180 s")
    ingest.expect([d for d, _cfg in devices], base + 1)
    go[1].set()
    cpu0 = sum(_cpu_s(p) for p in pids())
    wall0, (spat0, q0) = time.monotonic(), ingest.totals()
    extra = during() if during is not None else {}
    # `seconds` at least, and the devices at work for a third of it after `during`
    end = max(wall0 + seconds, time.monotonic() + (seconds / 3 if during is not None else 0))
    time.sleep(max(0.0, end - time.monotonic()))
    wall1, (spat1, q1) = time.monotonic(), ingest.totals()
    cpu1 = sum(_cpu_s(p) for p in pids())
    go[2].set()
    results = [out.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(30)
    window = wall1 - wall0
    acked: dict[str, list[int]] = {}
    reconnects: dict[str, list[tuple[float, float]]] = {}
    outages: dict[str, list[list[float]]] = {}
    paths: dict[str, list[list[Any]]] = {}
    failures: dict[str, int] = {}
    sent: dict[str, dict[int, list[list[float]]]] = {}
    acked_at: dict[str, dict[int, float]] = {}
    for r in results:
        acked.update(r["acked"])
        sent.update(r["sent"])
        acked_at.update(r["acked_at"])
        paths.update(r["paths"])
        reconnects.update(r["reconnects"])
        outages.update(r["outages"])
        for f in r["failures"]:
            for kind, k in f.items():
                failures[kind] = failures.get(kind, 0) + k
    return {
        "window_s": window,
        "msgs_per_s": round(((spat1 - spat0) + (q1 - q0)) / window),
        "spat_sent": sum(r["spat"] for r in results),
        "broker_cpu_pct": round(100 * (cpu1 - cpu0) / window, 1),
        "acked": acked,
        "unacked": sum(r["unacked"] for r in results),
        "connected_at_end": sum(r["connected_at_end"] for r in results),
        "reconnects": reconnects,
        "outages": outages,
        "paths": paths,
        "failures": failures,
        "sent": sent,
        "acked_at": acked_at,
        "base": base,
        **extra,
    }


def _order(seqs: list[int]) -> tuple[int, int]:
    """(duplicates, first arrivals that came after a higher number) in an arrival order."""
    seen: set[int] = set()
    firsts: list[int] = []
    dup = 0
    for s in seqs:
        if s in seen:
            dup += 1
        else:
            seen.add(s)
            firsts.append(s)
    return dup, sum(1 for a, b in itertools.pairwise(firsts) if b < a)


def _verdict(
    run: dict[str, Any],
    arrivals: dict[str, list[int]],
    since: float,
    delivered: dict[str, list[list[float]]] | None = None,
) -> dict[str, Any]:
    """`arrivals`: central's ingest output (after dedup and the in-order release);
    `delivered`: what the broker delivered to the ingest, in its order."""
    lost = dup = disorder = dup_out = disorder_in = 0
    lo, hi = run["base"], run["base"] + RUN_SEQS
    for dev, seqs in run["acked"].items():
        got = [s for s in arrivals.get(dev, []) if lo < s <= hi]
        d, o = _order(got)
        dup_out += d
        disorder += o
        seen = set(got)
        lost += sum(1 for s in seqs if s not in seen)
        if delivered is not None:
            d, o = _order([int(a[0]) for a in delivered.get(dev, []) if lo < a[0] <= hi])
            dup += d
            disorder_in += o
    downs = [
        up - lost_at for recs in run["reconnects"].values() for lost_at, up in recs if up >= since
    ]
    hit = sum(1 for recs in run["reconnects"].values() if any(up >= since for _l, up in recs))
    # where the outages' time went (each outage that ended after `since`)
    parts: list[tuple[float, float, list[float]]] = [
        (lost_at, up, o)
        for dev, recs in run["reconnects"].items()
        for (lost_at, up), o in zip(recs, run["outages"].get(dev, []), strict=False)
        if up >= since
    ]

    def stats(xs: list[float]) -> list[float] | None:
        return [round(_pct(xs, 0.5), 2), round(_pct(xs, 0.99), 2)] if xs else None

    breakdown = {
        "noticed_after_event_s": stats([lost_at - since for lost_at, _u, _o in parts]),
        "up_after_event_s": stats([up - since for _l, up, _o in parts]),
        "failed_attempts": stats([o[0] for _l, _u, o in parts]),
        "in_failed_attempts_s": stats([o[1] for _l, _u, o in parts]),
        "queued_for_connect_s": stats([o[2] for _l, _u, o in parts]),
        "asleep_s": stats([o[3] for _l, _u, o in parts]),
        "failures": run["failures"],
    }
    return {
        "qos1_lost": lost,
        # as the broker delivered them to the ingest (at least once; a redelivery after
        # an ingest connection's loss comes ack_wait later, behind newer ones) ...
        "qos1_duplicates": dup,
        "out_of_order_delivered": disorder_in,
        # ... and after central's ingest (dedup, in-order release): what its consumers see
        "duplicates_after_ingest": dup_out,
        "out_of_order": disorder,
        "qos1_unacked_at_end": run["unacked"],
        "devices_disconnected": hit,
        "devices_connected_at_end": run["connected_at_end"],
        "reconnects": len(downs),
        "reconnect_p50_s": round(_pct(downs, 0.5), 2) if downs else None,
        "reconnect_p99_s": round(_pct(downs, 0.99), 2) if downs else None,
        "reconnect_max_s": round(max(downs), 2) if downs else None,
        # [p50, p99] of each; `event` is the kill or the rolling restart's start
        "reconnect_breakdown": breakdown,
    }


def _capacity(
    devices: list[tuple[str, BrokerConfig]],
    counters: list[tuple[BrokerConfig, str, list[str]]],
    pids: Any,
    seconds: float,
    workers: int,
    rate_hz: float,
) -> dict[str, Any]:
    """The raw-socket load (devtools.bench.fleet_load): `rate_hz` SPaT and one QoS 1
    message a second per device from `workers` processes, counted by one raw subscriber
    per entry of `counters`; messages/s delivered and the CPU of broker, load and counters
    (% of one core) over the same window."""
    from devtools.bench import fleet_load

    ctx = mp.get_context("spawn")
    counts = [ctx.Array("q", 3) for _ in counters]
    ready = [ctx.Event() for _ in counters]
    stop, out = ctx.Event(), ctx.Queue()
    cprocs = [
        ctx.Process(target=fleet_load.count_worker, args=(cfg, cid, f, n, r, stop, out))
        for (cfg, cid, f), n, r in zip(counters, counts, ready, strict=True)
    ]
    for p in cprocs:
        p.start()
    for r in ready:
        if not r.wait(60):
            raise RuntimeError("a counting subscriber did not subscribe in 60 s")
    go = (ctx.Semaphore(0), ctx.Event(), ctx.Event())
    lout = ctx.Queue()
    lprocs = [
        ctx.Process(target=fleet_load.load_worker, args=(devices[w::workers], rate_hz, go, lout))
        for w in range(workers)
    ]
    for p in lprocs:
        p.start()
    for _ in lprocs:
        if not go[0].acquire(timeout=180):
            raise RuntimeError("the raw load's devices did not connect in 180 s")
    go[1].set()
    time.sleep(1.0)  # past the first burst

    def totals() -> tuple[int, int, float]:
        return (
            sum(c[0] + c[1] for c in counts),
            sum(c[1] for c in counts),
            sum(c[2] for c in counts) / 1e6,
        )

    cpu0 = sum(_cpu_s(p) for p in pids())
    (m0, _q0, ccpu0), t0 = totals(), time.monotonic()
    time.sleep(seconds)
    (m1, _q1, ccpu1), t1 = totals(), time.monotonic()
    cpu1 = sum(_cpu_s(p) for p in pids())
    go[2].set()
    loads = [lout.get(timeout=120) for _ in lprocs]
    for p in lprocs:
        p.join(30)
    # what is still on its way arrives (nothing new for 2 s, or 30 s)
    last, since, end = (-1, -1, 0.0), time.monotonic(), time.monotonic() + 30
    while time.monotonic() < end and time.monotonic() - since < 2:
        now = totals()
        if now[:2] != last[:2]:
            last, since = now, time.monotonic()
        time.sleep(0.1)
    stop.set()
    got: dict[str, set[int]] = {}
    for _ in cprocs:
        for dev, seqs in out.get(timeout=60)["seqs"].items():
            got.setdefault(dev, set()).update(seqs)
    for p in cprocs:
        p.join(30)
    window = t1 - t0
    acked = {dev: seqs for r in loads for dev, seqs in r["acked"].items()}
    gen_window = sum(r["window_s"] for r in loads) / len(loads)
    delivered = max(1, m1 - m0)
    sent = sum(r["sent_per_s"] for r in loads)
    return {
        "offered_msgs_per_s": round(len(devices) * (rate_hz + 1)),
        "sent_msgs_per_s": round(sent),
        "msgs_per_s": round((m1 - m0) / window),
        "broker_cpu_pct": round(100 * (cpu1 - cpu0) / window, 1),
        "load_cpu_pct": round(100 * sum(r["cpu_s"] for r in loads) / gen_window, 1),
        "counter_cpu_pct": round(100 * (ccpu1 - ccpu0) / window, 1),
        # CPU per message: the broker's per message delivered, the load's per message sent
        "broker_cpu_us_per_msg": round(1e6 * (cpu1 - cpu0) / delivered, 1),
        "load_cpu_us_per_msg": round(
            1e6 * sum(r["cpu_s"] for r in loads) / max(1.0, sent * gen_window), 1
        ),
        "load_processes": workers,
        "qos1_acked": sum(len(v) for v in acked.values()),
        "qos1_lost": sum(
            1 for dev, seqs in acked.items() for q in seqs if q not in got.get(dev, ())
        ),
        "qos1_unacked_at_end": sum(r["unacked"] for r in loads),
    }


def _missing(runs: list[dict[str, Any]], arrivals: dict[str, list[int]]) -> set[tuple[str, int]]:
    got = {(dev, q) for dev, seqs in arrivals.items() for q in seqs}
    return {(dev, q) for r in runs for dev, seqs in r["acked"].items() for q in seqs} - got


def _await_missing(ingest: Ingest, runs: list[dict[str, Any]], limit_s: float) -> int:
    """Until every acknowledged message of `runs` has arrived (or `limit_s`): how many
    arrived only in this wait."""
    first = missing = _missing(runs, ingest.arrivals())
    end = time.monotonic() + limit_s
    while missing and time.monotonic() < end:
        time.sleep(2)
        missing = _missing(runs, ingest.arrivals())
    return len(first - missing)


def _stream_state(cluster: NatsCluster) -> dict[str, Any] | None:
    """The QoS 1 stream as its leader sees it after the run: messages it still holds and
    its consumers' (the ingest sessions') undelivered and unacknowledged counts. A message
    acknowledged to a device and missing at central is either still here (late, not
    lost) or gone from the stream."""
    for i in range(len(cluster.nodes)):
        info = cluster.jsz(i)
        for acc in (info or {}).get("account_details") or []:
            for st in acc.get("stream_detail") or []:
                if st.get("name") != "$MQTT_msgs" or st.get("cluster", {}).get("leader") != (
                    cluster.nodes[i].name
                ):
                    continue
                cons = st.get("consumer_detail") or []
                return {
                    "messages": st.get("state", {}).get("messages"),
                    "consumers": len(cons),
                    "num_pending": sum(c.get("num_pending", 0) for c in cons),
                    "num_ack_pending": sum(c.get("num_ack_pending", 0) for c in cons),
                    "num_redelivered": sum(c.get("num_redelivered", 0) for c in cons),
                }
    return None


def _names(n: int) -> list[str]:
    return [f"sim-{i:05d}" for i in range(n)]


def _mosquitto(
    work: Path, n: int, seconds: float, workers: int, parts: int, rate_hz: float
) -> dict[str, Any]:
    with Mosquitto(work / "mosquitto") as broker:
        devices = [(d, broker.client_config(d)) for d in _names(n)]
        cen = broker.client_config("central")
        flt = [f"$share/ingest/{topics.ROOT}/+/spat", f"$share/ingest/{topics.ROOT}/+/events"]
        # the raw load first, before the ingest's sessions exist (they would take it too)
        counters = [(cen, f"count-{p}", flt) for p in range(parts)]
        capacity = _capacity(devices, counters, lambda: [broker.pid], seconds, workers, rate_hz)
        ingest = Ingest([(cen, f"ingest-{p}", flt) for p in range(parts)])
        try:
            run = _run(devices, ingest, lambda: [broker.pid], seconds, workers, 0)
            ingest.drain()
        finally:
            arrivals = ingest.stop()
        v = _verdict(run, arrivals, 0)
    return {
        "capacity": capacity,
        "msgs_per_s": run["msgs_per_s"],
        "broker_cpu_pct": run["broker_cpu_pct"],
        "qos1_lost": v["qos1_lost"],
    }


async def _real_device(cluster: NatsCluster, work: Path, stop: threading.Event) -> Any:
    """One real device (runtime + central link) on the cluster; its control tick's jitter."""
    from edge.link import signing
    from edge.link.config import DeviceConfig
    from edge.link.device import DeviceRuntime

    key = signing.generate()
    pub = work / "central.pub"
    pub.write_bytes(signing.public_pem(key.public_key()))
    cfg = DeviceConfig(
        device="real-1",
        site_path=Path(__file__).resolve().parents[2] / "examples" / "four_leg_protected.toml",
        store_path=work / "real-1.db",
        trusted_keys=(pub,),
        broker=cluster.client_config("real-1"),
        counts_interval_ms=1000,
        events_flush_ms=500,
        backup_ms=300_000,
        veh_per_hour=900,
    )
    rt = DeviceRuntime(cfg)
    task = asyncio.create_task(rt.run())
    while not stop.is_set():
        await asyncio.sleep(0.2)
    rt.stopping = True
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 20)
    return rt.runtime.jitter_all


def _cluster(
    work: Path, n: int, seconds: float, workers: int, parts: int, rate_hz: float
) -> dict[str, Any]:
    names = _names(n)
    res: dict[str, Any] = {}
    t = time.monotonic()
    with NatsCluster(work / "nats", devices=(*names, "real-1"), partitions=parts) as cluster:
        res["cluster_start_s"] = round(time.monotonic() - t, 1)
        devices = [(d, cluster.client_config(d)) for d in names]
        cen = cluster.client_config("central")
        counters = [(cen, f"count-{p}", [ingest_filter(p)]) for p in range(parts)]
        res["capacity"] = _capacity(devices, counters, cluster.pids, seconds, workers, rate_hz)
        ingest = Ingest([(cen, f"ingest-{p}", [ingest_filter(p)]) for p in range(parts)])
        try:
            steady = _run(devices, ingest, cluster.pids, seconds, workers, 0)
            res["msgs_per_s"] = steady["msgs_per_s"]
            res["broker_cpu_pct"] = steady["broker_cpu_pct"]

            stop_real = threading.Event()
            real: dict[str, Any] = {}

            def real_device() -> None:
                real["jitter"] = asyncio.run(_real_device(cluster, work, stop_real))

            real_thread = threading.Thread(target=real_device, daemon=True)
            real_thread.start()
            kill_at: dict[str, float] = {}

            def kill() -> dict[str, Any]:
                # the worst node to lose: the leader of the QoS 1 message stream (every
                # node's devices wait for its successor's election)
                leader = cluster.stream_leader()
                victim = 0 if leader is None else leader
                time.sleep(seconds / 3)
                kill_at["t"] = time.time()
                cluster.kill_node(victim)
                time.sleep(seconds / 3)
                cluster.start_node(victim)
                return {"killed": f"n{victim + 1}", "killed_msgs_leader": leader is not None}

            killed = _run(devices, ingest, cluster.pids, seconds * 1.5, workers, RUN_SEQS, kill)

            def rolling() -> dict[str, Any]:
                time.sleep(seconds / 3)
                kill_at["roll"] = time.time()
                try:
                    cluster.rolling_restart(leave=lambda node: ingest.leave(node.mqtt_port))
                finally:  # a restart that stops short still ends the run
                    stop_real.set()
                return {
                    "rolling_s": round(time.time() - kill_at["roll"], 1),
                    "rolling_steps": [
                        [round(t - kill_at["roll"], 2), e]
                        for t, e in cluster.events
                        if t >= kill_at["roll"]
                    ],
                }

            rolled = _run(devices, ingest, cluster.pids, seconds, workers, 2 * RUN_SEQS, rolling)
            stop_real.set()
            real_thread.join(60)
            ingest.drain()
            # acknowledged and not at central yet: wait past JetStream's redeliveries
            # (ack_wait 10 s) before counting it lost, and say how many came that late
            res["qos1_arrived_after_drain"] = _await_missing(ingest, [killed, rolled], 60.0)
            res["msgs_stream_at_end"] = _stream_state(cluster)
        finally:
            arrivals = ingest.stop()
        res["ingest_order"] = ingest.order
        res["node_kill"] = {
            **_verdict(killed, arrivals, kill_at["t"], ingest.trace),
            "killed": killed["killed"],
            "killed_msgs_leader": killed["killed_msgs_leader"],
        }
        res["rolling_restart"] = {
            **_verdict(rolled, arrivals, kill_at["roll"], ingest.trace),
            "rolling_s": rolled["rolling_s"],
            "rolling_steps": rolled["rolling_steps"],
        }
        j = real.get("jitter")
        res["real_device_tick_jitter_max_ms"] = None if j is None else round(j.max_ms, 1)
        res["real_device_tick_jitter_p99_ms"] = None if j is None else round(j.p99_ms, 1)
    return res


# the figures that must be 0, by where they are in the report
MUST_BE_ZERO = (
    (("mosquitto", "capacity", "qos1_lost"), "acknowledged QoS 1 messages lost (raw load)"),
    (("mosquitto", "qos1_lost"), "acknowledged QoS 1 messages lost"),
    (("nats_cluster", "capacity", "qos1_lost"), "acknowledged QoS 1 messages lost (raw load)"),
    *(
        (("nats_cluster", phase, key), what)
        for phase in ("node_kill", "rolling_restart")
        for key, what in (
            ("qos1_lost", "acknowledged QoS 1 messages lost"),
            ("out_of_order", "out of order after central's ingest"),
            ("duplicates_after_ingest", "duplicates after central's ingest"),
        )
    ),
)


def failures(res: dict[str, Any]) -> list[str]:
    """What makes a fleet report a failure (pure): an acknowledged QoS 1 message lost, or
    a duplicate or out-of-order message after central's ingest, anywhere; a figure
    missing from the report counts as a failure too (nothing measured is not a pass)."""
    out: list[str] = []
    for path, what in MUST_BE_ZERO:
        v: Any = res
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        where = ".".join(path)
        if not isinstance(v, int) or isinstance(v, bool):
            out.append(f"{where}: not measured ({what})")
        elif v != 0:
            out.append(f"{where} = {v}: {what}")
    return out


def run_fleet_bench(json_out: bool, quick: bool, machine: str) -> int:
    n = int(os.environ.get("EDGE_BENCH_FLEET_DEVICES", "20" if quick else "300"))
    seconds = float(os.environ.get("EDGE_BENCH_FLEET_SECONDS", "6" if quick else "15"))
    workers = int(os.environ.get("EDGE_BENCH_FLEET_WORKERS", "2"))
    parts = int(os.environ.get("EDGE_BENCH_FLEET_PARTITIONS", "2"))
    rate_hz = float(os.environ.get("EDGE_BENCH_FLEET_CAPACITY_HZ", "20" if quick else "100"))
    os.nice(NICE)
    # the real device's link says every loss and reconnect: counted here instead
    logging.basicConfig(level=logging.ERROR)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="edge-bench-fleet-") as tmp:
        work = Path(tmp)
        single = _mosquitto(work, n, seconds, workers, parts, rate_hz)
        clustered = _cluster(work, n, seconds, workers, parts, rate_hz)
    res: dict[str, Any] = {
        "bench": "fleet",
        "machine": machine,
        "load_avg_1m": round((load0 + os.getloadavg()[0]) / 2, 1),
        "devices": n,
        "seconds": seconds,
        "load_processes": workers,
        "ingest_workers": parts,
        "target_msgs_per_s": n * 11,
        "capacity_spat_hz": rate_hz,
        "mosquitto": single,
        "nats_cluster": clustered,
    }
    res["failures"] = failures(res)
    res["ok"] = not res["failures"]
    if json_out:
        print(json.dumps(res))
        return 0 if res["ok"] else 1
    c, m = clustered, single
    print(f"edge bench fleet ({machine}), load average {res['load_avg_1m']}")
    print(
        f"  {n} devices (SPaT 10 Hz + 1 QoS 1/s each, {n * 11} msgs/s offered) from {workers} "
        f"processes, {parts} ingest workers, {seconds:g} s"
    )
    for label, b in (("one Mosquitto", m), ("3-node NATS", c)):
        k = b["capacity"]
        print(
            f"  raw load, {label}: {k['sent_msgs_per_s']} msgs/s sent, {k['msgs_per_s']} "
            f"delivered; CPU (% of one core) broker {k['broker_cpu_pct']}, load "
            f"{k['load_cpu_pct']}, counters {k['counter_cpu_pct']}; QoS 1 lost {k['qos1_lost']}"
        )
    print(f"  one Mosquitto:     {m['msgs_per_s']} msgs/s, broker CPU {m['broker_cpu_pct']}%")
    print(
        f"  3-node NATS:       {c['msgs_per_s']} msgs/s, broker CPU {c['broker_cpu_pct']}% "
        f"(3 nodes summed); started in {c['cluster_start_s']} s"
    )
    for key, label in (("node_kill", "node SIGKILLed"), ("rolling_restart", "rolling restart")):
        v = c[key]
        print(
            f"  {label}: {v['devices_disconnected']} devices lost their link, "
            f"{v['devices_connected_at_end']} of {n} connected at the end; reconnect p50 "
            f"{v['reconnect_p50_s']} s, p99 {v['reconnect_p99_s']} s, max {v['reconnect_max_s']} "
            f"s; QoS 1 lost {v['qos1_lost']}; delivered to the ingest: duplicates "
            f"{v['qos1_duplicates']}, out of order {v['out_of_order_delivered']}; after "
            f"central's ingest: out of order {v['out_of_order']}, duplicates "
            f"{v['duplicates_after_ingest']}"
        )
    print(
        f"  a real device on the cluster: control tick jitter max "
        f"{c['real_device_tick_jitter_max_ms']} ms, p99 {c['real_device_tick_jitter_p99_ms']} ms"
    )
    for f in res["failures"]:
        print(f"  FAIL {f}")
    print("  ok" if res["ok"] else f"  FAIL: {len(res['failures'])} figure(s) not 0")
    return 0 if res["ok"] else 1
