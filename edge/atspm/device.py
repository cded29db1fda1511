"""The `hires-log` extension: the ATSPM hi-res event log kept on the device.

The rules it keeps (edge/extensions.py's for a tick extension, and):
- The control tick only hands its snapshot to the `hires-log` tick hook; the hook's
  thread translates it (edge/atspm/indiana.py) into a deque; this task writes the deque
  to the store (edge/atspm/store.py) once a second, off the event loop. Nothing here can
  delay or stop the tick.
- Times are wall-clock UTC ms: the runtime's clock at start, plus the controller's ms.
- Loss is reported, never silent: ticks the hook dropped become a LOG_LOSS event (248,
  parameter: the ticks, at most 255) at the last tick the hook took, in time order with
  the events around it; a write the store refuses keeps its events for the next write
  (at most HOLD_EVENTS, then the oldest are counted as lost and logged as LOG_LOSS with
  the next write that succeeds).
- With the central link (`central`), a minute's events at a time go into its spool for
  the `hires` topic (edge/link/asyncapi.yaml): stored before sent, sequence-numbered.
- Status: `hires_log` in the runtime's status (the store's size, oldest event, what was
  dropped for space and what was lost).
Read by the page's `/v1/asclog/xml/full` (edge/atspm/web.py) and `edge atspm export`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.atspm.indiana import LOG_LOSS, HiRes, Translator
from edge.atspm.store import DEFAULT_MAX_BYTES, HiResStore
from edge.extensions import Extension
from edge.link.messages import hires_body

if TYPE_CHECKING:
    from edge.runtime import Runtime
    from edge.tickhooks import Tick

log = logging.getLogger(__name__)

FLUSH_S = 1.0
HOLD_EVENTS = 200_000  # kept while the store refuses writes (~5 h of a busy signal)
STORE_NAME = "hires.sqlite"
SEND_MS = 60_000  # a batch a minute on the central link's `hires` topic


def hires_path(device_store: Path) -> Path:
    """Where the hi-res log lives: beside the device store flash.sh names."""
    return device_store.parent / STORE_NAME


class HiResLog(Extension):
    name = "hires-log"
    ticks = True

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.store: HiResStore | None = None
        self.rt: Runtime | None = None
        self.translator: Translator | None = None
        self.utc0 = 0
        self.last_tick_ms = 0  # wall ms of the last tick the hook took
        # Filled by the hook's thread, emptied by the task: deque appends and pops are atomic.
        self.pending: deque[HiRes] = deque()
        self.held: list[HiRes] = []  # the task's own: what a refused write kept
        self.lost = 0  # events the task had to let go of, not yet logged
        self.failing = False
        self.dropped_ticks = 0
        self.outbox: list[HiRes] = []  # stored, not yet handed to the central link

    def start(self, rt: Runtime) -> None:
        self.rt = rt
        self.utc0 = time.time_ns() // 1_000_000 - rt.board.clock_ms()
        self.last_tick_ms = self.utc0 + rt.board.clock_ms()
        self.translator = Translator(rt.site, rt.driver.controller.plan.id)

    def on_tick(self, tick: Tick) -> None:
        assert self.translator is not None, "HiResLog.start comes first"
        events = self.translator.step(tick.now_ms, tick.outputs, tick.present, tick.calls)
        self.pending.extend(HiRes(self.utc0 + e.t_ms, e.code, e.param) for e in events)
        self.last_tick_ms = self.utc0 + tick.now_ms

    def ticks_dropped(self, ticks: int) -> None:
        self.dropped_ticks += ticks
        # on the log's own clock, after the last tick taken: the wall clock's "now" is
        # ahead of the queued ticks still to come (or anywhere, after a clock step)
        at = (self.last_tick_ms // 100) * 100
        self.pending.append(HiRes(at, LOG_LOSS, min(ticks, 255)))

    def _take(self) -> list[HiRes]:
        events, self.held = self.held, []
        while self.pending:
            events.append(self.pending.popleft())
        return events

    def _write(self, events: list[HiRes]) -> None:
        """One write; refused, its events are kept (the oldest past HOLD_EVENTS lost)."""
        assert self.store is not None
        lost = self.lost
        note = [HiRes(events[0].t_ms, LOG_LOSS, min(lost, 255))] if lost else []
        try:
            self.store.append(note + events, lost=lost)
        except sqlite3.Error as exc:
            if not self.failing:
                log.error("hires_log_write_failed error=%r: events kept, written later", exc)
            self.failing = True
            self.lost += max(0, len(events) - HOLD_EVENTS)
            self.held = events[-HOLD_EVENTS:]
            return
        self.lost = 0
        if self.failing:
            log.warning("hires_log_write_recovered")
            self.failing = False

    async def run(self) -> None:
        assert self.rt is not None, "HiResLog.start comes first"
        self.store = await asyncio.to_thread(HiResStore, self.path, self.max_bytes)
        try:
            while True:
                await asyncio.sleep(FLUSH_S)
                events = self._take()
                if events:
                    await asyncio.to_thread(self._write, events)
                    self.outbox += events
                self._send()
        finally:
            # What the hook has queued is taken, then the last write, off the event loop.
            await asyncio.to_thread(self.rt.end_ticks, self)
            events = self._take()
            with contextlib.suppress(sqlite3.Error):
                if events:
                    await asyncio.to_thread(self._write, events)
            self.outbox += events
            self._send(force=True)
            self.store.close()
            self.store = None

    def _send(self, force: bool = False) -> None:
        """A minute's events to the central link's spool (`hires` topic), when it runs."""
        spool = getattr(self.rt.link if self.rt is not None else None, "spool_hires", None)
        if spool is None:
            self.outbox.clear()  # no link: the store keeps them (the page, export)
            return
        if self.outbox and (force or self.outbox[-1].t_ms - self.outbox[0].t_ms >= SEND_MS):
            batch, self.outbox = self.outbox, []
            spool(hires_body([(e.t_ms, e.code, e.param) for e in batch]))

    def since(self, since_ms: int, limit: int | None = None) -> list[HiRes]:
        """Stored events from since_ms (wall UTC ms): for the page and the link."""
        if self.store is None:
            return []
        return self.store.since(since_ms, limit)

    def status_fields(self) -> dict[str, Any]:
        st: dict[str, Any] = self.store.status() if self.store is not None else {}
        st.update(
            pending=len(self.pending),
            dropped_ticks=self.dropped_ticks,
            write_failing=self.failing,
        )
        return {"hires_log": st}
