"""Against a real Mosquitto (TLS, client certificates, ACL): isolation between
devices, the plan and command round trips, the backup timer, and every
published message checked against its schema."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import aiomqtt
from edge.link import central, signing, topics
from edge.link.device import DeviceRuntime
from edge.link.messages import EmergencyPriorityRequest
from edge.link.mosquitto import Mosquitto

from tests.link.harness import (
    Keys,
    central_config,
    collecting,
    device_config,
    running,
    site_plans,
    wait_for,
)
from tests.link.schemas import LEAF_SCHEMA, check


async def _acl(broker: Mosquitto) -> None:
    dev1 = broker.client_config("dev-1")
    async with (
        central.connect(central_config(broker)) as watcher,
        aiomqtt.Client(
            "127.0.0.1",
            broker.port,
            identifier="dev-1",
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=dev1.tls_context(),
        ) as d1,
        aiomqtt.Client(
            "127.0.0.1",
            broker.port,
            identifier="dev-2",
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=broker.client_config("dev-2").tls_context(),
        ) as d2,
    ):
        # A device may ask for another device's topics or the whole tree (Mosquitto
        # grants the SUBACK) but the broker delivers it nothing outside its subtree.
        for filt in ("edge/v1/dev-2/cmd", "edge/v1/dev-2/spat", "edge/v1/#", "edge/v1/+/plan"):
            await d1.subscribe(filt, qos=1)
        await d1.subscribe("edge/v1/dev-1/cmd", qos=1)
        await d2.subscribe("edge/v1/dev-2/cmd", qos=1)
        await watcher.subscribe("edge/v1/#", qos=1)
        # dev-1 writes into dev-2's subtree (status, spat, and a fake command): nothing arrives.
        await d1.publish("edge/v1/dev-2/status", b'{"state":"online"}', qos=1)
        await d1.publish("edge/v1/dev-2/spat", b"{}", qos=0)
        await d1.publish("edge/v1/dev-2/cmd", b'{"forged":true}', qos=1)
        # a device cannot publish on its own plan/cmd topics (only central may)
        await d2.publish("edge/v1/dev-2/plan", b"{}", qos=1)
        # dev-1's own topics work; the sentinel marks the end
        await d1.publish("edge/v1/dev-1/events", b"own", qos=1)
        await watcher.publish("edge/v1/sentinel/ack", b"end", qos=1)
        seen: list[str] = []
        async with asyncio.timeout(5):
            async for msg in watcher.messages:
                seen.append(str(msg.topic))
                if str(msg.topic) == "edge/v1/sentinel/ack":
                    break
        assert seen == ["edge/v1/dev-1/events", "edge/v1/sentinel/ack"]
        # dev-2 got no forged command
        assert d2.messages.__len__() == 0
        # and dev-1 sees nothing of dev-2's: central's command to dev-2, dev-2's SPaT
        await watcher.publish("edge/v1/dev-2/cmd", b"for dev-2 only", qos=1)
        await d2.publish("edge/v1/dev-2/spat", b"{}", qos=1)
        await watcher.publish("edge/v1/dev-1/cmd", b"marker", qos=1)
        got: list[str] = []
        async with asyncio.timeout(5):
            async for msg in d1.messages:
                got.append(str(msg.topic))
                if msg.payload == b"marker":
                    break
        assert set(got) == {"edge/v1/dev-1/cmd"}, got


def test_devices_are_confined_to_their_own_topics(broker: Mosquitto) -> None:
    asyncio.run(_acl(broker))


async def _scenario(broker: Mosquitto, keys: Keys, tmp: Path) -> dict[str, Any]:
    cfg = device_config(broker, tmp, "dev-1", keys, backup_ms=4000)
    res: dict[str, Any] = {}
    async with collecting(broker, device="dev-1") as col, running(cfg) as rt:
        await wait_for(lambda: col.status.get("dev-1", {}).get("state") == "online", 5, "birth")
        birth = col.status["dev-1"]
        assert birth["config_hash"] == rt.config_hash and birth["plan_version"] == 0
        async with central.connect(central_config(broker)) as c:
            plans = site_plans()
            plans["day"]["defaults"]["max_green_s"] = 27
            good = central.signed_bundle(keys.central, "dev-1", 1, plans, "day")
            t0 = time.monotonic()
            acks = await central.request(
                c, "dev-1", "plan", good, until=("applied", "rejected"), timeout_s=30, retain=True
            )
            res["apply_s"] = time.monotonic() - t0
            assert [a["status"] for a in acks] == ["accepted", "applied"], acks
            assert all(a["version"] == 1 for a in acks)
            assert rt.ctl.plan.timings[4].max_green_ms == 27_000
            await wait_for(lambda: col.status["dev-1"].get("plan_version") == 1, 5, "status v1")

            async def plan_reason(raw: bytes) -> tuple[str, str]:
                got = await central.request(c, "dev-1", "plan", raw, timeout_s=5)
                assert got and got[-1]["status"] == "rejected", got
                return got[-1]["code"], got[-1]["reason"]

            # pushed with central's broker rights, but unsigned / wrongly signed / replayed
            body = json.loads(good)["body"].replace('"version":1', '"version":2')
            assert (await plan_reason(body.encode()))[0] == "schema"
            forged = json.loads(good)
            forged["body"] = body
            assert (await plan_reason(json.dumps(forged).encode()))[0] == "bad_signature"
            rogue = central.signed_bundle(keys.rogue, "dev-1", 2, plans, "day")
            assert (await plan_reason(rogue))[0] == "unknown_key"
            assert await plan_reason(good) == (
                "replayed",
                "plan bundle v1 is not newer than the last accepted version 1",
            )
            unsafe = site_plans()
            unsafe["day"]["defaults"]["red_clear_s"] = 0.2
            code, reason = await plan_reason(
                central.signed_bundle(keys.central, "dev-1", 2, unsafe, "day")
            )
            assert code == "invalid_plan" and "red clearance 0.2 s is below" in reason
            assert rt.ctl.plan.timings[4].max_green_ms == 27_000  # nothing half-applied

            async def command(
                cmd: dict[str, Any], until: tuple[str, ...] = ("done", "rejected")
            ) -> list[dict[str, Any]]:
                cid, raw = central.signed_command(keys.central, "dev-1", cmd)
                got = await central.request(c, "dev-1", "cmd", raw, until=until, timeout_s=5)
                assert got and all(a["ref"] == cid for a in got), got
                return got

            got = await command(
                {"kind": "ev_priority", "approach": "N", "eta_s": 15, "vehicle_id": "E-17"},
                until=("accepted", "rejected"),
            )
            assert got[-1]["status"] == "accepted"
            req = rt.priority["ev:E-17"]
            assert isinstance(req, EmergencyPriorityRequest) and req.approach == "N"
            assert rt.store.active_priorities(central.now_ms())[0][0] == "ev:E-17"
            # The request became the core's preempt for the north approach (preempt 4).
            assert rt.preempting == {4}
            await wait_for(lambda: 3 in rt.ctl.preempt.requests, 5, "preempt 4 requested")
            got = await command({"kind": "hold", "phases": [2, 6]})
            assert [a["status"] for a in got] == ["accepted", "done"]
            got = await command({"kind": "set_mode", "mode": "adaptive"})
            assert [a["status"] for a in got] == ["accepted", "done"]
            await wait_for(lambda: rt.ctl.control == "adaptive", 5, "adaptive mode")
            assert rt.ctl.control_reason == "central command"
            got = await command({"kind": "force_off", "phase": 3})
            if got[-1]["status"] == "rejected":
                assert got[-1]["code"] == "refused" and got[-1]["reason"] == "phase 3 is not green"
            got = await command({"kind": "request_state"})
            assert got[-1]["status"] == "done"
            ref = got[-1]["ref"]
            await wait_for(
                lambda: any(
                    json.loads(p).get("ref") == ref for t, p in col.raw if t.endswith("/state")
                ),
                5,
                "state",
            )
            state = next(json.loads(p) for t, p in col.raw if t.endswith("/state"))
            assert state["overrides"] == ["hold", "mode"] and state["plan_version"] == 1
            assert state["priority"][0]["vehicle_id"] == "E-17"
            # Central goes silent: the backup timer drops the hold, local control goes on.
            ticks = rt.ticks
            await wait_for(lambda: rt.session.lapsed, 8, "backup timer")
            await asyncio.sleep(0.5)
            assert rt.session.overrides == set() and not any(rt.ctl.hold)
            assert rt.ctl.control_reason.startswith("plan ")  # the mode lapsed to the plan's
            assert rt.ticks > ticks
            got = await command({"kind": "heartbeat"})
            assert got[-1]["status"] == "done" and not rt.session.lapsed
            # SPaT rate
            n0, t0 = col.spat.get("dev-1", 0), time.monotonic()
            await asyncio.sleep(2.0)
            res["spat_hz"] = (col.spat["dev-1"] - n0) / (time.monotonic() - t0)
        await asyncio.sleep(1.0)
    res["jitter"] = rt.runtime.jitter_all  # the control tick's lateness over the whole run
    names = [
        e["name"] for t, p in col.raw if t.endswith("/events") for e in json.loads(p)["events"]
    ]
    for name in (
        "plan_accepted",
        "plan_applied",
        "plan_rejected",
        "backup_timer_expired",
        "central_resumed",
        "ev_priority_request",
        "command_applied",
        "phase_green",
    ):
        assert name in names, name
    for topic, payload in col.raw:
        parsed = topics.parse(topic)
        assert parsed is not None
        check(LEAF_SCHEMA[parsed[1]], payload)
    res["messages"] = len(col.raw)
    assert col.status["dev-1"]["state"] == "offline"  # said so on the way out
    # After a restart: the plan and its version are remembered, the stored bundle is handed
    # to the core again (tests/device/test_central.py sees it applied), the request in force.
    rt2 = DeviceRuntime(cfg)
    assert rt2.plan_version == 1 and rt2.session.high_water == 1
    assert rt2.link.pending_apply is not None and rt2.link.pending_apply[0] == 1
    assert isinstance(rt2.priority["ev:E-17"], EmergencyPriorityRequest)
    rt2.close()
    return res


def test_plans_commands_and_backup_timer_end_to_end(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    res = asyncio.run(_scenario(broker, keys, tmp_path))
    assert 7.5 <= res["spat_hz"] <= 11, res
    assert res["jitter"].max_ms < 200, res["jitter"]
    assert res["messages"] > 50


async def _fuzz(broker: Mosquitto, keys: Keys, tmp: Path) -> tuple[int, int, int]:
    import random

    rng = random.Random(1234)
    cfg = device_config(broker, tmp, "dev-9", keys)
    kid = signing.key_id(keys.central.public_key())
    payloads: list[bytes] = [rng.randbytes(rng.randint(0, 300)) for _ in range(40)]
    payloads += [
        b"",
        b"null",
        b"[]",
        b"123",
        b'"text"',
        b"{" * 10000,
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps({"body": "x" * 2_000_000, "kid": kid, "sig": "AA=="}).encode(),
        json.dumps({"body": 5, "kid": kid, "sig": "AA=="}).encode(),
        json.dumps({"body": "{}", "kid": ["x"], "sig": "AA=="}).encode(),
        json.dumps({"body": "{}", "kid": kid, "sig": "***"}).encode(),
        json.dumps({"body": "{}", "kid": kid, "sig": "AA==", "extra": 1}).encode(),
    ]
    nested: Any = 1
    for _ in range(500):
        nested = {"a": nested}
    for body in (
        nested,
        {"type": "command", "device": "dev-9", "id": 5, "issued_ms": "now"},
        {"type": "plan_bundle", "device": "dev-9", "version": 1.5, "plans": []},
        {
            "type": "command",
            "device": "dev-9",
            "id": "x",
            "issued_ms": 0,
            "expires_ms": 2**62,
            "command": {"kind": "hold", "phases": ["2"]},
        },
        [1, 2, 3],
        "string",
    ):
        payloads.append(signing.sign(json.dumps(body), keys.central))
    for _ in range(20):  # validly signed envelopes around random JSON bodies
        body = json.dumps({rng.choice("abcdefgh"): rng.random() for _ in range(5)})
        payloads.append(signing.sign(body, keys.central))
    rejected = dropped = 0
    async with running(cfg) as rt, central.connect(central_config(broker)) as c:
        ticks = rt.ticks
        for leaf in ("plan", "cmd"):
            for raw in payloads:
                got = await central.request(c, "dev-9", leaf, raw, timeout_s=3)
                if got and got[-1]["status"] == "rejected":
                    check("ack", got[-1])
                    rejected += 1
                else:
                    dropped += 1
        assert rt.ticks > ticks  # the controller kept stepping throughout
        # still alive and working
        _, raw = central.signed_command(keys.central, "dev-9", {"kind": "heartbeat"})
        got = await central.request(c, "dev-9", "cmd", raw, timeout_s=5)
        assert got[-1]["status"] == "done"
    return rejected, dropped, len(payloads) * 2


def test_fuzzed_payloads_are_rejected_and_never_crash_the_device(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    rejected, dropped, total = asyncio.run(_fuzz(broker, keys, tmp_path))
    # every fuzzed message got a rejection ack; none was silently lost
    assert rejected == total, (rejected, dropped)


async def _at_311(broker: Mosquitto, keys: Keys, tmp: Path) -> list[list[dict[str, Any]]]:
    cfg = device_config(broker, tmp, "dev-311", keys)
    cfg = dataclasses.replace(cfg, broker=dataclasses.replace(cfg.broker, protocol="3.1.1"))
    cen = dataclasses.replace(central_config(broker), protocol="3.1.1")
    out = []
    async with running(cfg) as rt, central.connect(cen) as c:
        assert not rt.client.v5 and not central.speaks_v5(c)
        _, ok = central.signed_command(keys.central, "dev-311", {"kind": "heartbeat"})
        out.append(await central.request(c, "dev-311", "cmd", ok, timeout_s=5))
        # a message too broken to name still gets its rejection, matched by its digest
        out.append(await central.request(c, "dev-311", "cmd", b"{not json", timeout_s=5))
    return out


def test_at_mqtt_311_acks_carry_the_request_correlation_in_the_payload(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    done, rejected = asyncio.run(_at_311(broker, keys, tmp_path))
    assert done and done[-1]["status"] == "done", done
    assert rejected and rejected[-1]["status"] == "rejected", rejected
    assert rejected[-1]["ref"] is None  # named by its correlation only
    for ack in (*done, *rejected):
        check("ack", ack)
