"""The central link inside `edge run`: edge/link's MQTT client and the device's end of
the protocol (edge/link/endpoint.py), wired to the runtime's controller (through
the IO-board driver). It is the only implementation: the link harness
(edge/link/device.py) runs this same link in the same runtime, with scripted
traffic on the detectors.

Runs as the runtime's `central` extension (`Central`, edge/extensions.py) and is the
runtime's `link` view. What it does, as edge/link specifies: retained birth
status with the runtime's mode, plan and board state (last will "offline");
SPaT at the configured rate from the outputs the board is driven with; the
controller's events spooled in SQLite and sent with sequence numbers; signed
plan bundles stored (with the high-water mark) and handed to the controller as
LoadSite, acknowledged `accepted` then `applied` at its safe point; signed
commands handed to the controller, acknowledged `done` or `rejected` with the
core's reason; emergency and transit priority requests become the core's
preempts and transit requests (edge/link/priority.py), stored so they are in
force again after a restart, ended by a cancel
or at the command's expiry; counts and measures per interval (edge/link/counts.py)
from the Inputs the controller stepped on, loops and camera zones merged,
spooled like events (a spool overflow or a store that refuses writes is
reported, never silent: endpoint.py's rules); the reply to `request_state` as
schemas/state.json has it; at a stop, the clean stop (events spooled, the
spool drained for a moment, "offline"). Local control never waits for it: the
control tick only hands its snapshot to the `central` tick hook
(edge/tickhooks.py), whose own thread queues the controller's events for this
task and updates and spools the counts; everything else runs in this task.
Ticks the hook had to drop (it fell behind by more than CENTRAL_QUEUE_TICKS)
are not lost silently: a `counts_gap` event tells central how many ticks the
counts miss; a disabled hook, `counts_stopped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
import tomllib
from collections import deque
from typing import TYPE_CHECKING, Any

from edge.board.driver import TICK_MS
from edge.control.messages import Event, LoadSite
from edge.control.site import Plan, Site
from edge.device import bootstrap
from edge.extensions import Extension
from edge.link import messages
from edge.link.client import LinkClient
from edge.link.config import DeviceConfig
from edge.link.counts import CountsAggregator, on_utc
from edge.link.endpoint import FIRMWARE, CentralEndpoint, read_site, utc_ms
from edge.link.messages import LogEvent
from edge.link.outflow import Outflow
from edge.link.plans import Bundle, plan_at
from edge.link.session import Ack, ControlCommand

if TYPE_CHECKING:
    from edge.runtime import Runtime
    from edge.tickhooks import Tick

log = logging.getLogger(__name__)

PRIORITY_EXPIRY_EVERY_S = 1.0
OUTFLOW_EVERY_S = 1.0  # the releases to the neighbours (edge/link/outflow.py)
# a device connected for months still renews its certificate before it expires (the
# request itself is made at most once an hour: endpoint._renewal_request)
RENEWAL_CHECK_EVERY_S = 3600.0
CENTRAL_QUEUE_TICKS = 600  # a minute of ticks: a stall shorter than that loses no count
PUBLISH_SOON_MAX = 50  # publish_soon's frames in flight (5 s of SPaT); more are dropped


class CentralLink(CentralEndpoint):
    def __init__(self, cfg: DeviceConfig, rt: Runtime, ext: Extension | None = None) -> None:
        super().__init__(cfg, read_site(cfg.site_path), frozenset(a.id for a in rt.site.approaches))
        self.rt = rt
        self.client = LinkClient(cfg.device, cfg.broker, self, self.store, self.db)
        active = self.store.active_plan()
        self.plan_version = active.version if active is not None else 0
        self.connected = False
        self.last_error = ""
        self.link_down_at: int | None = None
        self.spat_sent = 0
        self._soon: set[asyncio.Task[None]] = set()  # publish_soon's sends (kept referenced)
        self._in_flight = 0  # publish_soon's frames not yet sent
        self.sent: deque[ControlCommand] = deque()  # handed to the core, awaiting its verdict
        self.utc0 = utc_ms() - rt.board.clock_ms()
        # Filled by the tick hook's thread, emptied by this task (deque: atomic ends).
        self._tick_events: deque[Event | LogEvent] = deque()
        self.counts: CountsAggregator | None = None  # the hook's thread's own, from step 1
        # The extension whose tick hook feeds this link (None: a test feeds _on_tick itself).
        self.ext = ext
        # Releases out, the [[neighbour]]s' in, arrivals to the core (edge/link/outflow.py).
        site = rt.site
        self.outflow = Outflow(
            self.device,
            [p.id for p in site.phases],
            frozenset(d.id for d in site.detectors if not d.ped),
            rt.config.neighbours,
            lambda dev, detail: self._log(
                LogEvent(utc_ms(), "outflow_rejected", dev, detail, "link")
            ),
        )
        self.client.neighbours = self.outflow.neighbours
        if self.outflow.neighbours:
            rt.driver.arrivals = self.outflow.take
        rt.link = self
        self._restore_plan()
        self._restore_priority()

    def _restore_plan(self) -> None:
        """After a restart or a power cut: the newest stored bundle goes to the controller
        again (verified again; when it no longer is, the site's plans run)."""
        found = self._stored_bundle()
        if found is None:
            return
        _stored, bundle = found
        plan = plan_at(bundle.config, datetime.datetime.now())
        self.rt.driver.command(LoadSite(bundle.site, plan))
        self.pending_apply = (bundle.version, plan, None)
        log.info("central_plan_restored version=%d plan=%s", bundle.version, plan)

    # -- the tick hook (its own thread) -----------------------------------------------------

    def _on_tick(self, tick: Tick) -> None:
        out, stepped = tick.outputs, tick.stepped
        if out is None:
            return
        if out.events:
            self._tick_events.extend(out.events)
        if stepped is not None:
            self.outflow.observe(stepped[0], stepped[1].occupied, out.phases)
            if self.counts is None:
                self.counts = CountsAggregator(
                    self.rt.site, self.cfg.counts_interval_ms, stepped[0]
                )
            self.counts.observe(stepped[0], stepped[1], out)
            self._flush_counts()

    def _ticks_dropped(self, ticks: int) -> None:
        log.warning("central_counts_gap ticks=%d: the counts miss these ticks", ticks)
        detail = f"{ticks} ticks not counted: the link's tick hook fell behind"
        self._tick_events.append(LogEvent(utc_ms(), "counts_gap", "", detail, "link"))

    def _hook_disabled(self) -> None:
        detail = "the link's tick hook failed repeatedly: no more counts or controller events"
        self._tick_events.append(LogEvent(utc_ms(), "counts_stopped", "", detail, "link"))

    # -- CentralEndpoint -----------------------------------------------------------------------

    def _to_core(self, cmd: ControlCommand) -> None:
        self.rt.driver.command(cmd.command)
        if cmd.ref is not None:  # central's command: its verdict is acked
            self.sent.append(cmd)

    def _core_site(self) -> Site:
        return self.rt.driver.controller.site

    def _core_queues(self) -> tuple[list[float], Plan | None]:
        # Read off the control thread, never locking it: plain numbers, a late one costs a
        # second at most. A site being swapped mid-read gives up for this second (the
        # preempt's own lead then applies) rather than failing the link's priority loop.
        ctl = self.rt.driver.controller
        try:
            present = ctl.det_present
            n = len(ctl.site.phases)
            return [ctl.adaptive.queue(i, present) for i in range(n)], ctl.plan
        except (IndexError, KeyError, RuntimeError) as exc:
            log.debug("core_queues_unread %s", exc)
            return [], None

    def _apply_bundle(self, bundle: Bundle, correlation: bytes | None) -> None:
        plan = plan_at(bundle.config, datetime.datetime.now())
        self.rt.driver.command(LoadSite(bundle.site, plan))
        self.pending_apply = (bundle.version, plan, correlation)
        log.info("central_plan_accepted version=%d plan=%s", bundle.version, plan)

    def _state_fields(self) -> dict[str, Any]:
        """The reply to `request_state`, as schemas/state.json has it."""
        ctl, out = self.rt.driver.controller, self.rt.driver.outputs
        return {
            "mode": ctl.mode,
            "plan": ctl.plan.id,
            "plan_version": self.plan_version,
            "plan_pending": self.pending_apply[0] if self.pending_apply else None,
            "config_hash": self.config_hash,
            "phases": [
                {"phase": p.id, "lamp": out.phases[i].name.lower() if out else "dark"}
                for i, p in enumerate(ctl.site.phases)
            ],
            "overrides": sorted(self.session.overrides),
            "central": "lapsed" if self.session.lapsed else "ok",
            "clock_offset_ms": self.session.clock_offset_ms,
            "priority": [
                {"key": k, "approach": r.approach, "eta_s": r.eta_s, "vehicle_id": r.vehicle_id}
                for k, r in sorted(self.book.requests.items())
            ],
            "spool_rows": self.store.spool_size(),
            "uptime_s": round(self.rt.ticks * TICK_MS / 1000, 1),  # on the runtime's clock
        }

    # -- LinkView ----------------------------------------------------------------------------

    def link_status(self) -> dict[str, Any]:
        b = self.cfg.broker
        return {
            "connected": self.connected,
            "broker": f"{b.host}:{b.port}",
            "plan_version": self.plan_version,
            "spool_rows": self.store.spool_size(),
            "last_error": self.last_error,
            "store_error": self.store_error,  # while the store refuses writes
            "priority": sorted(self.book.requests),  # central's requests in force
            "clock_offset_ms": self.session.clock_offset_ms,  # central's clock minus ours
            **self.outflow.status(),  # the neighbours' releases (edge/link/outflow.py)
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
        self._renewal_request()
        now = utc_ms()
        if self.link_down_at is not None:
            gap = (now - self.link_down_at) / 1000
            detail = f"broker unreachable for {gap:.1f} s"
            self._log(LogEvent(now, "link_resumed", "", detail, "link"))
            self.link_down_at = None

    def on_outflow(self, device: str, payload: bytes) -> None:
        self.outflow.receive(device, payload, self.rt.board.clock_ms(), time.monotonic())

    def on_disconnected(self, reason: str) -> None:
        self.connected = False
        self.last_error = reason[:200]
        self.link_down_at = utc_ms()
        self._log(LogEvent(self.link_down_at, "link_lost", "", reason[:200], "link"))

    def _flush_counts(self) -> None:
        """In the hook's thread: a due interval's counts into the spool."""
        counts = self.counts
        if counts is None or counts.last_ms is None or not counts.due(counts.last_ms):
            return
        body = messages.dumps(on_utc(counts.flush(counts.last_ms), self.utc0))
        # The hook's thread: through the store's worker, as every spool write (endpoint.py).
        fut = self.db.submit(self._write_spool, [("counts", body)], [])
        loop = self._loop  # set by run(); the hook's thread may tick before it
        if loop is not None:  # else the sender finds the rows when it starts

            def wake(_f: object) -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed at shutdown
                    loop.call_soon_threadsafe(self.client.spooled)

            fut.add_done_callback(wake)

    def spool_hires(self, body: str) -> None:
        """A batch of the ATSPM hi-res log (edge/atspm/device.py, messages.hires_body) into
        the spool for the `hires` topic; from any thread, as the counts are."""
        fut = self.db.submit(self._write_spool, [("hires", body)], [])
        loop = self._loop
        if loop is not None:

            def wake(_f: object) -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed at shutdown
                    loop.call_soon_threadsafe(self.client.spooled)

            fut.add_done_callback(wake)

    def publish_soon(self, leaf: str, payload: bytes) -> bool:
        """QoS 0, best effort, from any thread (the j2735 hook): handed to this link's
        loop; False (dropped) while disconnected or when PUBLISH_SOON_MAX are in flight."""
        loop = self._loop
        if loop is None or not self.connected or self._in_flight >= PUBLISH_SOON_MAX:
            return False
        self._in_flight += 1

        def go() -> None:
            async def send() -> None:
                try:
                    await self.client.publish_now(leaf, payload)
                finally:
                    self._in_flight -= 1

            task = loop.create_task(send())
            self._soon.add(task)
            task.add_done_callback(self._soon.discard)

        try:
            loop.call_soon_threadsafe(go)
        except RuntimeError:  # the loop closed at shutdown
            self._in_flight -= 1
            return False
        return True

    async def _wind_down(self, link: asyncio.Task[None]) -> None:
        """This link's tick hook ends with it: what it has queued (counts, the core's
        events) is handled and spooled before the store closes, and a link started
        after this one (a restart) registers its own."""
        if self.ext is not None:
            await asyncio.to_thread(self.rt.end_ticks, self.ext)
        self._on_core_events()
        await super()._wind_down(link)

    def _on_core_events(self) -> None:
        board_events = self.rt.driver.board_events  # the board's faults and fault records
        while board_events:
            _t, name, subject, detail = board_events.popleft()
            self.events.append(LogEvent(utc_ms(), name, subject, detail, "runtime"))
        while self._tick_events:
            ev = self._tick_events.popleft()
            if isinstance(ev, LogEvent):
                self._log(ev)
                continue
            self.events.append(
                LogEvent(self.utc0 + ev.t_ms, ev.name, ev.subject, ev.detail, "control")
            )
            cc = self._sent_for(ev) if ev.name in ("command_applied", "command_rejected") else None
            if cc is not None:
                self._ack_verdict(cc, ev)
            elif ev.name == "plan_applied" and self.pending_apply is not None:
                version, plan, corr = self.pending_apply
                if ev.subject == plan:
                    self.pending_apply = None
                    self.plan_version = version
                    if corr is not None or self.connected:
                        self._ack(Ack(None, "plan", "applied", version=version, correlation=corr))
                    self._store_write(self.store.mark_plan_applied, version, utc_ms())
                    log.info("central_plan_applied version=%d plan=%s", version, plan)

    def _sent_for(self, ev: Any) -> ControlCommand | None:
        """The oldest command of central's of the event's kind: the schedule, the page and
        the priority requests command the controller too, and their verdicts are not ours."""
        for cc in self.sent:
            if type(cc.command).__name__ == ev.subject:
                self.sent.remove(cc)
                return cc
        return None

    async def _connect(self) -> None:
        """The MQTT link; a device flashed with only an enrolment token first gets its
        certificate over the broker's bootstrap listener (edge/device/bootstrap.py)."""
        if bootstrap.needed(self.cfg):

            def failed(reason: str) -> None:
                self.last_error = f"enrolment: {reason}"

            live = await bootstrap.enrol_until_done(self.cfg, failed)
            self.last_error = ""
            self._log(LogEvent(utc_ms(), "enrolled", self.device, str(live), "link"))
        await self.client.run()

    async def run(self) -> None:
        """The `central` task: the MQTT connection and a loop for SPaT, events and acks,
        until the runtime stops (then the clean stop: endpoint's _wind_down)."""
        self._loop = asyncio.get_running_loop()
        period_s = 1.0 / self.cfg.spat_hz if self.cfg.spat_hz > 0 else 0.1
        k = 0
        last_flush = last_expiry = last_renewal = last_outflow = time.monotonic()
        link = asyncio.create_task(self._connect(), name="central-mqtt")
        phase_ids = [p.id for p in self.rt.site.phases]
        shown: tuple[Any, ...] = ()
        try:
            while not link.done() and not self.rt.stopping.is_set():
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
                    if await self.client.publish_now("spat", spat):
                        self.spat_sent += 1
                if time.monotonic() - last_outflow >= OUTFLOW_EVERY_S:
                    last_outflow = time.monotonic()
                    now = self.rt.board.clock_ms()
                    body = self.outflow.message(self.utc0 + now, now)
                    if body is not None and await self.client.publish_now("outflow", body):
                        self.outflow.sent += 1
                for action in self.session.tick(utc_ms()):
                    await self._act(action)
                if time.monotonic() - last_flush >= self.cfg.events_flush_ms / 1000:
                    self._flush_events()
                    last_flush = time.monotonic()
                if time.monotonic() - last_expiry >= PRIORITY_EXPIRY_EVERY_S:
                    self._expire_priority(utc_ms())
                    last_expiry = time.monotonic()
                if time.monotonic() - last_renewal >= RENEWAL_CHECK_EVERY_S:
                    if self.connected:
                        self._renewal_request()
                    last_renewal = time.monotonic()
                k += 1
                await asyncio.sleep(period_s)
            if link.done():
                await link  # it only ends by raising: let the runtime's shutdown path see why
        finally:
            # The runtime cancels this task right after its board handover: the wind-down
            # (bounded by its own timeouts) finishes anyway.
            closing = asyncio.ensure_future(self._wind_down(link))
            try:
                await asyncio.shield(closing)
            except asyncio.CancelledError:
                await closing
                raise


class Central(Extension):
    """The `central` extension: a new CentralLink on every start of its task (it restores
    its plans and priority book from the store); the link's tick work gets the ticks."""

    name = "central"
    ticks = True
    queue_ticks = CENTRAL_QUEUE_TICKS

    def __init__(self, cfg: DeviceConfig) -> None:
        self.cfg = cfg
        self.link: CentralLink | None = None
        self.rt: Runtime | None = None
        self._ready: CentralLink | None = None  # built ahead of the first start (prepare)

    def start(self, rt: Runtime) -> None:
        self.rt = rt

    def new_link(self) -> CentralLink:
        assert self.rt is not None, "Central.start comes first"
        self.link = CentralLink(self.cfg, self.rt, self)
        return self.link

    def prepare(self) -> CentralLink:
        """Build the link now (its first start runs this one): a harness reads it early."""
        self._ready = self.new_link()
        return self._ready

    async def run(self) -> None:
        link, self._ready = self._ready or self.new_link(), None
        await link.run()

    # The tick hook is added just before run() builds the link (no await between), so
    # every tick it queues finds one.
    def on_tick(self, tick: Tick) -> None:
        if self.link is not None:
            self.link._on_tick(tick)

    def ticks_dropped(self, ticks: int) -> None:
        if self.link is not None:
            self.link._ticks_dropped(ticks)

    def ticks_stopped(self) -> None:
        if self.link is not None:
            self.link._hook_disabled()


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
