"""hw/board_safety.py and hw/board.py under CPython: scenarios, an independent rule model, bytes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hw import board, board_safety, codec
from tests.hypothesis_profiles import examples

from . import harness

PROGRAM = harness.program()
SCENARIOS: dict[str, list[tuple[Any, ...]]] = PROGRAM["_scenarios"]()

CONFLICTS = [0b1010, 0b0101, 0b0010, 0b0001]  # 0-1, 0-3, 1-2
MIN_YELLOW_MS = [3000, 3000, 5000, 5000]
MIN_RED_MS = [1000, 1500, 1000, 1000]
FLASH = [codec.FLASH_COLOUR_YELLOW, codec.FLASH_COLOUR_RED] + [codec.FLASH_COLOUR_DARK] * 2
KINDS = [codec.KIND_VEHICLE, codec.KIND_VEHICLE, codec.KIND_PED, codec.KIND_PED]
R, Y, G, FR, FY, D = (
    codec.RED,
    codec.YELLOW,
    codec.GREEN,
    codec.FLASH_RED,
    codec.FLASH_YELLOW,
    codec.DARK,
)
ALL_RED = [R, R, R, R]
FLASH_MAP = [FY, FR, D, D]


def config_body(
    min_yellow: list[int] = MIN_YELLOW_MS, min_red: list[int] = MIN_RED_MS, watchdog_ms: int = 500
) -> dict[str, Any]:
    frame = codec.encode_config(0, CONFLICTS, min_yellow, min_red, FLASH, KINDS, watchdog_ms)
    msg = codec.decode_frame(frame)
    assert msg is not None
    body: dict[str, Any] = msg[2]
    return body


def running_board(
    t: int = 0, min_yellow: list[int] = MIN_YELLOW_MS, min_red: list[int] = MIN_RED_MS
) -> tuple[board_safety.BoardSafety, int]:
    """A configured board past its start-up all-red; returns it and the time."""
    s = board_safety.BoardSafety(t)
    body = config_body(min_yellow, min_red)
    assert s.configure(t, body) == 0
    assert s.recover(t, body["config_hash"]) == 0
    while s.state != codec.STATE_RUNNING:
        t += 100
        assert s.outputs(t, ALL_RED) == codec.FAULT_NONE
    return s, t


def hold(s: board_safety.BoardSafety, t: int, codes: list[int], ms: int) -> int:
    """Send `codes` every 100 ms for `ms`; all must be accepted. Returns the new time."""
    end = t + ms
    while t < end:
        t += 100
        assert s.outputs(t, codes) == codec.FAULT_NONE, (t, codes, s.fault)
        assert list(s.lamps()) == codes
    return t


# --- the data-driven scenarios (also run under MicroPython) ----------------------


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario(name: str) -> None:
    results = PROGRAM["run_scenario"](codec, board_safety, SCENARIOS[name])
    bad = [(i, SCENARIOS[name][i], r[1]) for i, r in enumerate(results) if not r[0]]
    assert not bad


# --- the brief's cases, spelled out --------------------------------------------------


def test_conflicting_greens_are_refused_with_flash() -> None:
    s, t = running_board()
    assert s.outputs(t + 100, [G, G, R, R]) == codec.FAULT_CONFLICT
    assert (s.state, s.fault) == (codec.STATE_FLASH, codec.FAULT_CONFLICT)
    assert list(s.lamps()) == FLASH_MAP
    assert s.flash_transfer


def test_vehicle_green_and_conflicting_walk_are_refused() -> None:
    s, t = running_board()
    assert s.outputs(t + 100, [R, G, G, R]) == codec.FAULT_CONFLICT


def test_yellow_shorter_than_minimum_is_refused() -> None:
    s, t = running_board()
    t = hold(s, t, [G, R, R, R], 5000)
    t = hold(s, t, [Y, R, R, R], 2000)
    assert s.outputs(t + 100, ALL_RED) == codec.FAULT_CHANGE_SHORT
    assert s.state == codec.STATE_FLASH


def test_green_to_red_without_yellow_is_refused() -> None:
    s, t = running_board()
    t = hold(s, t, [G, R, R, R], 5000)
    assert s.outputs(t + 100, ALL_RED) == codec.FAULT_CHANGE_SKIPPED


def test_full_yellow_and_red_clearance_are_accepted() -> None:
    s, t = running_board()
    t = hold(s, t, [G, R, G, R], 5000)
    t = hold(s, t, [G, R, FR, R], 5000)  # pedestrian clearance
    t = hold(s, t, [G, R, R, R], 100)
    t = hold(s, t, [Y, R, R, R], 3000)
    t = hold(s, t, ALL_RED, 1000)
    t = hold(s, t, [R, G, R, G], 1000)
    assert (s.state, s.fault) == (codec.STATE_RUNNING, codec.FAULT_NONE)


def test_green_needs_conflicting_red_clearance() -> None:
    s, t = running_board()
    t = hold(s, t, [G, R, R, R], 5000)
    t = hold(s, t, [Y, R, R, R], 3000)
    t = hold(s, t, ALL_RED, 500)
    assert s.outputs(t + 100, [R, G, R, R]) == codec.FAULT_RED_CLEARANCE


@pytest.mark.parametrize("watchdog_ms", [100, 500, 1000])
def test_watchdog_expiry_flashes_within_watchdog_time(watchdog_ms: int) -> None:
    s = board_safety.BoardSafety(0)
    body = config_body(watchdog_ms=watchdog_ms)
    s.configure(0, body)
    s.recover(0, body["config_hash"])
    t = 0
    while s.state != codec.STATE_RUNNING:
        t += 50
        s.outputs(t, ALL_RED)
    last = t + 50
    s.outputs(last, [G, R, R, R])
    for dt in range(0, watchdog_ms, 7):
        assert s.tick(last + dt) == codec.STATE_RUNNING
    assert s.tick(last + watchdog_ms) == codec.STATE_FLASH
    assert s.fault == codec.FAULT_WATCHDOG
    assert list(s.lamps()) == FLASH_MAP and s.flash_transfer


def test_flash_is_latched_until_recover_and_recovery_passes_through_all_red() -> None:
    s, t = running_board()
    s.outputs(t + 100, [G, G, R, R])
    t += 100
    for _ in range(100):  # ten seconds of valid all-red maps change nothing
        t += 100
        s.outputs(t, ALL_RED)
        assert (s.state, s.fault, list(s.lamps())) == (
            codec.STATE_FLASH,
            codec.FAULT_CONFLICT,
            FLASH_MAP,
        )
    assert s.recover(t, 0xDEADBEEF) == codec.NAK_HASH_MISMATCH
    assert s.state == codec.STATE_FLASH
    assert s.recover(t, s.config_hash) == 0
    assert s.recoveries == 2  # the start-up one and this one
    start = t
    assert (s.state, s.fault, list(s.lamps())) == (codec.STATE_ALL_RED, codec.FAULT_NONE, ALL_RED)
    while s.state == codec.STATE_ALL_RED:
        t += 100
        s.outputs(t, ALL_RED)
        assert list(s.lamps()) == ALL_RED
    assert t - start == max(MIN_RED_MS)
    assert (s.state, s.fault) == (codec.STATE_RUNNING, codec.FAULT_NONE)
    hold(s, t, [G, R, G, R], 500)


def test_green_during_start_up_all_red_is_refused() -> None:
    s = board_safety.BoardSafety(0)
    body = config_body()
    s.configure(0, body)
    s.recover(0, body["config_hash"])
    assert s.outputs(100, [G, R, R, R]) == codec.FAULT_NOT_RUNNING
    assert s.state == codec.STATE_FLASH


def test_power_on_is_flash_with_nothing_configured() -> None:
    s = board_safety.BoardSafety(123)
    assert (s.state, s.fault, s.channels, s.lamps()) == (
        codec.STATE_FLASH,
        codec.FAULT_POWER_ON,
        0,
        b"",
    )
    assert s.flash_transfer
    assert s.outputs(200, [G]) == codec.FAULT_NONE  # ignored in flash
    assert s.state == codec.STATE_FLASH


def test_long_holds_saturate_and_stay_valid() -> None:
    # 70 s of green: the elapsed-time accumulators saturate; rules still hold.
    s, t = running_board()
    t = hold(s, t, [G, R, R, R], 70_000)
    t = hold(s, t, [Y, R, R, R], 3000)
    t = hold(s, t, ALL_RED, 1000)
    hold(s, t, [R, G, R, R], 300)


# --- wrap-safe time ------------------------------------------------------------------


@given(st.integers(0, board_safety.TICKS_MAX), st.integers(-(2**29), 2**29 - 1))
def test_ticks_diff_inverts_ticks_add(start: int, delta: int) -> None:
    end = board_safety.ticks_add(start, delta)
    assert 0 <= end <= board_safety.TICKS_MAX
    assert board_safety.ticks_diff(end, start) == delta


def test_ticks_diff_across_the_wrap() -> None:
    assert board_safety.ticks_diff(5, board_safety.TICKS_MAX - 4) == 10
    assert board_safety.ticks_diff(board_safety.TICKS_MAX - 4, 5) == -10
    assert board_safety.TICKS_PERIOD == 2**30


@given(st.integers(0, board_safety.TICKS_MAX))
def test_a_full_cycle_works_at_any_tick_offset(offset: int) -> None:
    s = board_safety.BoardSafety(offset)
    body = config_body()
    s.configure(offset, body)
    s.recover(offset, body["config_hash"])
    t = 0
    for codes, ms in (
        (ALL_RED, 1500),
        ([G, R, G, R], 2000),
        ([G, R, FR, R], 5000),
        ([Y, R, R, R], 3000),
        (ALL_RED, 1000),
        ([R, G, R, G], 500),
    ):
        end = t + ms
        while t < end:
            t += 100
            assert s.outputs(board_safety.ticks_add(offset, t), codes) == 0
    assert s.state == codec.STATE_RUNNING


# --- an independent model of the rules, against random command sequences --------------

_GO_V, _CHANGE_V = {G, FY}, {Y}
_GO_P, _CHANGE_P = {G}, {FR}
_VALID_V, _VALID_P = {D, R, Y, G, FR, FY}, {D, R, G, FR}
_SLACK = board_safety.TIMING_SLACK_MS
_PROP_YELLOW = [300, 300, 500, 500]
_PROP_RED = [200, 300, 200, 200]


def _cat(ch: int, code: int) -> str:
    ped = KINDS[ch] == codec.KIND_PED
    if code in (_GO_P if ped else _GO_V):
        return "go"
    if code in (_CHANGE_P if ped else _CHANGE_V):
        return "change"
    return "stop"


def _conflict(i: int, j: int) -> bool:
    return bool(CONFLICTS[i] >> j & 1)


def _model_legal(codes: list[int], cats: list[str], since: list[int], now: int) -> bool:
    """The rules of hw/board_safety.py, restated over absolute times."""
    for ch, code in enumerate(codes):
        if code not in (_VALID_P if KINDS[ch] == codec.KIND_PED else _VALID_V):
            return False
    new = [_cat(ch, code) for ch, code in enumerate(codes)]
    for i in range(4):
        for j in range(4):
            if _conflict(i, j) and new[i] != "stop" and new[j] != "stop":
                return False
    for i in range(4):
        old, nw = cats[i], new[i]
        if (old, nw) in (("go", "stop"), ("change", "go"), ("stop", "change")):
            return False
        if (old, nw) == ("change", "stop") and now - since[i] + _SLACK < _PROP_YELLOW[i]:
            return False
        if (old, nw) == ("stop", "go"):
            for j in range(4):
                if _conflict(i, j) and (
                    cats[j] != "stop" or now - since[j] + _SLACK < _PROP_RED[j]
                ):
                    return False
    return True


# Likely next codes per channel, so that random walks often stay legal.
_NEXT = {R: [R, R, G, D], G: [G, G, Y, FY], Y: [Y, Y, R], FY: [FY, Y, G], D: [D, R], FR: [FR, R]}
_NEXT_PED = {R: [R, R, G], G: [G, G, FR], FR: [FR, FR, R], D: [D, R]}


@st.composite
def command_walks(draw: st.DrawFn) -> list[tuple[int, list[int]]]:
    codes = list(ALL_RED)
    steps = []
    for _ in range(draw(st.integers(1, 120))):
        dt = draw(st.sampled_from([0, 50, 100, 100, 100, 100, 250, 499, 500, 700]))
        ch = draw(st.integers(0, 3))
        table = _NEXT_PED if KINDS[ch] == codec.KIND_PED else _NEXT
        if draw(st.integers(0, 20)) == 0:
            codes[ch] = draw(st.integers(0, 7))  # now and then anything, even invalid
        else:
            codes[ch] = draw(st.sampled_from(table.get(codes[ch], [R])))
        steps.append((dt, list(codes)))
    return steps


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(command_walks())
def test_board_agrees_with_the_rule_model(walk: list[tuple[int, list[int]]]) -> None:
    # Short minimums make each random walk reach every rule; lower the board's
    # floors for this model test only (test_board_floors checks the floors).
    floors = board_safety.MIN_YELLOW_FLOOR_MS, board_safety.MIN_CLEAR_FLOOR_MS
    board_safety.MIN_YELLOW_FLOOR_MS = board_safety.MIN_CLEAR_FLOOR_MS = 0
    try:
        _walk_against_model(walk)
    finally:
        board_safety.MIN_YELLOW_FLOOR_MS, board_safety.MIN_CLEAR_FLOOR_MS = floors


def test_board_floors() -> None:
    """The board refuses a config below its own floors, whatever the host says."""
    s = board_safety.BoardSafety(0)
    assert s.configure(0, config_body([2900, 3000, 500, 500], MIN_RED_MS)) == codec.NAK_BAD_CONFIG
    assert s.configure(0, config_body(MIN_YELLOW_MS, [400, 1000, 1000, 1000])) == (
        codec.NAK_BAD_CONFIG
    )
    assert s.configure(0, config_body(MIN_YELLOW_MS, MIN_RED_MS)) == 0


def _walk_against_model(walk: list[tuple[int, list[int]]]) -> None:
    s, t = running_board(1000, _PROP_YELLOW, _PROP_RED)
    cats = ["stop"] * 4
    since = [1000] * 4  # red since RECOVER
    last_frame = t
    for dt, codes in walk:
        t += dt
        before = s.state
        fault = s.outputs(t, codes)
        if before == codec.STATE_FLASH:
            assert s.state == codec.STATE_FLASH and list(s.lamps()) == FLASH_MAP
            continue
        if t - last_frame >= 500:
            assert (s.state, s.fault) == (codec.STATE_FLASH, codec.FAULT_WATCHDOG)
            continue
        last_frame = t
        legal = _model_legal(codes, cats, since, t)
        assert (fault == codec.FAULT_NONE) == legal, (codes, cats, since, t, fault)
        if legal:
            assert (s.state, list(s.lamps())) == (codec.STATE_RUNNING, codes)
            for ch, code in enumerate(codes):
                if _cat(ch, code) != cats[ch]:
                    cats[ch], since[ch] = _cat(ch, code), t
        else:
            assert s.state == codec.STATE_FLASH and list(s.lamps()) == FLASH_MAP


# --- configuration checks ----------------------------------------------------------


def _body(**changes: Any) -> dict[str, Any]:
    body = config_body()
    body.update(changes)
    return body


@pytest.mark.parametrize(
    "body",
    [
        _body(conflicts=[0b1010, 0b0101, 0b0010, 0b0000]),  # asymmetric
        _body(conflicts=[0b1011, 0b0101, 0b0010, 0b0001]),  # self-conflict
        _body(conflicts=[0b11010, 0b0101, 0b0010, 0b0001]),  # beyond the last channel
        _body(flash=[0, 0, 1, 2]),  # a pedestrian head has no yellow
        _body(flash=[0, 0, 2, 3]),
        _body(kinds=[0, 0, 1, 2]),
        _body(watchdog_ms=99),
        _body(watchdog_ms=1001),
        _body(conflicts=[], min_yellow_ms=[], min_red_ms=[], flash=[], kinds=[]),
    ],
)
def test_bad_configs_are_refused(body: dict[str, Any]) -> None:
    assert board_safety.check_config(body) == codec.NAK_BAD_CONFIG
    s = board_safety.BoardSafety(0)
    assert s.configure(0, body) == codec.NAK_BAD_CONFIG
    assert s.channels == 0


def test_config_only_in_flash_and_recover_needs_it() -> None:
    s = board_safety.BoardSafety(0)
    assert s.recover(0, 0) == codec.NAK_NOT_CONFIGURED
    s, t = running_board()
    assert s.configure(t, config_body()) == codec.NAK_BAD_STATE
    assert s.recover(t, s.config_hash) == codec.NAK_BAD_STATE


# --- the whole board over bytes -----------------------------------------------------


def _reply(b: board.Board, t: int, frame: bytes) -> tuple[int, int, dict[str, Any]]:
    msgs = codec.Decoder().feed(b.receive(t, frame))
    assert len(msgs) == 1
    t_, seq, body = msgs[0]
    return t_, seq, body


def test_board_handshake_over_bytes() -> None:
    b = board.Board(0)
    cfg = (CONFLICTS, MIN_YELLOW_MS, MIN_RED_MS, FLASH, KINDS, 500)
    h = codec.config_hash(codec.config_payload(*cfg))
    assert _reply(b, 0, codec.encode_config(0, *cfg))[2]["reason"] == codec.NAK_NO_HELLO
    t, seq, hello = _reply(b, 0, codec.encode_hello(1))
    assert t == codec.MSG_HELLO_REPLY
    assert hello == {
        "version": codec.PROTOCOL_VERSION,
        "state": codec.STATE_FLASH,
        "fault": codec.FAULT_POWER_ON,
        "channels": 0,
        "config_hash": 0,
        "firmware": board.FIRMWARE_VERSION,
        "record": {
            "fault": 0,
            "self_test": board.SELF_TEST_NOT_RUN,
            "boots": 1,
            "boot": 0,
            "channels": 0,
            "uptime_ms": 0,
        },
    }
    assert _reply(b, 0, codec.encode_config(2, *cfg)) == (
        codec.MSG_CONFIG_ACK,
        seq + 1,
        {"config_hash": h},
    )
    assert _reply(b, 0, codec.encode_recover(3, h))[0] == codec.MSG_ACK
    now = 0
    state = codec.STATE_ALL_RED
    for i in range(20):
        now += 100
        b.tick(now)
        t, _, status = _reply(b, now, codec.encode_outputs(10 + i, ALL_RED))
        assert t == codec.MSG_STATUS and status["answered_seq"] == 10 + i
        assert status["lamps"] == ALL_RED
        state = status["state"]
    assert state == codec.STATE_RUNNING
    t, _, status = _reply(b, now + 100, codec.encode_outputs(99, [G, G, R, R]))
    assert (status["state"], status["fault"], status["lamps"]) == (
        codec.STATE_FLASH,
        codec.FAULT_CONFLICT,
        FLASH_MAP,
    )


def test_board_naks_what_it_does_not_take() -> None:
    b = board.Board(0)
    _reply(b, 0, codec.encode_hello(0))
    assert _reply(b, 0, codec.encode_status(5, 0, 0, 0, 0, [0] * 16, []))[2] == {
        "acked_type": codec.MSG_STATUS,
        "acked_seq": 5,
        "reason": codec.NAK_UNEXPECTED,
    }
    assert _reply(b, 0, codec.encode_recover(6, 1))[2]["reason"] == codec.NAK_NOT_CONFIGURED
    b2 = board.Board(0)
    _reply(b2, 0, codec.encode_hello(0, codec.PROTOCOL_VERSION + 1))
    assert not b2.hello_ok
    assert _reply(b2, 0, codec.encode_recover(1, 1))[2]["reason"] == codec.NAK_NO_HELLO


def test_status_reports_inputs_edges_and_receive_errors_once() -> None:
    b = board.Board(0, debounce_ms=20)
    b.sample_inputs(0, 0)
    b.sample_inputs(5, 0b101)
    b.sample_inputs(30, 0b101)  # held 25 ms: both inputs now on, one edge each
    b.sample_inputs(40, 0b001)
    b.sample_inputs(70, 0b001)
    b.receive(70, b"\x03\x01\x00")  # a bad frame
    _, _, st1 = _reply(b, 70, codec.encode_outputs(1, []))
    assert (st1["inputs"], st1["counts"][:3], st1["rx_errors"]) == (0b001, [1, 0, 1], 1)
    _, _, st2 = _reply(b, 80, codec.encode_outputs(2, []))
    assert (st2["counts"][:3], st2["rx_errors"]) == ([0, 0, 0], 0)


def test_inputs_debounce_ignores_glitches_and_saturates() -> None:
    inp = board.Inputs(0, 20)
    inp.sample(0, 0)
    inp.sample(5, 1)
    inp.sample(15, 0)  # a 10 ms glitch
    inp.sample(40, 0)
    assert (inp.state, inp.counts[0]) == (0, 0)
    inp.sample(50, 1)
    inp.sample(69, 1)
    assert inp.state == 0
    inp.sample(70, 1)
    assert (inp.state, inp.counts[0]) == (1, 1)
    fast = board.Inputs(0, 0)
    for i in range(1000):
        fast.sample(i, i & 1)
    assert fast.take_counts()[0] == 255 and fast.counts[0] == 0


def test_lamp_bits_follow_the_pin_map() -> None:
    buf = bytearray(board.LAMP_BYTES)
    board.lamp_bits([G] + [D] * 30 + [R], 32, True, buf)
    assert buf[board.LAMP_BYTES - 1] == 0x04  # channel 0 green: output bit 2, chip 0
    assert buf[0] == 0x20  # channel 31 red: output bit 93, chip 11 pin QF
    assert sum(buf) == 0x24
    board.lamp_bits([FR, FY, Y], 3, True, buf)
    assert buf[board.LAMP_BYTES - 1] == 0b1001_0001  # bits 0 (red), 4 (yellow), 7 (yellow)
    assert sum(buf) == 0b1001_0001
    board.lamp_bits([FR, FY, Y], 3, False, buf)  # flashing lamps in their off half
    assert buf[board.LAMP_BYTES - 1] == 0b1000_0000 and sum(buf) == 0b1000_0000


def test_a_version_1_host_is_refused_with_its_reason() -> None:
    """A host of protocol 1 learns the board's version 2 from HELLO_REPLY, its CONFIG
    (the version-1 layout) is dropped as a bad length, and RECOVER is NAKed NO_HELLO."""
    b = board.Board(0)
    t, _, hello = _reply(b, 0, codec.encode_hello(0, 1))
    assert t == codec.MSG_HELLO_REPLY and hello["version"] == 2 and not b.hello_ok
    v1_config = bytearray(3 + 10 * 4)
    v1_config[0] = 4
    frame = codec._frame(codec.MSG_CONFIG, 1, bytes(v1_config))
    assert b.receive(0, frame) == b"" and b.decoder.n_bad_length == 1
    assert _reply(b, 0, codec.encode_recover(2, 1))[2]["reason"] == codec.NAK_NO_HELLO


def test_old_host_session_names_both_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    from edge.board import session

    from tests.board.test_session import VECTOR_CONFIG

    monkeypatch.setattr(session, "HOST_PROTOCOL_VERSION", 1)
    s = session.BoardSession(VECTOR_CONFIG)
    s.connect(0)
    reply = board.Board(0).receive(0, codec.encode_hello(0, 1))
    with pytest.raises(
        session.BoardVersionError, match="host speaks version 1, board speaks version 2"
    ):
        s.receive(5, reply)


# --- the shortcuts (a repeated map, time added lazily) against the walk they skip ---


class _WalkingSafety(board_safety.BoardSafety):  # type: ignore[misc]
    """The board as it ran before the shortcuts: every map walks every rule, every
    tick adds its time to every channel."""

    def _advance(self, now_ms: int) -> None:
        super()._advance(now_ms)
        self._flush()

    def outputs(self, now_ms: int, codes: Any, flags: int = 0) -> int:
        self._ok = None
        return int(super().outputs(now_ms, codes, flags))


def _inner(s: board_safety.BoardSafety) -> tuple[Any, ...]:
    n, top = s.channels, board_safety._SATURATE_MS
    return (
        s.state,
        s.fault,
        s.fault_channels,
        s.lamps(),
        [min(ms + s._pending_ms, top) for ms in s._cat_ms[:n]],  # without adding them
        [min(ms + s._pending_ms, top) for ms in s._off_steady_ms[:n]],
        [min(ms + s._pending_ms, top) for ms in s._off_fya_ms[:n]],
        bytes(s._cat[:n]),
        bytes(s._use[:n]),
        s._quiet_ms,
        s._all_red_ms,
    )


_DT = [0, 50] + [100] * 12 + [499, 500, 3000, 70000]


@st.composite
def board_calls(draw: st.DrawFn) -> list[tuple[str, int, list[int]]]:
    codes = list(ALL_RED)
    calls: list[tuple[str, int, list[int]]] = []
    for _ in range(draw(st.integers(1, 150))):
        what = draw(st.sampled_from(["outputs"] * 16 + ["tick", "recover", "flash", "host"]))
        if what == "recover":
            codes = list(ALL_RED)  # through the all-red again, then on
        if what == "outputs" and draw(st.integers(0, 3)) == 0:
            ch = draw(st.integers(0, 3))
            table = _NEXT_PED if KINDS[ch] == codec.KIND_PED else _NEXT
            if draw(st.integers(0, 20)) == 0:
                codes[ch] = draw(st.integers(0, 7))
            else:
                codes[ch] = draw(st.sampled_from(table.get(codes[ch], [R])))
        calls.append((what, draw(st.sampled_from(_DT)), list(codes)))
    return calls


@settings(max_examples=examples(200), suppress_health_check=[HealthCheck.too_slow])
@given(board_calls())
@pytest.mark.parametrize("floors", [True, False])
def test_board_shortcuts_keep_every_outcome(
    floors: bool, calls: list[tuple[str, int, list[int]]]
) -> None:
    """A map equal to the one driven is driven without the rule walk, and ticks add
    their time to one number until a map changes: every call returns what the
    walking board returns, and state, fault, lamps and every timer stay equal."""
    saved = board_safety.MIN_YELLOW_FLOOR_MS, board_safety.MIN_CLEAR_FLOOR_MS
    if not floors:
        board_safety.MIN_YELLOW_FLOOR_MS = board_safety.MIN_CLEAR_FLOOR_MS = 0
    try:
        boards = [board_safety.BoardSafety(0), _WalkingSafety(0)]
        body = config_body(*((MIN_YELLOW_MS, MIN_RED_MS) if floors else (_PROP_YELLOW, _PROP_RED)))
        t = 0
        for s in boards:
            assert s.configure(t, body) == 0
            assert s.recover(t, body["config_hash"]) == 0
        for what, dt, codes in calls:
            t += dt
            got = []
            for s in boards:
                if what == "outputs":
                    got.append(s.outputs(t, codes))
                elif what == "host":
                    got.append(s.outputs(t, codes, codec.OUTPUTS_FLAG_FLASH))
                elif what == "tick":
                    got.append(s.tick(t))
                elif what == "recover":
                    got.append(s.recover(t, body["config_hash"]))
                else:
                    s.force_flash(t, codec.FAULT_INTERNAL, 1)
                    got.append(0)
            assert got[0] == got[1], (what, t, codes)
            assert _inner(boards[0]) == _inner(boards[1]), (what, t, codes)
    finally:
        board_safety.MIN_YELLOW_FLOOR_MS, board_safety.MIN_CLEAR_FLOOR_MS = saved
