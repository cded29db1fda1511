"""A 3-node NATS cluster (edge.link.nats) started here: TLS client certificates, the
per-device ACL in NATS's permissions, the link negotiated down to MQTT 3.1.1, central's
ingest in partitions, and a node killed mid-run with nothing lost."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from edge.link import central, topics
from edge.link.central import Collected
from edge.link.config import DeviceConfig
from edge.link.nats import NatsCluster, nats_binary

from tests.link.harness import Keys, assert_tick_not_blocked, device_config, running, wait_for
from tests.link.schemas import check
from tests.link.test_outage import rt_last_seq


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    if nats_binary() is None:
        pytest.fail("nats-server is not installed (scripts/install-test-tools.sh)")
    with NatsCluster(tmp_path / "cluster", devices=("dev-1", "dev-2"), partitions=2) as c:
        yield c


def _code(granted: object) -> int:
    """A SUBACK return code as an int (paho gives ReasonCode objects or ints)."""
    code = getattr(granted, "value", granted)
    assert isinstance(code, int)
    return int(code)


async def _client(c: NatsCluster, name: str, node: int) -> aiomqtt.Client:
    cfg = c.client_config(name, node=node)
    client = aiomqtt.Client(
        cfg.host,
        cfg.port,
        identifier=f"{name}-probe",
        protocol=aiomqtt.ProtocolVersion.V311,
        tls_context=cfg.tls_context(),
        timeout=10,
    )
    await client.__aenter__()
    return client


def test_a_device_is_confined_to_its_own_topics(cluster: NatsCluster) -> None:
    async def go() -> None:
        cen = await _client(cluster, "central", 0)
        dev = await _client(cluster, "dev-1", 1)
        try:
            await cen.subscribe(
                [
                    ("edge/v1/+/ack", 1),
                    ("edge/v1/+/outflow", 0),
                    *[(f, 1) for f, _ in _all_ingest()],
                ]
            )
            # its own topics: subscribed (QoS 1 granted), published and delivered
            granted = await dev.subscribe([("edge/v1/dev-1/cmd", 1), ("edge/v1/dev-1/plan", 1)])
            assert [_code(g) for g in granted] == [1, 1]
            # another device's, or the whole fleet's: refused (0x80)
            for other in ("edge/v1/dev-2/cmd", "edge/v1/+/cmd", "edge/v1/dev-2/counts", "#"):
                (g,) = await dev.subscribe(other, qos=1)
                assert _code(g) == 0x80, other
            # but its neighbours' releases, read-only: every device's outflow (topics.py)
            (g,) = await dev.subscribe("edge/v1/dev-2/outflow", qos=0)
            assert _code(g) == 0
            await dev.publish("edge/v1/dev-2/ack", b'{"forged":1}', qos=1)
            await dev.publish("edge/v1/dev-2/counts", b'{"forged":2}', qos=1)
            await dev.publish("edge/v1/dev-2/outflow", b'{"forged":3}', qos=0)
            await dev.publish("edge/v1/dev-1/ack", b'{"mine":1}', qos=1)
            await dev.publish("edge/v1/dev-1/counts", b'{"mine":2}', qos=1)
            seen: list[tuple[str, bytes]] = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(3):
                    async for m in cen.messages:
                        seen.append((topics.unpartitioned(str(m.topic)), bytes(m.payload)))
                        if len(seen) >= 4:
                            break
            assert sorted(seen) == [
                ("edge/v1/dev-1/ack", b'{"mine":1}'),
                ("edge/v1/dev-1/counts", b'{"mine":2}'),
            ], seen
            # central commands reach the device's own topic only
            await cen.publish("edge/v1/dev-1/cmd", b"c1", qos=1)
            async with asyncio.timeout(5):
                async for m in dev.messages:
                    assert str(m.topic) == "edge/v1/dev-1/cmd" and m.payload == b"c1"
                    break
        finally:
            await dev.__aexit__(None, None, None)
            await cen.__aexit__(None, None, None)

    asyncio.run(go())


def test_no_certificate_no_connection(cluster: NatsCluster) -> None:
    import ssl

    cfg = cluster.client_config("central", node=0)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cfg.cafile)

    async def go() -> None:
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client(
                cfg.host,
                cfg.port,
                protocol=aiomqtt.ProtocolVersion.V311,
                tls_context=ctx,
                timeout=5,
            ):
                pass

    asyncio.run(go())


def _all_ingest() -> list[tuple[str, int]]:
    from edge.link.nats import ingest_filter

    return [(ingest_filter(0), 1), (ingest_filter(1), 1)]


async def _node_kill(c: NatsCluster, keys: Keys, tmp: Path) -> dict[str, Any]:
    devices = ("dev-1", "dev-2")
    cfgs = [
        device_config(c, tmp, d, keys, counts_interval_ms=1000, events_flush_ms=300)
        for d in devices
    ]
    col = Collected(keep_raw=True)
    stop = asyncio.Event()
    cen = c.client_config("central")
    workers = [asyncio.create_task(central.ingest_partition(cen, p, col, stop)) for p in range(2)]
    res: dict[str, Any] = {}
    async with running(cfgs[0]) as rt1, running(cfgs[1]) as rt2:
        rts = (rt1, rt2)
        await asyncio.sleep(3)
        # the MQTT 3.1.1 link answers a command with its correlation in the payload
        _cid, cmd = central.signed_command(keys.central, "dev-1", {"kind": "heartbeat"})
        async with central.connect(c.client_config("central", node=2)) as cc:
            assert not central.speaks_v5(cc)
            acks = await central.request(cc, "dev-1", "cmd", cmd)
        assert acks and acks[-1]["status"] == "done", acks
        res["corr_ok"] = True
        connects = [rt.client.connects for rt in rts]
        # The cluster's own work (reading its logs, killing and starting a node, which
        # waits for the node to listen) runs off this loop: the devices tick on it, and
        # their jitter is the runtime's, not this harness's.
        res["msgs_leader"] = await asyncio.to_thread(c.stream_leader)  # the node the bench kills
        # kill the node dev-1 is connected to
        port = rt1.client.broker.endpoints()[rt1.client.reconnect.endpoint][1]
        victim = next(i for i, n in enumerate(c.nodes) if n.mqtt_port == port)
        t_kill = time.monotonic()
        await asyncio.to_thread(c.kill_node, victim)
        await wait_for(
            lambda: rt1.client.connected.is_set() and rt1.client.connects > connects[0],
            30,
            "dev-1 reconnects",
        )
        res["reconnect_s"] = time.monotonic() - t_kill
        await asyncio.sleep(2)
        await asyncio.to_thread(c.start_node, victim)
        await asyncio.sleep(3)
        rt1.stopping = rt2.stopping = True
    for d, cfg in zip(devices, cfgs, strict=True):
        last = rt_last_seq(cfg.store_path)
        res[d] = last
        await wait_for(_delivered(col, d, last), 30, f"{d} delivered")
    stop.set()
    for w in workers:
        w.cancel()
    for w in workers:
        with contextlib.suppress(asyncio.CancelledError):
            await w
    res["col"] = col
    res["jitter"] = (rt1.runtime.jitter_all, rt2.runtime.jitter_all)
    return res


def _delivered(col: Collected, device: str, last: int) -> Callable[[], bool]:
    return lambda: len(col.seqs(device)) >= last


def test_node_killed_mid_run_loses_nothing(
    cluster: NatsCluster, keys: Keys, tmp_path: Path
) -> None:
    res = asyncio.run(_node_kill(cluster, keys, tmp_path / "dev"))
    col: Collected = res["col"]
    for d in ("dev-1", "dev-2"):
        assert col.seqs(d) == set(range(1, res[d] + 1)), (d, res[d], sorted(col.seqs(d)))
        # in order per device: the first arrival of each sequence number is increasing
        firsts: list[int] = []
        for topic, payload in col.raw:
            parsed = topics.parse(topics.unpartitioned(topic))
            if parsed and parsed[0] == d and parsed[1] in ("counts", "events"):
                seq = json.loads(payload)["seq"]
                if seq not in firsts:
                    firsts.append(seq)
        assert firsts == sorted(firsts), d
    mine = [m for (dv, _st, _sq), m in col.by_kind["counts"].items() if dv == "dev-1"]
    counts = sorted(mine, key=lambda m: m["seq"])
    assert all(b["start"] == a["end"] for a, b in itertools.pairwise(counts))
    for kind, msgs in col.by_kind.items():
        for m in msgs.values():
            check(kind, m)
    # dev-1 came back within the wait (30 s); how fast is `edge bench fleet`'s figure:
    # after a SIGKILL the survivors elect new JetStream leaders first (Raft, 4-9 s in 2.9)
    assert res["reconnect_s"] < 30, res
    assert res["msgs_leader"] in (0, 1, 2), res
    for j in res["jitter"]:
        assert_tick_not_blocked(j)


async def _run_until_delivered(cfg: DeviceConfig, col: Collected) -> int:
    """Run the device until 6 messages are spooled, stop it; its last number, once
    central has them all (in its store's stream)."""
    async with running(cfg) as rt:
        await wait_for(lambda: rt.store.last_seq() >= 6, 20, "6 spooled")
        rt.stopping = True
    last = rt_last_seq(cfg.store_path)
    stream = rt.store.stream
    await wait_for(lambda: len(col.seqs(cfg.device, stream)) >= last, 30, "delivered")
    return last


async def _reflash(c: NatsCluster, keys: Keys, tmp: Path) -> dict[str, Any]:
    """dev-1 runs, stops; central's ingest workers restart (from what they have); dev-1
    runs again with a fresh store (re-flashed) under the same id."""
    col = Collected(keep_raw=True)
    cen = c.client_config("central")
    res: dict[str, Any] = {"col": col}
    for run in ("first", "second"):
        stop = asyncio.Event()
        workers = [
            asyncio.create_task(central.ingest_partition(cen, p, col, stop)) for p in range(2)
        ]
        cfg = device_config(
            c, tmp / run, "dev-1", keys, counts_interval_ms=1000, events_flush_ms=300
        )
        res[run] = await _run_until_delivered(cfg, col)
        stop.set()
        for w in workers:
            w.cancel()
        for w in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await w
    return res


def test_a_reflashed_device_is_a_new_stream_in_order(
    cluster: NatsCluster, keys: Keys, tmp_path: Path
) -> None:
    """The partitioned ingest (edge.link.inorder per stream): the re-flashed device's
    second stream, numbered from 1 again, is released in full and in order, not held
    behind or dropped below the first stream's numbers."""
    res = asyncio.run(_reflash(cluster, keys, tmp_path / "dev"))
    col: Collected = res["col"]
    streams = col.streams("dev-1")
    assert len(streams) == 2, streams
    for stream, run in zip(streams, ("first", "second"), strict=True):
        assert col.seqs("dev-1", stream) == set(range(1, res[run] + 1)), (run, res)
        released = [
            json.loads(p)["seq"]
            for t, p in col.raw
            if t.endswith(("/counts", "/events")) and json.loads(p).get("stream") == stream
        ]
        assert released == sorted(set(released)), (run, released)  # in order, once
    assert not col.rejected
