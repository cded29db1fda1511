"""OutputGuard: what it sends for a wanted map given what the board has confirmed (table-driven)."""

from __future__ import annotations

import pytest
from edge.board.config import BoardConfig
from edge.board.guard import CHANGE, GO, STOP, OutputGuard, category

from hw import codec

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
