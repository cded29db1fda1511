"""The central link inside `edge run`: edge/link's MQTT client and protocol session,
wired to the runtime's controller (through the IO-board driver) instead of the
link harness's own scripted controller (edge/link/device.py).

Runs as the runtime's `central` task (Runtime(central=...)) and is the
runtime's `link` view. What it does, as edge/link specifies: retained birth
status with the runtime's mode, plan and board state (last will "offline");
SPaT at the configured rate from the outputs the board is driven with; the
controller's events spooled in SQLite and sent with sequence numbers; signed
plan bundles stored (with the high-water mark) and handed to the controller as
LoadSite, acknowledged `accepted` then `applied` at its safe point; signed
commands handed to the controller, acknowledged `done` or `rejected` with the
core's reason; emergency and transit priority requests become the core's
preempts and transit requests (edge/link/priority.py, shared with the link
harness), stored so they are in force again after a restart, ended by a cancel
or at the command's expiry; counts and measures per interval (edge/link/counts.py)
from the Inputs the controller stepped on, loops and camera zones merged,
spooled like events. Local control never waits for it: the control tick only
appends to a list and updates the counts here (on_tick); everything else runs
in this task.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import time
import tomllib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from edge.control.messages import LoadSite
from edge.link import messages
from edge.link.client import LinkClient
from edge.link.config import DeviceConfig
from edge.link.counts import CountsAggregator, on_utc
from edge.link.device import FIRMWARE
from edge.link.errors import Rejected
from edge.link.messages import LogEvent
from edge.link.plans import check_body, plan_at
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
from edge.store import Store

if TYPE_CHECKING:
    from edge.runtime import CentralHook, Runtime

log = logging.getLogger(__name__)

PRIORITY_EXPIRY_EVERY_S = 1.0


def utc_ms() -> int:
    return time.time_ns() // 1_000_000


class CentralLink:
    def __init__(self, cfg: DeviceConfig, rt: Runtime) -> None:
        self.cfg = cfg
        self.rt = rt
        self.device = cfg.device
        site_bytes = cfg.site_path.read_bytes()
        self.config_hash = hashlib.sha256(site_bytes).hexdigest()[:16]
        self.site_raw: dict[str, Any] = tomllib.loads(site_bytes.decode("utf-8"))
        self.store = Store(cfg.store_path, max_spool_rows=cfg.max_spool_rows)
        self.db = ThreadPoolExecutor(1, thread_name_prefix="edge-store")
        self.session = DeviceSession(
            device=cfg.device,
            trusted=load_trusted(list(cfg.trusted_keys)),
            site_raw=self.site_raw,
            high_water=self.store.plan_high_water(),
            memory=self.store,
            backup_ms=cfg.backup_ms,
            approaches=frozenset(a.id for a in rt.site.approaches),
        )
        self.client = LinkClient(cfg.device, cfg.broker, self, self.store, self.db)
        active = self.store.active_plan()
        self.plan_version = active.version if active is not None else 0
        self.connected = False
        self.last_error = ""
        self.events: list[LogEvent] = []
        self.sent: deque[ControlCommand] = deque()  # handed to the core, awaiting its verdict
        self.pending_apply: tuple[int, str, bytes | None] | None = None
        self.utc0 = utc_ms() - rt.board.clock_ms()
        self._tick_events: list[Any] = []
        self.book = PriorityBook()
        self.counts: CountsAggregator | None = None  # from the first step on
        previous: Callable[[Runtime], None] | None = rt.on_tick

        def on_tick(r: Runtime) -> None:
            if previous is not None:
                previous(r)
            out, stepped = r.driver.outputs, r.driver.stepped
            if out is None:
                return
            if out.events:
                self._tick_events.extend(out.events)
            if stepped is not None:
                if self.counts is None:
                    self.counts = CountsAggregator(r.site, cfg.counts_interval_ms, stepped[0])
                self.counts.observe(stepped[0], stepped[1], out)

        rt.on_tick = on_tick
        rt.link = self
        self._restore_plan()
        # Requests stored before a restart, not yet expired, are in force again.
        self.book.restore(self.store.active_priorities(utc_ms()))
        self._sync_priority()

    def _restore_plan(self) -> None:
        """After a restart or a power cut: the newest stored bundle (central accepted it)
        goes to the controller again, verified again (a key no longer trusted is not used)."""
        stored = self.store.latest_plan()
        if stored is None:
            return
        try:
            body = open_envelope(stored.envelope, self.session.trusted)
            bundle = check_body(
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
            return
        plan = plan_at(bundle.config, datetime.datetime.now())
        self.rt.driver.command(LoadSite(bundle.site, plan))
        self.pending_apply = (bundle.version, plan, None)
        log.info("central_plan_restored version=%d plan=%s", bundle.version, plan)

    # -- LinkView ----------------------------------------------------------------------------

    def link_status(self) -> dict[str, Any]:
        b = self.cfg.broker
        return {
            "connected": self.connected,
            "broker": f"{b.host}:{b.port}",
            "plan_version": self.plan_version,
            "spool_rows": self.store.spool_size(),
            "last_error": self.last_error,
            "priority": sorted(self.book.requests),  # central's requests in force
            "clock_offset_ms": self.session.clock_offset_ms,  # central's clock minus ours
        }

    # -- LinkHandler ---------------------------------------------------------------------------

    def birth(self) -> str:
        st = self.rt.status()
        return messages.status_online(
            self.device,
            utc_ms=utc_ms(),
            firmware=FIRMWARE,
            config_hash=self.config_hash,
            plan_version=self.plan_version,
            plan=st["plan"],
            board=st["board_state"],
            mode=st["mode"],
            central="lapsed" if self.session.lapsed else "ok",
        )

    def on_connected(self) -> None:
        self.connected = True
        self.last_error = ""
        self.events.append(LogEvent(utc_ms(), "link_resumed", "", "", "link"))

    def on_disconnected(self, reason: str) -> None:
        self.connected = False
        self.last_error = reason[:200]
        self.events.append(LogEvent(utc_ms(), "link_lost", "", reason[:200], "link"))

    async def on_message(
        self, leaf: str, payload: bytes, correlation: bytes | None, retained: bool = False
    ) -> None:
        now = utc_ms()
        if leaf == "plan":
            latest = self.store.latest_plan()
            if retained and latest is not None and latest.envelope == payload:
                return  # the retained bundle we already hold
            actions = self.session.on_plan(payload, now, correlation)
        else:
            actions = self.session.on_command(payload, now, correlation)
        for action in actions:
            await self._act(action)

    # -- actions -------------------------------------------------------------------------------

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
            self.events.append(action)
        elif isinstance(action, ControlCommand):
            self.rt.driver.command(action.command)
            self.sent.append(action)
        elif isinstance(action, InstallPlan):
            await self._install(action)
        elif isinstance(action, PriorityRequest):
            await self._priority(action.request)
        elif isinstance(action, SendState):
            st = self.rt.status()
            st["plan_version"] = self.plan_version
            self.client.send_reliable(
                "state",
                messages.state(self.device, utc_ms=utc_ms(), ref=action.ref, fields=st),
                action.correlation,
            )
            self._ack(Ack(action.ref, "command", "done", correlation=action.correlation))

    async def _install(self, act: InstallPlan) -> None:
        b = act.bundle
        try:
            await self._in_db(self.store.save_plan, b.version, b.digest, act.envelope, utc_ms())
        except ValueError as exc:
            self._ack(
                Ack(None, "plan", "rejected", "replayed", str(exc), b.version, act.correlation)
            )
            return
        self._ack(Ack(None, "plan", "accepted", version=b.version, correlation=act.correlation))
        plan = plan_at(b.config, datetime.datetime.now())
        self.rt.driver.command(LoadSite(b.site, plan))
        self.pending_apply = (b.version, plan, act.correlation)
        log.info("central_plan_accepted version=%d plan=%s", b.version, plan)

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

    def _expire_priority(self) -> None:
        """Requests past their expiry lapse (a lost radio or bus never cancels); others fall due."""
        now = utc_ms()
        gone = self.book.expire(now)
        for key in gone:
            self.events.append(LogEvent(now, "priority_expired", key, "", "link"))
        self._sync_priority()  # and requests whose vehicle is now within the lead time

    def _sync_priority(self) -> None:
        for cmd in self.book.commands(self.rt.driver.controller.site, utc_ms()):
            log.info("central_priority command=%r", cmd)
            self.rt.driver.command(cmd)

    def _flush_counts(self) -> None:
        counts = self.counts
        if counts is None or counts.last_ms is None or not counts.due(counts.last_ms):
            return
        body = messages.dumps(on_utc(counts.flush(counts.last_ms), self.utc0))
        loop = asyncio.get_running_loop()
        fut = self.db.submit(self.store.spool_append, "counts", body, utc_ms())
        fut.add_done_callback(lambda _f: loop.call_soon_threadsafe(self.client.spooled))

    def _on_core_events(self) -> None:
        evs, self._tick_events = self._tick_events, []
        for ev in evs:
            self.events.append(
                LogEvent(self.utc0 + ev.t_ms, ev.name, ev.subject, ev.detail, "control")
            )
            cc = self._sent_for(ev) if ev.name in ("command_applied", "command_rejected") else None
            if cc is not None:
                if cc.ref is not None:
                    if ev.name == "command_applied":
                        self._ack(Ack(cc.ref, "command", "done", correlation=cc.correlation))
                    else:
                        self._ack(
                            Ack(
                                cc.ref,
                                "command",
                                "rejected",
                                "refused",
                                ev.detail,
                                None,
                                cc.correlation,
                            )
                        )
            elif ev.name == "plan_applied" and self.pending_apply is not None:
                version, plan, corr = self.pending_apply
                if ev.subject == plan:
                    self.pending_apply = None
                    self.plan_version = version
                    if corr is not None or self.connected:
                        self._ack(Ack(None, "plan", "applied", version=version, correlation=corr))
                    self.db.submit(self.store.mark_plan_applied, version, utc_ms())
                    log.info("central_plan_applied version=%d plan=%s", version, plan)

    def _sent_for(self, ev: Any) -> ControlCommand | None:
        """The oldest command of central's of the event's kind: the schedule, the page and
        the priority requests command the controller too, and their verdicts are not ours."""
        for cc in self.sent:
            if type(cc.command).__name__ == ev.subject:
                self.sent.remove(cc)
                return cc
        return None

    def _flush_events(self) -> None:
        if not self.events:
            return
        batch, self.events = self.events, []
        body = messages.events_body(batch)
        rows = [(e.utc_ms, e.name, e.subject, e.detail) for e in batch]
        loop = asyncio.get_running_loop()

        def persist() -> None:
            self.store.spool_append("events", body, utc_ms())
            self.store.log_events(rows)

        fut = self.db.submit(persist)
        fut.add_done_callback(lambda _f: loop.call_soon_threadsafe(self.client.spooled))

    async def run(self) -> None:
        """The `central` task: the MQTT connection and a loop for SPaT, events and acks."""
        period_s = 1.0 / self.cfg.spat_hz if self.cfg.spat_hz > 0 else 0.1
        k = 0
        last_flush = last_expiry = time.monotonic()
        link = asyncio.create_task(self.client.run(), name="central-mqtt")
        phase_ids = [p.id for p in self.rt.site.phases]
        shown: tuple[Any, ...] = ()
        try:
            while not link.done():
                self._on_core_events()
                # The retained status follows the runtime: mode, board, plan, central.
                out = self.rt.driver.outputs
                now_shown = (out.mode if out is not None else None,
                             self.rt.driver.session.board_state, self.rt.plan,
                             self.plan_version, self.session.lapsed)  # fmt: skip
                if (
                    now_shown != shown
                    and self.client.client is not None
                    and await self.client.publish_now("status", self.birth(), qos=1, retain=True)
                ):
                    shown = now_shown
                if out is not None and self.client.client is not None and self.cfg.spat_hz > 0:
                    now = self.rt.board.clock_ms()
                    spat = messages.spat(self.device, k, self.utc0 + now, now, out, phase_ids)
                    await self.client.publish_now("spat", spat)
                for action in self.session.tick(utc_ms()):
                    await self._act(action)
                if time.monotonic() - last_flush >= self.cfg.events_flush_ms / 1000:
                    self._flush_events()
                    last_flush = time.monotonic()
                if time.monotonic() - last_expiry >= PRIORITY_EXPIRY_EVERY_S:
                    self._expire_priority()
                    last_expiry = time.monotonic()
                self._flush_counts()
                k += 1
                await asyncio.sleep(period_s)
            await link  # it only ends by raising: let the runtime's shutdown path see why
        finally:
            link.cancel()
            self.db.shutdown(wait=True)
            self.store.close()


def central_hook(cfg: DeviceConfig) -> CentralHook:
    """Runtime(central=...): builds the link when the runtime starts it."""

    async def run(runtime: Runtime) -> None:
        await CentralLink(cfg, runtime).run()

    return run


def load_central(device_toml: str) -> DeviceConfig | None:
    """The link configuration from flash.sh's device.toml; None when it names no broker
    (the device then runs on its own). ValueError says what is wrong with the file."""
    from edge.link.config import load_device_config

    try:
        with open(device_toml, "rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{device_toml}: {exc}") from None
    if "broker" not in raw:
        return None
    return load_device_config(device_toml)
