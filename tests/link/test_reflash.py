"""A device re-flashed (or its SD card replaced) under the same id starts a fresh store,
so its sequence numbers start at 1 again: central must take that second run's counts
and events, not drop them as duplicates of the first run's (docs/fleet.md, "Streams").

Real Mosquitto, `edge run`'s runtime and link (edge/link/device.py), central's ingest
with a persistent session; the second run's store is a new file under the same id.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from edge.link.central import Collected
from edge.link.config import DeviceConfig
from edge.link.mosquitto import Mosquitto

from tests.link.harness import Keys, device_config, ingest, running, wait_for
from tests.link.schemas import check
from tests.link.test_outage import rt_last_seq

DEV = "dev-r"


async def _run(cfg: DeviceConfig, col: Collected, before: int) -> int:
    """Run the device until 6 messages are spooled, stop it cleanly (the spool drained);
    its last number, once central has received them all."""
    async with running(cfg) as rt:
        await wait_for(lambda: rt.store.last_seq() >= 6, 20, "6 messages spooled")
        rt.stopping = True
    last = rt_last_seq(cfg.store_path)
    await wait_for(lambda: col.received >= before + last, 20, "the run's messages delivered")
    return last


async def _two_runs(broker: Mosquitto, keys: Keys, tmp: Path) -> dict[str, Any]:
    col = Collected(keep_raw=True)
    stop = asyncio.Event()
    ing = asyncio.create_task(ingest(broker, col, stop, DEV))
    await asyncio.sleep(0.5)
    res: dict[str, Any] = {"col": col}
    for run in ("first", "second"):  # the second: a fresh store (flash.sh), the same id
        cfg = device_config(
            broker, tmp, DEV, keys, store_path=tmp / run / "edge.db", events_flush_ms=300
        )
        cfg.store_path.parent.mkdir(parents=True)
        res[run] = await _run(cfg, col, res.get("first", 0))
    await asyncio.sleep(0.5)  # anything still on its way (a resend) is counted
    stop.set()
    ing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ing
    return res


def test_a_reflashed_device_loses_nothing(broker: Mosquitto, keys: Keys, tmp_path: Path) -> None:
    res = asyncio.run(_two_runs(broker, keys, tmp_path))
    col: Collected = res["col"]
    first, second = res["first"], res["second"]
    # both runs numbered from 1; central keeps every message of both (none taken for a
    # duplicate of the other run's same number)
    kept = sum(len(k) for k in col.by_kind.values())
    assert kept == first + second, (first, second, kept, col.duplicates)
    streams = col.streams(DEV)
    assert len(streams) == 2, streams
    assert col.seqs(DEV, streams[0]) == set(range(1, first + 1))
    assert col.seqs(DEV, streams[1]) == set(range(1, second + 1))
    for kind, msgs in col.by_kind.items():
        for m in msgs.values():
            check(kind, m)
