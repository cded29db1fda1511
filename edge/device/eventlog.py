"""The controller's events in the store's event log when no central link runs.

With a broker, edge/device/central.py logs them (and spools them for central).
Without one a provisioned device still keeps its bounded, rotating event log
in SQLite, which `edge status` shows to the technician. The control tick only
hands its snapshot to the `event-log` tick hook (its own thread: edge/tickhooks.py),
which appends the events to a deque; a worker thread writes once a second. Ticks
the hook had to drop (it fell behind) are logged as an `event_log_gap` row, so a
reader of the log sees where events may be missing.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.store import Store

if TYPE_CHECKING:
    from edge.runtime import Runtime
    from edge.tickhooks import Tick

FLUSH_S = 1.0
Row = tuple[int, str, str, str]


def device_store(device_toml: str) -> Path | None:
    """The store path named in flash.sh's device.toml (relative to the file)."""
    with open(device_toml, "rb") as f:
        raw = tomllib.load(f)
    store = raw.get("device", {}).get("store")
    return Path(device_toml).parent / store if isinstance(store, str) else None


class EventLog:
    def __init__(self, path: Path, rt: Runtime) -> None:
        self.store = Store(path)
        # Filled by the hook's thread, emptied by the task: deque appends and pops are atomic.
        self.rows: deque[Row] = deque()
        self.utc0 = time.time_ns() // 1_000_000 - rt.board.clock_ms()
        rt.add_tick_hook("event-log", self.on_tick, on_dropped=self.on_dropped)

    def on_tick(self, tick: Tick) -> None:
        out = tick.outputs
        if out is not None:
            self.rows.extend((self.utc0 + e.t_ms, e.name, e.subject, e.detail) for e in out.events)

    def on_dropped(self, ticks: int) -> None:
        at = time.time_ns() // 1_000_000
        self.rows.append((at, "event_log_gap", "", f"{ticks} ticks' events were not logged"))

    def _take(self) -> list[Row]:
        rows = []
        while self.rows:
            rows.append(self.rows.popleft())
        return rows

    async def run(self) -> None:
        """A runtime task: until cancelled by the shutdown path (what is pending is written)."""
        try:
            while True:
                await asyncio.sleep(FLUSH_S)
                await self._flush()
        finally:
            self.store.log_events(self._take())
            self.store.close()

    async def _flush(self) -> None:
        rows = self._take()
        if rows:
            await asyncio.to_thread(self.store.log_events, rows)


def event_log_task(path: Path, rt: Runtime) -> Callable[[], Any]:
    log = EventLog(path, rt)
    return log.run
