"""Neighbours' outflows through a real Mosquitto (edge/link/outflow.py): two devices, `edge
run`'s runtime and central link each (scripted traffic), the downstream naming the upstream
in its site file's `[[neighbour]]`.

- The upstream's releases reach the downstream's core as predicted arrivals (its
  `Arrivals` state holds them); every outflow on the wire matches its schema.
- Before the upstream comes and after it goes, the downstream's core gets nothing new:
  it never had a set before, and its last set runs out after (one empty set, then None).
- A malformed or hostile outflow is dropped whole, counted and reported as an
  `outflow_rejected` event while the tick goes on; another device cannot forge one
  (the ACL lets a device read every outflow but write only its own).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt
from edge.link import central
from edge.link.client import MAX_PACKET_BYTES
from edge.link.device import DeviceRuntime
from edge.link.mosquitto import Mosquitto
from edge.link.outflow import FLOOD_BURST, FLOOD_PER_S

from tests.link.harness import SITE, Keys, central_config, device_config, running, wait_for
from tests.link.schemas import check

NEIGHBOUR = """
[[neighbour]]
device = "up-1"
detectors = [1, 2, 3, 4, 5, 6, 7, 8]
release_phases = [1, 2, 3, 4, 5, 6, 7, 8]
phases = [2, 6]
travel_s = 4.0
"""


def down_site(tmp: Path) -> Path:
    path = tmp / "down.toml"
    path.write_text(SITE.read_text() + NEIGHBOUR)
    return path


def device_client(broker: Mosquitto, name: str) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        identifier=name,
        protocol=aiomqtt.ProtocolVersion.V5,
        tls_context=broker.client_config(name).tls_context(),
    )


def arrivals_for(down: DeviceRuntime) -> set[int]:
    """The phase ids the downstream core holds predicted arrivals for now."""
    ids = [p.id for p in down.ctl.site.phases]
    return {ids[i] for i, _due in down.ctl.arrivals.due}


async def _through(broker: Mosquitto, keys: Keys, tmp: Path) -> None:
    up_cfg = device_config(broker, tmp, "up-1", keys, veh_per_hour=1800)
    down_cfg = device_config(broker, tmp, "down-1", keys, site_path=down_site(tmp))
    async with central.connect(central_config(broker)) as watcher:
        await watcher.subscribe("edge/v1/+/outflow", qos=0)
        async with running(down_cfg) as down:
            await asyncio.sleep(3)  # the neighbour silent: the core never had a set
            assert down.ctl.arrivals.expires == 0 and down.link.outflow.received == 0
            async with running(up_cfg) as up:
                await wait_for(lambda: arrivals_for(down) != set(), 30, "arrivals downstream")
                assert arrivals_for(down) <= {2, 6}
                async with asyncio.timeout(5):
                    async for m in watcher.messages:  # down-1 sends its own too
                        check("outflow", bytes(m.payload))
                        if str(m.topic) == "edge/v1/up-1/outflow":
                            break
                assert up.link.outflow.sent > 0 and down.link.outflow.received > 0
                assert up.link.outflow.received == 0  # it names no neighbour: reads none
            # The upstream gone: its arrivals run out, one empty set says so, then None.
            await wait_for(
                lambda: not down.ctl.arrivals.due and not down.link.outflow.projection.said,
                4 + 10 + 5,
                "the arrivals to run out",
            )
            ticks = down.ticks
            await asyncio.sleep(1)
            assert down.ticks >= ticks + 5 and down.link.outflow.rejected == 0


def test_releases_upstream_become_arrivals_downstream_and_run_out(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    asyncio.run(_through(broker, keys, tmp_path))


GOOD = b'{"dev":"up-1","ts":1,"rel":[[2,100,900,[2,6]]]}'
BAD = [
    b"not json",
    b"[" * 20_000,  # oversized, and nested past any parser's depth
    b"[" * 5000,  # nested too deep
    b'{"dev":"up-1","ts":1,"rel":[[2,100]]}',  # a short release
    b'{"dev":"up-1","ts":1,"rel":[[2,-5,0,[]]]}',  # an age from the future
    b'{"dev":"up-1","ts":1,"rel":[[2,100,0,[99]]]}',  # no such phase id
    b'{"dev":"up-2","ts":1,"rel":[]}',  # another device's name on up-1's topic
    b'{"dev":"up-1","ts":1,"rel":[],"x":1}',  # an unknown key
    json.dumps({"dev": "up-1", "ts": 1, "rel": [[2, 1, 1, []]] * 300}).encode(),  # too many
]


async def _hostile(broker: Mosquitto, keys: Keys, tmp: Path) -> None:
    down_cfg = device_config(broker, tmp, "down-1", keys, site_path=down_site(tmp))
    async with (
        central.connect(central_config(broker)) as watcher,
        device_client(broker, "up-1") as up,
        device_client(broker, "evil") as evil,
    ):
        await watcher.subscribe("edge/v1/down-1/events", qos=1)
        # a retained outflow (the ACL cannot forbid one) is stale whenever it comes: the
        # downstream's subscription gets it and drops it unread (review s30)
        await up.publish("edge/v1/up-1/outflow", GOOD, qos=1, retain=True)
        async with running(down_cfg) as down:
            out = down.link.outflow
            # another device writing up-1's outflow: the broker drops it
            await evil.publish("edge/v1/up-1/outflow", GOOD, qos=1)
            await up.publish("edge/v1/up-1/outflow", GOOD, qos=1)
            await wait_for(lambda: out.received == 1, 5, "up-1's own outflow")
            # a huge one never reaches the device (its CONNECT's Maximum Packet Size): a
            # neighbour cannot make it read megabytes (review s30)
            await up.publish("edge/v1/up-1/outflow", b"[" * (MAX_PACKET_BYTES + 1), qos=1)
            await asyncio.sleep(0.5)
            assert out.received == 1 and out.rejected == 0 and down.link.connected
            ticks = down.ticks
            for payload in BAD:  # past FLOOD_BURST: the rest are dropped unparsed, as a flood
                await up.publish("edge/v1/up-1/outflow", payload, qos=1)
            await wait_for(lambda: out.rejected == len(BAD), 5, "the bad ones dropped")
            await asyncio.sleep(FLOOD_BURST / FLOOD_PER_S)  # the neighbour's allowance back
            await up.publish("edge/v1/up-1/outflow", GOOD, qos=1)
            await wait_for(lambda: out.received == 2, 5, "the good outflow after the bad")
            assert out.rejected == len(BAD)
            await wait_for(lambda: down.ticks > ticks + 5, 5, "the tick to go on")
            reported: list[dict[str, str]] = []
            async with asyncio.timeout(10):
                async for m in watcher.messages:
                    body = json.loads(bytes(m.payload))
                    reported += [e for e in body["events"] if e["name"] == "outflow_rejected"]
                    if reported:
                        break
            # one report per device per minute: the first problem, by its code
            assert [(e["subject"], e["detail"]) for e in reported] == [
                (
                    "up-1",
                    "malformed: outflow is not JSON: Expecting value: line 1 column 1 (char 0)",
                )
            ]
        await up.publish("edge/v1/up-1/outflow", b"", qos=1, retain=True)  # cleared


def test_a_hostile_outflow_is_reported_and_ignored_and_none_can_be_forged(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    asyncio.run(_hostile(broker, keys, tmp_path))
