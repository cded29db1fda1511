"""OutputGuard: what it sends for a wanted map given what the board has confirmed (table-driven)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from edge.board.config import BoardConfig
from edge.board.guard import CHANGE, GO, STOP, CoreMinimums, OutputGuard, category, core_minimums
from edge.config import load_site
from edge.control.site import SignalKind
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hw import codec
from tests.board.fakelink import crossing
from tests.hypothesis_profiles import examples

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"

# Channel 0 and 1 conflict (two crossing streets); channel 2 is a crosswalk
# beside channel 0 (conflicts with 1). Yellow 3000 ms, ped clearance 3000 ms,
# red clearance 1000 ms.
CFG = BoardConfig(
    conflicts=(0b010, 0b101, 0b010),
    min_yellow_ms=(3000, 3000, 3000),
    min_red_ms=(1000, 1000, 1000),
    flash=(1, 0, 2),
    kinds=(codec.KIND_VEHICLE, codec.KIND_VEHICLE, codec.KIND_PED),
    watchdog_ms=500,
    labels=("a", "b", "walk"),
)
R, Y, G, FR, FY, D = 1, 2, 3, 4, 5, 0


def running(t0: int = 0) -> OutputGuard:
    g = OutputGuard(CFG)
    g.board_recovered(t0)
    g.board_running()
    return g


@pytest.mark.parametrize(
    ("kind", "code", "cat"),
    [
        (codec.KIND_VEHICLE, R, STOP),
        (codec.KIND_VEHICLE, D, STOP),
        (codec.KIND_VEHICLE, FR, STOP),
        (codec.KIND_VEHICLE, Y, CHANGE),
        (codec.KIND_VEHICLE, G, GO),
        (codec.KIND_VEHICLE, FY, GO),
        (codec.KIND_PED, G, GO),
        (codec.KIND_PED, FR, CHANGE),
        (codec.KIND_PED, R, STOP),
    ],
)
def test_categories_as_the_board(kind: int, code: int, cat: int) -> None:
    assert category(kind, code) == cat


def test_clean_link_passes_the_controller_map() -> None:
    g = running(0)
    assert g.shape(1000, [G, R, G]) == [G, R, G]
    g.confirm(1000, [G, R, G])
    assert g.shape(5000, [Y, R, FR]) == [Y, R, FR]
    g.confirm(5000, [Y, R, FR])
    assert g.shape(8000, [R, R, R]) == [R, R, R]
    g.confirm(8000, [R, R, R])
    assert g.shape(9000, [R, G, R]) == [R, G, R]
    assert g.held == 0


def test_yellow_confirmed_late_is_held_longer() -> None:
    g = running(0)
    g.shape(1000, [G, R, R])
    g.confirm(1000, [G, R, R])
    assert g.shape(5000, [Y, R, R]) == [Y, R, R]
    # The STATUS of the 5000 frame is lost; the 5100 one confirms the yellow.
    assert g.shape(5100, [Y, R, R]) == [Y, R, R]
    g.confirm(5100, [Y, R, R])
    assert g.shape(8000, [R, R, R]) == [Y, R, R]  # the board may have seen yellow only at 5100
    assert g.shape(8100, [R, R, R]) == [R, R, R]
    assert g.held == 1


def test_unconfirmed_yellow_is_repeated() -> None:
    g = running(0)
    g.shape(1000, [G, R, R])
    g.confirm(1000, [G, R, R])
    g.shape(5000, [Y, R, R])
    for t in range(5100, 9000, 100):
        assert g.shape(t, [R, R, R]) == [Y, R, R]  # never red before the board shows yellow
    g.confirm(8900, [Y, R, R])
    assert g.shape(11800, [R, R, R]) == [Y, R, R]
    assert g.shape(11900, [R, R, R]) == [R, R, R]


def test_green_waits_for_confirmed_red_clearance() -> None:
    g = running(0)
    g.shape(1000, [G, R, R])
    g.confirm(1000, [G, R, R])
    g.shape(5000, [Y, R, R])
    g.confirm(5000, [Y, R, R])
    g.shape(8000, [R, R, R])  # STATUS lost
    assert g.shape(9000, [R, G, R]) == [R, R, R]  # red of channel 0 not confirmed
    g.confirm(8100, [R, R, R])
    assert g.shape(9000, [R, G, R]) == [R, R, R]  # confirmed at 8100: clear at 9100
    assert g.shape(9100, [R, G, R]) == [R, G, R]


def test_green_to_red_goes_through_yellow() -> None:
    g = running(0)
    g.shape(1000, [FY, R, R])
    g.confirm(1000, [FY, R, R])
    assert g.shape(2000, [R, R, R]) == [Y, R, R]
    g.confirm(2000, [Y, R, R])
    assert g.shape(4900, [R, R, R]) == [Y, R, R]
    assert g.shape(5000, [R, R, R]) == [R, R, R]


def test_walk_ends_through_clearance() -> None:
    g = running(0)
    g.shape(1000, [R, R, G])
    g.confirm(1000, [R, R, G])
    assert g.shape(2000, [R, R, R]) == [R, R, FR]


def test_green_never_shown_is_not_followed_by_yellow() -> None:
    g = running(0)
    g.shape(500, [R, R, R])  # channel 1's red clearance is not over at 500
    assert g.shape(500, [R, G, R]) == [R, R, R]
    assert g.shape(600, [R, Y, R]) == [R, R, R]


def test_conflicting_wants_never_both_sent() -> None:
    g = running(0)
    assert g.shape(2000, [G, G, R]) == [G, R, R]


def test_change_back_to_go_finishes_the_change() -> None:
    g = running(0)
    g.shape(1000, [G, R, R])
    g.confirm(1000, [G, R, R])
    g.shape(2000, [Y, R, R])
    g.confirm(2000, [Y, R, R])
    assert g.shape(3000, [G, R, R]) == [Y, R, R]
    assert g.shape(5000, [G, R, R]) == [R, R, R]
    g.confirm(5000, [R, R, R])
    assert g.shape(5100, [G, R, R]) == [G, R, R]


def test_outside_running_only_stops() -> None:
    g = OutputGuard(CFG)
    g.board_recovered(0)  # the board's all-red
    assert g.shape(100, [G, FR, D]) == [R, FR, D]
    g.board_stopped()
    assert g.shape(200, [FY, R, G]) == [R, R, R]


def test_bad_codes_pass_through_for_the_board_to_refuse() -> None:
    g = running(0)
    assert g.shape(1000, [R, R, Y]) == [R, R, Y]  # yellow on a walk head
    assert g.shape(1000, [R, R]) == [R, R]  # wrong count


def test_host_jitter_tolerance() -> None:
    """A tick a few ms early is fine (the board allows 50 ms); 20 ms early is held."""
    g = running(0)
    g.shape(1000, [G, R, R])
    g.confirm(1000, [G, R, R])
    g.shape(5000, [Y, R, R])
    g.confirm(5000, [Y, R, R])
    assert g.shape(7979, [R, R, R]) == [Y, R, R]
    assert g.shape(7980, [R, R, R]) == [R, R, R]


# -- the core's minimums: a late start never makes an interval shorter ---------------------

# Channel 0: min green 5 s, red clearance 2 s; channel 1: 5 s, 2 s; the walk: 4 s, 2 s.
CORE = CoreMinimums(go_ms=(5000, 5000, 4000), red_ms=(2000, 2000, 2000))


def core_guard() -> OutputGuard:
    g = OutputGuard(CFG, CORE)
    g.board_recovered(0)
    g.board_running()
    return g


def test_green_started_late_ends_late() -> None:
    """The controller's 5 s green (its minimum) reached the lamps 300 ms late: it ends late."""
    g = core_guard()
    g.shape(10_000, [G, R, R])
    g.confirm(10_300, [G, R, R])  # the first STATUS showing it answers the 10 300 frame
    assert g.shape(15_000, [Y, R, R]) == [G, R, R]
    assert g.shape(15_200, [Y, R, R]) == [G, R, R]
    assert g.shape(15_300, [Y, R, R]) == [Y, R, R]


def test_green_longer_than_its_minimum_catches_up() -> None:
    """A 20 s green that started 300 ms late on the lamps ends on time: still >= 5 s."""
    g = core_guard()
    g.shape(10_000, [G, R, R])
    g.confirm(10_300, [G, R, R])
    assert g.shape(30_000, [Y, R, R]) == [Y, R, R]


def test_green_cut_by_the_controller_is_never_shown_longer_than_needed() -> None:
    """A green the core itself ended early (preemption, 2 s) lasts at least that long."""
    g = core_guard()
    g.shape(10_000, [G, R, R])
    g.confirm(10_100, [G, R, R])
    assert g.shape(12_000, [Y, R, R]) == [G, R, R]
    assert g.shape(12_100, [Y, R, R]) == [Y, R, R]


def test_change_lasts_the_controllers_when_longer_than_the_boards() -> None:
    g = core_guard()
    assert g.shape(3000, [G, R, R]) == [G, R, R]  # 2 s after the recovery's all-red began
    g.confirm(3000, [G, R, R])
    g.shape(10_000, [Y, R, R])
    g.confirm(10_100, [Y, R, R])  # confirmed a tick late
    assert g.shape(14_500, [R, R, R]) == [Y, R, R]  # the core's 4.5 s yellow, not the board's 3
    assert g.shape(14_600, [R, R, R]) == [R, R, R]


def test_red_clearance_keeps_the_cores() -> None:
    """The core's 2 s red clearance (the board asks 1 s) holds when the red came late."""
    g = core_guard()
    assert g.shape(3000, [G, R, R]) == [G, R, R]  # 2 s after the recovery's all-red began
    g.confirm(3000, [G, R, R])
    g.shape(10_000, [Y, R, R])
    g.confirm(10_000, [Y, R, R])
    g.shape(13_000, [R, R, R])
    g.confirm(13_100, [R, R, R])  # the red reached the lamps 100 ms late
    assert g.shape(15_000, [R, G, R]) == [R, R, R]
    assert g.shape(15_100, [R, G, R]) == [R, G, R]
    # A conflicting channel red for long (in the controller and on the lamps): no wait.
    g2 = core_guard()
    assert g2.shape(60_000, [R, G, R]) == [R, G, R]


def test_green_never_shown_is_listed_as_skipped() -> None:
    g = core_guard()
    g.shape(500, [R, G, R])  # channel 0 not stopped for 2 s yet since the recovery
    assert g.shape(600, [R, Y, R]) == [R, R, R]
    assert g.skipped == [1]


def test_site_minimums_follow_the_plans() -> None:
    site = crossing()  # min green 1 s, walk 4 s, red clearance 1 s
    assert core_minimums(site) == CoreMinimums(go_ms=(1000, 1000, 4000), red_ms=(1000, 1000, 1000))
    fast = site.plans["fast"]
    slow = dataclasses.replace(
        fast,
        id="slow",
        timings={
            pid: dataclasses.replace(t, min_green_ms=7000, red_clear_ms=2500, walk_ms=6000)
            for pid, t in fast.timings.items()
        },
    )
    both = dataclasses.replace(site, plans={"fast": fast, "slow": slow})
    assert core_minimums(both) == CoreMinimums(go_ms=(7000, 7000, 6000), red_ms=(2500,) * 3)


def test_the_red_cap_covers_the_intergreens_a_channel_leaves() -> None:
    """A 7 s intergreen after a 3 s yellow: a conflicting GO held late still waits up to
    4 s of red after the change on the lamps (the blanket red is 1 s)."""
    site = crossing()
    a, b = (ch for ch in site.channels[:2])
    table = {((a.kind, a.source), (b.kind, b.source)): 7000}
    with_ig = dataclasses.replace(site, intergreens=table)
    yellow = min(p.timings[int(a.source)].yellow_ms for p in site.plans.values())
    assert core_minimums(with_ig).red_ms[0] == 7000 - yellow
    assert core_minimums(with_ig).red_ms[1:] == core_minimums(site).red_ms[1:]


# Channel 0 is a flashing-yellow-arrow left, channel 1 the opposing through, channel 2
# the cross street. The left's green arrow (steady mask) conflicts with the through; its
# flashing yellow arrow (FYA mask) does not (edge/board/config.py's _masks).
FYA_CFG = dataclasses.replace(
    CFG,
    conflicts=(0b110, 0b101, 0b011),
    fya_conflicts=(0b100, 0b101, 0b011),
    kinds=(codec.KIND_VEHICLE,) * 3,
    labels=("left", "through", "cross"),
)


def fya_running(t0: int = 0) -> OutputGuard:
    g = OutputGuard(FYA_CFG)
    g.board_recovered(t0)
    g.board_running()
    return g


def test_flashing_arrow_beside_the_opposing_green_is_not_held() -> None:
    # Was held against the arrow's steady mask until its end, then listed as skipped.
    g = fya_running(0)
    assert g.shape(1000, [R, G, R]) == [R, G, R]
    g.confirm(1000, [R, G, R])
    assert g.shape(2000, [FY, G, R]) == [FY, G, R]
    g.confirm(2000, [FY, G, R])
    assert g.shape(9000, [Y, G, R]) == [Y, G, R]
    g.confirm(9000, [Y, G, R])
    assert g.shape(12000, [R, G, R]) == [R, G, R]
    assert g.held == 0 and g.skipped == []


def test_opposing_green_beside_a_flashing_arrow_is_not_held() -> None:
    g = fya_running(0)
    g.shape(1000, [FY, R, R])
    g.confirm(1000, [FY, R, R])
    assert g.shape(2000, [FY, G, R]) == [FY, G, R]
    assert g.held == 0


def test_green_arrow_after_a_flashing_arrow_waits_for_the_through_red() -> None:
    g = fya_running(0)
    g.shape(1000, [FY, G, R])
    g.confirm(1000, [FY, G, R])
    g.shape(5000, [FY, Y, R])
    g.confirm(5000, [FY, Y, R])
    # The controller ends the yellow at 8000 and starts the green arrow after its 1 s
    # red; the board confirmed the red only at 8500 (a lost STATUS): the arrow flashes on.
    g.shape(8000, [FY, R, R])
    g.confirm(8500, [FY, R, R])
    assert g.shape(9000, [G, R, R]) == [FY, R, R]
    assert g.shape(9500, [G, R, R]) == [G, R, R]


def test_through_waits_for_a_green_arrow_shown_after_the_flashing_one() -> None:
    # The arrow's last GO was steady: its yellow and red clear the through.
    g = fya_running(0)
    g.shape(1000, [FY, R, R])
    g.confirm(1000, [FY, R, R])
    g.shape(2000, [G, R, R])
    g.confirm(2000, [G, R, R])
    g.shape(6000, [Y, R, R])
    g.confirm(6000, [Y, R, R])
    g.shape(9000, [R, R, R])
    g.confirm(9000, [R, R, R])
    assert g.shape(9500, [R, G, R]) == [R, R, R]
    assert g.shape(10000, [R, G, R]) == [R, G, R]


def test_green_beside_a_flashing_arrow_starting_with_it_keeps_the_cores_red() -> None:
    # Channel 0 the through, 1 the arrow (a higher channel, as on the single site), 2 the
    # cross street. The arrow's green ended (yellow, red at 8000); at 9500 the through
    # starts with the arrow's flashing yellow in the same map. The core had the arrow red
    # 1.5 s and the board's 1 s minimum is met: the through goes. The guard took the
    # arrow as not stopped at all and asked for the core's whole 3 s red cap (a green
    # held a tick, every time, on the single site).
    cfg = dataclasses.replace(
        FYA_CFG, conflicts=(0b110, 0b101, 0b011), fya_conflicts=(0b110, 0b100, 0b011)
    )
    g = OutputGuard(cfg, CoreMinimums((0, 0, 0), (3000, 3000, 3000)))
    g.board_recovered(0)
    g.board_running()
    assert g.shape(4000, [R, G, R]) == [R, G, R]
    g.confirm(4000, [R, G, R])
    g.shape(5000, [R, Y, R])
    g.confirm(5000, [R, Y, R])
    g.shape(8000, [R, R, R])
    g.confirm(8000, [R, R, R])
    assert g.shape(9500, [G, FY, R]) == [G, FY, R]
    assert g.held == 0


# --- the settled-map shortcut (shape of a map it need not shape again) ------------------


class _NoShortcut(OutputGuard):
    """The guard walking every channel on every map, as before the shortcut."""

    def shape(self, now_ms: int, wanted: Sequence[int]) -> list[int]:
        self._settled = None
        return super().shape(now_ms, wanted)

    def confirm(self, sent_ms: int, lamps: Sequence[int]) -> None:
        self._confirmed_lamps = None
        super().confirm(sent_ms, lamps)


_MAPS = [(R, R, R), (G, R, R), (Y, R, R), (R, G, R), (R, Y, R), (R, R, G), (FY, R, G), (G, G, R)]
_MAPS += [(FY, G, R), (Y, G, R), (R, R, FR), (R, R, D), (FR, R, G), (7, R, R)]
_ops = st.lists(
    st.tuples(
        st.sampled_from(["shape", "shape", "shape", "confirm", "confirm", "lose", "state"]),
        st.integers(0, len(_MAPS) - 1),
        st.sampled_from([0, 20, 100, 100, 100, 300, 2000]),
    ),
    max_size=120,
)


@settings(max_examples=examples(300))
@given(st.sampled_from(["plain", "fya"]), _ops)
@example("plain", [("lose", 1, 100), ("state", 0, 100), ("lose", 1, 100)])  # recovered: new
@example(  # settled while running, then the board stops: all red at once
    "plain",
    [
        ("state", 1, 0),
        ("shape", 1, 5000),
        ("confirm", 0, 100),
        ("shape", 1, 100),
        ("state", 2, 100),
        ("shape", 1, 100),
    ],
)
def test_shortcut_sends_and_keeps_what_the_walk_does(cfg_name: str, ops: list[Any]) -> None:
    cfg = FYA_CFG if cfg_name == "fya" else CFG
    mins = CoreMinimums((5000, 0, 4000), (2000, 0, 1500))
    fast, slow = OutputGuard(cfg, mins), _NoShortcut(cfg, mins)
    t = 0
    last: dict[str, list[int]] = {"fast": [R, R, R], "slow": [R, R, R]}
    for op, k, dt in ops:
        t += dt
        for name, g in (("fast", fast), ("slow", slow)):
            if op == "shape":
                last[name] = g.shape(t, _MAPS[k])
            elif op == "confirm":  # the board shows what was sent last
                g.confirm(t, tuple(last[name]))
            elif op == "lose":  # a STATUS of an older map, or of an unknown one
                g.confirm(t, _MAPS[k])
            elif k % 4 == 0:
                g.board_recovered(t)
            elif k % 4 == 1:
                g.board_running()
            elif k % 4 == 2:
                g.board_stopped()
            else:
                g.set_minimums(CoreMinimums((3000, 100, 0), (1000, 500, 0)))
        assert last["fast"] == last["slow"]
        state = {k: v for k, v in vars(fast).items() if k not in ("_settled", "_confirmed_lamps")}
        assert state == {
            k: v for k, v in vars(slow).items() if k not in ("_settled", "_confirmed_lamps")
        }


def test_a_green_arrows_pairs_hold_the_through_after_the_arrow_only() -> None:
    """A protected left shown only as the green arrow of a flashing-yellow-arrow head
    owes its pairs from the arrow's end (issue 17). Its red confirmed 100 ms late: the
    through, started by the core 4 s into the arrow's red, waits 100 ms more on the
    lamps (the board's own red clearance is 1 s). Before any arrow (the start-up all
    red covers it, as in the core) nothing is held."""
    mins = CoreMinimums((0, 0, 0), (1000, 1000, 1000), (4000, 0, 0))
    g = OutputGuard(FYA_CFG, mins)
    g.board_recovered(0)
    g.board_running()
    assert g.shape(1000, [R, G, R]) == [R, G, R]  # no arrow since the start
    g.confirm(1000, [R, G, R])
    g.shape(5000, [R, Y, R])
    g.confirm(5000, [R, Y, R])
    g.shape(8000, [R, R, R])
    g.confirm(8000, [R, R, R])
    assert g.shape(9000, [G, R, R]) == [G, R, R]
    g.confirm(9000, [G, R, R])
    g.shape(13000, [Y, R, R])
    g.confirm(13000, [Y, R, R])
    assert g.shape(16000, [R, R, R]) == [R, R, R]
    g.confirm(16100, [R, R, R])
    assert g.shape(20000, [R, G, R]) == [R, R, R]
    assert g.shape(20100, [R, G, R]) == [R, G, R]
    assert g.held == 1


def test_core_minimums_of_a_green_arrow_are_its_protected_parents_pairs() -> None:
    site = load_site(EXAMPLES_DIR / "t_junction.toml")
    p1, p2 = (SignalKind.PHASE, 1), (SignalKind.PHASE, 2)
    with_ig = dataclasses.replace(site, intergreens={(p1, p2): 5500, (p2, p1): 4500})
    head = next(i for i, ch in enumerate(site.channels) if ch.kind is SignalKind.OVERLAP
                and ch.source == "B")  # fmt: skip
    yellow = min(p.timings[1].yellow_ms for p in site.plans.values())
    mins = core_minimums(with_ig)
    assert mins.arrow_red_ms[head] == 5500 - yellow
    assert [ms for i, ms in enumerate(mins.arrow_red_ms) if i != head] == [0] * 5
    assert core_minimums(site).arrow_red_ms == ()


def test_start_up_all_red_covers_a_channel_that_showed_nothing() -> None:
    """Derived cross 3: a pair's red after its change (intergreen less the yellow, 3.4 s)
    longer than the core's 3 s start-up all red. The core owes it only after the group
    has shown a green (intergreens.py rule 4): the guard held the first greens 400 ms.
    After channel 1 has shown a GO its red is owed again, from the lamps' red."""
    g = OutputGuard(CFG, CoreMinimums((5000, 5000, 4000), (3400, 3400, 2000)))
    g.board_recovered(6100)
    g.board_running()
    assert g.shape(9100, [G, R, R]) == [G, R, R]  # 3 s after the all red began
    g.confirm(9100, [G, R, R])
    assert g.held == 0
    g.shape(15_000, [Y, R, R])
    g.confirm(15_000, [Y, R, R])
    g.shape(18_000, [R, R, R])
    g.confirm(18_100, [R, R, R])  # the red reached the lamps 100 ms late
    assert g.shape(21_400, [R, G, R]) == [R, R, R]  # 3.4 s of the core's, on the lamps
    assert g.shape(21_500, [R, G, R]) == [R, G, R]
    # The board's own red still holds a channel that showed nothing.
    g2 = OutputGuard(CFG, CoreMinimums((5000, 5000, 4000), (3400, 3400, 2000)))
    g2.board_recovered(8500)
    g2.board_running()
    assert g2.shape(9100, [G, R, R]) == [R, R, R]  # 600 ms of the board's 1 s
    assert g2.shape(9500, [G, R, R]) == [G, R, R]


def test_a_channel_shown_before_a_board_flash_still_owes_the_cores_red() -> None:
    """The start-up rule ("showed nothing since the guard began") never holds for a
    channel the lamps showed in this process: a board flash and recovery (the driver
    restarts the controller, the same guard goes on) keep what each channel showed, so
    the pair's red after the change (3.4 s, longer than the board's 1 s) is owed from
    the recovery's red."""
    g = OutputGuard(CFG, CoreMinimums((5000, 5000, 4000), (3400, 3400, 2000)))
    g.board_recovered(0)
    g.board_running()
    g.shape(3000, [G, R, R])
    g.confirm(3000, [G, R, R])
    g.shape(9000, [Y, R, R])
    g.confirm(9000, [Y, R, R])
    g.board_stopped()  # a fault flash in the yellow
    g.shape(9100, [R, R, R])
    g.board_recovered(20_000)
    g.board_running()
    assert g.shape(21_000, [R, G, R]) == [R, R, R]  # the board's own red has passed
    assert g.shape(23_300, [R, G, R]) == [R, R, R]
    assert g.shape(23_400, [R, G, R]) == [R, G, R]
