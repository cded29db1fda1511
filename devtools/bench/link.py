"""`edge bench link`: what the link does on this machine, against a real Mosquitto.

1. One device (`edge run`'s runtime and central link, scripted traffic: the
   link harness): plan push -> accepted and -> applied ack latency (median,
   p99), and the SPaT rate it holds.
2. A fleet: N simulated devices (many per process, one TLS connection each,
   own certificate, the real ACL) publishing SPaT at 10 Hz (QoS 0) and a
   sequence-numbered QoS 1 events message a second, against one broker, with
   central's ingest subscribed to everything. Reports messages per second,
   QoS 1 messages lost (acknowledged by the broker but never delivered to
   central), SPaT delivered, and the broker's CPU.

    edge bench link [--json] [--quick]
    EDGE_BENCH_LINK_DEVICES=1000 EDGE_BENCH_LINK_SECONDS=20 edge bench link --json
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from edge.link import central, topics
from edge.link.client import BrokerConfig
from edge.link.mosquitto import Mosquitto
from paho.mqtt.enums import CallbackAPIVersion

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "four_leg_protected.toml"
CONNECT_CONCURRENCY = 32


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


# --- 1. one device: plan latency and SPaT rate -------------------------------------------


async def _single(
    broker: Mosquitto, work: Path, pushes: int, spat_window_s: float
) -> dict[str, Any]:
    import tomllib

    from edge.link import signing
    from edge.link.config import DeviceConfig
    from edge.link.device import DeviceRuntime

    key = signing.generate()
    pub = work / "central.pub"
    pub.write_bytes(signing.public_pem(key.public_key()))
    cfg = DeviceConfig(
        device="bench-dev",
        site_path=EXAMPLE,
        store_path=work / "bench-dev.db",
        trusted_keys=(pub,),
        broker=broker.client_config("bench-dev"),
    )
    rt = DeviceRuntime(cfg)
    task = asyncio.create_task(rt.run())
    plans = dict(tomllib.loads(EXAMPLE.read_text())["plans"])
    accepted: list[float] = []
    applied: list[float] = []
    try:
        while not rt.client.connected.is_set() or rt.ctl.mode != "run":
            await asyncio.sleep(0.1)
        async with central.connect(broker.client_config("central")) as c:
            for v in range(1, pushes + 1):
                plans["day"]["defaults"]["max_green_s"] = 30 + v % 5
                raw = central.signed_bundle(key, "bench-dev", v, plans, "day")
                t = time.monotonic()
                rx: list[float] = []
                acks = await central.request(
                    c,
                    "bench-dev",
                    "plan",
                    raw,
                    until=("applied", "rejected"),
                    timeout_s=60,
                    times=rx,
                )
                for a, rx_s in zip(acks, rx, strict=True):
                    if a["status"] == "accepted":
                        accepted.append(rx_s - t)
                    elif a["status"] == "applied":
                        applied.append(rx_s - t)
            # the SPaT rate held, over a fixed window after the pushes
            spat0, t0 = rt.link.spat_sent, time.monotonic()
            await asyncio.sleep(spat_window_s)
            spat_hz = (rt.link.spat_sent - spat0) / (time.monotonic() - t0)
    finally:
        rt.stopping = True
        await asyncio.wait_for(task, 15)
    late = rt.runtime.jitter_all  # the control tick's lateness over the run
    return {
        "plan_pushes": pushes,
        "plan_ack_p50_ms": round(1000 * _pct(accepted, 0.5), 1),
        "plan_ack_p99_ms": round(1000 * _pct(accepted, 0.99), 1),
        "plan_applied_p50_ms": round(1000 * _pct(applied, 0.5), 1),
        "plan_applied_p99_ms": round(1000 * _pct(applied, 0.99), 1),
        "plans_applied": len(applied),
        "spat_hz": round(spat_hz, 2),
        "tick_late_max_ms": round(late.max_ms, 1),
    }


# --- 2. the fleet -----------------------------------------------------------------------------


def _spat_payload(device: str, k: int, now_ms: int) -> bytes:
    groups = ",".join(
        f'{{"sg":{p},"s":{6 if (k // 50) % 4 == p % 4 else 3},"min":{(now_ms // 100 + 50) % 36000},'
        f'"max":{(now_ms // 100 + 300) % 36000},"lik":{(now_ms // 100 + 120) % 36000}}}'
        for p in range(1, 9)
    )
    return (
        f'{{"dev":"{device}","cnt":{k % 128},"ts":{now_ms},"moy":{(now_ms // 100) % 36000},'
        f'"mode":"run","sg":[{groups}]}}'
    ).encode()


async def _worker_main(
    devices: list[tuple[str, BrokerConfig]], seconds: float, start_at: float, out: Any
) -> None:
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    clients: dict[str, aiomqtt.Client] = {}
    stats = {"spat": 0, "spat_failed": 0, "q1_sent": 0, "q1_acked": 0, "q1_failed": 0}
    acked_seq: dict[str, int] = {}

    async def connect(dev: str, b: BrokerConfig) -> None:
        async with sem:
            c = aiomqtt.Client(
                b.host,
                b.port,
                identifier=dev,
                # 3.1.1 for the simulated fleet: paho builds no v5 property objects per
                # message, so the load generator (not the broker) costs less per message
                protocol=aiomqtt.ProtocolVersion.V311,
                tls_context=b.tls_context(),
                keepalive=60,
                timeout=30,
                max_inflight_messages=64,
            )
            await c.__aenter__()
            clients[dev] = c

    await asyncio.gather(*(connect(d, b) for d, b in devices))
    pending: set[asyncio.Task[None]] = set()

    async def send_q1(dev: str, seq: int, payload: bytes) -> None:
        try:
            await clients[dev].publish(topics.topic(dev, "events"), payload, qos=1, timeout=30)
            stats["q1_acked"] += 1
            acked_seq[dev] = max(acked_seq.get(dev, 0), seq)
        except Exception:
            stats["q1_failed"] += 1

    # wait for the common start so all workers measure the same window
    await asyncio.sleep(max(0.0, start_at - time.time()))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    k = 0
    seq = 0
    names = [d for d, _ in devices]
    while loop.time() - t0 < seconds:
        now_ms = time.time_ns() // 1_000_000
        # SPaT straight into paho's queue (QoS 0 needs no await): aiomqtt's writer
        # callback flushes each socket once per loop pass
        for dev in names:
            info = clients[dev]._client.publish(
                topics.topic(dev, "spat"), _spat_payload(dev, k, now_ms), qos=0
            )
            if info.rc == 0:
                stats["spat"] += 1
            else:
                stats["spat_failed"] += 1
        if k % 10 == 0:
            seq += 1
            for dev in names:
                body = (
                    f'{{"dev":"{dev}","seq":{seq},"events":[{{"t":{now_ms - now_ms % 100},'
                    f'"name":"phase_green","subject":"phase 2","detail":"","src":"control"}}]}}'
                ).encode()
                stats["q1_sent"] += 1
                task = asyncio.create_task(send_q1(dev, seq, body))
                pending.add(task)
                task.add_done_callback(pending.discard)
        k += 1
        delay = t0 + k * 0.1 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
    stats["elapsed_s"] = loop.time() - t0  # type: ignore[assignment]
    stats["ticks"] = k
    if pending:
        await asyncio.wait(pending, timeout=30)
    stats["q1_unacked"] = stats["q1_sent"] - stats["q1_acked"] - stats["q1_failed"]
    for c in clients.values():
        with contextlib.suppress(Exception):
            await asyncio.wait_for(c.__aexit__(None, None, None), 5)
    out.put({"stats": stats, "acked_seq": acked_seq})


def _worker(
    devices: list[tuple[str, BrokerConfig]], seconds: float, start_at: float, out: Any
) -> None:
    asyncio.run(_worker_main(devices, seconds, start_at, out))


class _Ingest:
    """Central's ingest for the fleet test: one paho client on its own thread."""

    def __init__(self, b: BrokerConfig) -> None:
        self.spat = 0
        self.q1: dict[str, set[int]] = {}
        self.q1_msgs = 0
        self.lock = threading.Lock()
        c = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-ingest", protocol=paho.MQTTv311
        )
        ctx = b.tls_context()
        assert ctx is not None
        c.tls_set_context(ctx)
        c.on_message = self._on_message
        c.max_queued_messages_set(0)
        self.ready = threading.Event()
        c.on_subscribe = lambda *a: self.ready.set()
        c.on_connect = lambda cl, *a: cl.subscribe(
            [(topics.fleet("spat"), 0), (topics.fleet("events"), 1)]
        )
        c.connect(b.host, b.port, keepalive=60)
        self.client = c
        c.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        parts = msg.topic.split("/")
        if parts[3] == "spat":
            self.spat += 1
            return
        self.q1_msgs += 1
        payload = msg.payload
        i = payload.find(b'"seq":')
        seq = int(payload[i + 6 : payload.find(b",", i)])
        self.q1.setdefault(parts[2], set()).add(seq)

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def fleet(broker: Mosquitto, devices: int, seconds: float, workers: int) -> dict[str, Any]:
    names = [f"sim-{i:05d}" for i in range(devices)]
    configs = [(n, broker.client_config(n)) for n in names]
    ingest = _Ingest(broker.client_config("central"))
    if not ingest.ready.wait(10):
        raise RuntimeError("ingest did not subscribe")
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    connect_s = max(3.0, devices / 80)
    start_at = time.time() + connect_s + 1
    procs = [
        ctx.Process(target=_worker, args=(configs[w::workers], seconds, start_at, out))
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    time.sleep(max(0.0, start_at - time.time()))
    assert broker.pid is not None
    cpu0, wall0, spat0, q0 = _cpu_s(broker.pid), time.monotonic(), ingest.spat, ingest.q1_msgs
    time.sleep(seconds)
    cpu1, wall1, spat1, q1 = _cpu_s(broker.pid), time.monotonic(), ingest.spat, ingest.q1_msgs
    results = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join(30)
    # let the ingest catch up with what the broker still holds for it (its backlog
    # is not loss): until nothing has arrived for 2 s, or 120 s
    drain_end = time.monotonic() + 120
    last_count, quiet_since = -1, time.monotonic()
    while time.monotonic() < drain_end and time.monotonic() - quiet_since < 2:
        count = ingest.spat + ingest.q1_msgs
        if count != last_count:
            last_count, quiet_since = count, time.monotonic()
        time.sleep(0.2)
    backlog_s = round(time.monotonic() - wall1, 1)
    ingest.stop()
    stats: dict[str, float] = {}
    acked: dict[str, int] = {}
    for r in results:
        for key, value in r["stats"].items():
            stats[key] = stats.get(key, 0) + value
        acked.update(r["acked_seq"])
    lost = 0
    for dev, last in acked.items():
        got = ingest.q1.get(dev, set())
        lost += sum(1 for s in range(1, last + 1) if s not in got)
    window = wall1 - wall0
    delivered = (spat1 - spat0) + (q1 - q0)
    return {
        "devices": devices,
        "workers": workers,
        "seconds": round(window, 1),
        "msgs_per_s": round(delivered / window),
        "spat_published_per_s": round(stats.get("spat", 0) / (stats.get("elapsed_s", 1) / workers)),
        "spat_delivered_per_s": round((spat1 - spat0) / window),
        "spat_target_per_s": devices * 10,
        "spat_hz_per_device": round((spat1 - spat0) / window / devices, 2),
        "qos1_sent": int(stats.get("q1_sent", 0)),
        "qos1_acked": int(stats.get("q1_acked", 0)),
        "qos1_unacked": int(stats.get("q1_unacked", 0) + stats.get("q1_failed", 0)),
        "lost": lost,
        "broker_cpu_pct": round(100 * (cpu1 - cpu0) / window, 1),
        # after the ingest drained its backlog: how much SPaT reached it in the end
        "spat_published_total": int(stats.get("spat", 0)),
        "spat_delivered_total": ingest.spat,
        "ingest_drain_s": backlog_s,
    }


def run_link_bench(json_out: bool, quick: bool, machine: str) -> int:
    devices = int(os.environ.get("EDGE_BENCH_LINK_DEVICES", "20" if quick else "1000"))
    seconds = float(os.environ.get("EDGE_BENCH_LINK_SECONDS", "5" if quick else "20"))
    workers = int(os.environ.get("EDGE_BENCH_LINK_WORKERS", "2"))
    pushes = 3 if quick else 20
    with tempfile.TemporaryDirectory(prefix="edge-bench-link-") as tmp:
        work = Path(tmp)
        with Mosquitto(work / "broker") as broker:
            single = asyncio.run(_single(broker, work, pushes, 2.0 if quick else 5.0))
            fleet_res = fleet(broker, devices, seconds, workers)
    res = {"bench": "link", "machine": machine, **fleet_res, **single}
    if json_out:
        print(json.dumps(res))
        return 0
    print(f"edge bench link ({machine}), Mosquitto on this machine")
    print(
        f"  one device at 10 Hz: SPaT {single['spat_hz']} Hz held; plan push -> accepted ack "
        f"p50 {single['plan_ack_p50_ms']} ms, p99 {single['plan_ack_p99_ms']} ms; -> applied "
        f"(next safe point) p50 {single['plan_applied_p50_ms']} ms, p99 "
        f"{single['plan_applied_p99_ms']} ms over {pushes} pushes"
    )
    f = fleet_res
    print(
        f"  fleet: {f['devices']} devices in {f['workers']} processes for {f['seconds']} s: "
        f"{f['msgs_per_s']} msgs/s delivered to central; SPaT {f['spat_delivered_per_s']}/s of "
        f"{f['spat_target_per_s']}/s target ({f['spat_hz_per_device']} Hz per device)"
    )
    print(
        f"  QoS 1: {f['qos1_acked']} acked of {f['qos1_sent']} sent, {f['lost']} lost, "
        f"{f['qos1_unacked']} unacked; broker CPU {f['broker_cpu_pct']}% of one core"
    )
    return 0
