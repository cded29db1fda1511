"""The controller's events in the store's event log when no central link runs.

With a broker, edge/device/central.py logs them (and spools them for central).
Without one a provisioned device still keeps its bounded, rotating event log
in SQLite, which `edge status` shows to the technician. The control tick only
hands its snapshot to the `event-log` tick hook (its own thread: edge/tickhooks.py),
which appends the events to a deque; a worker thread writes once a second. Ticks
the hook had to drop (it fell behind) are logged as an `event_log_gap` row, so a
reader of the log sees where events may be missing. A write the store refuses
(disk full, a locked database) is logged once per episode and its rows kept for
the next write (at most HOLD_ROWS): the local log must never stop the runtime,
and with it the intersection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import tomllib
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

from edge.extensions import Extension
from edge.store import Store

if TYPE_CHECKING:
    from edge.runtime import Runtime
    from edge.tickhooks import Tick

log = logging.getLogger(__name__)

FLUSH_S = 1.0
Row = tuple[int, str, str, str]
HOLD_ROWS = 36_000  # rows kept while the store refuses writes (an hour of busy events)


def device_store(device_toml: str) -> Path | None:
    """The store path named in flash.sh's device.toml (relative to the file)."""
    with open(device_toml, "rb") as f:
        raw = tomllib.load(f)
    store = raw.get("device", {}).get("store")
    return Path(device_toml).parent / store if isinstance(store, str) else None


class EventLog:
    def __init__(self, path: Path, rt: Runtime, ext: Extension) -> None:
        self.store = Store(path)
        # Filled by the hook's thread, emptied by the task: deque appends and pops are atomic.
        self.rows: deque[Row] = deque()
        self.held: list[Row] = []  # the task's own: rows a refused write kept
        self.failing = False  # the store refused the last write
        self.utc0 = time.time_ns() // 1_000_000 - rt.board.clock_ms()
        self.rt = rt
        self.ext = ext  # whose tick hook feeds this log

    def on_tick(self, tick: Tick) -> None:
        out = tick.outputs
        if out is not None:
            self.rows.extend((self.utc0 + e.t_ms, e.name, e.subject, e.detail) for e in out.events)

    def on_dropped(self, ticks: int) -> None:
        at = time.time_ns() // 1_000_000
        self.rows.append((at, "event_log_gap", "", f"{ticks} ticks' events were not logged"))

    def _take(self) -> list[Row]:
        rows, self.held = self.held, []
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
            # The hook ends with this log (a restart registers a new one): what it has
            # queued is taken, then the last write, off the event loop.
            await asyncio.to_thread(self.rt.end_ticks, self.ext)
            rows = self._take()
            with contextlib.suppress(sqlite3.Error):  # logged by an earlier flush
                await asyncio.to_thread(self.store.log_events, rows)
            self.store.close()

    async def _flush(self) -> None:
        rows = self._take()
        if not rows:
            return
        try:
            await asyncio.to_thread(self.store.log_events, rows)
        except sqlite3.Error as exc:
            if not self.failing:
                log.error("event_log_write_failed error=%r: rows kept, written later", exc)
            self.failing = True
            self.held = rows[-HOLD_ROWS:]
            return
        if self.failing:
            log.warning("event_log_write_recovered")
            self.failing = False


class EventLogExtension(Extension):
    """The `event-log` extension: a new EventLog (its store) on every start of its task."""

    name = "event-log"
    ticks = True

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log: EventLog | None = None
        self.rt: Runtime | None = None

    def start(self, rt: Runtime) -> None:
        self.rt = rt

    async def run(self) -> None:
        assert self.rt is not None, "EventLogExtension.start comes first"
        self.log = EventLog(self.path, self.rt, self)
        await self.log.run()

    # The tick hook is added just before run() builds the log (no await between).
    def on_tick(self, tick: Tick) -> None:
        if self.log is not None:
            self.log.on_tick(tick)

    def ticks_dropped(self, ticks: int) -> None:
        if self.log is not None:
            self.log.on_dropped(ticks)
