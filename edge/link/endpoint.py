"""The device's end of the central link, as both of its users share it: `edge run`
(edge/device/central.py, the runtime's controller through the IO-board driver)
and the link harness (edge/link/device.py, a scripted controller).

Shared here: the protocol session, the store and its one worker thread,
central's priority book; the stored plan bundle verified again at boot;
messages from the broker through the session to actions; acks; plan bundles
stored before they are accepted; priority requests stored (in force again
after a restart) and handed to the core; the core's verdict on a command
acknowledged to central. A subclass says how a command reaches its core
(`_to_core`), which site the core runs (`_core_site`), what it does with an
accepted bundle (`_apply_bundle`) and how it answers `request_state`
(`_state_fields`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.control.messages import Event
from edge.control.site import Site
from edge.link import messages
from edge.link.client import LinkClient
from edge.link.config import DeviceConfig
from edge.link.errors import Rejected
from edge.link.messages import LogEvent
from edge.link.plans import Bundle, check_body
from edge.link.priority import PriorityBook, Request, body_of, kind_of
from edge.link.session import (
    Ack,
    Action,
    ControlCommand,
    DeviceSession,
    InstallPlan,
    PriorityRequest,
    SendState,
)
from edge.link.signing import load_trusted, open_envelope
from edge.store import Store, StoredPlan

log = logging.getLogger(__name__)


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
        self.session = DeviceSession(
            device=cfg.device,
            trusted=load_trusted(list(cfg.trusted_keys)),
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

    # -- what the subclass provides ----------------------------------------------------------

    def _to_core(self, cmd: ControlCommand) -> None:
        raise NotImplementedError

    def _core_site(self) -> Site:
        raise NotImplementedError

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
        return await asyncio.get_running_loop().run_in_executor(self.db, fn, *args)

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
        elif isinstance(action, SendState):
            fields = self._state_fields()
            payload = messages.state(self.device, utc_ms=utc_ms(), ref=action.ref, fields=fields)
            self.client.send_reliable("state", payload, action.correlation)
            self._ack(Ack(action.ref, "command", "done", correlation=action.correlation))

    async def _install(self, act: InstallPlan) -> None:
        """Stored first (the high-water mark with it), then accepted and handed on."""
        b = act.bundle
        try:
            await self._in_db(self.store.save_plan, b.version, b.digest, act.envelope, utc_ms())
        except ValueError as exc:
            self._ack(
                Ack(None, "plan", "rejected", "replayed", str(exc), b.version, act.correlation)
            )
            return
        self._ack(Ack(None, "plan", "accepted", version=b.version, correlation=act.correlation))
        self._apply_bundle(b, act.correlation)

    async def _priority(self, req: Request) -> None:
        key = self.book.update(req)
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
        for cmd in self.book.commands(self._core_site(), utc_ms()):
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
