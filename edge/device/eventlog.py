"""The controller's events in the store's event log when no central link runs.

With a broker, edge/device/central.py logs them (and spools them for central).
Without one a provisioned device still keeps its bounded, rotating event log
in SQLite, which `edge status` shows to the technician. The control tick only
appends to a list (on_tick); a worker thread writes once a second.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.store import Store

if TYPE_CHECKING:
    from edge.runtime import Runtime

FLUSH_S = 1.0


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
            self.store.log_events(rows)
            self.store.close()

    async def _flush(self) -> None:
        rows, self.rows = self.rows, []
        if rows:
            await asyncio.to_thread(self.store.log_events, rows)


def event_log_task(path: Path, rt: Runtime) -> Callable[[], Any]:
    log = EventLog(path, rt)
    return log.run
