"""SQLite persistence on the device: plans, the plan-version high-water mark,
the outgoing spool, command replay memory, priority requests and the event log.

One file, WAL journal, synchronous=FULL: every commit fsyncs the WAL, so a row
that a call here has returned from is on disk, and a power cut or SIGKILL
loses nothing that was stored; each write is one transaction, so nothing is
ever half-written (tests/device/test_store_kill.py kills writers at random).

Plans: every accepted bundle is stored (the newest five kept) with the
high-water mark raised in the same transaction. The *active* plan is the
newest one the controller applied; the *pending* one is a newer accepted
bundle still waiting for its safe point. After a restart the active plan runs
(edge/link applies a stored pending one at start, as central accepted it).

Spool rules (what central relies on):
- every row gets the next per-device sequence number (AUTOINCREMENT: never
  reused, even after rows are deleted or the process restarts);
- a row is deleted only after the broker acknowledged it (QoS 1 PUBACK);
- the spool is bounded (`max_spool_rows`). Overflow policy: when full, the
  oldest rows are dropped first and the dropped sequence range is remembered,
  so the device can report it (event `spool_overflow`, written with
  spool_note) and central sees an explained gap rather than a silent one. At
  the default bound (200,000 rows, one events row a second and one counts row
  a minute) that is more than two days of outage;
- the remembered range is cumulative until a note reporting it is
  acknowledged: a note dropped by a later overflow is itself within the range
  the next note reports, so every gap stays explained (a range may span rows
  that were delivered: central counts as lost only the ones it lacks).

Stream rules (docs/fleet.md, "Streams"): sequence numbers are unique per store, not per
device id, and a re-flashed device (flash.sh: a fresh /var/lib/edge) or a new SD card
starts at 1 again under the same id. So the store gets a random stream id the first time
it is opened and keeps it for its life (never a new one per boot); central keys its
dedup and order by (device, stream, seq). A store made before streams gets its id once,
at its first open by this code, with the last number it had given out as the stream's
base: on the wire a row's number is counted from that base (so every stream starts at
1), and rows spooled before it still go out as they were numbered, without a stream
(central's legacy stream for that device).
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_SPOOL_ROWS = 200_000
DEFAULT_MAX_EVENT_LOG_ROWS = 500_000
STREAM_ID = re.compile(r"[0-9a-f]{16}")  # 64 random bits: what the link schemas require
LEGACY_STREAM = ""  # rows spooled before the store had a stream

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS plans (
    version INTEGER PRIMARY KEY,
    digest TEXT NOT NULL,
    envelope BLOB NOT NULL,
    received_ms INTEGER NOT NULL,
    applied_ms INTEGER
);
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_commands (
    id TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS priority_requests (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS event_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t_ms INTEGER NOT NULL,
    name TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class SpoolRow:
    seq: int
    kind: str  # "counts" | "events": the topic leaf it goes to
    body: str  # JSON object text without the sequence number
    created_ms: int


@dataclass(frozen=True, slots=True)
class StoredPlan:
    version: int
    digest: str
    envelope: bytes
    received_ms: int
    applied_ms: int | None


@dataclass(frozen=True, slots=True)
class Overflow:
    """Rows dropped by the overflow policy since the device last reported it."""

    first_seq: int
    last_seq: int
    count: int


class Store:
    """The device database. Thread-safe (one lock): the shell calls it from a worker thread."""

    def __init__(
        self,
        path: str | Path,
        max_spool_rows: int = DEFAULT_MAX_SPOOL_ROWS,
        max_event_log_rows: int = DEFAULT_MAX_EVENT_LOG_ROWS,
    ) -> None:
        self.path = str(path)
        self.max_spool_rows = max_spool_rows
        self.max_event_log_rows = max_event_log_rows
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._spool_rows = self._one("SELECT COUNT(*) FROM spool")
        self._log_rows = self._one("SELECT COUNT(*) FROM event_log")
        self.stream, self.stream_base = self._stream()

    def _stream(self) -> tuple[str, int]:
        """This store's stream id and base (see the module's stream rules): read, or made
        once in the same transaction that checks it is missing (two processes opening a
        store at once agree); a store that has one is only read."""
        db = self._db
        row = db.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
        if row is None:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT value FROM meta WHERE key = 'stream'").fetchone()
                if row is None:
                    base = self._one("SELECT seq FROM sqlite_sequence WHERE name = 'spool'")
                    row = (f"{secrets.token_hex(8)},{base}",)
                    db.execute("INSERT INTO meta (key, value) VALUES ('stream', ?)", row)
                db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
        value = str(row[0])
        ident, _, base_text = value.partition(",")
        if not STREAM_ID.fullmatch(ident) or not base_text.isdigit():
            raise ValueError(f"{self.path}: meta 'stream' is {value!r}, not '<16 hex>,<base>'")
        return ident, int(base_text)

    def wire(self, seq: int) -> tuple[str, int]:
        """A spool row's (stream, number) on the wire: counted from the stream's base;
        a row spooled before the store had a stream keeps its number, in the legacy stream."""
        if seq > self.stream_base:
            return self.stream, seq - self.stream_base
        return LEGACY_STREAM, seq

    def wire_range(self, dropped: Overflow) -> str:
        """A dropped range as central numbers it ("A..B"); one that began before the store
        had a stream (rows spooled by older firmware) says both parts."""
        first_stream, first = self.wire(dropped.first_seq)
        last_stream, last = self.wire(dropped.last_seq)
        if first_stream == last_stream:
            return f"{first}..{last}"
        return f"{first}..{self.stream_base} (no stream) and 1..{last}"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rollback(self) -> None:
        # SQLite has already rolled back after some errors (SQLITE_FULL: disk full); a
        # second ROLLBACK would raise and hide the error that matters.
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _one(self, sql: str, args: tuple[object, ...] = ()) -> int:
        row = self._db.execute(sql, args).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # -- meta ---------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- plans ----------------------------------------------------------------------

    def plan_high_water(self) -> int:
        """The highest plan version ever accepted: a bundle must be newer to be accepted."""
        value = self.get_meta("plan_high_water")
        return int(value) if value is not None else 0

    def save_plan(self, version: int, digest: str, envelope: bytes, received_ms: int) -> None:
        """Store an accepted bundle and raise the high-water mark, in one transaction."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                hwm_row = db.execute(
                    "SELECT value FROM meta WHERE key = 'plan_high_water'"
                ).fetchone()
                hwm = int(hwm_row[0]) if hwm_row else 0
                if version <= hwm:
                    raise ValueError(f"plan version {version} is not above {hwm}")
                db.execute(
                    "INSERT INTO plans (version, digest, envelope, received_ms) VALUES (?,?,?,?)",
                    (version, digest, envelope, received_ms),
                )
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('plan_high_water', ?)",
                    (str(version),),
                )
                # Keep the last few bundles for the technician; older ones are history.
                db.execute(
                    "DELETE FROM plans WHERE version NOT IN "
                    "(SELECT version FROM plans ORDER BY version DESC LIMIT 5)"
                )
                db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def mark_plan_applied(self, version: int, applied_ms: int) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE plans SET applied_ms = ? WHERE version = ? AND applied_ms IS NULL",
                (applied_ms, version),
            )

    def latest_plan(self) -> StoredPlan | None:
        with self._lock:
            row = self._db.execute(
                "SELECT version, digest, envelope, received_ms, applied_ms FROM plans "
                "ORDER BY version DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return StoredPlan(int(row[0]), str(row[1]), bytes(row[2]), int(row[3]), row[4])

    def active_plan(self) -> StoredPlan | None:
        """The newest bundle the controller applied."""
        return self._plan_where("applied_ms IS NOT NULL")

    def pending_plan(self) -> StoredPlan | None:
        """A bundle accepted after the active one and not applied yet."""
        active = self.active_plan()
        after = active.version if active is not None else 0
        return self._plan_where(f"applied_ms IS NULL AND version > {int(after)}")

    def _plan_where(self, where: str) -> StoredPlan | None:
        with self._lock:
            row = self._db.execute(
                "SELECT version, digest, envelope, received_ms, applied_ms FROM plans "
                f"WHERE {where} ORDER BY version DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return StoredPlan(int(row[0]), str(row[1]), bytes(row[2]), int(row[3]), row[4])

    # -- spool ------------------------------------------------------------------------

    def spool_append(self, kind: str, body: str, created_ms: int) -> int:
        """Store one outgoing message; return its sequence number."""
        return self.spool_extend([(kind, body)], created_ms)[-1]

    def spool_extend(self, items: Iterable[tuple[str, str]], created_ms: int) -> list[int]:
        """Store several outgoing messages in one transaction; return their sequence numbers."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                seqs, kept = self._insert(items, created_ms)
                db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._spool_rows = kept
        return seqs

    def _insert(self, items: Iterable[tuple[str, str]], created_ms: int) -> tuple[list[int], int]:
        """Inside a transaction: insert, drop the oldest rows past the bound; the new
        rows' sequence numbers and the row count after."""
        seqs: list[int] = []
        for kind, body in items:
            cur = self._db.execute(
                "INSERT INTO spool (kind, body, created_ms) VALUES (?, ?, ?)",
                (kind, body, created_ms),
            )
            assert cur.lastrowid is not None
            seqs.append(cur.lastrowid)
        excess = self._spool_rows + len(seqs) - self.max_spool_rows
        if excess > 0:
            self._drop_oldest(excess)
        return seqs, self._spool_rows + len(seqs) - max(0, excess)

    def _overflow(self) -> tuple[int, int, int, bool, int] | None:
        """The remembered overflow: first and last seq dropped, rows dropped, whether rows
        were dropped since the latest note, and that note's seq (0: none yet)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = 'spool_overflow'").fetchone()
        if row is None:
            return None
        # an older store wrote only first,last,count: new, and no note yet
        values = [int(x) for x in str(row[0]).split(",")] + [1, 0]
        first, last, count, new, note = values[:5]
        return first, last, count, bool(new), note

    def _set_overflow(self, first: int, last: int, count: int, new: bool, note: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('spool_overflow', ?)",
            (f"{first},{last},{count},{int(new)},{note}",),
        )

    def _drop_oldest(self, n: int) -> None:
        db = self._db
        rows = db.execute("SELECT seq FROM spool ORDER BY seq LIMIT ?", (n,)).fetchall()
        if not rows:
            return
        first, last = int(rows[0][0]), int(rows[-1][0])
        db.execute("DELETE FROM spool WHERE seq <= ?", (last,))
        prev = self._overflow()  # cumulative until a note reporting it is acknowledged
        if prev is None:
            self._set_overflow(first, last, len(rows), True, 0)
        else:
            self._set_overflow(prev[0], last, prev[2] + len(rows), True, prev[4])

    def take_overflow(self) -> Overflow | None:
        """The dropped range (cumulative, see the module's rules) when rows were dropped
        since the last note was written; None otherwise."""
        with self._lock:
            o = self._overflow()
        return Overflow(o[0], o[1], o[2]) if o is not None and o[3] else None

    def spool_note(self, kind: str, body: str, created_ms: int, reported: Overflow) -> int:
        """Spool the note (its body built from take_overflow()'s `reported` range); its
        sequence number. Rows dropped past that range (by this very insert) stay new."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                seqs, kept = self._insert([(kind, body)], created_ms)
                o = self._overflow()
                if o is not None:
                    self._set_overflow(o[0], o[1], o[2], o[2] != reported.count, seqs[-1])
                db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._spool_rows = kept
        return seqs[-1]

    def spool_pending(self, after_seq: int = 0, limit: int = 100) -> list[SpoolRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, body, created_ms FROM spool WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [SpoolRow(int(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]

    def spool_delete(self, seqs: Iterable[int]) -> None:
        """Forget rows the broker acknowledged."""
        items = [(s,) for s in seqs]
        if not items:
            return
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                before = db.total_changes
                db.executemany("DELETE FROM spool WHERE seq = ?", items)
                deleted = db.total_changes - before
                o = self._overflow()
                if o is not None and not o[3] and (o[4],) in items:  # the latest note arrived
                    db.execute("DELETE FROM meta WHERE key = 'spool_overflow'")
                db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise
            self._spool_rows -= deleted

    def spool_size(self) -> int:
        return self._spool_rows

    def last_seq(self) -> int:
        """The highest sequence number ever given out (0 before the first)."""
        with self._lock:
            return self._one("SELECT seq FROM sqlite_sequence WHERE name = 'spool'")

    # -- commands and priority requests ----------------------------------------------------

    def remember_command(self, command_id: str, expires_ms: int, now_ms: int) -> bool:
        """Record a command id; False if it was seen before (a replay). Expired ids are pruned."""
        with self._lock:
            db = self._db
            db.execute("DELETE FROM seen_commands WHERE expires_ms < ?", (now_ms,))
            cur = db.execute(
                "INSERT OR IGNORE INTO seen_commands (id, expires_ms) VALUES (?, ?)",
                (command_id, expires_ms),
            )
            return cur.rowcount == 1

    def save_priority(
        self, key: str, kind: str, body: str, received_ms: int, expires_ms: int
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO priority_requests VALUES (?, ?, ?, ?, ?)",
                (key, kind, body, received_ms, expires_ms),
            )

    def drop_priority(self, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM priority_requests WHERE key = ?", (key,))

    def active_priorities(self, now_ms: int) -> list[tuple[str, str, str]]:
        """(key, kind, body) of stored requests that have not expired."""
        with self._lock:
            self._db.execute("DELETE FROM priority_requests WHERE expires_ms < ?", (now_ms,))
            rows = self._db.execute(
                "SELECT key, kind, body FROM priority_requests ORDER BY received_ms"
            ).fetchall()
        return [(str(k), str(t), str(b)) for k, t, b in rows]

    # -- local event log ------------------------------------------------------------------

    def log_events(self, rows: Iterable[tuple[int, str, str, str]]) -> None:
        """Append (t_ms, name, subject, detail) rows; the oldest go past the bound."""
        items = list(rows)
        if not items:
            return
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT INTO event_log (t_ms, name, subject, detail) VALUES (?, ?, ?, ?)",
                    items,
                )
                self._log_rows += len(items)
                excess = self._log_rows - self.max_event_log_rows
                if excess > 0:
                    db.execute(
                        "DELETE FROM event_log WHERE id IN "
                        "(SELECT id FROM event_log ORDER BY id LIMIT ?)",
                        (excess,),
                    )
                    self._log_rows -= excess
                db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def recent_events(self, limit: int = 100) -> list[tuple[int, str, str, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT t_ms, name, subject, detail FROM event_log ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [(int(t), str(n), str(s), str(d)) for t, n, s, d in reversed(rows)]

    def integrity_check(self) -> str:
        with self._lock:
            row = self._db.execute("PRAGMA integrity_check").fetchone()
        return str(row[0])
