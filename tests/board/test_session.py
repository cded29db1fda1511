"""The sans-IO board session: exact bytes of the handshake, refusals, timeouts, resets, resume."""

from __future__ import annotations

import dataclasses

import pytest
from edge.board.config import BoardConfig
from edge.board.session import (
    RECORD_KEEP_MS,
    BoardConfigHashError,
    BoardConfigRejectedError,
    BoardReset,
    BoardSession,
    BoardStateChanged,
    BoardStatus,
    BoardVersionError,
    Configured,
    FaultRecord,
    Hello,
    Nak,
    Recovered,
    Resumed,
    Retry,
    SessionState,
    Silent,
    WaitingForFlash,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hw import board, codec
from tests.hypothesis_profiles import examples


def state(s: BoardSession) -> SessionState:
    """The session's state, read fresh (keeps mypy from narrowing it across calls)."""
    return s.state


def h(text: str) -> bytes:
    return bytes.fromhex(text)


# The test intersection of hw/PROTOCOL.md section 11: its hash is 0x71194848.
VECTOR_CONFIG = BoardConfig(
    conflicts=(0b1010, 0b0101, 0b0010, 0b0001),
    min_yellow_ms=(3000, 3000, 5000, 5000),
    min_red_ms=(1000, 1500, 1000, 1000),
    flash=(1, 0, 2, 2),
    kinds=(0, 0, 1, 1),
    watchdog_ms=500,
    labels=("ch1", "ch2", "ch3", "ch4"),
)
HELLO = h("02 01 04 02 EE DB 00")
HELLO_REPLY = h(
    "02 81 11 02 02 01 04 48 48 19 71 68 77 2D 30 2E 32 2E 30 01 01 01 01 01 01 01 01 01 01 01 "
    "01 01 01 01 01 01 01 01 01 01 03 15 22 00"
)
CONFIG = h(
    "07 02 01 04 F4 01 0A 01 01 06 B8 0B E8 03 01 02 05 01 01 05 B8 0B DC 05 01 02 02 01 01 08 "
    "88 13 E8 03 02 01 01 01 01 08 88 13 E8 03 02 01 0A 01 01 02 05 01 01 02 02 01 01 02 01 01 "
    "01 01 03 9C 0D 00"
)
CONFIG_ACK = h("09 82 01 48 48 19 71 2F 73 00")
RECOVER = h("09 04 02 48 48 19 71 3C C4 00")
ACK_RECOVER = h("07 84 03 04 02 DF 26 00")

T0 = 50_000


def test_vector_config_hash_matches_protocol() -> None:
    assert VECTOR_CONFIG.config_hash == 0x71194848
    assert codec.encode_config(1, *_config_args(VECTOR_CONFIG)) == CONFIG


def _config_args(c: BoardConfig) -> tuple[object, ...]:
    return (
        list(c.conflicts),
        list(c.min_yellow_ms),
        list(c.min_red_ms),
        list(c.flash),
        list(c.kinds),
        c.watchdog_ms,
    )


def test_handshake_exact_bytes() -> None:
    """HELLO, CONFIG, RECOVER as PROTOCOL.md section 11 spells them, seq 0, 1, 2."""
    s = BoardSession(VECTOR_CONFIG)
    s.connect(T0)
    assert s.data_to_send() == b"\x00" + HELLO
    assert state(s) is SessionState.HELLO

    events = s.receive(T0 + 5, HELLO_REPLY)
    hello = [e for e in events if isinstance(e, Hello)]
    assert hello == [
        Hello(
            2,
            codec.STATE_FLASH,
            codec.FAULT_POWER_ON,
            4,
            0x71194848,
            "hw-0.2.0",
            FaultRecord(0, 0, 0, 0, 0, 0),
        )
    ]
    assert state(s) is SessionState.CONFIG
    assert s.data_to_send() == CONFIG

    events = s.receive(T0 + 10, CONFIG_ACK)
    assert Configured(0x71194848) in events
    assert state(s) is SessionState.READY
    assert s.data_to_send() == b""

    rec = s.recover(T0 + 20, "test")
    assert rec.reason == "test" and rec.fault == codec.FAULT_POWER_ON
    assert s.data_to_send() == RECOVER
    events = s.receive(T0 + 25, ACK_RECOVER)
    assert Recovered(T0 + 20) in events  # the board's all-red began no later than the send
    assert state(s) is SessionState.ALL_RED

    # OUTPUTS seq 3: in the board's all-red only stopped codes go out.
    sent = s.send_outputs(T0 + 100, [3, 1, 1, 1])
    assert sent == [codec.RED] * 4
    assert s.data_to_send() == codec.encode_outputs(3, [1, 1, 1, 1])


def test_input_split_anywhere() -> None:
    """Bytes may arrive in any chunks; the frame is taken when its delimiter comes."""
    s = BoardSession(VECTOR_CONFIG)
    s.connect(T0)
    s.data_to_send()
    for i, b in enumerate(HELLO_REPLY[:-1]):
        assert s.receive(T0 + i, bytes([b])) == []
    assert state(s) is SessionState.HELLO
    s.receive(T0 + 40, HELLO_REPLY[-1:])
    assert state(s) is SessionState.CONFIG


def test_version_mismatch_names_both_versions() -> None:
    s = BoardSession(VECTOR_CONFIG)
    s.connect(T0)
    reply = codec.encode_hello_reply(0, "hw-3.0.0", codec.STATE_FLASH, 1, 0, 0, 3)
    with pytest.raises(BoardVersionError) as err:
        s.receive(T0 + 5, reply)
    assert err.value.host_version == 2 and err.value.board_version == 3
    assert "version 2" in str(err.value) and "version 3" in str(err.value)
    assert "hw-3.0.0" in str(err.value)
    assert state(s) is SessionState.REFUSED
    assert s.data_to_send() == b"\x00" + HELLO  # nothing after the HELLO


def test_wrong_config_hash_refused() -> None:
    s = BoardSession(VECTOR_CONFIG)
    s.connect(T0)
    s.receive(T0 + 5, HELLO_REPLY)
    s.data_to_send()
    with pytest.raises(BoardConfigHashError) as err:
        s.receive(T0 + 10, codec.encode_config_ack(1, 0x12345678))
    assert "0x71194848" in str(err.value) and "0x12345678" in str(err.value)
    assert state(s) is SessionState.REFUSED
    with pytest.raises(RuntimeError):
        s.recover(T0 + 20, "must not")


def test_config_refused_by_board() -> None:
    s = BoardSession(VECTOR_CONFIG)
    s.connect(T0)
    s.receive(T0 + 5, HELLO_REPLY)
    with pytest.raises(BoardConfigRejectedError, match="BAD_CONFIG"):
        s.receive(T0 + 10, codec.encode_nak(1, codec.MSG_CONFIG, 1, codec.NAK_BAD_CONFIG))


def test_config_with_arrow_pairs_refused_names_the_firmware() -> None:
    """A board from before per-indication intergreens refuses their records: the error
    says so, where a plain BAD_CONFIG would leave the technician guessing."""
    cfg = dataclasses.replace(
        VECTOR_CONFIG, intergreens=((0, codec.IG_ANY, 1, codec.IG_STEADY, 4500),)
    )
    s = BoardSession(cfg)
    s.connect(T0)
    s.receive(T0 + 5, HELLO_REPLY)
    with pytest.raises(BoardConfigRejectedError, match="update the board's firmware"):
        s.receive(T0 + 10, codec.encode_nak(1, codec.MSG_CONFIG, 1, codec.NAK_BAD_CONFIG))


def test_hello_retried_with_next_seq() -> None:
    s = BoardSession(VECTOR_CONFIG)
    s.connect(T0)
    s.data_to_send()
    assert s.poll(T0 + 249) == []
    assert s.poll(T0 + 250) == [Retry("hello", 2)]
    assert s.data_to_send() == codec.encode_hello(1)
    assert s.poll(T0 + 400) == []


def test_config_and_recover_retried() -> None:
    s = BoardSession(VECTOR_CONFIG)
    s.connect(T0)
    s.receive(T0 + 5, HELLO_REPLY)
    s.data_to_send()
    assert s.poll(T0 + 505) == [Retry("config", 2)]
    assert s.data_to_send() == codec.encode_config(2, *_config_args(VECTOR_CONFIG))
    s.receive(T0 + 510, codec.encode_config_ack(1, VECTOR_CONFIG.config_hash))
    s.recover(T0 + 600, "test")
    s.data_to_send()
    assert s.poll(T0 + 850) == [Retry("recover", 2)]
    assert s.data_to_send() == codec.encode_recover(4, VECTOR_CONFIG.config_hash)


class Loop:
    """The session against the real firmware core, bytes passed by hand, time by the test."""

    def __init__(self, config: BoardConfig = VECTOR_CONFIG) -> None:
        self.session = BoardSession(config)
        self.board = board.Board(T0)
        self.now = T0
        self.events: list[object] = []

    def pump(self, dt: int = 1) -> None:
        self.now += dt
        self.board.tick(self.now)
        reply = self.board.receive(self.now, self.session.data_to_send())
        self.now += dt
        self.events += self.session.receive(self.now, reply)
        self.events += self.session.poll(self.now)

    def tick(self, codes: list[int], flash: bool = False) -> list[int]:
        self.now += 100
        self.events += self.session.poll(self.now)
        sent = self.session.send_outputs(self.now, codes, flash)
        self.pump()
        return sent

    def to_running(self) -> None:
        self.session.connect(self.now)
        self.pump()
        self.pump()
        assert state(self.session) is SessionState.READY
        self.session.recover(self.now, "test")
        self.pump()
        while state(self.session) is not SessionState.RUNNING:
            self.tick([1, 1, 1, 1])
            assert self.now < T0 + 5000


def test_status_flash_fault_reported_and_latched() -> None:
    lp = Loop()
    lp.to_running()
    lp.tick([3, 1, 3, 1])  # channel 0 and its crossing 2 go
    assert lp.board.safety.lamps() == bytes([3, 1, 3, 1])
    # A conflicting map (0 and 1 both green) can only come from a bug; the
    # guard keeps channel 1 red until channel 0 has cleared.
    assert lp.tick([3, 3, 3, 1]) == [3, 1, 3, 1]
    lp.tick([3, 1, 3, 1], flash=True)
    assert state(lp.session) is SessionState.READY
    assert lp.session.board_fault == codec.FAULT_HOST_FLASH
    changes = [e for e in lp.events if isinstance(e, BoardStateChanged)]
    assert changes[-1] == BoardStateChanged(
        codec.STATE_RUNNING, codec.STATE_FLASH, codec.FAULT_HOST_FLASH
    )
    # In flash nothing but stopped codes is sent, and the board stays in flash.
    assert lp.tick([3, 1, 3, 1]) == [1, 1, 1, 1]
    assert lp.board.safety.state == codec.STATE_FLASH


def test_board_reset_restarts_handshake() -> None:
    lp = Loop()
    lp.to_running()
    lp.board = board.Board(lp.now)  # power cycle
    lp.tick([1, 1, 1, 1])
    assert any(isinstance(e, BoardReset) for e in lp.events)
    assert state(lp.session) is SessionState.HELLO
    lp.pump()  # HELLO -> HELLO_REPLY, CONFIG
    lp.pump()  # CONFIG -> CONFIG_ACK
    assert state(lp.session) is SessionState.READY
    assert lp.board.safety.config_hash == VECTOR_CONFIG.config_hash


def test_silence_goes_back_to_hello() -> None:
    lp = Loop()
    lp.to_running()
    lp.events.clear()
    for _ in range(9):  # frames go out, nothing comes back
        lp.now += 100
        lp.session.send_outputs(lp.now, [1, 1, 1, 1])
        lp.session.data_to_send()
        assert lp.session.poll(lp.now) == []
    lp.now += 100
    events = lp.session.poll(lp.now)
    assert isinstance(events[0], Silent) and events[0].silent_ms >= 1000
    assert state(lp.session) is SessionState.HELLO
    assert lp.session.send_outputs(lp.now, [1, 1, 1, 1]) == []  # no heartbeat without a board


def test_waits_for_flash_when_board_runs_another_map() -> None:
    """A new host finds the board RUNNING: it must not guess, it waits for the flash."""
    lp = Loop()
    lp.to_running()
    lp.tick([3, 1, 3, 1])
    fresh = BoardSession(VECTOR_CONFIG)  # a restarted host process
    lp.session = fresh
    fresh.connect(lp.now)
    lp.pump()
    assert any(isinstance(e, WaitingForFlash) for e in lp.events)
    assert state(fresh) is SessionState.WAIT_FLASH
    while state(fresh) is SessionState.WAIT_FLASH:
        lp.pump(5)
        assert lp.now < T0 + 10_000
    assert lp.board.safety.fault == codec.FAULT_WATCHDOG
    lp.pump()
    assert state(fresh) is SessionState.READY


def test_resume_after_short_reconnect() -> None:
    lp = Loop()
    lp.to_running()
    lp.tick([3, 1, 3, 1])
    lp.session.disconnect(lp.now)
    lp.now += 150
    lp.session.connect(lp.now)
    lp.pump()
    assert Resumed(codec.STATE_RUNNING) in lp.events
    assert state(lp.session) is SessionState.RUNNING
    assert lp.tick([3, 1, 3, 1]) == [3, 1, 3, 1]
    assert lp.board.safety.state == codec.STATE_RUNNING


def test_nak_no_hello_starts_over() -> None:
    s = BoardSession(VECTOR_CONFIG)
    s.connect(T0)
    s.receive(T0 + 5, HELLO_REPLY)
    s.data_to_send()
    events = s.receive(T0 + 10, codec.encode_nak(1, codec.MSG_CONFIG, 1, codec.NAK_NO_HELLO))
    assert Nak(codec.MSG_CONFIG, 1, codec.NAK_NO_HELLO) in events
    assert state(s) is SessionState.HELLO
    assert s.data_to_send() == codec.encode_hello(2)


def test_status_carries_matched_send_time() -> None:
    lp = Loop()
    lp.to_running()
    lp.events.clear()
    lp.tick([1, 1, 1, 1])
    status = [e for e in lp.events if isinstance(e, BoardStatus)]
    assert len(status) == 1
    assert status[0].sent_ms == lp.now - 2
    assert status[0].lamps == (1, 1, 1, 1)
    assert status[0].state == codec.STATE_RUNNING


@settings(max_examples=examples(200))
@given(st.lists(st.tuples(st.booleans(), st.integers(-300, 900)), max_size=400))
@example([(True, 10)] * 300 + [(False, 10)])  # seq wraps: re-sent numbers stay in time order
@example([(True, 100), (True, -200), (False, 2000), (True, 0), (False, 2500)])  # time went back
def test_send_records_pruned_as_by_a_full_scan(ops: list[tuple[bool, int]]) -> None:
    """OUTPUTS send records (STATUS matching) last RECORD_KEEP_MS whatever the order of
    the times; the session prunes from the oldest while sends stay in time order."""
    s = BoardSession(VECTOR_CONFIG)
    s.connect(0)
    model = {0: (0, codec.MSG_HELLO)}
    t = 0
    for send, dt in ops:
        t += dt
        if send:
            model[s.next_seq] = (t, codec.MSG_OUTPUTS)
            s._send(t, codec.MSG_OUTPUTS, b"")
        else:
            s._prune(t)
            model = {q: r for q, r in model.items() if t - r[0] <= RECORD_KEEP_MS}
        assert s._records == model
