"""Sans-IO session with the IO board: handshake, sequence numbers, config check, STATUS, timeouts.

Bytes and a time go in (`receive(now_ms, data)`, `poll(now_ms)`), events come
out, and the bytes to write wait in `data_to_send()`. No clock, no port, no
asyncio: the runner (edge/board/runner.py) and the tests drive it. Frames are
made and parsed by the one wire codec, hw/codec.py; hw/PROTOCOL.md is the
contract. The rules this state machine keeps:

  state        what the host believes           leaves on
  CLOSED       no link                          connect()          -> HELLO
  HELLO        HELLO sent, no answer yet        HELLO_REPLY:
                                                  other protocol   -> REFUSED (BoardVersionError)
                                                  board FLASH      -> CONFIG (CONFIG sent)
                                                  ALL_RED/RUNNING, our hash, and this
                                                  session drove it within the watchdog
                                                                   -> ALL_RED/RUNNING (resume)
                                                  ALL_RED/RUNNING otherwise
                                                                   -> WAIT_FLASH
  WAIT_FLASH   another host's map may be shown  HELLO_REPLY with FLASH -> CONFIG. Nothing
               (we cannot know it, so we must   is sent but HELLO: the board's watchdog
               not drive it)                    puts it in flash by itself.
  CONFIG       CONFIG sent                      CONFIG_ACK with our hash -> READY;
                                                another hash or NAK_BAD_CONFIG -> REFUSED
  READY        board in FLASH, holding our      recover(reason)    -> RECOVER
               config; OUTPUTS are answered
               but change nothing
  RECOVER      RECOVER sent                     ACK (or a STATUS in ALL_RED/RUNNING) -> ALL_RED;
                                                NAK_HASH_MISMATCH -> REFUSED
  ALL_RED      board's start-up all-red         STATUS RUNNING     -> RUNNING
  RUNNING      board drives our maps            STATUS FLASH       -> READY (fault kept in
                                                                      board_fault), or HELLO
                                                                      if it reset (POWER_ON)
  any but CLOSED/REFUSED: nothing valid from the board for silence_ms -> HELLO (Silent)

Leaving flash is never silent: recover() takes a reason and returns a
Recovering event the caller logs; the session itself never recovers on its
own. HELLO, CONFIG and RECOVER are re-sent after their retry time (all are
idempotent on the board). Every OUTPUTS goes through the OutputGuard, so that
what is sent is a map the board accepts given what it has confirmed.
Sequence numbers start at 0 on connect() and wrap at 256; STATUS answers are
matched to the OUTPUTS they answer by answered_seq, within the last ~2 s.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge.board.config import BoardConfig
from edge.board.guard import OutputGuard
from hw import codec

HOST_PROTOCOL_VERSION: int = codec.PROTOCOL_VERSION
HELLO_RETRY_MS = 250
CONFIG_RETRY_MS = 500
RECOVER_RETRY_MS = 250
RECORD_KEEP_MS = 2000  # OUTPUTS send records kept to match STATUS answers

STATE_NAMES = {
    codec.STATE_ALL_RED: "ALL_RED",
    codec.STATE_RUNNING: "RUNNING",
    codec.STATE_FLASH: "FLASH",
}
FAULT_NAMES = {
    codec.FAULT_NONE: "NONE",
    codec.FAULT_POWER_ON: "POWER_ON",
    codec.FAULT_CONFLICT: "CONFLICT",
    codec.FAULT_CHANGE_SKIPPED: "CHANGE_SKIPPED",
    codec.FAULT_CHANGE_SHORT: "CHANGE_SHORT",
    codec.FAULT_RED_CLEARANCE: "RED_CLEARANCE",
    codec.FAULT_BAD_SEQUENCE: "BAD_SEQUENCE",
    codec.FAULT_BAD_MAP: "BAD_MAP",
    codec.FAULT_WATCHDOG: "WATCHDOG",
    codec.FAULT_HOST_FLASH: "HOST_FLASH",
    codec.FAULT_NOT_RUNNING: "NOT_RUNNING",
    codec.FAULT_INTERNAL: "INTERNAL",
    codec.FAULT_INTERGREEN: "INTERGREEN",
    codec.FAULT_FIELD_CONFLICT: "FIELD_CONFLICT",
    codec.FAULT_RED_FAIL: "RED_FAIL",
    codec.FAULT_DUAL_INDICATION: "DUAL_INDICATION",
    codec.FAULT_FIELD_CLEARANCE: "FIELD_CLEARANCE",
    codec.FAULT_MISMATCH: "MISMATCH",
    codec.FAULT_SELF_TEST: "SELF_TEST",
}
# The fault classes of the board's fault record (hw/codec.py FAULT_CLASS), in EN 12675's terms.
CLASS_NAMES = {
    codec.CLASS_NONE: "none",
    codec.CLASS_CONFLICTING_SIGNALS: "conflicting signals",
    codec.CLASS_INTERGREEN: "intergreen / clearance time",
    codec.CLASS_ABSENCE_OF_RED: "absence of red (red lamp failure)",
    codec.CLASS_CONTRADICTORY_SIGNALS: "contradictory signals on one head",
    codec.CLASS_NON_COMPLIANCE: "signals not as commanded",
    codec.CLASS_COMMUNICATION: "communication",
    codec.CLASS_EQUIPMENT: "equipment (self-test, internal)",
}
NAK_NAMES = {
    codec.NAK_NO_HELLO: "NO_HELLO",
    codec.NAK_BAD_CONFIG: "BAD_CONFIG",
    codec.NAK_BAD_STATE: "BAD_STATE",
    codec.NAK_NOT_CONFIGURED: "NOT_CONFIGURED",
    codec.NAK_HASH_MISMATCH: "HASH_MISMATCH",
    codec.NAK_UNEXPECTED: "UNEXPECTED",
    codec.NAK_SELF_TEST: "SELF_TEST",
}
# Faults after which the host may recover by policy: the board was not
# refusing a map, it lost power or lost the host. Every other fault is a
# safety refusal and waits for an operator.
RECOVERABLE_FAULTS = frozenset({codec.FAULT_POWER_ON, codec.FAULT_WATCHDOG})


def fault_name(fault: int) -> str:
    return FAULT_NAMES.get(fault, f"UNKNOWN_{fault}")


def fault_class(fault: int) -> str:
    """The fault's class in EN 12675's terms (CLASS_NAMES)."""
    cls = codec.FAULT_CLASS[fault] if 0 <= fault < len(codec.FAULT_CLASS) else -1
    return CLASS_NAMES.get(cls, "unknown")


def channel_list(mask: int) -> list[int]:
    """Board channel numbers (0-based bits) of a fault's channel mask."""
    return [i for i in range(32) if mask >> i & 1]


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """The fault record the board keeps across resets (HELLO_REPLY, protocol 2)."""

    fault: int
    self_test: int  # 0 passed, 1 failed, 2 not run
    boots: int  # the board's boot count now
    boot: int  # the boot the fault latched in (0: no fault recorded)
    channels: int  # bitmask, bit i = the site's (i+1)th channel
    uptime_ms: int  # ms since that boot

    def describe(self) -> str:
        if not self.boot:
            return "none recorded"
        chans = ",".join(str(c + 1) for c in channel_list(self.channels)) or "-"
        ago = "this boot" if self.boot == self.boots else f"{self.boots - self.boot} boot(s) ago"
        return (
            f"{fault_name(self.fault)} ({fault_class(self.fault)}), channels {chans}, "
            f"{self.uptime_ms} ms after boot {self.boot} ({ago})"
        )


def state_name(state: int) -> str:
    return STATE_NAMES.get(state, f"UNKNOWN_{state}")


def nak_name(reason: int) -> str:
    return NAK_NAMES.get(reason, f"UNKNOWN_{reason}")


class SessionState(enum.Enum):
    # Members are singletons compared by identity: hash them so too (Enum's own hash is
    # a Python-level call, and the state is looked up in OUTPUT_STATES every tick).
    __hash__ = object.__hash__

    CLOSED = "closed"
    HELLO = "hello"
    WAIT_FLASH = "wait_flash"
    CONFIG = "config"
    READY = "ready"
    RECOVER = "recover"
    ALL_RED = "all_red"
    RUNNING = "running"
    REFUSED = "refused"


# States in which OUTPUTS go out every tick (the heartbeat).
OUTPUT_STATES = frozenset(
    {SessionState.READY, SessionState.RECOVER, SessionState.ALL_RED, SessionState.RUNNING}
)

# The states as module names: on Python 3.11 a member looked up on its Enum class is a
# Python-level call (about 0.2 us), and every tick compares the state a dozen times.
_CLOSED = SessionState.CLOSED
_HELLO = SessionState.HELLO
_WAIT_FLASH = SessionState.WAIT_FLASH
_CONFIG = SessionState.CONFIG
_READY = SessionState.READY
_RECOVER = SessionState.RECOVER
_ALL_RED = SessionState.ALL_RED
_RUNNING = SessionState.RUNNING
_REFUSED = SessionState.REFUSED


# Requests re-sent after this long without an answer, by state.
_RETRY_MS = {
    _HELLO: HELLO_RETRY_MS,
    _WAIT_FLASH: HELLO_RETRY_MS,
    _CONFIG: CONFIG_RETRY_MS,
    _RECOVER: RECOVER_RETRY_MS,
}


# --- errors: the board refuses, or is not one we may drive ---------------------------


class BoardRefusedError(Exception):
    """The board cannot be driven by this host; the runner stops with a non-zero exit."""


class BoardVersionError(BoardRefusedError):
    def __init__(self, host_version: int, board_version: int, firmware: str) -> None:
        super().__init__(
            f"protocol version mismatch: host speaks version {host_version}, "
            f"board speaks version {board_version} (firmware {firmware!r})"
        )
        self.host_version = host_version
        self.board_version = board_version
        self.firmware = firmware


class BoardConfigHashError(BoardRefusedError):
    def __init__(self, expected: int, got: int) -> None:
        super().__init__(
            f"config hash mismatch: host sent config 0x{expected:08X}, board holds 0x{got:08X}"
        )
        self.expected = expected
        self.got = got


class BoardConfigRejectedError(BoardRefusedError):
    def __init__(self, reason: int, hint: str = "") -> None:
        super().__init__(f"board refused the CONFIG: NAK {nak_name(reason)}{hint}")
        self.reason = reason


# Said with a CONFIG refused as BAD_CONFIG when it holds per-indication intergreens:
# protocol version 2 firmware from before them refuses such records (hw/PROTOCOL.md §12).
PER_INDICATION_HINT = (
    " (this CONFIG gates a flashing-yellow-arrow head's green arrow by its own pair "
    "intergreens; board firmware from before per-indication intergreens refuses that: "
    "update the board's firmware from hw/)"
)


# --- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoardStatus:
    """One STATUS, with the host's times: when it came and when its OUTPUTS was sent."""

    received_ms: int
    sent_ms: int | None  # send time of the answered OUTPUTS (None if not matched)
    state: int
    fault: int
    answered_seq: int
    rx_errors: int
    inputs: int
    counts: tuple[int, ...]
    lamps: tuple[int, ...]
    fault_channels: int = 0  # bitmask of the channels the fault names


@dataclass(frozen=True, slots=True)
class Hello:
    version: int
    state: int
    fault: int
    channels: int
    config_hash: int
    firmware: str
    record: FaultRecord | None = None


@dataclass(frozen=True, slots=True)
class Configured:
    config_hash: int


@dataclass(frozen=True, slots=True)
class WaitingForFlash:
    """The board drives a map this session did not send: wait for its watchdog flash."""

    state: int
    config_hash: int


@dataclass(frozen=True, slots=True)
class Resumed:
    state: int


@dataclass(frozen=True, slots=True)
class Recovering:
    reason: str
    fault: int  # the fault being cleared


@dataclass(frozen=True, slots=True)
class Recovered:
    since_ms: int  # upper bound of the board's entry into its all-red


@dataclass(frozen=True, slots=True)
class BoardStateChanged:
    old: int | None
    new: int
    fault: int


@dataclass(frozen=True, slots=True)
class BoardReset:
    """The board is in flash with POWER_ON: it restarted and lost its config."""


@dataclass(frozen=True, slots=True)
class Silent:
    silent_ms: int


@dataclass(frozen=True, slots=True)
class Nak:
    msg_type: int
    seq: int
    reason: int


@dataclass(frozen=True, slots=True)
class Retry:
    what: str
    attempt: int


Event = (
    BoardStatus
    | Hello
    | Configured
    | WaitingForFlash
    | Resumed
    | Recovering
    | Recovered
    | BoardStateChanged
    | BoardReset
    | Silent
    | Nak
    | Retry
)


class BoardSession:
    """The host's end of the link; see the module comment for the rules."""

    def __init__(self, config: BoardConfig, silence_ms: int | None = None) -> None:
        self.config = config
        self._channels = config.channels
        self.payload = config.payload
        self.config_hash = config.config_hash
        self.silence_ms = silence_ms if silence_ms is not None else 2 * config.watchdog_ms
        self.guard = OutputGuard(config)
        self.state = _CLOSED
        self.board_state: int | None = None
        self.board_fault = codec.FAULT_NONE
        self.fault_channels = 0  # channels the board's fault names (last STATUS)
        self.fault_record: FaultRecord | None = None  # from the last HELLO_REPLY
        self.firmware = ""
        self.board_version: int | None = None
        self._out = bytearray()
        self._decoder = codec.Decoder()
        self._seq = 0
        self._records: dict[int, tuple[int, int]] = {}  # seq -> (sent_ms, msg type)
        self._records_sorted = True  # in the dict's order, oldest first (times never went back)
        self._last_record_ms = 0  # the time of the last record made
        self._last_rx_ms = 0
        self._last_tx_ms = 0  # last frame of a request (HELLO/CONFIG/RECOVER)
        self._attempts = 0
        self._last_outputs_ms: int | None = None  # last OUTPUTS sent on a live board
        self._connected_ms = 0
        # Counters for health reports.
        self.frames_sent = 0
        self.outputs_sent = 0
        self.status_received = 0
        self.board_rx_errors = 0  # frames the board dropped, from STATUS
        self.retries = 0
        self.silences = 0

    # -- output side --------------------------------------------------------------

    @property
    def next_seq(self) -> int:
        """The sequence number the next frame will carry."""
        return self._seq

    @property
    def last_drive_ms(self) -> int | None:
        """When this session last sent OUTPUTS to a board out of flash (None: never)."""
        return self._last_outputs_ms

    def data_to_send(self) -> bytes:
        if not self._out:
            return b""  # (asked again after every answer)
        data = bytes(self._out)
        self._out.clear()
        return data

    def _send(self, now_ms: int, mtype: int, frame_of_seq: bytes) -> int:
        seq = self._seq
        self._out += frame_of_seq
        records = self._records
        if not records:
            self._records_sorted = True
        else:
            if seq in records:
                del records[seq]  # re-inserted last, in time order
            if now_ms < self._last_record_ms:
                self._records_sorted = False
        records[seq] = (now_ms, mtype)
        self._last_record_ms = now_ms
        self._seq = codec.next_seq(seq)
        self.frames_sent += 1
        return seq

    def _send_hello(self, now_ms: int) -> None:
        self._send(now_ms, codec.MSG_HELLO, codec.encode_hello(self._seq, HOST_PROTOCOL_VERSION))
        self._last_tx_ms = now_ms

    def _send_config(self, now_ms: int) -> None:
        c = self.config
        frame = codec.encode_config(
            self._seq,
            list(c.conflicts),
            list(c.min_yellow_ms),
            list(c.min_red_ms),
            list(c.flash),
            list(c.kinds),
            c.watchdog_ms,
            list(c.fya_conflicts) if c.fya_conflicts else None,
            list(c.intergreens),
        )
        self._send(now_ms, codec.MSG_CONFIG, frame)
        self._last_tx_ms = now_ms

    def _send_recover(self, now_ms: int) -> None:
        self._send(now_ms, codec.MSG_RECOVER, codec.encode_recover(self._seq, self.config_hash))
        self._last_tx_ms = now_ms

    # -- lifetime -------------------------------------------------------------------

    def connect(self, now_ms: int) -> None:
        """A (new) link is open: start over with HELLO. Keeps what is known of the board."""
        if self.state is _REFUSED:
            raise RuntimeError("session refused the board; make a new session")
        self._decoder.reset()
        self._seq = 0
        self._records.clear()
        self._out += b"\x00"  # drop any partial frame at the board
        self._last_rx_ms = now_ms
        self._connected_ms = now_ms
        self._attempts = 1
        self.state = _HELLO
        self._send_hello(now_ms)

    def disconnect(self, now_ms: int) -> None:
        """The link is gone (port closed or vanished)."""
        if self.state is not _REFUSED:
            self.state = _CLOSED
        self._out.clear()
        self.guard.board_stopped()

    def resumable(self, now_ms: int) -> bool:
        """Could the board still be driving our last map (sent within the watchdog time)?"""
        last = self._last_outputs_ms
        return last is not None and now_ms - last < self.config.watchdog_ms

    def recover(self, now_ms: int, reason: str) -> Recovering:
        """Deliberately take the board out of flash through its all-red. Only in READY."""
        if self.state is not _READY:
            raise RuntimeError(f"recover() in state {self.state.value}")
        self.state = _RECOVER
        self._attempts = 1
        self.guard.board_stopped()
        self._send_recover(now_ms)
        return Recovering(reason, self.board_fault)

    def send_outputs(self, now_ms: int, wanted: Sequence[int], flash: bool = False) -> list[int]:
        """One tick's OUTPUTS (the heartbeat): the wanted map, shaped by the guard.

        Returns the codes sent ([] when the state sends no OUTPUTS).
        """
        if self.state not in OUTPUT_STATES:
            return []
        codes = self.guard.shape(now_ms, wanted)
        flags = codec.OUTPUTS_FLAG_FLASH if flash else 0
        self._send(now_ms, codec.MSG_OUTPUTS, codec.encode_outputs(self._seq, codes, flags))
        self.outputs_sent += 1
        if self.state in (_ALL_RED, _RUNNING):
            self._last_outputs_ms = now_ms
        return codes

    # -- input side -------------------------------------------------------------------

    def poll(self, now_ms: int) -> list[Event]:
        """Timeouts: request retries and link silence. Call every tick."""
        events: list[Event] = []
        self._prune(now_ms)
        st = self.state
        if st in (_CLOSED, _REFUSED):
            return events
        if st is not _HELLO and st is not _WAIT_FLASH:
            silent = now_ms - self._last_rx_ms
            if silent >= self.silence_ms:
                self.silences += 1
                events.append(Silent(silent))
                self.guard.board_stopped()
                self.state = _HELLO
                self._attempts = 1
                self._send_hello(now_ms)
                return events
        retry = _RETRY_MS.get(st)
        if retry is not None and now_ms - self._last_tx_ms >= retry:
            self._attempts += 1
            self.retries += 1
            if st is _CONFIG:
                self._send_config(now_ms)
            elif st is _RECOVER:
                self._send_recover(now_ms)
            else:
                self._send_hello(now_ms)
            if st is not _WAIT_FLASH:
                events.append(Retry(st.value, self._attempts))
        return events

    def receive(self, now_ms: int, data: bytes) -> list[Event]:
        """Bytes from the board. Raises BoardRefusedError when the board must not be driven."""
        events: list[Event] = []
        if self.state in (_CLOSED, _REFUSED):
            return events
        for mtype, _seq, body in self._decoder.feed(data):
            self._last_rx_ms = now_ms
            if mtype == codec.MSG_STATUS:
                self._on_status(now_ms, body, events)
            elif mtype == codec.MSG_HELLO_REPLY:
                self._on_hello(now_ms, body, events)
            elif mtype == codec.MSG_CONFIG_ACK:
                self._on_config_ack(now_ms, body, events)
            elif mtype == codec.MSG_ACK:
                self._on_ack(now_ms, body, events)
            elif mtype == codec.MSG_NAK:
                self._on_nak(now_ms, body, events)
            # Host -> board types from the board are ignored (nothing to answer).
        return events

    @property
    def decoder_counters(self) -> dict[str, int]:
        counters: dict[str, int] = self._decoder.counters()
        return counters

    @property
    def dropped(self) -> int:
        """Frames from the board this host dropped (bad COBS, CRC, length, type)."""
        n: int = self._decoder.dropped()
        return n

    def _prune(self, now_ms: int) -> None:
        records = self._records
        if self._records_sorted:  # the old ones are the first ones
            while records:
                first = next(iter(records))
                if now_ms - records[first][0] <= RECORD_KEEP_MS:
                    return
                del records[first]
            return
        for s in [s for s, (t, _) in records.items() if now_ms - t > RECORD_KEEP_MS]:
            del records[s]

    def _set_board_state(self, state: int, fault: int, events: list[Event]) -> None:
        if state != self.board_state or fault != self.board_fault:
            events.append(BoardStateChanged(self.board_state, state, fault))
        self.board_state = state
        self.board_fault = fault

    def _on_hello(self, now_ms: int, body: dict[str, Any], events: list[Event]) -> None:
        version = int(body["version"])
        state = int(body["state"])
        fault = int(body["fault"])
        chash = int(body["config_hash"])
        firmware = str(body["firmware"])
        self.firmware = firmware
        self.board_version = version
        rec = body.get("record")
        record = FaultRecord(**{k: int(v) for k, v in rec.items()}) if rec else None
        if record is not None:
            self.fault_record = record
        events.append(Hello(version, state, fault, int(body["channels"]), chash, firmware, record))
        if self.state not in (_HELLO, _WAIT_FLASH):
            return  # a late duplicate answer
        if version != HOST_PROTOCOL_VERSION:
            self.state = _REFUSED
            raise BoardVersionError(HOST_PROTOCOL_VERSION, version, firmware)
        self._set_board_state(state, fault, events)
        if state == codec.STATE_FLASH:
            self.guard.board_stopped()
            self.state = _CONFIG
            self._attempts = 1
            self._send_config(now_ms)
            return
        if chash == self.config_hash and self.resumable(now_ms):
            # The board still drives what this session sent within the watchdog time.
            self.state = _RUNNING if state == codec.STATE_RUNNING else _ALL_RED
            if state == codec.STATE_RUNNING:
                self.guard.board_running()
            events.append(Resumed(state))
            return
        if self.state is _HELLO:
            events.append(WaitingForFlash(state, chash))
        self.state = _WAIT_FLASH

    def _on_config_ack(self, now_ms: int, body: dict[str, Any], events: list[Event]) -> None:
        if self.state is not _CONFIG:
            return
        got = int(body["config_hash"])
        if got != self.config_hash:
            self.state = _REFUSED
            raise BoardConfigHashError(self.config_hash, got)
        self.state = _READY
        events.append(Configured(got))

    def _on_ack(self, now_ms: int, body: dict[str, Any], events: list[Event]) -> None:
        acked_type = int(body["acked_type"])
        acked_seq = int(body["acked_seq"])
        if acked_type != codec.MSG_RECOVER or self.state is not _RECOVER:
            return
        record = self._records.get(acked_seq)
        since = record[0] if record is not None and record[1] == codec.MSG_RECOVER else now_ms
        self._recovered(since, events)

    def _recovered(self, since_ms: int, events: list[Event]) -> None:
        self.state = _ALL_RED
        self.guard.board_recovered(since_ms)
        self._set_board_state(codec.STATE_ALL_RED, codec.FAULT_NONE, events)
        events.append(Recovered(since_ms))

    def _on_nak(self, now_ms: int, body: dict[str, Any], events: list[Event]) -> None:
        mtype = int(body["acked_type"])
        reason = int(body["reason"])
        events.append(Nak(mtype, int(body["acked_seq"]), reason))
        if mtype == codec.MSG_CONFIG and self.state is _CONFIG:
            if reason == codec.NAK_BAD_CONFIG:
                self.state = _REFUSED
                per_indication = any(
                    ig[1] != codec.IG_ANY or ig[3] != codec.IG_ANY for ig in self.config.intergreens
                )
                raise BoardConfigRejectedError(
                    reason, PER_INDICATION_HINT if per_indication else ""
                )
            # NO_HELLO (the board reset) or BAD_STATE (it left flash): start over.
            self.state = _HELLO
            self._attempts = 1
            self._send_hello(now_ms)
        elif mtype == codec.MSG_RECOVER and self.state is _RECOVER:
            if reason == codec.NAK_HASH_MISMATCH:
                self.state = _REFUSED
                raise BoardConfigHashError(self.config_hash, 0)
            if reason == codec.NAK_BAD_STATE:
                return  # already RUNNING: a STATUS will say so
            self.state = _HELLO  # NO_HELLO / NOT_CONFIGURED: the board reset
            self._attempts = 1
            self._send_hello(now_ms)

    def _on_status(self, now_ms: int, body: dict[str, Any], events: list[Event]) -> None:
        # The decoder's fields are ints already (bytes and int.from_bytes): no int() of
        # each, every tick; the fields in BoardStatus's order, not by keyword.
        answered: int = body["answered_seq"]
        record = self._records.get(answered)
        sent_ms = record[0] if record is not None and record[1] == codec.MSG_OUTPUTS else None
        counts: Sequence[int] = body["counts"]
        lamps: Sequence[int] = body["lamps"]
        status = BoardStatus(
            now_ms,
            sent_ms,
            body["state"],
            body["fault"],
            answered,
            body["rx_errors"],
            body["inputs"],
            tuple(counts),
            tuple(lamps),
            body.get("fault_channels", 0),
        )
        self.fault_channels = status.fault_channels
        self.status_received += 1
        self.board_rx_errors += status.rx_errors
        events.append(status)
        st = self.state
        if st not in OUTPUT_STATES:
            return  # a late answer from before a silence or reconnect
        if status.state == codec.STATE_FLASH:
            # A board that restarted holds no config (and says POWER_ON).
            config_lost = len(status.lamps) != self._channels
            self._set_board_state(status.state, status.fault, events)
            if config_lost:
                self.guard.board_stopped()
                self._last_outputs_ms = None
                events.append(BoardReset())
                self.state = _HELLO
                self._attempts = 1
                self._send_hello(now_ms)
            elif st in (_ALL_RED, _RUNNING):
                self.guard.board_stopped()
                self._last_outputs_ms = None
                self.state = _READY
            # READY: still in flash. RECOVER: this answers an OUTPUTS sent before the
            # RECOVER (one serial line keeps order), or the RECOVER was lost: retried.
            return
        if st in (_READY, _RECOVER):
            if st is _READY:
                # Out of flash without our RECOVER: only another host could do that.
                self._set_board_state(status.state, status.fault, events)
                return
            self._recovered(sent_ms if sent_ms is not None else now_ms, events)
            st = self.state
        self._set_board_state(status.state, status.fault, events)
        if status.state == codec.STATE_RUNNING and st is _ALL_RED:
            self.state = _RUNNING
            self.guard.board_running()
        if sent_ms is not None and len(status.lamps) == self._channels:
            self.guard.confirm(sent_ms, status.lamps)
