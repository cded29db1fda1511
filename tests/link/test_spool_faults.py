"""The spool's failures on the path `edge run` uses (its runtime and central link, with
scripted traffic): a full spool is reported as `spool_overflow` with the dropped range,
so every gap central sees is explained; a store that refuses writes (SQLite's own
disk-full error) is logged and reported as an event, its messages held and written
late rather than lost, and the control tick never stops."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
from edge.link import central
from edge.link.central import Collected
from edge.link.client import BrokerConfig
from edge.link.config import DeviceConfig
from edge.link.device import DeviceRuntime
from edge.link.mosquitto import Mosquitto
from edge.store import Store

from tests.link.harness import (
    SITE,
    Keys,
    device_config,
    events_named,
    fill_disk,
    ingest,
    read_only,
    running,
    site_plans,
    wait_for,
)

RANGE = re.compile(r"dropped seq (\d+)\.\.(\d+) \((\d+) rows\)")


def _last_seq(path: Path) -> int:
    st = Store(path)
    try:
        return st.last_seq()
    finally:
        st.close()


async def _overflow(broker: Mosquitto, keys: Keys, tmp: Path) -> tuple[Collected, int]:
    cfg = device_config(
        broker, tmp, "dev-o", keys, max_spool_rows=5, events_flush_ms=100,
        counts_interval_ms=1000, veh_per_hour=3000,
    )  # fmt: skip
    col = Collected()
    stop = asyncio.Event()
    ing = asyncio.create_task(ingest(broker, col, stop, "dev-o"))
    async with running(cfg) as rt:
        await asyncio.to_thread(broker.stop)  # the device spools on, far past its 5 rows
        await wait_for(lambda: rt.store.last_seq() >= 20, 30, "20 rows spooled")
        await asyncio.to_thread(broker.start)
        await wait_for(lambda: bool(events_named(col, "spool_overflow")), 20, "overflow note")
    last = _last_seq(cfg.store_path)

    def explained() -> set[int]:
        got = set(col.seqs("dev-o"))
        for e in events_named(col, "spool_overflow"):
            m = RANGE.fullmatch(e["detail"])
            assert m is not None, e
            got |= set(range(int(m[1]), int(m[2]) + 1))
        return got

    await wait_for(lambda: explained() >= set(range(1, last + 1)), 20, "every seq explained")
    stop.set()
    ing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ing
    return col, last


def test_a_full_spool_reports_the_dropped_range(keys: Keys, tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker") as broker:
        col, last = asyncio.run(_overflow(broker, keys, tmp_path / "dev"))
    missing = set(range(1, last + 1)) - set(col.seqs("dev-o"))
    assert len(missing) >= 10  # rows were dropped, and (above) every one of them explained
    note = events_named(col, "spool_overflow")[-1]
    assert note["src"] == "link" and RANGE.fullmatch(note["detail"])


async def _disk_full(
    broker: Mosquitto, keys: Keys, tmp: Path
) -> tuple[Collected, int, dict[str, Any]]:
    cfg = device_config(broker, tmp, "dev-f", keys, events_flush_ms=200, veh_per_hour=3000)
    col = Collected()
    stop = asyncio.Event()
    ing = asyncio.create_task(ingest(broker, col, stop, "dev-f"))
    seen: dict[str, Any] = {}
    async with running(cfg) as rt:
        await wait_for(lambda: bool(col.seqs("dev-f")), 10, "first events")
        # nothing is sent, so nothing deleted frees a page: the disk stays full
        await asyncio.to_thread(broker.stop)
        fill_disk(rt.store)
        ticks, t0 = rt.ticks, time.monotonic()
        await wait_for(lambda: bool(rt.link.store_error), 15, "a refused write")
        seen["status"] = rt.link.link_status()["store_error"]
        failed_at = rt.store.last_seq()
        await asyncio.sleep(2)  # flushes go on failing meanwhile: held, not lost
        seen["stored_meanwhile"] = rt.store.last_seq() - failed_at
        seen["tick_hz"] = (rt.ticks - ticks) / (time.monotonic() - t0)
        seen["stopping"] = rt.stopping
        fill_disk(rt.store, full=False)
        await wait_for(lambda: not rt.link.store_error, 10, "the store taking writes again")
        await asyncio.to_thread(broker.start)
        await wait_for(lambda: bool(events_named(col, "store_write_recovered")), 20, "report")
    last = _last_seq(cfg.store_path)
    await wait_for(lambda: len(col.seqs("dev-f")) >= last, 20, "everything delivered")
    stop.set()
    ing.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ing
    return col, last, seen


def test_a_store_that_refuses_writes_is_reported_and_loses_nothing(
    keys: Keys, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="edge.link.endpoint")
    with Mosquitto(tmp_path / "broker") as broker:
        col, last, seen = asyncio.run(_disk_full(broker, keys, tmp_path / "dev"))
    assert str(seen["status"]).startswith("spool: database or disk is full"), seen
    assert seen["stored_meanwhile"] == 0, seen  # every write refused while the disk was full
    # the control tick went on at 10 Hz and the runtime did not stop
    assert seen["tick_hz"] >= 9.0 and seen["stopping"] is False, seen
    # central got the failure and the recovery as events, and every sequence number:
    # what the full store refused was held and written late, not dropped
    failed = events_named(col, "store_write_failed")
    assert [(e["subject"], e["src"]) for e in failed] == [("spool", "link")]
    assert "database or disk is full" in failed[0]["detail"]
    recovered = events_named(col, "store_write_recovered")
    assert len(recovered) == 1 and "failed writes" in recovered[0]["detail"]
    assert col.seqs("dev-f") == set(range(1, last + 1))
    # logged once for the episode, not with every retry
    errors = [r for r in caplog.records if r.getMessage().startswith("store_write_failed")]
    assert len(errors) == 1 and errors[0].levelno == logging.ERROR


def test_a_plan_bundle_the_store_cannot_keep_is_not_accepted(keys: Keys, tmp_path: Path) -> None:
    """Stored before accepted: while the store refuses writes the bundle gets no
    `accepted`, the failure is reported, and the same bundle sent again once the store
    takes writes is accepted (not refused as a replay)."""
    cfg = DeviceConfig(
        device="dev-p",
        site_path=SITE,
        store_path=tmp_path / "dev-p.db",
        trusted_keys=(keys.central_pub,),
        broker=BrokerConfig("127.0.0.1", 1),  # never connected here
    )
    rt = DeviceRuntime(cfg)
    raw = central.signed_bundle(keys.central, "dev-p", 1, site_plans(), "day")

    async def body() -> tuple[list[str], list[str]]:
        read_only(rt.store)
        await rt.on_message("plan", raw, None)
        await asyncio.sleep(0.05)  # the worker's report reaches the loop
        full = [json.loads(p)["status"] for leaf, p, _c in rt.client.outbox if leaf == "ack"]
        read_only(rt.store, on=False)
        await rt.on_message("plan", raw, None)
        acks = [json.loads(p)["status"] for leaf, p, _c in rt.client.outbox if leaf == "ack"]
        return full, acks

    try:
        full, acks = asyncio.run(body())
    finally:
        rt.close()
    assert full == [] and acks == ["accepted"]
    names = [e.name for e in rt.link.events]
    assert names.count("store_write_failed") == 1 and "store_write_recovered" in names
    assert rt.link.pending_apply is not None and rt.link.pending_apply[0] == 1
