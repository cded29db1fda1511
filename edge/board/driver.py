"""The controller and the board session together, with the recovery policy: sans-IO.

BoardDriver is everything the runner does except I/O: `tick(now_ms)` steps
the controller with the board's inputs and queues its channel map (the
OUTPUTS heartbeat, with the flash flag while the controller is in fault
flash); `receive(now_ms, data)` takes the board's bytes; `data_to_send()`
gives the bytes to write. Time is always an argument, so tests drive it over a
fake link with a virtual clock as well as the runner does over a pty.

Recovery policy (hw/PROTOCOL.md section 9: leaving flash is a logged
decision, never silent). Each time the board is found in flash holding our
config (session READY), once:
- after POWER_ON (it restarted) or WATCHDOG (it lost us): restart the
  controller's start-up sequence, with the board's flash counting as the
  start-up flash (its start is bounded by the last map sent plus the
  watchdog), and RECOVER at the tick the controller enters its start-up
  all-red; at most `max_recoveries_per_hour`, then stay in flash;
- after any other fault (the board refused a map, or the host asked for
  flash): stay in flash, put the controller in flash too, and say so; that
  recovery is an operator's. The driver remembers it: a later board reset
  or watchdog flash does not clear it (restarting the host process does).

Log lines start with a greppable event name: board_connected,
board_configured, board_fault, board_flash_latched, board_recover,
board_all_red, board_reset, board_silent, board_wait_flash, board_nak,
board_green_skipped, controller_restart, controller_mode, board_link_stats.

The output guard (guard.py) holds the lamps to the minimums of the site the
controller runs: set at start and again whenever new timing (LoadSite) takes
effect. A green or walk it had to skip is called again, so the core serves it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from edge.board.config import BoardConfig, board_config
from edge.board.guard import core_minimums
from edge.board.inputs import InputMap
from edge.board.session import (
    OUTPUT_STATES,
    RECOVERABLE_FAULTS,
    BoardReset,
    BoardSession,
    BoardStateChanged,
    BoardStatus,
    Configured,
    Event,
    Hello,
    Nak,
    Recovered,
    Resumed,
    Retry,
    SessionState,
    Silent,
    WaitingForFlash,
    channel_list,
    fault_class,
    fault_name,
    nak_name,
    state_name,
)
from edge.control.controller import Controller
from edge.control.messages import Flash, Inputs, LoadSite, Outputs, PlaceCall, SetPlan
from edge.control.site import SignalKind, Site
from hw import codec

log = logging.getLogger(__name__)

TICK_MS = 100
HOUR_MS = 3_600_000
_STATE_VALUES = {st: st.value for st in SessionState}  # (Enum's .value is a property call)
# Looked up once (an Enum member on its class is a Python-level call on 3.11).
_READY, _ALL_RED, _RUNNING, _CLOSED = (
    SessionState.READY,
    SessionState.ALL_RED,
    SessionState.RUNNING,
    SessionState.CLOSED,
)
_LOGGED_CONTROLLER_EVENTS = frozenset(
    {"mode", "fault_flash", "fault_recovered", "command_rejected", "input_error"}
)


@dataclass(frozen=True, slots=True)
class SentMap:
    """One tick's OUTPUTS: what the controller wanted and what went to the board."""

    t_ms: int
    seq: int
    wanted: tuple[int, ...]
    sent: tuple[int, ...]
    flash: bool
    session: str
    mode: str


class BoardDriver:
    """One site's controller driving one board, minus the port and the clock."""

    def __init__(
        self,
        site: Site,
        now_ms: int,
        *,
        config: BoardConfig | None = None,
        max_recoveries_per_hour: int = 10,
        port: str = "",
        recover_handover: bool = False,
    ) -> None:
        self.site = site
        self.port = port
        self.config = config if config is not None else board_config(site)
        self.session = BoardSession(self.config)
        self.session.guard.set_minimums(core_minimums(site))
        self._guarded_site = site  # the site whose minimums the guard holds the lamps to
        self.inputs = InputMap(site)
        self._grid_origin = now_ms
        self._last_ctl_ms = now_ms
        self.controller = Controller(site, now_ms)
        self.outputs: Outputs | None = None
        self._channels: tuple[object, ...] = ()  # the last Outputs.channels, and as ints:
        self._wanted: tuple[int, ...] = ()
        # The controller's last step: its time and the Inputs it stepped on (loops and
        # cameras merged), for the central link's counts.
        self.stepped: tuple[int, Inputs] | None = None
        self.max_recoveries_per_hour = max_recoveries_per_hour
        # edge run hands the board to flash on shutdown (HOST_FLASH); a new host process
        # finding the board so before it drove anything treats it as a start-up flash.
        self.recover_handover = recover_handover
        # The board's faults and fault records as events (t_ms, name, subject, detail), for
        # the central link to publish; bounded.
        self.board_events: deque[tuple[int, str, str, str]] = deque(maxlen=100)
        self.handing_over = False  # set by edge run's shutdown: HOST_FLASH is expected
        self._recoveries: deque[int] = deque()
        self._prev_state = _CLOSED
        self._flash_epoch = 0  # entries into READY (board in flash, holding our config)
        self._handled_epoch = 0
        self._recover_allowed = False
        self.latched_fault: int | None = None  # a safety fault seen: no automatic recovery
        self._last_drive_ms: int | None = None
        self._commands: list[object] = []
        # The cameras' merge (edge/vision/sensing.py): board Inputs and the last Outputs in,
        # the Inputs the controller steps on out. None: loops only.
        self.sense: Callable[[Inputs, Outputs | None], Inputs] | None = None
        # The neighbours' predicted arrivals (edge/link/outflow.py `Outflow.take`): the
        # controller's time in, a set for Inputs.arrivals or None out. None: no neighbours.
        self.arrivals: Callable[[int], tuple[tuple[int, int], ...] | None] | None = None
        self.recoveries = 0
        self.link_losses = 0
        self.guard_skipped = 0
        if site.startup_all_red_ms < self.config.max_red_ms + 2 * TICK_MS:
            log.info(
                "board_config_note startup_all_red_ms=%d board_all_red_ms=%d: the first greens "
                "wait for the board's all-red",
                site.startup_all_red_ms,
                self.config.max_red_ms,
            )

    # -- link events -------------------------------------------------------------------------

    def connect(self, now_ms: int) -> None:
        """A port is open: handshake from the start."""
        self.session.connect(now_ms)
        self._track_state()

    def disconnect(self, now_ms: int, reason: object) -> None:
        """The port is gone; the board flashes on its own within its watchdog."""
        was = self.session.state
        self.session.disconnect(now_ms)
        self._track_state()
        self.inputs.clear()
        if was is not _CLOSED:
            self.link_losses += 1
            log.warning(
                "board_link_lost port=%s error=%s: reconnecting; the board flashes on its own",
                self.port,
                reason,
            )

    def receive(self, now_ms: int, data: bytes) -> None:
        """Bytes from the board. Raises BoardRefusedError if it must not be driven."""
        self._handle(now_ms, self.session.receive(now_ms, data))
        self._track_state()

    def data_to_send(self) -> bytes:
        return self.session.data_to_send()

    def command(self, cmd: object) -> None:
        """An operator command for the controller's next step."""
        self._commands.append(cmd)

    # -- the tick -----------------------------------------------------------------------------

    def grid_ms(self, now_ms: int) -> int:
        """now_ms on the controller's 100 ms grid (nearest tick, never going back).

        The controller chains its intervals deadline to deadline, so it is
        stepped exactly on the grid; the wake-up jitter of the real clock
        stays out of its timing (and out of replays). The session and the
        guard keep real times: they are about when frames really went out.
        """
        since = now_ms - self._grid_origin
        k = since // TICK_MS if since % TICK_MS == 0 else round(since / TICK_MS)
        at = self._grid_origin + k * TICK_MS
        if at > self._last_ctl_ms:
            self._last_ctl_ms = at
        return self._last_ctl_ms

    def tick(self, now_ms: int) -> SentMap | None:
        """One 100 ms step: timeouts, recovery policy, controller step, OUTPUTS."""
        sent = self.advance(now_ms)
        if sent is None:
            return None
        seq, codes, flash = sent
        out = self.outputs
        assert out is not None  # advance() stepped the controller
        return SentMap(
            now_ms,
            seq,
            self._wanted,
            tuple(codes),
            flash,
            _STATE_VALUES[self.session.state],
            out.mode,
        )

    def advance(self, now_ms: int) -> tuple[int, list[int], bool] | None:
        """tick() without its SentMap, for a caller that keeps none (the lockstep):
        (seq, codes sent, flash) of the OUTPUTS sent, or None when none was."""
        s = self.session
        self._handle(now_ms, s.poll(now_ms))
        self._track_state()
        ctl_now = self.grid_ms(now_ms)
        if s.state is _READY and self._handled_epoch != self._flash_epoch:
            self._on_flash_epoch(now_ms, ctl_now)
        commands = tuple(self._commands)
        self._commands.clear()
        inputs = self.inputs.take(commands)
        if self.sense is not None:
            inputs = self.sense(inputs, self.outputs)
        if self.arrivals is not None:
            inputs = self._with_arrivals(ctl_now, inputs)
        out = self.controller.step(ctl_now, inputs)
        if self.controller.site is not self._guarded_site:
            # New timing in force (LoadSite): the lamps keep its minimums from this map on.
            self._guarded_site = self.controller.site
            s.guard.set_minimums(core_minimums(self._guarded_site))
        self.outputs = out
        self.stepped = (ctl_now, inputs)
        for ev in out.events:
            if ev.name in _LOGGED_CONTROLLER_EVENTS:
                log.info("controller_%s subject=%s detail=%s", ev.name, ev.subject, ev.detail)
        if s.state is _READY and self._recover_allowed and out.mode == "startup_all_red":
            self._recover_allowed = False
            self._recoveries.append(now_ms)
            self.recoveries += 1
            rec = s.recover(now_ms, f"automatic after {fault_name(s.board_fault)}")
            # Clearing the board's power-on flash is the normal start, not a fault.
            level = logging.INFO if rec.fault == codec.FAULT_POWER_ON else logging.WARNING
            log.log(
                level,
                "board_recover reason=%r clearing_fault=%s recoveries_last_hour=%d",
                rec.reason,
                fault_name(rec.fault),
                len(self._recoveries),
            )
            self._track_state()
        if s.state not in OUTPUT_STATES:
            return None
        if out.channels != self._channels:  # the map as ints, made again when it changes
            self._channels = out.channels
            self._wanted = tuple(int(c) for c in out.channels)
        wanted = self._wanted
        flash = out.mode == "fault_flash"
        seq = s.next_seq
        sent = s.send_outputs(now_ms, wanted, flash)
        if s.guard.skipped:
            self._call_skipped(s.guard.skipped)
            s.guard.skipped.clear()
        if s.state in (_ALL_RED, _RUNNING):
            self._last_drive_ms = now_ms
        return seq, sent, flash

    def _with_arrivals(self, ctl_now: int, inputs: Inputs) -> Inputs:
        """The neighbours' set, if one is due now. A source that fails is a bug outside
        the core: logged once and dropped, and the intersection runs on without it."""
        assert self.arrivals is not None
        try:
            pairs = self.arrivals(ctl_now)
        except Exception:
            log.exception("arrivals_failed: the neighbours' arrivals are off until a restart")
            self.arrivals = None
            return inputs
        return inputs if pairs is None else replace(inputs, arrivals=pairs)

    def _restart_controller(self, start_ms: int) -> None:
        """A fresh start-up sequence on the timing in force: the site and plan the old
        controller ran (central's, after a LoadSite), and the timing it had waiting."""
        old = self.controller
        self.controller = Controller(old.site, start_ms, plan=old.plan.id)
        if old.pending_site is not None and old.pending_plan is not None:
            self._commands.append(LoadSite(old.pending_site, old.pending_plan))
        elif old.pending_plan is not None:
            self._commands.append(SetPlan(old.pending_plan))

    def _call_skipped(self, channels: list[int]) -> None:
        """Greens and walks the lamps never showed (the guard held them past their end):
        the core is told, as a call, so that it serves them again."""
        for i in channels:
            self.guard_skipped += 1
            ch = self.site.channels[i]
            log.warning(
                "board_green_skipped channel=%d kind=%s source=%s: held by the guard past "
                "its end; the phase is called again",
                ch.id,
                ch.kind.value,
                ch.source,
            )
            if ch.kind is SignalKind.PHASE:
                self._commands.append(PlaceCall(int(ch.source)))
            elif ch.kind is SignalKind.PED:
                self._commands.append(PlaceCall(int(ch.source), ped=True))

    def _track_state(self) -> None:
        st = self.session.state
        if st is not self._prev_state:
            log.debug("board_session state=%s", st.value)
            if st is _READY:
                self._flash_epoch += 1
            self._prev_state = st

    def _on_flash_epoch(self, now: int, ctl_now: int) -> None:
        """The board is (again) in flash holding our config: decide, once, what to do."""
        self._handled_epoch = self._flash_epoch
        fault = self.session.board_fault
        while self._recoveries and now - self._recoveries[0] > HOUR_MS:
            self._recoveries.popleft()
        if (
            fault == codec.FAULT_HOST_FLASH
            and self.recover_handover
            and self._last_drive_ms is None
            and self.latched_fault is None
        ):
            log.info(
                "board_handover_found fault=HOST_FLASH: a previous host handed the board to "
                "flash; this start recovers it through the start-up sequence"
            )
            fault = codec.FAULT_POWER_ON
        if fault in RECOVERABLE_FAULTS and self.latched_fault is not None:
            # The board restarted or lost us after a safety fault: its memory of
            # the fault is gone, ours is not. Still an operator's decision.
            fault = self.latched_fault
        elif fault in RECOVERABLE_FAULTS:
            if len(self._recoveries) >= self.max_recoveries_per_hour:
                self._recover_allowed = False
                log.error(
                    "board_recover_refused fault=%s recoveries_last_hour=%d: policy limit; "
                    "staying in flash until an operator recovers",
                    fault_name(fault),
                    len(self._recoveries),
                )
                return
            since = now
            if fault == codec.FAULT_WATCHDOG and self._last_drive_ms is not None:
                # It flashed at the latest one watchdog after the last map we sent.
                since = min(now, self._last_drive_ms + self.config.watchdog_ms)
            # On the grid, rounded up: the start-up flash is never counted longer.
            flash_ms = max(0, (now - since) // TICK_MS * TICK_MS)
            self._restart_controller(ctl_now - flash_ms)
            self._recover_allowed = True
            log.info(
                "controller_restart reason=board_flash fault=%s flash_for_ms=%d: start-up "
                "sequence, the board's flash counting as start-up flash",
                fault_name(fault),
                now - since,
            )
            return
        self._recover_allowed = False
        self.latched_fault = fault
        log.error(
            "board_flash_latched fault=%s code=%d: safety fault; staying in flash until an "
            "operator recovers",
            fault_name(fault),
            fault,
        )
        if self.controller.mode not in ("flash", "fault_flash"):
            self._commands.append(Flash(on=True))

    # -- events from the session ------------------------------------------------------------------

    def _handle(self, now: int, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, BoardStatus):
                self.inputs.add(ev)
            elif isinstance(ev, Hello):
                if ev.record is not None and ev.record.boot:
                    log.warning("board_fault_record %s", ev.record.describe())
                    self.board_events.append(
                        (now, "board_fault_record", fault_name(ev.record.fault),
                         ev.record.describe())
                    )  # fmt: skip
                if ev.record is not None and ev.record.self_test == 1:
                    log.error("board_self_test FAILED: the board's lamp sensing failed its check")
                log.info(
                    "board_connected port=%s protocol=%d firmware=%s state=%s fault=%s "
                    "channels=%d config_hash=0x%08X",
                    self.port,
                    ev.version,
                    ev.firmware,
                    state_name(ev.state),
                    fault_name(ev.fault),
                    ev.channels,
                    ev.config_hash,
                )
            elif isinstance(ev, Configured):
                log.info(
                    "board_configured config_hash=0x%08X channels=%d (hash verified)",
                    ev.config_hash,
                    self.config.channels,
                )
            elif isinstance(ev, WaitingForFlash):
                log.warning(
                    "board_wait_flash state=%s config_hash=0x%08X: the board drives a map this "
                    "host did not send; waiting for its watchdog to flash it",
                    state_name(ev.state),
                    ev.config_hash,
                )
            elif isinstance(ev, Resumed):
                log.info("board_resumed state=%s", state_name(ev.state))
            elif isinstance(ev, Recovered):
                log.info(
                    "board_all_red: the board left flash; all red for %d ms, then it runs",
                    self.config.max_red_ms,
                )
            elif isinstance(ev, BoardStateChanged):
                self._on_board_state(ev, now)
            elif isinstance(ev, BoardReset):
                log.warning("board_reset: the board restarted (POWER_ON), config lost; handshake")
            elif isinstance(ev, Silent):
                log.warning(
                    "board_silent silent_ms=%d: no valid frame from the board; handshake again",
                    ev.silent_ms,
                )
            elif isinstance(ev, Nak):
                log.warning(
                    "board_nak type=0x%02X seq=%d reason=%s",
                    ev.msg_type,
                    ev.seq,
                    nak_name(ev.reason),
                )
            elif isinstance(ev, Retry):
                log.debug("board_retry what=%s attempt=%d", ev.what, ev.attempt)

    def _on_board_state(self, ev: BoardStateChanged, now: int = 0) -> None:
        old = state_name(ev.old) if ev.old is not None else "UNKNOWN"
        log.info(
            "board_state old=%s new=%s fault=%s", old, state_name(ev.new), fault_name(ev.fault)
        )
        if ev.new == codec.STATE_FLASH and ev.fault not in (codec.FAULT_NONE, codec.FAULT_POWER_ON):
            level = logging.WARNING if ev.fault in RECOVERABLE_FAULTS else logging.ERROR
            if ev.fault == codec.FAULT_HOST_FLASH and self.handing_over:
                level = logging.INFO
            ids = [ch.id for ch in self.site.channels]
            chans = ",".join(
                str(ids[c]) for c in channel_list(self.session.fault_channels) if c < len(ids)
            )
            log.log(
                level,
                "board_fault fault=%s code=%d class=%r channels=%s: board in flash",
                fault_name(ev.fault),
                ev.fault,
                fault_class(ev.fault),
                chans or "-",
            )
            self.board_events.append(
                (now, "board_fault", fault_name(ev.fault),
                 f"{fault_class(ev.fault)}; channels {chans or '-'}")
            )  # fmt: skip

    def stats(self) -> dict[str, int]:
        s = self.session
        c = s.decoder_counters
        return {
            "frames_sent": s.frames_sent,
            "outputs_sent": s.outputs_sent,
            "status_received": s.status_received,
            "host_dropped": s.dropped,
            "bad_crc": c["bad_crc"],
            "bad_cobs": c["bad_cobs"],
            "bad_length": c["bad_length"],
            "board_rx_errors": s.board_rx_errors,
            "retries": s.retries,
            "silences": s.silences,
            "link_losses": self.link_losses,
            "recoveries": self.recoveries,
            "guard_held": s.guard.held,
            "guard_skipped": self.guard_skipped,
        }

    def log_stats(self) -> None:
        log.info("board_link_stats %s", " ".join(f"{k}={v}" for k, v in self.stats().items()))
