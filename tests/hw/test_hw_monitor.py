"""hw/monitor.py: the field monitor's timing windows and each fault class, on a simulated clock.

The board (hw.board.Board) runs the test intersection of hw/PROTOCOL.md; the
street is sim/field.Field. Properties: a sensed conflict or dual indication
shorter than 200 ms never trips and one that lasts always trips by 450 ms;
red fail by 1500 ms; each injected field fault is named by its own class.
"""

from __future__ import annotations

from devtools.bench.monitor import EXPECTED, SITE, fault_trial
from edge.config import load_site
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sim.field import COLOURS, Field, FieldFault, parse_fault

from hw import board, codec, monitor
from tests.hypothesis_profiles import examples

from .test_hw_board_safety import ALL_RED, CONFLICTS, FLASH, KINDS, MIN_RED_MS, MIN_YELLOW_MS

R, G = codec.RED, codec.GREEN
NS_GO = [G, R, G, R]


def running(loop_ms: int) -> tuple[board.Board, Field, int]:
    b = board.Board(0)
    f = Field(latency_ms=10)
    assert b.run_self_test(0, f.sense(0), board.SELF_TEST_PATTERN) == 0
    b.receive(0, codec.encode_hello(0))
    b.receive(0, codec.encode_config(1, CONFLICTS, MIN_YELLOW_MS, MIN_RED_MS, FLASH, KINDS, 500))
    b.receive(0, codec.encode_recover(2, b.safety.config_hash))
    t = 0
    t = drive(b, f, t, ALL_RED, 2000, loop_ms)
    assert b.safety.state == codec.STATE_RUNNING
    t = drive(b, f, t, NS_GO, 2000, loop_ms)
    return b, f, t


def drive(b: board.Board, f: Field, t: int, codes: list[int], ms: int, loop_ms: int) -> int:
    """Loop passes every loop_ms for ms, an OUTPUTS every 100 ms; stops at flash."""
    end = t + ms
    while t < end and b.safety.state != codec.STATE_FLASH:
        t += loop_ms
        if t % 100 < loop_ms:
            b.receive(t, codec.encode_outputs(0, codes))
        b.tick(t)
        s = b.safety
        on = board.flash_phase(t)
        f.drive(t, s.driven, s.channels, on)
        b.sense(t, f.sense(t, s.kinds), on)
    return t


@settings(max_examples=examples(25))
@given(st.integers(10, 1000), st.sampled_from([1, 2, 5, 10, 25]))
@example(199, 1)
@example(290, 10)
@example(450, 25)
def test_conflict_window(duration_ms: int, loop_ms: int) -> None:
    """Channel 1 (EW, conflicts with the NS green) sensed green for duration_ms."""
    b, f, t = running(loop_ms)
    f.inject(1, FieldFault("stuck_on", COLOURS["green"]))
    t0 = t
    t = drive(b, f, t, NS_GO, duration_ms, loop_ms)
    f.clear()
    t = drive(b, f, t, NS_GO, 500, loop_ms)
    s = b.safety
    if duration_ms < 200:
        assert s.state == codec.STATE_RUNNING
    if duration_ms >= 450:
        assert s.state == codec.STATE_FLASH and s.fault == codec.FAULT_FIELD_CONFLICT
    if s.state == codec.STATE_FLASH:
        assert s.fault == codec.FAULT_FIELD_CONFLICT and s.fault_channels == 0b11
        assert b.record is not None and b.record[1] == codec.FAULT_FIELD_CONFLICT
        assert t - t0 <= 450


@settings(max_examples=examples(5))
@given(st.sampled_from([1, 2, 5, 10, 25]))
@example(25)
def test_red_fail_by_1500_ms(loop_ms: int) -> None:
    b, f, t = running(loop_ms)
    f.inject(1, FieldFault("dead", COLOURS["red"]))  # channel 1 shows steady red
    t0 = t
    t = drive(b, f, t, NS_GO, 1500, loop_ms)
    assert b.safety.fault == codec.FAULT_RED_FAIL and b.safety.fault_channels == 0b10
    assert 1200 <= t - t0 <= 1500


@settings(max_examples=examples(15))
@given(st.integers(10, 1000))
@example(199)
@example(450)
def test_dual_indication_window(duration_ms: int) -> None:
    b, f, t = running(5)
    f.inject(0, FieldFault("dual", 0))  # green + yellow on channel 0
    t = drive(b, f, t, NS_GO, duration_ms, 5)
    f.clear()
    drive(b, f, t, NS_GO, 500, 5)
    s = b.safety
    if duration_ms < 200:
        assert s.state == codec.STATE_RUNNING
    if duration_ms >= 450:
        assert s.fault == codec.FAULT_DUAL_INDICATION


def test_short_yellow_is_a_field_clearance_fault() -> None:
    b, f, t = running(5)
    f.inject(0, FieldFault("short", 0))
    t = drive(b, f, t, [G, R, codec.FLASH_RED, R], 5000, 5)  # walk clearance first
    t = drive(b, f, t, [codec.YELLOW, R, R, R], 500, 5)
    assert b.safety.fault == codec.FAULT_FIELD_CLEARANCE


def test_normal_operation_never_trips() -> None:
    b, f, t = running(5)
    t = drive(b, f, t, NS_GO, 3000, 5)
    t = drive(b, f, t, [G, R, codec.FLASH_RED, R], 5000, 5)
    t = drive(b, f, t, [codec.YELLOW, R, R, R], 3000, 5)
    t = drive(b, f, t, ALL_RED, 1000, 5)
    drive(b, f, t, [R, G, R, G], 3000, 5)
    assert b.safety.state == codec.STATE_RUNNING


def test_self_test_failure_latches_and_refuses_recover() -> None:
    f = Field()
    f.inject(3, FieldFault("stuck_on", COLOURS["green"]))  # a welded walk output
    b = board.Board(0)
    assert b.run_self_test(0, f.sense(0), board.SELF_TEST_PATTERN) == 1 << 3
    assert b.safety.fault == codec.FAULT_SELF_TEST
    assert monitor.self_test(bytes(12), 0x00) == 1 << 31  # a broken chain
    b.receive(0, codec.encode_hello(0))
    b.receive(0, codec.encode_config(1, CONFLICTS, MIN_YELLOW_MS, MIN_RED_MS, FLASH, KINDS, 500))
    nak = codec.decode_frame(b.receive(0, codec.encode_recover(2, b.safety.config_hash)))
    assert nak is not None and nak[2]["reason"] == codec.NAK_SELF_TEST


def test_fault_record_survives_a_reset() -> None:
    b, f, t = running(5)
    f.inject(1, FieldFault("dead", COLOURS["red"]))
    drive(b, f, t, NS_GO, 2000, 5)
    again = board.Board(0, store=b.store)  # power cycle: the same flash store
    assert again.boots == b.boots + 1
    hello = codec.decode_frame(again.receive(0, codec.encode_hello(0)))
    assert hello is not None
    rec = hello[2]["record"]
    assert rec["fault"] == codec.FAULT_RED_FAIL and rec["channels"] == 0b10
    assert rec["boot"] == b.boots and rec["boots"] == again.boots and rec["uptime_ms"] > 0
    assert codec.FAULT_CLASS[rec["fault"]] == codec.CLASS_ABSENCE_OF_RED


def test_parse_fault_names_what_is_wrong() -> None:
    assert parse_fault(["2", "welded"]) == (2, FieldFault("stuck_on", COLOURS["green"]))
    for bad, why in ((["1"], "usage"), (["40", "dead"], "channel 40"), (["1", "melt"], "melt")):
        try:
            parse_fault(bad)
        except ValueError as e:
            assert why in str(e)
        else:
            raise AssertionError(bad)


def test_each_injected_fault_is_named_by_its_class() -> None:
    """The bench's own trials on the example site (with its flashing yellow arrow)."""
    site = load_site(SITE)
    for kind, fault in EXPECTED.items():
        got = [fault_trial(site, kind, seed) for seed in (2,)]
        ok = (fault, codec.FAULT_DUAL_INDICATION) if kind == "conflict" else (fault,)
        assert all(r is not None and r[1] in ok for r in got), (kind, got)
        windows = {"conflict": 450, "dual_indication": 450, "red_fail": 1500}
        assert all(r is not None and r[0] <= windows.get(kind, 2100) for r in got)


def test_a_watchdog_flash_does_not_overwrite_the_record() -> None:
    b, f, t = running(5)
    f.inject(1, FieldFault("dead", COLOURS["red"]))
    drive(b, f, t, NS_GO, 2000, 5)
    again = board.Board(0, store=b.store)  # power cycle
    again.receive(0, codec.encode_hello(0))
    again.receive(0, codec.encode_config(1, CONFLICTS, MIN_YELLOW_MS, MIN_RED_MS, FLASH, KINDS))
    again.receive(0, codec.encode_recover(2, again.safety.config_hash))
    again.tick(600)  # no OUTPUTS: the watchdog flashes the board
    assert again.safety.fault == codec.FAULT_WATCHDOG
    assert again.record is not None and again.record[1] == codec.FAULT_RED_FAIL
