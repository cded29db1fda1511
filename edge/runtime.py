"""`edge run`: the device runtime, one asyncio supervisor with named tasks.

Tasks under one TaskGroup (STYLE.md point 7):

- `board-link`: the IO-board port (BoardRunner's link keeper: reconnects with
  jittered backoff, feeds every byte to the sans-IO BoardDriver);
- `control-tick`: BoardDriver.tick() at 10 Hz on the monotonic clock,
  deadline to deadline; the wake-up lateness of every tick (actual minus
  planned time) is the tick jitter, logged as p50/p99 every minute;
- `schedule`: the time-of-day schedule on the local clock; a SetPlan when
  the scheduled plan changes;
- `status`: a status line every STATUS_EVERY_S (mode, board, jitter);
- one task per extension (edge/extensions.py: the central link, the event log,
  the page, the cameras, the systemd watchdog, each built by edge/assemble.py for
  `edge run`), named by it; the runtime knows none of them by name. Those that
  need every tick get it as tick hooks (edge/tickhooks.py): the tick hands each an
  immutable snapshot through a bounded queue and never waits on it; each runs in
  its own thread, a failing one is logged and after repeated failures disabled, a
  slow one loses its oldest ticks (counted, logged, reported to it): nothing
  outside the control core can delay or stop the tick;
- `supervisor`: waits for the stop request (1 s at a time, checking that the
  control tick still ticks: none for 2 s is an error), then runs the one
  shutdown path.

The `status` task and the extensions (those with `restarts`, the default) are
outside local control: one that fails or ends is logged (`task_failed`,
`task_ended`) and started again after a capped backoff (edge/backoff.py,
`task_restart`), and the intersection runs on without it meanwhile; a new
central link is built on each start (it restores its plans and priority book
from the store).

The one shutdown path: SIGTERM/SIGINT, a board refusal or any unexpected
error in an essential task all come to `_shutdown`: the ticker stops, the board is
handed to flash (an OUTPUTS with the flash flag; its STATUS confirms it,
waited for with a timeout; if the port is gone the board's own watchdog
flashes it), the exit is logged with its reason (`runtime_exit reason=...
code=...`), and the exit code is 0 for a signal, 1 for an error, 3 for a
refused board. Every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import statistics
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from edge.backoff import Backoff
from edge.board.driver import TICK_MS
from edge.board.runner import EXIT_CONFIG, EXIT_REFUSED, BoardRunner
from edge.board.session import (
    BoardRefusedError,
    channel_list,
    fault_class,
    fault_name,
    state_name,
)
from edge.config import SiteConfig
from edge.control.messages import SetPlan
from edge.extensions import Extension
from edge.tickhooks import HOOK_DRAIN_S, Tick, TickHook, TickHooks
from edge.web import LOOPBACK
from hw import codec

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_ERROR = 1
STATUS_EVERY_S = 10.0
JITTER_EVERY_S = 60.0
SCHEDULE_POLL_S = 1.0
HANDOVER_TIMEOUT_S = 1.0
SUPERVISE_EVERY_S = 1.0
TICK_STALL_S = 2.0  # no tick for this long: the control task is stuck; shut down
# The runtime's own task outside local control: a failure restarts it (as an extension's).
RESTARTING = frozenset({"status"})
E = TypeVar("E", bound=Extension)
RESTART_MIN_S = 1.0
RESTART_MAX_S = 60.0

# Test-only fault injection: EDGE_RUNTIME_FAIL=<task>:<seconds> raises in that task after
# that long; control-tick-hang:<seconds> makes the ticker hang instead.
FAIL_ENV = "EDGE_RUNTIME_FAIL"


class InjectedFault(RuntimeError):
    """Raised by a task when EDGE_RUNTIME_FAIL names it (tests of the shutdown path)."""


class SensingView(Protocol):
    """The cameras as other parts of the runtime (the technician's page) see them.

    `cameras()` gives one dict per camera: id, health (ok, disconnected, frozen,
    dark, obstructed, moved), reliable, fps, zones (id, polygon [[x, y], ...] in
    frame pixels, presence, count, queue_veh, queue_m, reliable) and detections
    (box [x1, y1, x2, y2], cls, score). `camera_jpeg(id)` is the newest frame as
    JPEG, None while there is none.
    """

    def cameras(self) -> list[dict[str, Any]]: ...

    def camera_jpeg(self, camera_id: str) -> bytes | None: ...


class ExtensionError(ValueError):
    """An extension cannot be added (a name taken by another task)."""


class LinkView(Protocol):
    """The central link as the page and `edge status` see it: connected, broker,
    last plan version, spool depth, last error."""

    def link_status(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class WebOptions:
    """The technician's page (`edge run --web PORT`): where it listens, whose credentials.
    It listens on loopback unless another address or an interface is chosen, and off
    loopback over TLS only unless `insecure` (edge/web/listen.py has the rules)."""

    port: int
    host: str = LOOPBACK
    credentials: str | None = None
    interface: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class Jitter:
    """Tick lateness over a window, in ms."""

    ticks: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def jitter_of(samples_ms: list[float]) -> Jitter:
    if not samples_ms:
        return Jitter(0, 0.0, 0.0, 0.0)
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return Jitter(len(ordered), statistics.median(ordered), p99, ordered[-1])


class Runtime:
    """One site, one board port, until a signal, a refusal or an error."""

    def __init__(
        self,
        config: SiteConfig,
        port: str,
        *,
        wall_clock: Callable[[], dt.datetime] = dt.datetime.now,
        status_path: str | None = None,
        speed: float = 1.0,
        config_path: str | None = None,
        extensions: Iterable[Extension] = (),
    ) -> None:
        self.config = config
        # The site file `edge run --config` was given (None: a derived config, as in
        # simulation): the technician's page saves camera zone edits to it.
        self.config_path = config_path
        self.site = config.site
        # speed != 1 only in simulation: the runtime's clock runs `speed` times the wall
        # (ticks every 100/speed ms of wall time); jitter stays in wall ms.
        self.speed = speed
        self.board = BoardRunner(
            config.site, port, clock_ms=lambda: int(time.monotonic() * speed * 1000)
        )
        self.driver = self.board.driver
        self.driver.recover_handover = True
        self.wall_clock = wall_clock
        self.hooks = TickHooks()
        self.status_path = status_path
        self.status_every_s = STATUS_EVERY_S
        self.extensions: dict[str, Extension] = {}
        # Set by the cameras and central-link extensions (None: not configured).
        self.sensing: SensingView | None = None
        self.link: LinkView | None = None
        self._stop = asyncio.Event()
        self._ticking = True
        self.reason = ""
        self.code = EXIT_OK
        self._window: deque[float] = deque(maxlen=int(JITTER_EVERY_S * 1000 / TICK_MS))
        self.jitter_all = Jitter(0, 0.0, 0.0, 0.0)
        self._all_samples: list[float] = []
        self.ticks = 0
        self.plan = ""
        self._fail = _parse_fail(os.environ.get(FAIL_ENV, ""))
        self._started = time.monotonic()
        for ext in extensions:
            self.add(ext)

    def add(self, ext: E) -> E:
        """Take an extension (before run): it is wired in now (ext.start), its task and
        tick hook run with the runtime (edge/extensions.py)."""
        if not ext.name or ext.name in self.extensions or ext.name in OWN_TASKS:
            raise ExtensionError(f"extension name {ext.name!r} is empty or taken")
        ext.start(self)
        self.extensions[ext.name] = ext
        return ext

    def hook_for(self, ext: Extension) -> TickHook:
        """Add ext's tick hook (its task's start does, before run())."""
        return self.add_tick_hook(
            ext.name,
            ext.on_tick,
            queue_ticks=ext.queue_ticks,
            on_dropped=ext.ticks_dropped,
            on_disabled=ext.ticks_stopped,
        )

    def end_ticks(self, ext: Extension) -> None:
        """End ext's tick hook after its queued ticks are handled (within HOOK_DRAIN_S);
        blocking: call it through asyncio.to_thread. A later start adds a new one."""
        hook = self.hooks.remove(ext.name)
        if hook is not None:
            hook.stop(HOOK_DRAIN_S)

    @property
    def stopping(self) -> asyncio.Event:
        """Set once a stop is requested (tasks of other modules wait on it)."""
        return self._stop

    # -- control ----------------------------------------------------------------------------

    def add_tick_hook(
        self,
        name: str,
        fn: Callable[[Tick], None],
        *,
        queue_ticks: int | None = None,
        on_dropped: Callable[[int], None] | None = None,
        on_disabled: Callable[[], None] | None = None,
    ) -> TickHook:
        """Call fn(tick) after every control tick, in its own thread (edge/tickhooks.py)."""
        kw: dict[str, Any] = {"on_dropped": on_dropped, "on_disabled": on_disabled}
        if queue_ticks is not None:
            kw["queue_ticks"] = queue_ticks
        return self.hooks.add(name, fn, **kw)

    def tick_snapshot(self) -> Tick:
        """This tick as the hooks get it."""
        return Tick.of(self.ticks, time.monotonic(), self.driver)

    def request_stop(self, reason: str, code: int = EXIT_OK) -> None:
        """Ask for the shutdown path; the first reason wins."""
        if not self._stop.is_set():
            self.reason, self.code = reason, code
            log.info("runtime_stop_requested reason=%s", reason)
            self._stop.set()

    def status(self) -> dict[str, Any]:
        """A snapshot for the local status page and the log."""
        out = self.driver.outputs
        s = self.driver.session
        window = jitter_of(list(self._window))
        return {
            "site": self.site.id,
            "plan": self.plan,
            "mode": out.mode if out is not None else "none",
            # free / coordinated / adaptive, and why (plan, central or local command)
            "control": out.control if out is not None else "none",
            "control_reason": out.control_reason if out is not None else "",
            "detector_faults": list(out.detector_faults) if out is not None else [],
            "session": s.state.value,
            "board_state": state_name(s.board_state) if s.board_state is not None else "UNKNOWN",
            "ticks": self.ticks,
            "jitter_ms": {"p50": window.p50_ms, "p99": window.p99_ms, "max": window.max_ms},
            "board_fault": fault_name(s.board_fault),
            "board_fault_class": fault_class(s.board_fault),
            "board_fault_channels": [
                self.site.channels[c].id
                for c in channel_list(s.fault_channels)
                if c < len(self.site.channels)
            ],
            "board_fault_record": s.fault_record.describe() if s.fault_record else None,
            "board_firmware": s.firmware,
            "board_config_hash": f"{s.config_hash:08x}",
            "link": self.link.link_status() if self.link is not None else None,
            "hooks": self.hooks.health(),
            "cameras": (
                [{k: c.get(k) for k in ("id", "health", "fps")} for c in self.sensing.cameras()]
                if self.sensing is not None
                else None
            ),
        } | {k: v for ext in self.extensions.values() for k, v in ext.status_fields().items()}

    # -- the supervisor ----------------------------------------------------------------------

    async def run(self) -> int:
        log.info("runtime_start site=%s port=%s", self.site.id, self.board.port)
        tasks: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "board-link": self._board_link,
            "control-tick": self._ticker,
            "schedule": self._schedule,
            "status": self._status,
        }
        restarting = set(RESTARTING)
        for name, ext in self.extensions.items():
            tasks[name] = self._extension_task(ext)
            if ext.restarts:
                restarting.add(name)
        self.hooks.start()
        try:
            async with asyncio.TaskGroup() as tg:
                for name, fn in tasks.items():
                    tg.create_task(self._guarded(name, fn, name in restarting), name=name)
                tg.create_task(self._supervisor(), name="supervisor")
        except* _Shutdown:
            pass
        finally:
            self.hooks.request_stop()  # drained already on the shutdown path
            for ext in self.extensions.values():
                try:
                    ext.stop()
                except Exception as exc:
                    log.exception("extension_stop_failed extension=%s error=%r", ext.name, exc)
            self._log_jitter(final=True)
            self.driver.log_stats()
        level = logging.INFO if self.code == EXIT_OK else logging.ERROR
        log.log(level, "runtime_exit reason=%s code=%d", self.reason, self.code)
        return self.code

    def _extension_task(self, ext: Extension) -> Callable[[], Coroutine[Any, Any, None]]:
        """One start of ext's task: its tick hook (with ticks) is added before run() with
        no await between (no tick missed) and removed, its queue handled, when it ends."""

        async def one_start() -> None:
            if ext.ticks and ext.name not in self.hooks.hooks:
                self.hook_for(ext)
            try:
                await ext.run()
            finally:
                # on the shutdown path the supervisor has drained every hook already
                if ext.ticks and ext.name in self.hooks.hooks and not self._stop.is_set():
                    await asyncio.shield(asyncio.to_thread(self.end_ticks, ext))

        return one_start

    async def _guarded(
        self, name: str, fn: Callable[[], Coroutine[Any, Any, None]], restarts: bool = False
    ) -> None:
        """Run one task; any error in it becomes a stop request (the one shutdown path),
        except in one that restarts, which is started again (_restarting)."""
        if restarts:
            await self._restarting(name, fn)
            return
        try:
            await fn()
        except asyncio.CancelledError:
            raise
        except BoardRefusedError as exc:
            log.error("board_refused port=%s: %s; refusing to run", self.board.port, exc)
            self.request_stop("board_refused", EXIT_REFUSED)
        except Exception as exc:
            log.exception("task_failed task=%s error=%r", name, exc)
            self.request_stop(f"task_failed:{name}:{type(exc).__name__}", EXIT_ERROR)
        else:
            if not self._stop.is_set():
                self.request_stop(f"task_ended:{name}", EXIT_ERROR)

    async def _restarting(self, name: str, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """An extension: logged and started again after a backoff until the runtime stops."""
        backoff = Backoff(RESTART_MIN_S, RESTART_MAX_S)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("task_failed task=%s error=%r: the intersection runs on", name, exc)
            else:
                if self._stop.is_set():
                    return
                log.error("task_ended task=%s: the intersection runs on", name)
            if time.monotonic() - started > RESTART_MAX_S:
                backoff.reset()  # it ran a good while: a new failure starts the backoff over
            delay = backoff.next_delay()
            log.info("task_restart task=%s in_s=%.1f", name, delay)
            if await self._wait_stop(delay):
                return

    async def _supervisor(self) -> None:
        """Wait for a stop request (1 s at a time) and watch that the ticker still ticks."""
        last_ticks, last_s = self.ticks, time.monotonic()
        while not await self._wait_stop(SUPERVISE_EVERY_S):
            now_s = time.monotonic()
            if self.ticks != last_ticks:
                last_ticks, last_s = self.ticks, now_s
            elif now_s - last_s > TICK_STALL_S:
                log.error("tick_stalled for_s=%.1f: the control tick stopped", now_s - last_s)
                self.request_stop("tick_stalled", EXIT_ERROR)
            self.hooks.check()
        await self._shutdown()
        # The board is in flash: the hooks handle what is queued (the event log and
        # central's spool get the last ticks) before their tasks are cancelled.
        await asyncio.to_thread(self.hooks.stop, HOOK_DRAIN_S)
        raise _Shutdown

    async def _shutdown(self) -> None:
        self._ticking = False
        try:
            await asyncio.wait_for(self._handover(), HANDOVER_TIMEOUT_S)
        except TimeoutError:
            log.warning(
                "shutdown_handover_unconfirmed: no STATUS within %.1f s; the board flashes by "
                "its own watchdog (%d ms)",
                HANDOVER_TIMEOUT_S,
                self.driver.config.watchdog_ms,
            )
        self.board.stop()

    async def _handover(self) -> None:
        """Flash flag in one OUTPUTS; wait until the board reports flash."""
        s = self.driver.session
        link = self.board.link
        if s.board_state is None:
            # No board ever answered (none attached, as in a self-test without one).
            log.info("shutdown_handover no_board: no board answered during this run")
            return
        if link is None or not link.is_open:
            log.warning("shutdown_handover port_closed: the board flashes by its own watchdog")
            return
        out = self.driver.outputs
        wanted = [int(c) for c in out.channels] if out is not None else []
        self.driver.handing_over = True
        wanted = wanted or [0] * self.driver.config.channels
        if not s.send_outputs(self.board.clock_ms(), wanted, True):
            log.warning(
                "shutdown_handover session=%s: no OUTPUTS allowed; board flashes by watchdog",
                s.state.value,
            )
            return
        self.board.flush()
        while s.board_state != codec.STATE_FLASH:
            await asyncio.sleep(0.01)
        log.info("shutdown_handover board_state=FLASH: the intersection is in flash")

    # -- tasks -----------------------------------------------------------------------------

    async def _board_link(self) -> None:
        await self.board.keep_link()

    async def _wait_stop(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True if a stop was requested meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, seconds))
        return self._stop.is_set()

    async def _ticker(self) -> None:
        period_s = TICK_MS / 1000 / self.speed
        next_s = time.monotonic()
        last_jitter = next_s
        while self._ticking:
            now_s = time.monotonic()
            late_ms = (now_s - next_s) * 1000
            self._window.append(late_ms)
            self._all_samples.append(late_ms)
            self.driver.tick(int(now_s * self.speed * 1000))
            self.board.flush()
            self.ticks += 1
            if self.hooks:  # a snapshot into each hook's queue; never waits on a hook
                self.hooks.publish(Tick.of(self.ticks, now_s, self.driver))
            self._check_fail("control-tick")
            if self._fail_due("control-tick-hang"):
                await asyncio.sleep(3600)  # test only: a tick that never comes back
            if now_s - last_jitter >= JITTER_EVERY_S:
                last_jitter = now_s
                self._log_jitter()
            next_s += period_s
            if time.monotonic() - next_s > period_s:
                log.warning("tick_overrun late_ms=%d", int((time.monotonic() - next_s) * 1000))
                next_s = time.monotonic()
            if await self._wait_stop(next_s - time.monotonic()):
                return

    def _log_jitter(self, final: bool = False) -> None:
        if final:
            j = jitter_of(self._all_samples)
            self.jitter_all = j
            what = "tick_jitter_total"
        else:
            j = jitter_of(list(self._window))
            what = "tick_jitter"
            if len(self._all_samples) > 1_000_000:
                self._all_samples = self._all_samples[-100_000:]
        log.info(
            "%s ticks=%d p50_ms=%.2f p99_ms=%.2f max_ms=%.2f",
            what,
            j.ticks,
            j.p50_ms,
            j.p99_ms,
            j.max_ms,
        )

    async def _schedule(self) -> None:
        schedule = self.config.schedule
        self.plan = self.driver.controller.plan.id
        while True:
            if schedule is not None:
                wanted = schedule.plan_at(self.wall_clock())
                if wanted and wanted != self.plan:
                    log.info("schedule_plan from=%s to=%s", self.plan, wanted)
                    self.driver.command(SetPlan(wanted))
                    self.plan = wanted
            self._check_fail("schedule")
            if await self._wait_stop(SCHEDULE_POLL_S):
                return

    async def _status(self) -> None:
        while not await self._wait_stop(min(self.status_every_s, self._fail_s("status"))):
            self._check_fail("status")
            st = self.status()
            j = st["jitter_ms"]
            log.info(
                "runtime_status plan=%s mode=%s control=%s session=%s board=%s ticks=%d "
                "jitter_p50_ms=%.2f jitter_p99_ms=%.2f",
                st["plan"],
                st["mode"],
                st["control"],
                st["session"],
                st["board_state"],
                st["ticks"],
                j["p50"],
                j["p99"],
            )
            if self.status_path:
                self._write_status(st)

    def _write_status(self, st: dict[str, Any]) -> None:
        """The snapshot as JSON for the local status page (replaced atomically)."""
        tmp = f"{self.status_path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(st, f)
        os.replace(tmp, str(self.status_path))

    # -- test-only fault injection -------------------------------------------------------------

    def _fail_s(self, task: str) -> float:
        if self._fail is not None and self._fail[0] == task:
            return max(0.05, self._fail[1] - time.monotonic() + self._started)
        return STATUS_EVERY_S

    def _fail_due(self, what: str) -> bool:
        f = self._fail
        return f is not None and f[0] == what and time.monotonic() - self._started >= f[1]

    def _check_fail(self, task: str) -> None:
        if self._fail_due(task):
            raise InjectedFault(f"{FAIL_ENV} asked task {task} to fail")


OWN_TASKS = frozenset({"board-link", "control-tick", "schedule", "status", "supervisor"})


class _Shutdown(Exception):
    """Raised by the supervisor task after the shutdown path: ends the TaskGroup."""


def _parse_fail(text: str) -> tuple[str, float] | None:
    if not text:
        return None
    task, _, after = text.partition(":")
    return task, float(after or 0)


def install_signals(rt: Runtime) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, rt.request_stop, f"signal:{signal.Signals(sig).name}")


def run_site(
    config_path: str,
    port: str,
    status_path: str | None = None,
    device_path: str | None = None,
    status_every_s: float = STATUS_EVERY_S,
    web: WebOptions | None = None,
    snmp_port: int | None = None,
) -> int:
    """`edge run --config SITE --port DEV [--device DEVICE.toml]`: load, run until a signal
    or an error, with the extensions edge/assemble.py builds from the site, the device
    file and the options (central link, event log, page, cameras, systemd watchdog)."""
    from edge.assemble import SetupError, edge_run_extensions
    from edge.board.config import BoardConfigError, board_config
    from edge.config import ConfigError, load_config
    from edge.device.notify import notify

    try:
        config = load_config(config_path)
        board_config(config.site)
    except (ConfigError, BoardConfigError, ValueError, OSError) as exc:
        log.error("config_error %s: %s", config_path, exc)
        return EXIT_CONFIG

    async def main() -> int:
        try:
            extensions = edge_run_extensions(config, device_path, web, snmp_port=snmp_port)
        except SetupError as exc:
            log.error("config_error %s", exc)
            return EXIT_CONFIG
        rt = Runtime(
            config, port, status_path=status_path, config_path=config_path, extensions=extensions
        )
        rt.status_every_s = status_every_s
        install_signals(rt)
        code = await rt.run()
        notify("STOPPING=1")
        return code

    return asyncio.run(main())
