"""The device's end of the central link: the protocol session, the store and its one
worker thread, central's priority book, and what goes out. `edge run`'s central link
(edge/device/central.py) is its implementation, wired to the runtime's controller; the
link harness (edge/link/device.py) runs that same link against a runtime with scripted
traffic, so the tests exercise the path the field runs.

Shared here: the stored plan bundle verified again at boot; messages from the
broker through the session to actions; acks; plan bundles stored before they
are accepted (event `plan_accepted`); priority requests stored (in force again
after a restart) and handed to the core; the core's verdict on a command
acknowledged to central; events and counts written to the spool; the clean
stop (buffered events spooled, the spool drained for a moment, "offline").

Store-write rules (the spool is how central learns anything, so its failures
are never silent):
- every write runs on the store's one worker thread, in order;
- a spool overflow (the store drops the oldest rows) is reported as event
  `spool_overflow` with the dropped sequence range, so central sees an
  explained gap;
- a failed write (disk full, a locked or broken database) is logged once per
  episode (`store_write_failed`) and reported as an event of that name; the
  messages it held stay in memory, in order, and are written with the next
  write that succeeds (at most HOLD_MAX messages: beyond, the oldest are
  dropped and the count reported); a plan bundle that cannot be stored is not
  accepted; a priority request that cannot be stored is still handed to the
  core; recovery is event `store_write_recovered`;
- none of this runs on the control tick, which never waits for the store.

A subclass says how a command reaches its core (`_to_core`), which site the
core runs (`_core_site`), what it does with an accepted bundle
(`_apply_bundle`) and how it answers `request_state` (`_state_fields`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import importlib.metadata
import logging
import sqlite3
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from edge.control.messages import Event
from edge.control.site import Plan, Site
from edge.device import certs
from edge.link import messages
from edge.link.client import LinkClient
from edge.link.config import DeviceConfig
from edge.link.errors import Rejected
from edge.link.keyring import Keyring
from edge.link.messages import EmergencyPriorityRequest, LogEvent
from edge.link.plans import Bundle, check_body
from edge.link.priority import PriorityBook, Request, body_of, kind_of
from edge.link.session import (
    Ack,
    Action,
    ControlCommand,
    DeviceSession,
    InstallCertificate,
    InstallPlan,
    PriorityRequest,
    SendState,
)
from edge.link.signing import open_envelope
from edge.store import Store, StoredPlan

log = logging.getLogger(__name__)

HOLD_MAX = 3600  # outgoing messages held while the store refuses writes (an hour of events)
HOLD_LOG_MAX = 36_000  # local event-log rows held likewise
DRAIN_S = 2.0  # at a clean stop: how long the sender gets to empty the spool

LogRow = tuple[int, str, str, str]  # (utc ms, name, subject, detail) of the local event log


def _firmware() -> str:
    try:
        return f"edge-{importlib.metadata.version('edge-intersection')}"
    except importlib.metadata.PackageNotFoundError:
        return "edge-unknown"


FIRMWARE = _firmware()


def utc_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class SiteFile:
    """The device's site file, read once: its hash (reported to central) and its TOML."""

    config_hash: str
    raw: dict[str, Any]


def read_site(path: Path) -> SiteFile:
    data = path.read_bytes()
    return SiteFile(hashlib.sha256(data).hexdigest()[:16], tomllib.loads(data.decode("utf-8")))


class CentralEndpoint:
    client: LinkClient  # built by the subclass, which is its handler

    def __init__(self, cfg: DeviceConfig, site: SiteFile, approaches: frozenset[str]) -> None:
        self.cfg = cfg
        self.device = cfg.device
        self.config_hash = site.config_hash
        self.site_raw = site.raw
        self.store = Store(cfg.store_path, max_spool_rows=cfg.max_spool_rows)
        self.db = ThreadPoolExecutor(1, thread_name_prefix="edge-store")
        self.keyring = Keyring.load(
            cfg.store_path.with_name(cfg.store_path.name + ".keys.json"),
            cfg.trusted_keys,
            cfg.standby_keys,
            cfg.root_key,
        )
        self.session = DeviceSession(
            device=cfg.device,
            trusted=self.keyring.active,
            keyring=self.keyring,
            site_raw=self.site_raw,
            high_water=self.store.plan_high_water(),
            memory=self.store,
            backup_ms=cfg.backup_ms,
            approaches=approaches,
        )
        self.book = PriorityBook()  # central's priority requests and what the core was asked
        self.events: list[LogEvent] = []
        self.plan_version = 0
        # (version, plan, correlation) of the bundle handed to the core, until it applies it
        self.pending_apply: tuple[int, str, bytes | None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # set when the link runs
        # Owned by the store's worker thread: what a failed write left to write next time.
        self._held: deque[tuple[str, str]] = deque()
        self._held_log: deque[LogRow] = deque()
        self._held_dropped = 0
        self._overflow_first = 0
        self._failed_writes = 0
        self.store_error = ""  # the failing write's error while the store refuses writes

    # -- what the subclass provides ----------------------------------------------------------

    def _to_core(self, cmd: ControlCommand) -> None:
        raise NotImplementedError

    def _core_site(self) -> Site:
        raise NotImplementedError

    def _core_queues(self) -> tuple[Sequence[float], Plan | None]:
        """The core's queue estimate per phase and its plan in force, for the time an
        emergency request needs to clear the way (edge/link/priority.py); none: the lead."""
        return (), None

    def _apply_bundle(self, bundle: Bundle, correlation: bytes | None) -> None:
        raise NotImplementedError

    def _state_fields(self) -> dict[str, Any]:
        raise NotImplementedError

    def _log(self, ev: LogEvent) -> None:
        self.events.append(ev)

    # -- boot ------------------------------------------------------------------------------

    def _stored_bundle(self) -> tuple[StoredPlan, Bundle] | None:
        """The newest stored bundle (central sent it and it was accepted), verified again:
        a bundle whose key is no longer trusted, or that no longer fits the site, is not used."""
        stored = self.store.latest_plan()
        if stored is None:
            return None
        try:
            body = open_envelope(stored.envelope, self.session.trusted)
            return stored, check_body(
                body,
                device=self.device,
                high_water=stored.version - 1,
                site_raw=self.site_raw,
                now_ms=None,
            )
        except (Rejected, ValueError, KeyError, TypeError) as exc:
            log.error(
                "central_plan_unusable version=%d: %s; the site's plans run", stored.version, exc
            )
            return None

    # -- LinkHandler -------------------------------------------------------------------------

    async def on_message(
        self, leaf: str, payload: bytes, correlation: bytes | None, retained: bool = False
    ) -> None:
        now = utc_ms()
        if leaf == "plan":
            stored = self.store.latest_plan()
            if retained and stored is not None and stored.envelope == payload:
                log.info("central_plan_retained version=%d: already held", stored.version)
                return
            actions = self.session.on_plan(payload, now, correlation)
        else:
            actions = self.session.on_command(payload, now, correlation)
        for action in actions:
            await self._act(action)

    # -- actions -----------------------------------------------------------------------------

    def _ack(self, a: Ack) -> None:
        payload = messages.ack(
            self.device,
            utc_ms=utc_ms(),
            ref=a.ref,
            kind="plan" if a.kind == "plan" else "command",
            status=a.status,  # type: ignore[arg-type]
            code=a.code,
            reason=a.reason,
            version=a.version,
        )
        self.client.send_reliable("ack", payload, a.correlation)

    async def _in_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A store write on the worker thread; a failure is reported, then raised."""
        loop = self._loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.db, self._write, fn.__name__, fn, *args)

    async def _act(self, action: Action) -> None:
        if isinstance(action, Ack):
            self._ack(action)
        elif isinstance(action, LogEvent):
            self._log(action)
        elif isinstance(action, ControlCommand):
            self._to_core(action)
        elif isinstance(action, InstallPlan):
            await self._install(action)
        elif isinstance(action, PriorityRequest):
            await self._priority(action.request)
        elif isinstance(action, InstallCertificate):
            self._install_certificate(action)
        elif isinstance(action, SendState):
            fields = self._state_fields()
            payload = messages.state(self.device, utc_ms=utc_ms(), ref=action.ref, fields=fields)
            self.client.send_reliable("state", payload, action.correlation)
            self._ack(Ack(action.ref, "command", "done", correlation=action.correlation))

    # -- the device's certificate: a new key made here, renewed over the link --------------

    def _renewal_request(self) -> None:
        """At a connect: a client certificate within 30 days of expiry gets a new key made
        here (staged, 600) and its request sent to central as a `cert_request` event (the
        CSR as detail); at most one request an hour, so an answer finds its staged key."""
        renew, b = self.cfg.renew_dir, self.cfg.broker
        if renew is None or not b.has_client_cert():
            return
        now = datetime.datetime.now(datetime.UTC)
        try:
            cert = x509.load_pem_x509_certificate(Path(b.client_pair()[0]).read_bytes())
            if not certs.due(cert, now):
                return
            staged = renew / certs.STAGED
            if staged.exists() and time.time() - staged.stat().st_mtime < 3600:
                return
            renew.mkdir(mode=0o700, parents=True, exist_ok=True)
            csr = certs.request(renew, self.device)
        except (OSError, ValueError) as exc:
            log.error("cert_renewal_failed: %s", exc)
            return
        until = f"{cert.not_valid_after_utc:%Y-%m-%d}"
        log.warning("cert_request: the client certificate expires %s; asking central", until)
        self._log(LogEvent(utc_ms(), "cert_request", self.device, csr.decode(), "link"))

    def _install_certificate(self, act: InstallCertificate) -> None:
        renew, b = self.cfg.renew_dir, self.cfg.broker
        if renew is None or b.cafile is None:
            reason = "this device has no renew_dir: it renews no certificate"
            self._ack(
                Ack(act.ref, "command", "rejected", "unsupported", reason, None, act.correlation)
            )
            return
        try:
            ca = x509.load_pem_x509_certificate(Path(b.cafile).read_bytes())
            now = datetime.datetime.now(datetime.UTC)
            page = self._page_serves(now)
            live = certs.install(renew, act.pem.encode(), self.device, ca, now)
        except (OSError, ValueError) as exc:  # CertError is a ValueError
            reason = f"certificate not installed: {exc}"
            self._ack(Ack(act.ref, "command", "rejected", "refused", reason, None, act.correlation))
            self._log(LogEvent(utc_ms(), "cert_refused", "", reason[:200], "link"))
            return
        detail = f"{live} (used from the next connection)"
        self._ack(Ack(act.ref, "command", "done", reason=detail, correlation=act.correlation))
        self._log(LogEvent(utc_ms(), "cert_installed", "", detail[:200], "link"))
        lost = page - certs.serves(x509.load_pem_x509_certificate(act.pem.encode()))
        if lost:
            # the link needs the renewal; the page keeps its older pair (certs.page_pair)
            detail = (
                f"the renewed certificate lacks {', '.join(sorted(lost))} that the page's "
                "has: give central this device's maintenance address (edge central enrol "
                "--maintenance)"
            )
            log.error("cert_purpose_dropped: %s", detail)
            self._log(LogEvent(utc_ms(), "cert_purpose_dropped", "", detail[:200], "link"))

    def _page_serves(self, now: datetime.datetime) -> frozenset[str]:
        """What the page's certificate of the device's pairs serves (certs.serves)."""
        b, renew = self.cfg.broker, self.cfg.renew_dir
        if b.certfile is None or renew is None:
            return frozenset()
        cert_file = certs.page_pair((b.certfile, b.keyfile), renew, now)[0]
        try:
            return certs.serves(x509.load_pem_x509_certificate(Path(cert_file).read_bytes()))
        except (OSError, ValueError):
            return frozenset()

    async def _install(self, act: InstallPlan) -> None:
        """Stored first (the high-water mark with it), then accepted and handed on."""
        b = act.bundle
        try:
            await self._in_db(self.store.save_plan, b.version, b.digest, act.envelope, utc_ms())
        except sqlite3.Error:
            # Reported; not stored, so not accepted, and no ack: central sends it again,
            # which the session must then take as new, not as a replay.
            self.session.high_water = min(self.session.high_water, b.version - 1)
            return
        except ValueError as exc:
            self._ack(
                Ack(None, "plan", "rejected", "replayed", str(exc), b.version, act.correlation)
            )
            return
        self._ack(Ack(None, "plan", "accepted", version=b.version, correlation=act.correlation))
        self._log(LogEvent(utc_ms(), "plan_accepted", f"v{b.version}", "", "link"))
        self._apply_bundle(b, act.correlation)

    async def _priority(self, req: Request) -> None:
        key = self.book.update(req)
        with contextlib.suppress(sqlite3.Error):  # reported; the request is in force anyway
            if req.cancel:
                await self._in_db(self.store.drop_priority, key)
            else:
                await self._in_db(
                    self.store.save_priority, key, kind_of(req), body_of(req), req.received_ms,
                    req.expires_ms,
                )  # fmt: skip
        self._sync_priority()

    def _restore_priority(self) -> None:
        """Requests stored before a restart, not yet expired, are in force again."""
        self.book.restore(self.store.active_priorities(utc_ms()))
        self._sync_priority()

    def _expire_priority(self, utc: int) -> None:
        """Requests past their expiry lapse (a lost radio or bus never cancels); others fall due."""
        for key in self.book.expire(utc):
            self._log(LogEvent(utc, "priority_expired", key, "", "link"))
        self._sync_priority()  # and requests whose vehicle is now within the lead time

    def _sync_priority(self) -> None:
        """Central's requests become the core's preempts (emergency) and transit priority."""
        # the core's queues matter to emergency requests only: read them when there is one
        ev = any(isinstance(r, EmergencyPriorityRequest) for r in self.book.requests.values())
        queues, plan = self._core_queues() if ev else ((), None)
        for cmd in self.book.commands(self._core_site(), utc_ms(), queues, plan):
            log.info("central_priority command=%r", cmd)
            self._to_core(ControlCommand(None, cmd))

    def _ack_verdict(self, cc: ControlCommand, ev: Event) -> None:
        """The core applied or refused central's command: `done` or `rejected` with its reason."""
        if cc.ref is None:
            return
        if ev.name == "command_applied":
            self._ack(Ack(cc.ref, "command", "done", correlation=cc.correlation))
        else:
            self._ack(
                Ack(cc.ref, "command", "rejected", "refused", ev.detail, None, cc.correlation)
            )

    # -- what goes out: the spool, from the store's worker thread --------------------------

    def _flush_events(self) -> None:
        """The events since the last flush, as one spooled batch (and event-log rows)."""
        if not self.events and not self._held:
            return
        batch, self.events = self.events, []
        items = [("events", messages.events_body(batch))] if batch else []
        rows = [(e.utc_ms, e.name, e.subject, e.detail) for e in batch]
        self._spool(items, rows)

    def _spool(self, items: list[tuple[str, str]], log_rows: Iterable[LogRow] = ()) -> None:
        """Write (kind, body) messages to the spool (and rows to the event log) on the
        worker thread; the sender is woken once they are stored."""
        loop = self._loop = asyncio.get_running_loop()
        fut = self.db.submit(self._write_spool, items, list(log_rows))
        fut.add_done_callback(lambda _f: loop.call_soon_threadsafe(self.client.spooled))

    def _store_write(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """A store write on the worker thread, its failure reported (not raised)."""

        def write() -> None:
            with contextlib.suppress(sqlite3.Error):
                self._write(fn.__name__, fn, *args)

        return self.db.submit(write)

    def _write_spool(self, items: Iterable[tuple[str, str]], log_rows: Iterable[LogRow]) -> None:
        """Worker thread: what earlier failures held, then these, in order."""
        for item in items:
            if len(self._held) >= HOLD_MAX:
                self._held.popleft()
                self._held_dropped += 1
            self._held.append(item)
        for row in log_rows:
            if len(self._held_log) >= HOLD_LOG_MAX:
                self._held_log.popleft()
            self._held_log.append(row)
        with contextlib.suppress(sqlite3.Error):  # reported by _write; held for next time
            if self._held:
                self._write("spool", self.store.spool_extend, list(self._held), utc_ms())
                self._held.clear()
            overflow = self._write("spool", self.store.take_overflow)
            if overflow is not None:  # the oldest rows went: say which, so the gap is explained
                detail = f"dropped seq {self.store.wire_range(overflow)} ({overflow.count} rows)"
                level = (
                    logging.DEBUG if overflow.first_seq == self._overflow_first else logging.WARNING
                )
                self._overflow_first = overflow.first_seq  # warned once per overflow episode
                log.log(level, "spool_overflow %s: the spool is full, oldest rows dropped", detail)
                note = messages.events_body(
                    [LogEvent(utc_ms(), "spool_overflow", "", detail, "link")]
                )
                self._write("spool", self.store.spool_note, "events", note, utc_ms(), overflow)
            if self._held_log:
                self._write("event_log", self.store.log_events, list(self._held_log))
                self._held_log.clear()

    def _write(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Worker thread: one store write; a failure is logged and reported, then raised."""
        try:
            result = fn(*args)
        except sqlite3.Error as exc:
            self._failed_writes += 1
            if not self.store_error:  # once per episode, not with every retry
                self.store_error = f"{what}: {exc}"[:200]
                log.error(
                    "store_write_failed what=%s error=%r: held in memory (up to %d messages), "
                    "written when the store takes writes again",
                    what,
                    exc,
                    HOLD_MAX,
                )
                self._report("store_write_failed", what, str(exc))
            raise
        if self.store_error:
            detail = f"after {self._failed_writes} failed writes ({self.store_error})"
            if self._held_dropped:
                detail += f"; {self._held_dropped} held messages dropped (the hold was full)"
            log.warning("store_write_recovered %s", detail)
            self.store_error, self._failed_writes, self._held_dropped = "", 0, 0
            self._report("store_write_recovered", what, detail)
        return result

    def _report(self, name: str, subject: str, detail: str) -> None:
        """An event for central from any thread (it goes out with the next batch)."""
        ev = LogEvent(utc_ms(), name, subject, detail, "link")
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.events.append, ev)

    # -- the clean stop ---------------------------------------------------------------------

    async def _wind_down(self, link: asyncio.Task[None]) -> None:
        """Spool what is buffered, give the sender DRAIN_S to empty the spool, say
        "offline" (a clean disconnect sends no last will), then close the store."""
        try:
            self._flush_events()
            await asyncio.get_running_loop().run_in_executor(self.db, lambda: None)
            self.client.spooled()
            loop = asyncio.get_running_loop()
            end = loop.time() + DRAIN_S
            while loop.time() < end and self.client.client is not None:
                if self.store.spool_size() == 0 and not self.client.outbox:
                    break
                await asyncio.sleep(0.05)
            client = self.client.client
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.publish(
                        self.client.topic("status"),
                        messages.status_offline(self.device),
                        qos=1,
                        retain=True,
                        timeout=1.0,
                    )
        finally:
            link.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await link
            self.db.shutdown(wait=True)
            self.store.close()
