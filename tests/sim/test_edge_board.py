"""`--controller edge-board`: the controller through the board firmware, in-process, in lockstep."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from edge.board.guard import OutputGuard
from hw.codec_cpython import loops
from sim.sumo import scenarios
from sim.sumo.gen import generate
from sim.sumo.lockstep import run

from hw import board_safety, codec
from tests.sim.link_monitor import LinkMonitor


def test_edge_board_runs_arterial_safely_and_deterministically() -> None:
    scenario = scenarios.resolve("arterial")
    monitor = LinkMonitor.from_net(str(scenario.net))
    a = run(scenario, "edge-board", seed=3, end_s=300, observer=monitor)
    assert monitor.greens_seen > 0
    assert monitor.violations == []
    assert a["collisions"] == 0 and a["arrived"] > 20
    assert not [n for n in a["notes"] if "board flash" in n or "the guard held" in n]
    b = run(scenario, "edge-board", seed=3, end_s=300)
    keep = ("inserted", "arrived", "mean_delay_s", "stops_per_vehicle")
    assert {k: a[k] for k in keep} == {k: b[k] for k in keep}


def test_edge_board_single_flashing_arrows_shows_every_green() -> None:
    """The single site's flashing-yellow-arrow overlaps: the guard checks conflicts per
    indication as the board does. It held every flashing arrow (and the through green
    starting beside one) against the arrow's steady mask until the core ended it: 32
    greens skipped in 900 s, delay 66.7 s/veh where the core alone has 19.7. On this
    clean link the guard holds nothing at all."""
    scenario = scenarios.resolve("single")
    monitor = LinkMonitor.from_net(str(scenario.net))
    a = run(scenario, "edge-board", seed=1, end_s=300, observer=monitor)
    assert monitor.greens_seen > 0
    assert monitor.violations == []
    assert not [n for n in a["notes"] if "the guard held" in n or "board flash" in n]
    assert a["collisions"] == 0 and a["arrived"] > 20


def _lamp_trace(scenario: scenarios.Scenario, seconds: float) -> tuple[list[str], list[bytes]]:
    """SUMO's link states after every step, and every board's driven codes and every
    guard's sent codes at every 100 ms tick, of an edge-board run."""
    states: list[str] = []
    ticks: list[bytes] = []

    def attach(ctl: Any) -> None:
        step = ctl.step

        def traced(sim: Any, t_ms: int, sensed: bool) -> None:
            step(sim, t_ms, sensed)
            for b in ctl.boards:
                ticks.append(b.board.safety.lamps() + bytes(b.driver.session.guard.sent_code))

        ctl.step = traced

    def observe(sim: Any, t_ms: int) -> None:
        states.extend(
            sim.trafficlight.getRedYellowGreenState(t) for t in sim.trafficlight.getIDList()
        )

    report = run(scenario, "edge-board", seed=2, end_s=seconds, observer=observe, attach=attach)
    assert report["arrived"] > 10 and not [n for n in report["notes"] if "board flash" in n]
    return states, ticks


def test_edge_board_shortcuts_change_no_lamp(monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes the lockstep path fast changes no lamp: the same run with the codec's
    byte loops (as the firmware runs them on the Pico), a guard that walks every
    channel of every map, and a board that walks every rule for every map and adds
    each tick's time to every channel shows SUMO the same states after every step,
    and the boards drive, and the guards send, the same codes at every tick."""
    scenario = scenarios.resolve("tee")
    fast = _lamp_trace(scenario, 240)
    shape, confirm = OutputGuard.shape, OutputGuard.confirm

    def walk_shape(self: OutputGuard, now_ms: int, wanted: Sequence[int]) -> list[int]:
        self._settled = None
        return shape(self, now_ms, wanted)

    def walk_confirm(self: OutputGuard, sent_ms: int, lamps: Sequence[int]) -> None:
        self._confirmed_lamps = None
        confirm(self, sent_ms, lamps)

    outputs, advance = board_safety.BoardSafety.outputs, board_safety.BoardSafety._advance

    def walk_outputs(self: Any, now_ms: int, codes: Any, flags: int = 0) -> Any:
        self._ok = None
        return outputs(self, now_ms, codes, flags)

    def walk_advance(self: Any, now_ms: int) -> None:
        advance(self, now_ms)
        self._flush()

    monkeypatch.setattr(OutputGuard, "shape", walk_shape)
    monkeypatch.setattr(OutputGuard, "confirm", walk_confirm)
    monkeypatch.setattr(board_safety.BoardSafety, "outputs", walk_outputs)
    monkeypatch.setattr(board_safety.BoardSafety, "_advance", walk_advance)
    with loops(codec):
        slow = _lamp_trace(scenario, 240)
    assert len(fast[1]) == 2400  # one signal, 240 s of ticks
    assert fast == slow


def test_edge_board_derived_tee_holds_its_left_turn_pairs_without_a_flash(
    tmp_path: Path,
) -> None:
    """A derived tee (issue 17): its protected left shows only as the green arrow of a
    flashing-yellow-arrow head, and its right-turn overlap has its own channel. The
    board's CONFIG holds the left's pairs on the arrow (steady) and never refuses what
    the core shows, flashing arrow included: no board flash in 600 s."""
    folder = generate("tee", 3, tmp_path / "tee")
    scenario = scenarios.resolve(str(folder))
    ctls: list[Any] = []
    report = run(scenario, "edge-board", seed=1, end_s=600, attach=ctls.append)
    assert report["arrived"] > 50 and not [n for n in report["notes"] if "board flash" in n]
    (b,) = ctls[0].boards
    safety = b.board.safety
    assert safety.state == codec.STATE_RUNNING
    on_arrow = [ig for igs in safety._ig for ig in igs if ig[1] == 1 or ig[2] == 1]
    assert len(on_arrow) >= 3  # P2 -> P1, P4 -> P1, P1 -> P2 on the head's arrow


@pytest.mark.parametrize(
    ("family", "seed", "level", "end_s"),
    [
        # A pair's red after its change (intergreen less the yellow, 3.3-3.5 s) longer
        # than the 3 s start-up all red: the guard held the first greens.
        ("cross", 3, None, 60),
        ("tee", 6, None, 60),
        # A crossing called during its clearance walked again in the step it ended:
        # the guard put in the don't walk the board requires (at 428 s).
        ("tee", 1, "off-peak", 520),
    ],
)
def test_edge_board_derived_sites_clean_link_holds_nothing(
    tmp_path: Path, family: str, seed: int, level: str | None, end_s: float
) -> None:
    """On the lockstep link the lamps are the core's maps: the guard holds no channel
    for a tick, on derived sites that made it hold before (guard30)."""
    scenario = scenarios.resolve(str(generate(family, seed, tmp_path / family, level)))
    ctls: list[Any] = []
    report = run(scenario, "edge-board", seed=1, end_s=end_s, attach=ctls.append)
    (b,) = ctls[0].boards
    assert b.board.safety.state == codec.STATE_RUNNING
    assert (b.driver.session.guard.held, b.driver.guard_skipped) == (0, 0)
    assert not [n for n in report["notes"] if "the guard held" in n or "board flash" in n]
