"""The asyncio shell around BoardDriver: a 10 Hz ticker and a serial link that reconnects.

Two named tasks under one TaskGroup:

- `board-ticker` calls BoardDriver.tick() every 100 ms on the monotonic clock
  (deadline-based, so ticks do not drift; a late tick is logged as
  tick_overrun) and writes what it queued;
- `board-link` opens the port (pyserial-asyncio-fast, see transport.py),
  hands every byte to the driver as it arrives, and when the port fails or
  vanishes reconnects with the project's backoff (edge/backoff.py: jittered,
  capped at 5 s); meanwhile the board flashes by itself (its watchdog). Any
  other error while opening or holding the port is logged (board_link_error)
  and retried the same way: only a refusal or a stop ends the link.

The policy (when to recover, what to log) is the driver's. A board the
driver refuses (other protocol version, another config hash, CONFIG refused)
ends the runner with exit code 3; the board stays in flash. SIGINT/SIGTERM
end it with 0: the host just stops sending and the board's watchdog puts the
intersection in flash, the same path as a host that dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from edge.backoff import Backoff
from edge.board.config import BoardConfigError, board_config
from edge.board.driver import TICK_MS, BoardDriver, SentMap
from edge.board.session import OUTPUT_STATES, BoardRefusedError, SessionState
from edge.board.transport import BAUDRATE, SerialLink, open_link
from edge.control.site import Site

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_REFUSED = 3
STATS_EVERY_MS = 10_000
RECONNECT_FIRST_S = 0.2
RECONNECT_CAP_S = 5.0


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


class BoardRunner:
    """Runs one BoardDriver on one serial port until stop() or a refusal."""

    def __init__(
        self,
        site: Site,
        port: str,
        *,
        baudrate: int = BAUDRATE,
        trace: IO[str] | None = None,
        clock_ms: Callable[[], int] = monotonic_ms,
        backoff: Backoff | None = None,
    ) -> None:
        self.port = port
        self.baudrate = baudrate
        self.clock_ms = clock_ms
        self.trace = trace
        self.driver = BoardDriver(site, clock_ms(), port=port)
        self._link: SerialLink | None = None
        self._refused: BoardRefusedError | None = None
        # Between attempts to open the port; reset only once the board answers.
        self.backoff = backoff or Backoff(RECONNECT_FIRST_S, RECONNECT_CAP_S, floor_s=0.05)
        self._last_error = ""
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> int:
        """Run until stop() (exit 0) or until the board is refused (exit 3)."""
        cfg = self.driver.config
        log.info(
            "board_runner_start port=%s site=%s channels=%d config_hash=0x%08X watchdog_ms=%d",
            self.port,
            self.driver.site.id,
            cfg.channels,
            cfg.config_hash,
            cfg.watchdog_ms,
        )
        refused: BaseException | None = None
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._ticker(), name="board-ticker")
                tg.create_task(self._link_keeper(), name="board-link")
        except* BoardRefusedError as group:
            refused = group.exceptions[0]
        finally:
            self.driver.log_stats()
        if refused is not None:
            log.error("board_refused port=%s: %s; refusing to run", self.port, refused)
            return EXIT_REFUSED
        log.info("board_runner_stop: the board goes to flash by its own watchdog")
        return EXIT_OK

    @property
    def link(self) -> SerialLink | None:
        """The open port, if any."""
        return self._link

    async def keep_link(self) -> None:
        """The link task alone (edge run supervises its own ticker)."""
        await self._link_keeper()

    def flush(self) -> None:
        """Write what the driver queued."""
        self._flush()

    def _running(self) -> bool:
        """False when the runner must end; raises a refusal into the TaskGroup."""
        if self._refused is not None:
            raise self._refused
        return not self._stop.is_set()

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        if self._stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, seconds))

    # -- the ticker ---------------------------------------------------------------------------

    async def _ticker(self) -> None:
        next_s = time.monotonic()
        last_stats = self.clock_ms()
        while self._running():
            now = self.clock_ms()
            sent = self.driver.tick(now)
            t_write = time.monotonic()
            self._flush()
            if sent is not None and self.trace is not None:
                self._write_trace(sent, t_write)
            if now - last_stats >= STATS_EVERY_MS:
                last_stats = now
                self.driver.log_stats()
            next_s += TICK_MS / 1000
            late = time.monotonic() - next_s
            if late > TICK_MS / 1000:
                log.warning("tick_overrun late_ms=%d", int(late * 1000))
                next_s = time.monotonic()
            await self._sleep(next_s - time.monotonic())

    def _write_trace(self, m: SentMap, t_write: float) -> None:
        assert self.trace is not None
        record = {
            "t": t_write,  # monotonic s, just before the frame was written
            "t_ms": m.t_ms,
            "seq": m.seq,
            "wanted": list(m.wanted),
            "sent": list(m.sent),
            "flash": m.flash,
            "session": m.session,
            "mode": m.mode,
        }
        self.trace.write(json.dumps(record) + "\n")

    # -- the link -----------------------------------------------------------------------------

    async def _link_keeper(self) -> None:
        while self._running():
            stop_wait = asyncio.create_task(self._stop.wait(), name="board-link-stop")
            try:
                async with open_link(self.port, self._on_data, self.baudrate) as link:
                    self._link = link
                    log.info("board_link_open port=%s", self.port)
                    self.driver.connect(self.clock_ms())
                    self._flush()
                    waiters: list[asyncio.Future[Any]] = [link.lost, stop_wait]
                    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    if link.lost.done():
                        exc = link.lost.result()
                        raise ConnectionError(str(exc) if exc else "port closed")
            except OSError as exc:  # SerialException is an OSError; so is ConnectionError
                if self.driver.session.state is SessionState.CLOSED:
                    log.debug("board_link_unavailable port=%s error=%s", self.port, exc)
                self.driver.disconnect(self.clock_ms(), exc)
            except BoardRefusedError:
                raise
            except Exception as exc:
                # Not a port error we know: a port name pyserial cannot open, termios.error
                # from a device that vanished mid-open, a bug. Logged (the traceback once per
                # new error) and retried like a lost port; the board flashes by its own
                # watchdog meanwhile. Only a refusal or stop() ends the link.
                new = repr(exc) != self._last_error
                self._last_error = repr(exc)
                log.error(
                    "board_link_error port=%s error=%r: retrying", self.port, exc, exc_info=new
                )
                self.driver.disconnect(self.clock_ms(), exc)
            finally:
                self._link = None
                stop_wait.cancel()
            if not self._running():
                return
            delay = self.backoff.next_delay()
            log.info("board_reconnect_wait port=%s delay_s=%.2f", self.port, delay)
            await self._sleep(delay)

    def _on_data(self, data: bytes) -> None:
        try:
            self.driver.receive(self.clock_ms(), data)
        except BoardRefusedError as exc:
            self._refused = exc
            self._stop.set()
            self._wake.set()
            return
        if self.driver.session.state in OUTPUT_STATES:
            self.backoff.reset()  # only a board that answered counts as back
            self._last_error = ""
        self._flush()

    def _flush(self) -> None:
        data = self.driver.data_to_send()
        link = self._link
        if data and link is not None and link.is_open:
            try:
                link.write(data)
            except OSError as exc:
                log.debug("board_write_failed error=%s", exc)
                link.close()


def run_board(
    site_path: str | Path,
    port: str,
    *,
    baudrate: int = BAUDRATE,
    trace_path: str | Path | None = None,
) -> int:
    """`edge board run`: load the site, run until SIGINT/SIGTERM; returns the exit code."""
    import signal

    from edge.config import ConfigError, load_site

    try:
        site = load_site(site_path)
        board_config(site)
    except (ConfigError, BoardConfigError) as exc:
        log.error("config_error %s: %s", site_path, exc)
        return EXIT_CONFIG

    async def main() -> int:
        trace = open(trace_path, "w", buffering=1) if trace_path else None  # noqa: SIM115
        try:
            runner = BoardRunner(site, port, baudrate=baudrate, trace=trace)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, runner.stop)
            return await runner.run()
        finally:
            if trace is not None:
                trace.close()

    return asyncio.run(main())
