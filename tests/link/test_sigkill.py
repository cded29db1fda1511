"""The runtime process is killed with SIGKILL mid-send, again and again, and
restarted: nothing that reached the spool is lost, nothing is corrupted."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
from pathlib import Path

from edge.link import central
from edge.link.central import Collected
from edge.link.mosquitto import Mosquitto
from edge.store import Store

from tests.link.harness import (
    ROOT,
    Keys,
    central_config,
    device_config,
    wait_for,
    write_device_toml,
)
from tests.link.schemas import check


def start(cfg_path: Path, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 - the child keeps it
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.link.device", str(cfg_path), "-v"],
        cwd=ROOT,
        stdout=out,
        stderr=out,
    )
    out.close()
    return proc


async def _run(broker: Mosquitto, keys: Keys, tmp: Path) -> tuple[Collected, int, list[int]]:
    cfg = device_config(
        broker, tmp, "dev-k", keys, counts_interval_ms=1000, events_flush_ms=100, veh_per_hour=3000
    )
    cfg_path = tmp / "device.toml"
    write_device_toml(cfg, cfg_path)
    col = Collected()
    rng = random.Random(7)
    spool_at_kill: list[int] = []
    async with central.connect(central_config(broker), identifier="ingest-k", persistent=True) as c:
        task = asyncio.create_task(central.collect(c, col, ("counts", "events"), "dev-k"))
        await asyncio.sleep(0.3)
        for _ in range(4):
            before = col.received
            proc = start(cfg_path, tmp / "device.log")
            # kill while it is sending: wait for its traffic, then a random moment
            target = before + 3
            await wait_for(lambda t=target: col.received >= t, 20, "device traffic")  # type: ignore[misc]
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            st = Store(cfg.store_path)
            spool_at_kill.append(st.spool_size())
            assert st.integrity_check() == "ok"
            st.close()
        proc = start(cfg_path, tmp / "device.log")
        await asyncio.sleep(3)
        proc.send_signal(signal.SIGTERM)  # a clean stop: drains the spool
        assert proc.wait(20) == 0, (tmp / "device.log").read_text()[-3000:]
        st = Store(cfg.store_path)
        assert st.integrity_check() == "ok"
        last = st.last_seq()
        st.close()
        await wait_for(lambda: len(col.seqs("dev-k")) >= last, 20, "all delivered")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return col, last, spool_at_kill


def test_sigkill_mid_send_loses_nothing_from_the_spool(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    col, last, _spooled = asyncio.run(_run(broker, keys, tmp_path))
    assert last >= 12
    assert col.seqs("dev-k") == set(range(1, last + 1))
    for kind, msgs in col.by_kind.items():
        for m in msgs.values():
            check(kind, m)  # nothing corrupted
            json.dumps(m)
