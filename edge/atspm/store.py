"""The device's hi-res event log on disk: SQLite, bounded, oldest first, crash-safe.

The rules it keeps:
- One SQLite file of its own (not the device store: its writes are frequent and big),
  WAL journal, synchronous=FULL, one transaction per `append`: an append that returned
  is on disk, and a power cut or SIGKILL never leaves half of one (as edge/store.py).
- Events are kept packed, one row per append (a second of events): 7 bytes an event
  (ms after the row's first event: 4, code: 1, parameter: 2), so the default cap,
  DEFAULT_MAX_BYTES (64 MiB of event data), holds 9.5 million events: 7 days at
  57,000 events an hour, several times what a busy 8-phase intersection logs
  (the simulator's four-leg arterial junctions at 1.3x demand: ~10,000 an hour).
- Bounded: past the cap the oldest rows are deleted first, in the append's own
  transaction. What is deleted is counted (`dropped`, `dropped_until_ms`); when it was
  younger than RETAIN_S (7 days: the promise broke) a LOG_LOSS event (248) is written
  in the same transaction, so a reader of the log sees the gap where it is.
- Events lost before they reached the store (the tick hook fell behind, a refused write)
  are recorded by the caller as LOG_LOSS events too (`lost`), and counted here.
"""

from __future__ import annotations

import itertools
import sqlite3
import struct
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from edge.atspm.indiana import LOG_LOSS, HiRes

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
RETAIN_S = 7 * 24 * 3600
PAGE_ROWS = 256  # rows (seconds of events) read at a time
_REC = struct.Struct(">IBH")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hires (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    first_ms INTEGER NOT NULL,
    last_ms INTEGER NOT NULL,
    n INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS hires_last ON hires (last_ms);
CREATE TABLE IF NOT EXISTS hires_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def pack(events: Sequence[HiRes]) -> bytes:
    first = events[0].t_ms
    return b"".join(_REC.pack(e.t_ms - first, e.code, min(e.param, 0xFFFF)) for e in events)


def unpack(first_ms: int, data: bytes) -> list[HiRes]:
    return [HiRes(first_ms + dt, c, p) for dt, c, p in _REC.iter_unpack(data)]


class HiResStore:
    """Thread-safe (one lock): the extension appends from a worker thread, the page reads."""

    def __init__(self, path: str | Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < _REC.size:
            raise ValueError(f"hi-res log {path}: max_bytes {max_bytes} holds no event")
        self.path = str(path)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self.bytes = self._db.execute(
            "SELECT COALESCE(SUM(LENGTH(data)), 0) FROM hires"
        ).fetchone()[0]

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM hires_meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _add_meta(self, key: str, value: int, *, replace: bool = False) -> None:
        self._db.execute(
            "INSERT INTO hires_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
            + ("value = excluded.value" if replace else "value = value + excluded.value"),
            (key, value),
        )

    def append(self, events: Sequence[HiRes], *, lost: int = 0) -> None:
        """Store events (in time order, wall ms); `lost`: events the caller lost before."""
        if not events:
            return
        events = list(events)
        data = pack(events)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if lost:
                    self._add_meta("lost", lost)
                cur = self._db.execute(
                    "INSERT INTO hires (first_ms, last_ms, n, data) VALUES (?, ?, ?, ?)",
                    (events[0].t_ms, events[-1].t_ms, len(events), data),
                )
                assert cur.lastrowid is not None
                added = len(data) + self._trim(events[-1].t_ms, cur.lastrowid)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self.bytes += added

    def _trim(self, now_ms: int, newest: int) -> int:
        """Delete the oldest rows past the cap (never the newest, `newest`): the change
        in bytes (<= 0 but for a loss note)."""
        over = (
            self.bytes
            + self._db.execute("SELECT LENGTH(data) FROM hires WHERE id = ?", (newest,)).fetchone()[
                0
            ]
            - self.max_bytes
        )
        freed = dropped = young = until = 0
        while freed < over:
            rows = self._db.execute(
                "SELECT id, last_ms, n, LENGTH(data) FROM hires WHERE id < ? ORDER BY id LIMIT 256",
                (newest,),
            ).fetchall()
            if not rows:
                break
            for rid, last_ms, n, size in rows:
                if freed >= over:
                    break
                self._db.execute("DELETE FROM hires WHERE id = ?", (rid,))
                freed += size
                dropped += n
                until = last_ms
                young += n if last_ms > now_ms - RETAIN_S * 1000 else 0
        if dropped:
            self._add_meta("dropped", dropped)
            self._add_meta("dropped_until_ms", until, replace=True)
        if young:
            note = pack([HiRes(now_ms, LOG_LOSS, min(young, 255))])
            self._db.execute(
                "INSERT INTO hires (first_ms, last_ms, n, data) VALUES (?, ?, 1, ?)",
                (now_ms, now_ms, note),
            )
            freed -= len(note)
        return -freed

    def iter_since(self, since_ms: int, until_ms: int | None = None) -> Iterator[HiRes]:
        """Events at or after since_ms (and before until_ms), oldest first; read a page of
        rows at a time, so a week's export never sits in memory at once."""
        after = 0
        end = until_ms if until_ms is not None else 1 << 62
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT id, first_ms, data FROM hires WHERE id > ? AND last_ms >= ? "
                    "AND first_ms < ? ORDER BY id LIMIT ?",
                    (after, since_ms, end, PAGE_ROWS),
                ).fetchall()
            if not rows:
                return
            for rid, first_ms, data in rows:
                after = rid
                yield from (e for e in unpack(first_ms, data) if since_ms <= e.t_ms < end)

    def since(self, since_ms: int, limit: int | None = None) -> list[HiRes]:
        """Events at or after since_ms, oldest first (at most `limit`)."""
        return list(itertools.islice(self.iter_since(since_ms), limit))

    def status(self) -> dict[str, int]:
        with self._lock:
            first = self._db.execute("SELECT MIN(first_ms) FROM hires").fetchone()[0]
            return {
                "bytes": self.bytes,
                "max_bytes": self.max_bytes,
                "oldest_ms": int(first) if first is not None else 0,
                "dropped": self._meta("dropped"),
                "dropped_until_ms": self._meta("dropped_until_ms"),
                "lost": self._meta("lost"),
            }

    def close(self) -> None:
        with self._lock:
            self._db.close()
