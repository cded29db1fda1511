"""The controller's events in the store's event log when no central link runs.

With a broker, edge/device/central.py logs them (and spools them for central).
Without one a provisioned device still keeps its bounded, rotating event log
in SQLite, which `edge status` shows to the technician. The control tick only
appends to a list (on_tick); a worker thread writes once a second. A write the
store refuses (disk full, a locked database) is logged once per episode and
its rows kept for the next write (at most HOLD_ROWS): the local log must never
stop the runtime, and with it the intersection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.store import Store

if TYPE_CHECKING:
    from edge.runtime import Runtime

log = logging.getLogger(__name__)

FLUSH_S = 1.0
HOLD_ROWS = 36_000  # rows kept while the store refuses writes (an hour of busy events)


def device_store(device_toml: str) -> Path | None:
    """The store path named in flash.sh's device.toml (relative to the file)."""
    with open(device_toml, "rb") as f:
        raw = tomllib.load(f)
    store = raw.get("device", {}).get("store")
    return Path(device_toml).parent / store if isinstance(store, str) else None


class EventLog:
    def __init__(self, path: Path, rt: Runtime) -> None:
        self.store = Store(path)
        self.rows: list[tuple[int, str, str, str]] = []
        self.failing = False  # the store refused the last write
        utc0 = time.time_ns() // 1_000_000 - rt.board.clock_ms()
        previous: Callable[[Runtime], None] | None = rt.on_tick

        def on_tick(r: Runtime) -> None:
            if previous is not None:
                previous(r)
            out = r.driver.outputs
            if out is not None:
                self.rows += [(utc0 + e.t_ms, e.name, e.subject, e.detail) for e in out.events]

        rt.on_tick = on_tick

    async def run(self) -> None:
        """A runtime task: until cancelled by the shutdown path (what is pending is written)."""
        try:
            while True:
                await asyncio.sleep(FLUSH_S)
                await self._flush()
        finally:
            rows, self.rows = self.rows, []
            with contextlib.suppress(sqlite3.Error):  # logged by an earlier flush
                self.store.log_events(rows)
            self.store.close()

    async def _flush(self) -> None:
        rows, self.rows = self.rows, []
        if not rows:
            return
        try:
            await asyncio.to_thread(self.store.log_events, rows)
        except sqlite3.Error as exc:
            if not self.failing:
                log.error("event_log_write_failed error=%r: rows kept, written later", exc)
            self.failing = True
            self.rows = (rows + self.rows)[-HOLD_ROWS:]
            return
        if self.failing:
            log.warning("event_log_write_recovered")
            self.failing = False


def event_log_task(path: Path, rt: Runtime) -> Callable[[], Any]:
    log = EventLog(path, rt)
    return log.run
