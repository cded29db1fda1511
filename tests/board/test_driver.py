"""BoardDriver against the real firmware core over a fake wire: start-up, loss, faults, policy."""

from __future__ import annotations

import logging

import pytest
from edge.board.session import SessionState
from edge.control.messages import Inputs, Outputs

from hw import board, codec
from tests.board.checks import check_lamp_minimums, check_trace, plan_minimums, watchdog_flashes
from tests.board.fakelink import FakeLink

MIN = 60_000


def running(fl: FakeLink) -> bool:
    return bool(fl.state == codec.STATE_RUNNING)


def test_start_up_recovers_through_all_red(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fl = FakeLink()
    fl.connect()
    assert fl.run_until(lambda: running(fl), 5000)
    fl.step_to(fl.now + 30_000)
    states = [s for _, s, _, _ in fl.trace]
    first_all_red = states.index(codec.STATE_ALL_RED)
    assert codec.STATE_FLASH in states[:first_all_red]
    assert states[first_all_red + 1] == codec.STATE_RUNNING
    assert check_trace(fl.driver.config, fl.trace) == []
    text = caplog.text
    for event in ("board_connected", "board_configured", "board_recover", "board_all_red"):
        assert event in text
    assert "clearing_fault=POWER_ON" in text
    # A normal start is not a fault: nothing above INFO (a technician reads WARNING as one).
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    # The controller's greens reach the board: every channel went GO at least once.
    shown = {c for _, _, _, lamps in fl.trace for c in lamps}
    assert codec.GREEN in shown and codec.YELLOW in shown and codec.FLASH_RED in shown


@pytest.mark.parametrize(
    ("ber", "minutes", "seed", "runs_at_least"), [(1e-3, 10, 1, 0.9), (3e-3, 5, 2, 0.0)]
)
def test_lossy_link_shows_only_commanded_legal_lamps(
    ber: float, minutes: int, seed: int, runs_at_least: float
) -> None:
    """Bit errors on both directions: frames are dropped by CRC, never shown wrong.

    The board may flash only through its watchdog, and only after frames were
    lost for the whole watchdog time (or the host, hearing nothing for 1 s,
    stopped driving it); the driver then recovers it through all red, up to
    its policy limit (at 3e-3 a third of the STATUS frames are lost and the
    limit is reached: the run checks safety, not availability).
    """
    fl = FakeLink(ber=ber, seed=seed)
    fl.connect()
    fl.step_to(fl.now + minutes * MIN)
    cfg = fl.driver.config
    assert check_trace(cfg, fl.trace) == []
    # A lost frame delays a change; no green, walk or clearance after it is shown shorter
    # than the core's minimum for it (the guard used to start the next green late and end
    # it on time: 0.3-0.9 s greens for 1 s, 3.2-3.9 s walks for 4 s).
    assert check_lamp_minimums(cfg, fl.trace, plan_minimums(fl.site, "fast")) == []
    sent = {m.sent for m in fl.sent}
    assert {tuple(codes) for _, codes, _ in fl.rx} <= sent  # nothing corrupt got through
    running_maps = {tuple(lamps) for _, s, _, lamps in fl.trace if s == codec.STATE_RUNNING}
    assert running_maps <= sent
    faults = {f for _, s, f, _ in fl.trace if s == codec.STATE_FLASH}
    assert faults <= {codec.FAULT_POWER_ON, codec.FAULT_WATCHDOG}
    for _t, quiet in watchdog_flashes(fl.trace, [t for t, _, _ in fl.rx], cfg.watchdog_ms):
        assert quiet >= cfg.watchdog_ms
    stats = fl.driver.stats()
    assert stats["bad_crc"] + stats["bad_cobs"] > 0
    assert stats["board_rx_errors"] > 0
    # The board reports its drops per STATUS; a lost STATUS loses its count.
    assert 0 < fl.driver.session.board_rx_errors <= fl.board.decoder.dropped()
    in_running = sum(b[0] - a[0] for a, b in zip(fl.trace, fl.trace[1:], strict=False) if a[1] == 1)
    assert in_running >= runs_at_least * minutes * MIN


def conflicting_map(fl: FakeLink) -> list[int]:
    cfg = fl.driver.config
    i = next(i for i in range(cfg.channels) if cfg.conflicts[i])
    j = next(j for j in range(cfg.channels) if cfg.conflicts[i] >> j & 1)
    codes = [codec.RED] * cfg.channels
    codes[i] = codes[j] = codec.GREEN
    return codes


def test_conflicting_map_latches_flash_without_recovery(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fl = FakeLink()
    fl.connect()
    assert fl.run_until(lambda: running(fl), 5000)
    fl.step_to(fl.now + 5000)
    fl.board.receive(fl.now, codec.encode_outputs(200, conflicting_map(fl)))
    assert fl.board.safety.fault == codec.FAULT_CONFLICT
    fl.step_to(fl.now + 20_000)
    assert fl.state == codec.STATE_FLASH and fl.board.safety.fault == codec.FAULT_CONFLICT
    assert fl.driver.session.state is SessionState.READY
    assert fl.driver.session.board_fault == codec.FAULT_CONFLICT
    assert "board_fault fault=CONFLICT code=2" in caplog.text
    assert "board_flash_latched fault=CONFLICT" in caplog.text
    assert caplog.text.count("board_recover ") == 1  # the start-up one only
    assert fl.driver.controller.mode == "flash"  # the controller follows the board to flash
    assert check_trace(fl.driver.config, fl.trace) == []


def test_cable_cut_recovers_through_all_red(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fl = FakeLink()
    fl.connect()
    assert fl.run_until(lambda: running(fl), 5000)
    fl.step_to(fl.now + 3000)
    cut = fl.now
    fl.disconnect()
    assert fl.run_until(lambda: fl.state == codec.STATE_FLASH, 1000)
    assert fl.board.safety.fault == codec.FAULT_WATCHDOG
    assert fl.now - cut <= fl.driver.config.watchdog_ms + 100
    fl.step_to(fl.now + 2000)
    back = fl.now
    fl.connect()
    assert fl.run_until(lambda: fl.state == codec.STATE_ALL_RED, 1000)
    # The board flashed longer than the start-up flash: no second flash period.
    assert fl.now - back < 500
    assert fl.run_until(lambda: running(fl), 3000)
    assert "board_link_lost" in caplog.text
    assert "clearing_fault=WATCHDOG" in caplog.text
    assert check_trace(fl.driver.config, fl.trace) == []


def test_board_power_cycle_recovers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fl = FakeLink()
    fl.connect()
    assert fl.run_until(lambda: running(fl), 5000)
    fl.step_to(fl.now + 3000)
    fl.board = board.Board(fl.now)
    fl._record()
    assert fl.run_until(lambda: fl.driver.session.state is SessionState.READY, 2000)
    assert fl.run_until(lambda: running(fl), 6000)
    assert "board_reset" in caplog.text
    assert caplog.text.count("clearing_fault=POWER_ON") == 2
    assert check_trace(fl.driver.config, fl.trace) == []


def test_recovery_limit_keeps_flash(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fl = FakeLink()
    fl.driver.max_recoveries_per_hour = 2
    fl.connect()
    for _ in range(2):
        assert fl.run_until(lambda: running(fl), 6000)
        fl.disconnect()
        assert fl.run_until(lambda: fl.state == codec.STATE_FLASH, 1000)
        fl.step_to(fl.now + 1500)
        fl.connect()
    fl.step_to(fl.now + 6000)
    assert fl.state == codec.STATE_FLASH
    assert "board_recover_refused fault=WATCHDOG recoveries_last_hour=2" in caplog.text


def test_controller_fault_flash_sets_the_flag() -> None:
    fl = FakeLink()
    fl.connect()
    assert fl.run_until(lambda: running(fl), 5000)
    ctl = fl.driver.controller
    ctl._enter_fault(fl.now, "test")  # as the monitor does
    ctl.deadline = 0  # make the next step() look at it
    fl.step_to(fl.now + 500)
    assert fl.state == codec.STATE_FLASH
    assert fl.board.safety.fault == codec.FAULT_HOST_FLASH
    assert any(m.flash for m in fl.sent)


def test_inputs_and_counts_reach_the_controller() -> None:
    fl = FakeLink()
    seen: list[Inputs] = []
    fl.connect()
    assert fl.run_until(lambda: running(fl), 5000)
    ctl = fl.driver.controller
    step = ctl.step

    def spy(now: int, inputs: Inputs) -> Outputs:
        seen.append(inputs)
        return step(now, inputs)

    ctl.step = spy  # type: ignore[method-assign]
    fl.raw_inputs = 0b001  # input 1: detector 1 present
    for _ in range(3):  # input 2 pulses three times, 40 ms on, 40 ms off (debounce 20 ms)
        fl.raw_inputs |= 0b010
        fl.step_to(fl.now + 40)
        fl.raw_inputs &= ~0b010
        fl.step_to(fl.now + 40)
    fl.step_to(fl.now + 300)
    assert any(i.occupied == frozenset({1}) for i in seen)
    counted = sum(n for i in seen for det, n in i.actuations if det == 2)
    assert counted == 3


def test_safety_fault_survives_a_board_reset(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fl = FakeLink()
    fl.connect()
    assert fl.run_until(lambda: running(fl), 5000)
    fl.board.receive(fl.now, codec.encode_outputs(200, conflicting_map(fl)))
    fl.step_to(fl.now + 1000)
    fl.board = board.Board(fl.now)  # power cycle: the board forgets the conflict
    fl._record()
    fl.step_to(fl.now + 10_000)
    assert fl.state == codec.STATE_FLASH
    assert fl.driver.session.state is SessionState.READY  # configured again, not recovered
    assert caplog.text.count("board_flash_latched fault=CONFLICT") == 2


def test_a_field_fault_reaches_the_log_the_events_and_after_a_reset_the_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fl = FakeLink()
    fl.connect()
    assert fl.run_until(lambda: running(fl), 5000)
    fl.board.safety.force_flash(fl.now, codec.FAULT_RED_FAIL, 0b10)  # the monitor's verdict
    fl.step_to(fl.now + 500)
    assert "board_fault fault=RED_FAIL code=14 class='absence of red (red lamp failure)' " in (
        caplog.text
    )
    assert "channels=2" in caplog.text  # the crossing's second channel, by its site id
    events = list(fl.driver.board_events)
    assert events[-1][1:] == (
        "board_fault",
        "RED_FAIL",
        "absence of red (red lamp failure); channels 2",
    )
    old = fl.board
    fl.board.tick(fl.now)  # the record is written when the fault latches
    fl.board = board.Board(fl.now, store=old.store)  # power cycle: the flash keeps the record
    fl.step_to(fl.now + 3000)
    rec = fl.driver.session.fault_record
    assert rec is not None and rec.fault == codec.FAULT_RED_FAIL and rec.boot == old.boots
    assert "RED_FAIL (absence of red (red lamp failure)), channels 2" in rec.describe()
    assert any(e[1] == "board_fault_record" for e in fl.driver.board_events)
    assert "board_fault_record RED_FAIL" in caplog.text
