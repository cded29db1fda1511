"""A device runtime for the link: the controller stepped at 10 Hz on scripted
detector input, feeding the MQTT link (SPaT, counts, events, status), and
taking plans and commands from central.

This is the harness the link tests and `edge bench link` run; the full
runtime (edge/runtime.py, with the IO board and sensing) wires the same
pieces, and both take the device's end of the protocol from
edge/link/endpoint.py. Local control never waits for the network: the
control loop only hands work to the link and the store (a single worker
thread) and moves on.

    python -m edge.link.device DEVICE.toml [--duration S] [--stats FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import json
import logging
import signal
import sys
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from edge.config import SiteConfig, config_from_dict
from edge.control.controller import Controller
from edge.control.messages import Inputs, LoadSite, Outputs, SetPlan
from edge.control.site import Site
from edge.demand import RandomDemand
from edge.link import messages
from edge.link.client import LinkClient
from edge.link.config import DeviceConfig, load_device_config
from edge.link.counts import CountsAggregator, on_utc
from edge.link.endpoint import CentralEndpoint, read_site, utc_ms
from edge.link.messages import EmergencyPriorityRequest, LogEvent, TransitPriorityRequest
from edge.link.plans import Bundle, plan_at
from edge.link.priority import Request
from edge.link.session import Ack, ControlCommand

log = logging.getLogger(__name__)

STEP_MS = 100


def _firmware() -> str:
    try:
        return f"edge-{importlib.metadata.version('edge-intersection')}"
    except importlib.metadata.PackageNotFoundError:
        return "edge-unknown"


FIRMWARE = _firmware()


@dataclass
class Stats:
    ticks: int = 0
    late_ticks: int = 0
    max_tick_gap_ms: float = 0.0
    spat_sent: int = 0
    spat_dropped: int = 0
    plans_applied: int = 0
    tick_times: list[float] = field(default_factory=list)


class DeviceRuntime(CentralEndpoint):
    def __init__(
        self,
        cfg: DeviceConfig,
        record_ticks: bool = False,
        board_state: Callable[[], str] = lambda: "simulated",
    ) -> None:
        site_file = read_site(cfg.site_path)
        self.config: SiteConfig = config_from_dict(site_file.raw, str(cfg.site_path))
        super().__init__(cfg, site_file, frozenset(a.id for a in self.config.site.approaches))
        self.board_state = board_state  # the IO board driver's state, for the birth message
        self.bundle: Bundle | None = self._boot_bundle()
        if self.bundle is not None:
            self.config = self.bundle.config
        site = self.config.site
        self.plan_version = self.bundle.version if self.bundle else 0
        self.ctl = Controller(site, now_ms=0, plan=self._scheduled_plan())
        self.phase_ids = [p.id for p in site.phases]
        self.counts = CountsAggregator(site, cfg.counts_interval_ms)
        self.demand = RandomDemand(site, seed=cfg.demand_seed, veh_per_hour=cfg.veh_per_hour)
        self.client = LinkClient(cfg.device, cfg.broker, self, self.store, self.db)
        self.queued: list[ControlCommand] = []
        self.on_priority: list[Callable[[Request], None]] = []
        self.stats = Stats()
        self.record_ticks = record_ticks
        self.out: Outputs | None = None
        self.utc0 = utc_ms()
        self.link_down_at: int | None = None
        self.scheduled = self.ctl.plan.id
        self.stopping = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._restore_priority()  # restored requests reach the core with the first step

    # -- boot --------------------------------------------------------------------------

    def _boot_bundle(self) -> Bundle | None:
        found = self._stored_bundle()
        if found is None:
            return None
        stored, bundle = found
        if stored.applied_ms is None:
            self.store.mark_plan_applied(stored.version, utc_ms())
        log.info("plan bundle v%d loaded from the store", bundle.version)
        return bundle

    @property
    def priority(self) -> dict[str, EmergencyPriorityRequest | TransitPriorityRequest]:
        return self.book.requests

    @property
    def preempting(self) -> set[int]:
        return self.book.preempting

    def _scheduled_plan(self) -> str:
        return plan_at(self.config, datetime.datetime.now())

    # -- LinkHandler ---------------------------------------------------------------------

    def birth(self) -> str:
        return messages.status_online(
            self.device,
            utc_ms=utc_ms(),
            firmware=FIRMWARE,
            config_hash=self.config_hash,
            plan_version=self.plan_version,
            plan=self.ctl.plan.id,
            board=self.board_state(),
            mode=self.ctl.mode,
            central="lapsed" if self.session.lapsed else "ok",
        )

    def on_connected(self) -> None:
        now = utc_ms()
        if self.link_down_at is not None:
            gap = (now - self.link_down_at) / 1000
            self._log(
                LogEvent(now, "link_resumed", "", f"broker unreachable for {gap:.1f} s", "link")
            )
            self.link_down_at = None

    def on_disconnected(self, reason: str) -> None:
        now = utc_ms()
        self.link_down_at = now
        self._log(LogEvent(now, "link_lost", "", reason[:200], "link"))

    # -- CentralEndpoint -----------------------------------------------------------------

    def _to_core(self, cmd: ControlCommand) -> None:
        self.queued.append(cmd)  # the control loop hands it to the core with the next step

    def _core_site(self) -> Site:
        return self.ctl.site

    def _apply_bundle(self, bundle: Bundle, correlation: bytes | None) -> None:
        self.bundle = bundle
        self.config = bundle.config
        plan = self._scheduled_plan()
        self.scheduled = plan
        # The core swaps in the new timing itself, at its next safe point.
        self.queued.append(ControlCommand(None, LoadSite(bundle.site, plan)))
        self.pending_apply = (bundle.version, plan, correlation)
        self._log(
            LogEvent(
                utc_ms(),
                "plan_accepted",
                f"v{bundle.version}",
                f"plan {plan} at the next safe point",
                "link",
            )
        )

    async def _priority(self, req: Request) -> None:
        await super()._priority(req)
        for hook in self.on_priority:
            hook(req)

    def _state_fields(self) -> dict[str, Any]:
        out = self.out
        return {
            "mode": self.ctl.mode,
            "plan": self.ctl.plan.id,
            "plan_version": self.plan_version,
            "plan_pending": self.pending_apply[0] if self.pending_apply else None,
            "config_hash": self.config_hash,
            "phases": [
                {"phase": pid, "lamp": out.phases[i].name.lower() if out else "dark"}
                for i, pid in enumerate(self.phase_ids)
            ],
            "overrides": sorted(self.session.overrides),
            "central": "lapsed" if self.session.lapsed else "ok",
            "clock_offset_ms": self.session.clock_offset_ms,
            "priority": [
                {"key": k, "approach": r.approach, "eta_s": r.eta_s, "vehicle_id": r.vehicle_id}
                for k, r in sorted(self.priority.items())
            ],
            "spool_rows": self.store.spool_size(),
            "uptime_s": round(self.stats.ticks * STEP_MS / 1000, 1),
        }

    # -- persistence (one worker thread, in order) ---------------------------------------------

    def _submit(self, fn: Callable[..., Any], *args: Any) -> None:
        fut = self.db.submit(fn, *args)
        fut.add_done_callback(self._db_done)

    def _db_done(self, fut: Future[Any]) -> None:
        exc = fut.exception()
        if exc is not None:
            log.error("store write failed: %r", exc)

    def _persist_events(self, body: str, rows: list[tuple[int, str, str, str]]) -> None:
        self.store.spool_append("events", body, utc_ms())
        self.store.log_events(rows)
        overflow = self.store.take_overflow()
        if overflow is not None:
            detail = (
                f"dropped seq {overflow.first_seq}..{overflow.last_seq} ({overflow.count} rows)"
            )
            note = messages.events_body([LogEvent(utc_ms(), "spool_overflow", "", detail, "link")])
            self.store.spool_append("events", note, utc_ms())

    def _flush_events(self) -> None:
        if not self.events:
            return
        batch, self.events = self.events, []
        body = messages.events_body(batch)
        rows = [(e.utc_ms, e.name, e.subject, e.detail) for e in batch]
        fut = self.db.submit(self._persist_events, body, rows)
        fut.add_done_callback(self._db_done)
        fut.add_done_callback(lambda _f: self._loop.call_soon_threadsafe(self.client.spooled))

    def _flush_counts(self, now: int) -> None:
        body = messages.dumps(on_utc(self.counts.flush(now), self.utc0))
        fut = self.db.submit(self.store.spool_append, "counts", body, utc_ms())
        fut.add_done_callback(self._db_done)
        fut.add_done_callback(lambda _f: self._loop.call_soon_threadsafe(self.client.spooled))

    # -- the control loop ------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _handle_outputs(self, out: Outputs, sent: Sequence[ControlCommand]) -> None:
        refs = deque(sent)
        status_changed = False
        for ev in out.events:
            utc = self.utc0 + ev.t_ms
            self.events.append(LogEvent(utc, ev.name, ev.subject, ev.detail, "control"))
            if ev.name in ("command_applied", "command_rejected") and refs:
                self._ack_verdict(refs.popleft(), ev)
            elif ev.name == "mode":
                status_changed = True
            elif ev.name == "plan_applied":
                status_changed = True
                if self.pending_apply is not None and ev.subject == self.pending_apply[1]:
                    version, _plan, corr = self.pending_apply
                    self.pending_apply = None
                    self.plan_version = version
                    self.stats.plans_applied += 1
                    self._ack(Ack(None, "plan", "applied", version=version, correlation=corr))
                    self._submit(self.store.mark_plan_applied, version, utc)
        if status_changed and self.client.client is not None:
            self._spawn(self.client.publish_now("status", self.birth(), qos=1, retain=True))

    async def control_loop(self, duration_s: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        t0 = loop.time()
        k = 0
        last_flush = 0
        last_wall: float | None = None
        spat_every = max(1, round(10 / self.cfg.spat_hz)) if self.cfg.spat_hz > 0 else 0
        end_k = None if duration_s is None else int(duration_s * 1000 / STEP_MS)
        while not self.stopping and (end_k is None or k < end_k):
            now = k * STEP_MS
            sent, self.queued = self.queued, []
            inp = self.demand.inputs(now, STEP_MS, self.out)
            if sent:
                inp = Inputs(inp.occupied, inp.actuations, tuple(c.command for c in sent))
            out = self.ctl.step(now, inp)
            self.counts.observe(now, inp, out)
            self._handle_outputs(out, sent)
            self.out = out
            wall = loop.time()
            st = self.stats
            st.ticks += 1
            if last_wall is not None:
                st.max_tick_gap_ms = max(st.max_tick_gap_ms, (wall - last_wall) * 1000)
            last_wall = wall
            if self.record_ticks:
                st.tick_times.append(wall)
            if spat_every and k % spat_every == 0:
                if self.client.client is not None:
                    payload = messages.spat(
                        self.device, k, self.utc0 + now, now, out, self.phase_ids
                    )
                    if await self.client.publish_now("spat", payload):
                        st.spat_sent += 1
                    else:
                        st.spat_dropped += 1
                else:
                    st.spat_dropped += 1
            for action in self.session.tick(utc_ms()):
                await self._act(action)
            if now % 1000 == 0:
                self._expire_priority(utc_ms())
            if now % 10_000 == 0 and self.config.schedule is not None:
                want = self._scheduled_plan()
                if want != self.scheduled:
                    self.scheduled = want
                    self.queued.append(ControlCommand(None, SetPlan(want)))
            if now - last_flush >= self.cfg.events_flush_ms:
                self._flush_events()
                last_flush = now
            if self.counts.due(now):
                self._flush_counts(now)
            k += 1
            delay = t0 + k * STEP_MS / 1000 - loop.time()
            if delay < -STEP_MS / 1000:  # fell behind by more than a step: skip ahead
                st.late_ticks += 1
                k = int((loop.time() - t0) * 1000 / STEP_MS)
                delay = 0
            await asyncio.sleep(max(0.0, delay))

    async def run(self, duration_s: float | None = None, drain_s: float = 2.0) -> None:
        """Run until `duration_s` (or `stopping`); then stop in order: spool what is
        buffered, give the sender `drain_s` to empty the spool, say "offline"."""
        self._loop = asyncio.get_running_loop()
        try:
            async with asyncio.TaskGroup() as tg:
                link = tg.create_task(self.client.run())
                await self.control_loop(duration_s)
                self._flush_events()
                await self._drain(drain_s)
                link.cancel()
        finally:
            self.db.shutdown(wait=True)
            self.store.close()

    async def _drain(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        await self._in_db(lambda: None)  # writes queued before now are done
        self.client.spooled()
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
                    timeout=2.0,
                )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.link.device", description=__doc__)
    parser.add_argument("config")
    parser.add_argument("--duration", type=float, default=None, help="seconds; default: forever")
    parser.add_argument("--stats", default=None, help="write run statistics (JSON) here at exit")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        cfg = load_device_config(args.config)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    rt = DeviceRuntime(cfg)

    async def go() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: setattr(rt, "stopping", True))
        await rt.run(args.duration)

    asyncio.run(go())
    if args.stats:
        st = rt.stats
        with open(args.stats, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "ticks": st.ticks,
                    "late_ticks": st.late_ticks,
                    "max_tick_gap_ms": st.max_tick_gap_ms,
                    "spat_sent": st.spat_sent,
                    "plans_applied": st.plans_applied,
                },
                fh,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
