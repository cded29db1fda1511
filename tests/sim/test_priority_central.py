"""Central's priority requests reach the same core preemption and transit priority.

`edge run`'s runtime and central link (the link harness) without a broker: a
signed command as it arrives on the `cmd` topic -> the link session (signature,
schema, approach) -> the priority book -> Preempt / TransitRequest for the
core -> the controller's own requests, then the cancel and the expiry.
(tests/link/test_broker.py runs the same request through a real Mosquitto.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from edge.control.messages import Inputs, Outputs
from edge.link import central
from edge.link.client import BrokerConfig
from edge.link.config import DeviceConfig
from edge.link.device import DeviceRuntime

from tests.link.harness import SITE, Keys, make_keys

DEV = "dev-1"


def _runtime(tmp: Path, keys: Keys) -> DeviceRuntime:
    site = tmp / "site.toml"
    site.write_text(
        SITE.read_text() + "\n[transit]\nmax_share = 0.2\nmax_extension_s = 8\ncycle_s = 90\n"
    )
    cfg = DeviceConfig(
        device=DEV,
        site_path=site,
        store_path=tmp / "dev.db",
        trusted_keys=(keys.central_pub,),
        broker=BrokerConfig("127.0.0.1", 1),  # never connected here
        spat_hz=0,
    )
    return DeviceRuntime(cfg)


async def _command(
    rt: DeviceRuntime, keys: Keys, body: dict[str, object], ttl_s: float = 60
) -> None:
    _, raw = central.signed_command(keys.central, DEV, body, ttl_s=ttl_s)
    await rt.on_message("cmd", raw, None)


async def _until(cond: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert cond(), "condition not reached"


def test_ev_and_transit_requests_reach_the_core_and_cancel(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    rt = _runtime(tmp_path, keys)
    north = next(p for p in rt.ctl.site.preempts if p.approach == "N")
    k = rt.ctl.preempt.index[north.id]
    transit = rt.ctl.transit
    assert transit is not None

    async def body() -> None:
        loop = asyncio.create_task(rt.run())
        ev = {"kind": "ev_priority", "approach": "N", "eta_s": 20, "vehicle_id": "E-1"}
        bus = {"kind": "transit_priority", "approach": "W", "eta_s": 15, "vehicle_id": "B-7"}
        await _command(rt, keys, ev)
        await _command(rt, keys, bus)
        await _until(lambda: k in rt.ctl.preempt.requests and "W" in transit.requests)
        await _command(rt, keys, {**ev, "cancel": True})
        await _command(rt, keys, {**bus, "cancel": True})
        await _until(lambda: not rt.ctl.preempt.requests and not transit.requests)
        rt.stopping = True
        assert await loop == 0

    asyncio.run(body())


def test_a_request_never_cancelled_lapses_at_its_expiry(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    rt = _runtime(tmp_path, keys)
    transit = rt.ctl.transit
    assert transit is not None

    async def body() -> None:
        loop = asyncio.create_task(rt.run())
        bus = {"kind": "transit_priority", "approach": "S", "eta_s": 5, "vehicle_id": "B-9"}
        await _command(rt, keys, bus, ttl_s=2)
        await _until(lambda: "S" in transit.requests)
        await _until(lambda: not transit.requests, timeout_s=5)
        assert "transit:B-9" not in rt.priority
        rt.stopping = True
        assert await loop == 0

    asyncio.run(body())


def test_a_queue_ahead_brings_centrals_request_forward_on_the_device(tmp_path: Path) -> None:
    """Issue 17: the device requests from its own queue estimate (here a camera's, on the
    north through's loop) the time to clear the way before the ETA, not the fixed lead."""
    keys = make_keys(tmp_path / "keys")
    rt = _runtime(tmp_path, keys)
    north = next(p for p in rt.ctl.site.preempts if p.approach == "N" and p.turn is None)
    k = rt.ctl.preempt.index[north.id]
    loop_8 = next(d.id for d in rt.ctl.site.detectors if 8 in d.calls and not d.ped)
    queue = [0.0]
    driver = rt.runtime.driver
    sense = driver.sense
    assert sense is not None

    def queued(inputs: Inputs, last: Outputs | None) -> Inputs:
        out = sense(inputs, last)
        return dataclasses.replace(out, queues=((loop_8, queue[0]),)) if queue[0] else out

    driver.sense = queued

    async def body() -> None:
        loop = asyncio.create_task(rt.run())
        ev = {"kind": "ev_priority", "approach": "N", "eta_s": 50, "vehicle_id": "E-1"}
        await _command(rt, keys, ev)
        assert rt.preempting == set()  # 50 s away, a lead of 20 s: the cross streets run on
        queue[0] = 20.0  # 20 vehicles at N's through: 15.5 + 2 + 40 s: at most 60 s
        await _until(lambda: k in rt.ctl.preempt.requests, timeout_s=20)
        queue[0] = 0.0  # discharged: the request stays until cancelled
        await asyncio.sleep(1.2)  # one more of the link's priority checks
        assert k in rt.ctl.preempt.requests
        await _command(rt, keys, {**ev, "cancel": True})
        await _until(lambda: not rt.ctl.preempt.requests, timeout_s=20)
        rt.stopping = True
        assert await loop == 0

    asyncio.run(body())
