"""Central key rollover (edge/link/keyring.py): the offline root key moves a device from
the active to the standby central key over the link, and revokes the old one (issue 20).

End to end through Mosquitto and the device's own cmd path (DeviceRuntime): before the
rollover the standby key is refused; after it the old key is refused and the standby
accepted; a replayed or older rollover, or one signed by central's own key, is refused;
the device restarted keeps the rollover. Its key state lost (the state file deleted),
the device refuses every central key (the revoked one too) until the root statement
that central keeps retained on its cmd topic reaches it, at connect or later.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from edge.link import central, signing, topics
from edge.link.keyring import rollover
from edge.link.mosquitto import Mosquitto

from tests.link.harness import Keys, central_config, device_config, running, site_plans, wait_for

DEV = "dev-rk"


async def _scenario(broker: Mosquitto, keys: Keys, tmp: Path) -> dict[str, Any]:
    standby, root = signing.generate(), signing.generate()
    (tmp / "standby.pub").write_bytes(signing.public_pem(standby.public_key()))
    (tmp / "root.pub").write_bytes(signing.public_pem(root.public_key()))
    cfg = device_config(
        broker,
        tmp,
        DEV,
        keys,
        standby_keys=(tmp / "standby.pub",),
        root_key=tmp / "root.pub",
    )
    old_kid = signing.key_id(keys.central.public_key())
    new_kid = signing.key_id(standby.public_key())
    out: dict[str, Any] = {}
    async with central.connect(central_config(broker)) as c:

        async def send(raw: bytes) -> dict[str, Any]:
            got = await central.request(c, DEV, "cmd", raw, until=("done", "rejected"))
            assert got, "no ack"
            return got[-1]

        async def heartbeat(key: Ed25519PrivateKey) -> dict[str, Any]:
            _, raw = central.signed_command(key, DEV, {"kind": "heartbeat"})
            return await send(raw)

        # central's latest root statement, retained (`edge central send --retain`): a
        # device with no key state trusts central's keys once it has heard it
        cmd = topics.topic(DEV, "cmd")
        fleet0 = rollover(root, 0, "*", central.now_ms(), activate=None)
        await c.publish(cmd, fleet0, qos=1, retain=True)
        async with running(cfg) as rt:
            out["standby_before"] = await heartbeat(standby)
            out["old_before"] = await heartbeat(keys.central)
            now = central.now_ms()
            out["by_central"] = await send(
                rollover(keys.central, 1, DEV, now, activate=new_kid, revoke=[old_kid])
            )
            msg = rollover(root, 1, DEV, now, activate=new_kid, revoke=[old_kid])
            out["rollover"] = (
                await central.request(c, DEV, "cmd", msg, until=("done", "rejected"), retain=True)
            )[-1]
            out["replayed"] = await send(msg)
            out["older"] = await send(rollover(root, 1, "*", now + 1, activate=None))
            out["old_after"] = await heartbeat(keys.central)
            out["standby_after"] = await heartbeat(standby)
            out["trusted"] = sorted(rt.session.trusted)
        async with running(cfg):  # restarted: the rollover was kept
            out["old_restarted"] = await heartbeat(keys.central)
            out["standby_restarted"] = await heartbeat(standby)
        state = cfg.store_path.with_name(f"{DEV}.db.keys.json")
        out["state"] = json.loads(state.read_text())
        # /var/lib/edge wiped: back on the provisioned keys, yet the revoked one is refused
        # before central's statement comes (none retained here) and after (it moves it on)
        state.unlink()
        await c.publish(cmd, b"", qos=1, retain=True)
        async with running(cfg):
            out["old_wiped"] = await heartbeat(keys.central)
            out["standby_wiped"] = await heartbeat(standby)
            out["statement"] = await send(msg)
            out["old_healed"] = await heartbeat(keys.central)
            out["standby_healed"] = await heartbeat(standby)
        await c.publish(cmd, msg, qos=1, retain=True)
        state.unlink()
        async with running(cfg):  # wiped again: the retained statement comes at connect
            out["old_retained"] = await heartbeat(keys.central)
            out["standby_retained"] = await heartbeat(standby)
        await c.publish(cmd, b"", qos=1, retain=True)
    out["kids"] = (old_kid, new_kid)
    return out


def test_a_root_signed_rollover_moves_the_device_to_the_standby_key(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    r = asyncio.run(_scenario(broker, keys, tmp_path))
    old_kid, new_kid = r["kids"]
    assert (r["standby_before"]["status"], r["standby_before"]["code"]) == (
        "rejected",
        "unknown_key",
    )
    assert r["old_before"]["status"] == "done"
    assert r["by_central"]["status"] == "rejected"  # central's key cannot move keys
    assert r["rollover"]["status"] == "done", r["rollover"]
    assert f"active {new_kid}; revoked {old_kid}" in r["rollover"]["reason"]
    assert (r["replayed"]["status"], r["replayed"]["code"]) == ("rejected", "replayed")
    assert (r["older"]["status"], r["older"]["code"]) == ("rejected", "replayed")
    assert (r["old_after"]["status"], r["old_after"]["code"]) == ("rejected", "unknown_key")
    assert r["standby_after"]["status"] == "done"
    assert r["old_restarted"]["code"] == "unknown_key"
    assert r["standby_restarted"]["status"] == "done"
    assert r["state"]["sequence"] == 1 and r["state"]["revoked"] == [old_kid]
    assert list(r["state"]["active"]) == [new_kid] and r["trusted"] == [new_kid]
    # a lost key state: no central key until the root statement, then the rollover again
    for k in ("old_wiped", "standby_wiped"):
        assert (r[k]["status"], r[k]["code"]) == ("rejected", "unknown_key"), r[k]
    assert "key state was lost" in r["old_wiped"]["reason"]
    assert r["statement"]["status"] == "done", r["statement"]
    assert r["old_healed"]["code"] == "unknown_key" and r["standby_healed"]["status"] == "done"
    assert r["old_retained"]["code"] == "unknown_key" and r["standby_retained"]["status"] == "done"


async def _first_boot(broker: Mosquitto, keys: Keys, tmp: Path) -> None:
    root = signing.generate()
    (tmp / "root.pub").write_bytes(signing.public_pem(root.public_key()))
    cfg = device_config(broker, tmp, "dev-fb", keys, root_key=tmp / "root.pub")
    cmd, plan = topics.topic("dev-fb", "cmd"), topics.topic("dev-fb", "plan")
    plans = site_plans()
    plans["day"]["defaults"]["max_green_s"] = 27
    async with central.connect(central_config(broker)) as c:
        # both retained: the broker hands them over in the order the device subscribes,
        # the plan (refused while the keys are unconfirmed) before the statement
        await c.publish(plan, central.signed_bundle(keys.central, "dev-fb", 1, plans, "day"),
                        qos=1, retain=True)  # fmt: skip
        await c.publish(cmd, rollover(root, 0, "*", central.now_ms(), activate=None), qos=1,
                        retain=True)  # fmt: skip
        try:
            async with running(cfg) as rt:
                ring = rt.session.keyring
                assert ring is not None
                await wait_for(lambda: ring.confirmed, 10, "the retained statement")
                await wait_for(lambda: rt.session.high_water == 1, 10, "the retained plan")
        finally:
            await c.publish(plan, b"", qos=1, retain=True)
            await c.publish(cmd, b"", qos=1, retain=True)


def test_a_first_boot_device_takes_the_retained_plan_that_came_before_the_statement(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    """A device with no key state refuses central's plan until the retained root
    statement confirms its keys; a retained plan that reached it first is taken once
    the statement has (before, it waited for the next reconnect)."""
    asyncio.run(_first_boot(broker, keys, tmp_path))
