"""Exact timelines of the dual-ring sequencer, as a NEMA TS-2 controller should time them.

Every expected time below is worked out from the rule named in the test, with
the round test timings of tests/control/timeline.py (min green 5, passage 2,
max 20, yellow 3, red clearance 1, red revert 2, walk 5, ped clearance 6;
start-up flash 2 + all red 2). "since" cuts the timeline where the scenario
starts; the start-up cycle before it is checked by the start-up tests.
"""

from __future__ import annotations

from typing import Any

import pytest
from edge.control.messages import Lamp

from tests.control.timeline import (
    FOUR_SETTLED_S,
    assert_timeline,
    cross,
    eight_settle,
    ends,
    ev,
    four_settle,
    green,
    make_site,
    run,
    startup,
    walk,
)

# --- start-up ----------------------------------------------------------------------


def test_startup_sequence() -> None:
    """Flash 0-2 s, all red 2-4 s, then the start-up phases with a call on every phase.

    The start-up calls make every phase be served once (2+6, 3+7, 4+8, 1+5, in
    ring order); with no detector and no recall the controller then rests in
    the last phases served, 1 and 5.
    """
    site = make_site("eight", main_recall=False)
    r = run(site, 60.0)
    assert_timeline(
        r.timeline(),
        [
            *ev(0.0, "mode", "startup_flash"),
            *startup(),
            *green(4.0, 2, 6),
            *ends(9.0, 2, 6),
            *cross(9.0, 2),
            *green(13.0, 3, 7),
            *ends(18.0, 3, 7),
            *green(22.0, 4, 8),
            *ends(27.0, 4, 8),
            *cross(27.0, 1),
            *green(31.0, 1, 5),
        ],
    )


def test_startup_displays() -> None:
    site = make_site("eight", main_recall=False)
    r = run(site, 4.0)
    flashing = r.at(0.0)
    assert flashing.mode == "startup_flash"
    assert [r.phase(1.9, p) for p in (2, 6)] == [Lamp.FLASH_YELLOW] * 2
    assert [r.phase(1.9, p) for p in (1, 3, 4, 5, 7, 8)] == [Lamp.FLASH_RED] * 6
    assert set(flashing.peds) == {Lamp.DARK}
    assert r.at(2.0).mode == "startup_all_red"
    assert set(r.at(3.9).phases) == {Lamp.RED}
    assert [r.ped(3.9, p) for p in (2, 4, 6, 8)] == [Lamp.RED] * 4
    assert r.at(4.0).mode == "run"
    assert [r.phase(4.0, p) for p in (2, 6)] == [Lamp.GREEN] * 2


def test_settled_states() -> None:
    """The start-up cycles the other tests build on (see tests/control/timeline.py)."""
    assert_timeline(run(make_site("four"), 29.9).timeline(since=1.0), four_settle())
    assert_timeline(run(make_site("eight"), 49.9).timeline(since=1.0), eight_settle())


# --- minimum green, passage, maximum -------------------------------------------------


@pytest.mark.parametrize(
    ("min_green", "vehicles", "gap_out_at"),
    [
        (5.0, [], 49.0),
        (5.0, [(4, 45.0, 45.5)], 49.0),  # passage ends at 47.5, inside the min green
        (8.0, [], 52.0),
        (12.0, [(4, 46.0, 47.0)], 56.0),
    ],
)
def test_min_green(min_green, vehicles, gap_out_at) -> None:
    """Phase 4 green at 44.0 times its whole min green before it can gap out.

    (Phase 4's min green also lengthens the start-up cycle, so the call comes
    at 40.0, when 2 and 6 rest green whatever the min green.)
    """
    site = make_site("four", phase_timing={4: {"min_green_s": min_green}})
    r = run(site, gap_out_at + 8, occupancy=[(4, 40.0, 40.5), *vehicles])
    assert_timeline(
        r.timeline(since=40.0),
        [
            *ends(40.0, 2, 6),
            *cross(40.0, 2),
            *green(44.0, 4),
            *ends(gap_out_at, 4),
            *cross(gap_out_at, 1),
            *green(gap_out_at + 4, 2, 6),
        ],
    )


@pytest.mark.parametrize(
    ("vehicles", "gap_out_at"),
    [
        # Each departure restarts the 2 s passage: the last leaves at 40.3.
        ([(4, 36.0, 36.3), (4, 37.5, 38.1), (4, 40.0, 40.3)], 42.3),
        # Passage runs out at 38.2 inside the min green; the car at 38.5 extends.
        ([(4, 36.0, 36.2), (4, 38.5, 38.7)], 40.7),
        # Passage runs out at 40.2, after the min green: the car at 40.3 is too late
        # (it calls 4 again, on its yellow, for the next cycle).
        ([(4, 38.0, 38.2), (4, 40.3, 40.5)], 40.2),
        # A queue standing on the loop holds the green; passage times from its end.
        ([(4, 35.0, 45.0)], 47.0),
    ],
)
def test_passage_gap_out(vehicles, gap_out_at) -> None:
    site = make_site("four")
    r = run(site, gap_out_at + 8, occupancy=[(4, 30.0, 30.5), *vehicles])
    assert_timeline(
        r.timeline(since=FOUR_SETTLED_S + 0.1),
        [
            *ends(30.0, 2, 6),
            *cross(30.0, 2),
            *green(34.0, 4),
            *ends(gap_out_at, 4),
            *cross(gap_out_at, 1),
            *green(gap_out_at + 4, 2, 6),
        ],
    )


def test_max_timer_starts_at_first_conflicting_call() -> None:
    """2 and 6 green since 22.0, extended without a break from 23.0.

    The max timer starts with the call on 4 at 30.0, not with the green at
    22.0: max-out at 50.0, not 42.0.
    """
    site = make_site("four")
    r = run(site, 80.0, occupancy=[(2, 23.0, 100.0), (6, 23.0, 100.0), (4, 30.0, 30.5)])
    assert_timeline(
        r.timeline(since=FOUR_SETTLED_S + 0.1),
        [
            *ends(50.0, 2, 6, reason="max_out"),
            *cross(50.0, 2),
            *green(54.0, 4),
            *ends(59.0, 4),
            *cross(59.0, 1),
            *green(63.0, 2, 6),
        ],
    )


def test_max_timer_resets_when_non_locking_call_goes_away() -> None:
    """A non-locking call on 4 (30.0-35.0) starts the max timer and, leaving, resets it.

    The next call (from 40.0) starts it again: max-out at 60.0. Phase 4 is then
    extended by the same car until 70.0 and gaps out at 72.0.
    """
    site = make_site("four", detector_opts={4: {"locking": False}})
    occupancy = [(2, 23.0, 100.0), (6, 23.0, 100.0), (4, 30.0, 35.0), (4, 40.0, 70.0)]
    r = run(site, 90.0, occupancy=occupancy)
    assert_timeline(
        r.timeline(since=FOUR_SETTLED_S + 0.1),
        [
            *ends(60.0, 2, 6, reason="max_out"),
            *cross(60.0, 2),
            *green(64.0, 4),
            *ends(72.0, 4),
            *cross(72.0, 1),
            *green(76.0, 2, 6),
        ],
    )


# --- clearance intervals and red revert -------------------------------------------------


@pytest.mark.parametrize("yellow", [3.0, 4.5])
@pytest.mark.parametrize("red_clear", [1.0, 2.5])
def test_yellow_and_red_clearance(yellow, red_clear) -> None:
    """2 and 6 end at 40.0: yellow, then red clearance, then 4 starts green at once.

    (The call comes at 40.0: longer clearances also stretch the start-up cycle.)
    """
    timing = {"yellow_s": yellow, "red_clear_s": red_clear, "red_revert_s": max(2.0, red_clear)}
    site = make_site("four", phase_timing={2: timing, 6: timing})
    r = run(site, 70.0, occupancy=[(4, 40.0, 40.5)])
    green_4 = 40.0 + yellow + red_clear
    assert_timeline(
        r.timeline(since=40.0),
        [
            *ends(40.0, 2, 6, yellow=yellow, red=red_clear),
            *cross(40.0, 2),
            *green(green_4, 4),
            *ends(green_4 + 5, 4),
            *cross(green_4 + 5, 1),
            *green(green_4 + 9, 2, 6),
        ],
    )
    end_yellow = round(40.0 + yellow, 1)
    assert r.phase(round(end_yellow - 0.1, 1), 2) == Lamp.YELLOW
    assert r.phase(end_yellow, 2) == Lamp.RED
    assert r.phase(round(green_4 - 0.1, 1), 4) == Lamp.RED
    assert r.phase(green_4, 4) == Lamp.GREEN


@pytest.mark.parametrize(("red_revert", "green_again"), [(2.0, 50.0), (4.0, 52.0)])
def test_red_revert(red_revert, green_again) -> None:
    """Resting in red: phase 2's yellow ends at 48.0; a call at 49.5 waits for red revert.

    NEMA red revert: a phase returns to green only after red revert timed from
    the end of its yellow (48.0), though its red clearance ended at 49.0.
    """
    site = make_site(
        "four",
        site={"rest": "red"},
        main_recall=False,
        timing={"red_revert_s": red_revert},
    )
    r = run(site, 70.0, occupancy=[(2, 40.0, 40.2), (2, 49.5, 49.7)])
    assert_timeline(
        r.timeline(since=30.0),
        [
            *cross(40.0, 1),
            *green(40.0, 2),
            *ends(45.0, 2),
            # To serve 2 again ring 1 goes round the barrier (no other call: straight
            # back to group 1), logged when the call comes.
            *cross(49.5, 1),
            *green(green_again, 2),
            *ends(green_again + 5, 2),
        ],
    )


# --- sequence: skipping, rest, dual entry, barrier ---------------------------------------


@pytest.mark.parametrize(
    ("detector", "expected"),
    [
        # Only 4 called: 3 and 7 skipped, 8 dual-enters; back to 2+6, skipping 1 and 5.
        (
            4,
            [
                *ends(50.0, 2, 6),
                *cross(50.0, 2),
                *green(54.0, 4, 8),
                *ends(59.0, 4, 8),
                *cross(59.0, 1),
                *green(63.0, 2, 6),
            ],
        ),
        # Only 1 called: ring 1 must go round the barrier (group 2 has no call, so
        # straight back to group 1); ring 2 crosses too and serves 6 again (recall)
        # once its red revert allows (yellow ended 53.0 + 2 s = 55.0).
        (
            1,
            [
                *ends(50.0, 2, 6),
                *cross(50.0, 1),
                *green(54.0, 1),
                *green(55.0, 6),
                *ends(59.0, 1),
                *green(63.0, 2),
            ],
        ),
    ],
)
def test_phase_skipping_without_call(detector, expected) -> None:
    site = make_site("eight")
    r = run(site, 70.0, occupancy=[(detector, 50.0, 50.5)])
    assert_timeline(r.timeline(since=45.0), expected)


@pytest.mark.parametrize(
    ("dual_entry_8", "detector", "served"),
    [
        (True, 4, (4, 8)),  # ring 2 has no call in group 2: its dual-entry phase 8 goes
        (False, 4, (4,)),  # without dual entry ring 2 stays red in group 2
        (True, 3, (3, 8)),  # 8, not 7, is ring 2's dual-entry phase
        (True, 7, (4, 7)),  # and 4, not 3, is ring 1's
    ],
)
def test_dual_entry(dual_entry_8, detector, served) -> None:
    site = make_site("eight", phase_opts={8: {"dual_entry": dual_entry_8}})
    r = run(site, 70.0, occupancy=[(detector, 50.0, 50.5)])
    assert_timeline(
        r.timeline(since=45.0),
        [
            *ends(50.0, 2, 6),
            *cross(50.0, 2),
            *green(54.0, *served),
            *ends(59.0, *served),
            *cross(59.0, 1),
            *green(63.0, 2, 6),
        ],
    )


def test_rest_in_green_without_demand() -> None:
    """No recall: after the start-up calls are served, 4+8 rest green; a call on 2 ends them."""
    site = make_site("four", main_recall=False)
    r = run(site, 80.0, occupancy=[(2, 60.0, 60.2)])
    assert_timeline(
        r.timeline(since=1.0),
        [
            *startup(),
            *green(4.0, 2, 6),
            *ends(9.0, 2, 6),
            *cross(9.0, 2),
            *green(13.0, 4, 8),
            *ends(60.0, 4, 8),
            *cross(60.0, 1),
            *green(64.0, 2),
        ],
    )
    assert [r.phase(59.9, p) for p in (2, 4, 6, 8)] == [Lamp.RED, Lamp.GREEN, Lamp.RED, Lamp.GREEN]


def test_rest_in_red_without_demand() -> None:
    """Site rest = "red": a phase with no conflicting demand still ends at its min green."""
    site = make_site("four", site={"rest": "red"}, main_recall=False)
    r = run(site, 60.0, occupancy=[(6, 40.0, 40.2)])
    assert_timeline(
        r.timeline(since=1.0),
        [
            *startup(),
            *green(4.0, 2, 6),
            *ends(9.0, 2, 6),
            *cross(9.0, 2),
            *green(13.0, 4, 8),
            *ends(18.0, 4, 8),
            *cross(40.0, 1),
            *green(40.0, 6),
            *ends(45.0, 6),
        ],
    )
    assert set(r.at(39.9).phases) == {Lamp.RED}
    assert r.at(39.9).mode == "run"


@pytest.mark.parametrize(("simultaneous", "cross_at"), [(True, 44.5), (False, 43.0)])
def test_barrier_waits_for_both_rings(simultaneous, cross_at) -> None:
    """4 gaps out at 39.0 (min green) but 8 is extended until 43.0 (car off 41.0 + 2).

    4 stays green until both rings can cross. With simultaneous gap-out a car on
    4 at 42.0 re-extends it (to 44.5); without it, 4's gap-out is latched at
    39.0 and the barrier is crossed when 8 gaps out at 43.0.
    """
    site = make_site("four", site={"simultaneous_gap_out": simultaneous})
    occupancy = [(4, 30.0, 30.5), (8, 30.0, 30.5), (8, 35.0, 41.0), (4, 42.0, 42.5)]
    r = run(site, 60.0, occupancy=occupancy)
    assert_timeline(
        r.timeline(since=FOUR_SETTLED_S + 0.1),
        [
            *ends(30.0, 2, 6),
            *cross(30.0, 2),
            *green(34.0, 4, 8),
            *ends(cross_at, 4, 8),
            *cross(cross_at, 1),
            *green(cross_at + 4, 2, 6),
        ],
    )
    assert r.phase(cross_at - 0.1, 4) == Lamp.GREEN


def test_ring_rests_in_its_last_phase_until_the_other_ring_reaches_the_barrier() -> None:
    """Calls on 3, 4 and 7: ring 1 times 3 then 4 while ring 2's 7, gapped out at
    59.0 with nothing more to serve in its group, stays green (no dual entry into 8
    mid-group) until 4 gaps out at 68.0; then both cross."""
    site = make_site("eight")
    r = run(site, 75.0, occupancy=[(3, 50.0, 50.2), (4, 50.0, 50.2), (7, 50.0, 50.2)])
    assert_timeline(
        r.timeline(since=45.0),
        [
            *ends(50.0, 2, 6),
            *cross(50.0, 2),
            *green(54.0, 3, 7),
            *ends(59.0, 3),
            *green(63.0, 4),
            *ends(68.0, 4, 7),
            *cross(68.0, 1),
            *green(72.0, 2, 6),
        ],
    )
    assert r.phase(67.9, 7) == Lamp.GREEN
    assert r.phase(67.9, 8) == Lamp.RED


def test_new_group_waits_for_every_ring_to_clear() -> None:
    """6 has the longer clearance (yellow 4.5 + red 2.5): 4 and 8 start together at
    47.0, when ring 2 has cleared, although ring 1 cleared at 44.0."""
    site = make_site(
        "four", phase_timing={6: {"yellow_s": 4.5, "red_clear_s": 2.5, "red_revert_s": 2.5}}
    )
    r = run(site, 60.0, occupancy=[(4, 40.0, 40.2), (8, 40.0, 40.2)])
    assert_timeline(
        r.timeline(since=40.0),
        [
            *ends(40.0, 2),
            *ends(40.0, 6, yellow=4.5, red=2.5),
            *cross(40.0, 2),
            *green(47.0, 4, 8),
            *ends(52.0, 4, 8),
            *cross(52.0, 1),
            *green(56.0, 2, 6),
        ],
    )
    assert r.phase(46.9, 4) == Lamp.RED


# --- pedestrians ---------------------------------------------------------------------


@pytest.mark.parametrize(("walk_s", "clear_s"), [(5.0, 6.0), (7.0, 10.0)])
def test_ped_walk_flashing_dont_walk_dont_walk(walk_s, clear_s) -> None:
    """Push button for 4 at 30.0: walk with the green at 34.0, then clearance, then the
    vehicle green may end at once (min green long done, no vehicles)."""
    site = make_site("four", phase_timing={4: {"walk_s": walk_s, "ped_clear_s": clear_s}})
    r = run(site, 70.0, occupancy=[(24, 30.0, 30.2)])
    end = 34.0 + walk_s + clear_s
    assert_timeline(
        r.timeline(since=FOUR_SETTLED_S + 0.1),
        [
            *ends(30.0, 2, 6),
            *cross(30.0, 2),
            *green(34.0, 4),
            *walk(34.0, 4, walk_s, clear_s),
            *ends(end, 4),
            *cross(end, 1),
            *green(end + 4, 2, 6),
        ],
    )
    assert r.ped(33.9, 4) == Lamp.RED
    assert r.ped(34.0, 4) == Lamp.GREEN
    assert r.ped(34.0 + walk_s - 0.1, 4) == Lamp.GREEN
    assert r.ped(34.0 + walk_s, 4) == Lamp.FLASH_RED
    assert r.ped(end - 0.1, 4) == Lamp.FLASH_RED
    assert r.ped(end, 4) == Lamp.RED
    assert r.phase(end - 0.1, 4) == Lamp.GREEN


def test_walk_not_cut_by_max_out() -> None:
    """Max 10 s from 34.0 runs out at 44.0 during the walk (7 s) + clearance (10 s);
    the pedestrian intervals finish (51.0) before the phase ends, by max-out."""
    site = make_site(
        "four", phase_timing={4: {"max_green_s": 10.0, "walk_s": 7.0, "ped_clear_s": 10.0}}
    )
    r = run(site, 70.0, occupancy=[(24, 30.0, 30.2)])
    assert_timeline(
        r.timeline(since=FOUR_SETTLED_S + 0.1),
        [
            *ends(30.0, 2, 6),
            *cross(30.0, 2),
            *green(34.0, 4),
            *walk(34.0, 4, 7.0, 10.0),
            *ends(51.0, 4, reason="max_out"),
            *cross(51.0, 1),
            *green(55.0, 2, 6),
        ],
    )


def test_ped_recall() -> None:
    """Ped recall on 4: a walk every cycle; 4's green lasts walk + clearance (11 s)."""
    site = make_site("four", phase_timing={4: {"recall": ["ped"]}})
    r = run(site, 80.0)
    assert_timeline(
        r.timeline(since=1.0),
        [
            *startup(),
            *green(4.0, 2, 6),
            *ends(9.0, 2, 6),
            *cross(9.0, 2),
            *green(13.0, 4, 8),
            *walk(13.0, 4),
            *ends(24.0, 4, 8),  # 8 gapped out at 18.0 and waits at the barrier
            *cross(24.0, 1),
            *green(28.0, 2, 6),
            *ends(33.0, 2, 6),
            *cross(33.0, 2),
            *green(37.0, 4),
            *walk(37.0, 4),
            *ends(48.0, 4),
            *cross(48.0, 1),
            *green(52.0, 2, 6),
            *ends(57.0, 2, 6),
            *cross(57.0, 2),
            *green(61.0, 4),
            *walk(61.0, 4),
            *ends(72.0, 4),
            *cross(72.0, 1),
            *green(76.0, 2, 6),
        ],
    )


def test_ped_recycle_while_resting() -> None:
    """2 rests green with no conflicting call: each press brings a new walk (recycle).

    A press during the walk (32.0) is served by that walk. Once 4 is called
    (52.0, during the second walk) the walk is not recycled again and 2 ends
    when its pedestrian clearance ends (61.0).
    """
    site = make_site("four")
    occupancy = [(22, 30.0, 30.2), (22, 32.0, 32.2), (22, 50.0, 50.2), (4, 52.0, 52.2)]
    r = run(site, 80.0, occupancy=occupancy)
    assert_timeline(
        r.timeline(since=FOUR_SETTLED_S + 0.1),
        [
            *walk(30.0, 2),
            *walk(50.0, 2),
            *ends(61.0, 2, 6),
            *cross(61.0, 2),
            *green(65.0, 4),
            *ends(70.0, 4),
            *cross(70.0, 1),
            *green(74.0, 2, 6),
        ],
    )


# --- recalls -------------------------------------------------------------------------


def test_min_recall() -> None:
    """Min recall on 4: served every cycle for its min green, with no detector at all."""
    site = make_site("four", phase_timing={4: {"recall": ["min"]}})
    r = run(site, 60.0)
    assert_timeline(
        r.timeline(since=1.0),
        [
            *four_settle(),
            *ends(27.0, 2, 6),
            *cross(27.0, 2),
            *green(31.0, 4),
            *ends(36.0, 4),
            *cross(36.0, 1),
            *green(40.0, 2, 6),
            *ends(45.0, 2, 6),
            *cross(45.0, 2),
            *green(49.0, 4),
            *ends(54.0, 4),
            *cross(54.0, 1),
            *green(58.0, 2, 6),
        ],
    )


def test_max_recall_never_gaps_out() -> None:
    """Max recall on 4: no vehicles, yet it runs to its max (20 s) every cycle.

    Phase 8 (max 30 here, so that it ends by gap-out) gaps out at 18.0 and
    waits at the barrier.
    """
    site = make_site("four", phase_timing={4: {"recall": ["max"]}, 8: {"max_green_s": 30.0}})
    r = run(site, 74.0)
    assert_timeline(
        r.timeline(since=1.0),
        [
            *startup(),
            *green(4.0, 2, 6),
            *ends(9.0, 2, 6),
            *cross(9.0, 2),
            *green(13.0, 4, 8),
            *ends(33.0, 4, reason="max_out"),
            *ends(33.0, 8),
            *cross(33.0, 1),
            *green(37.0, 2, 6),
            *ends(42.0, 2, 6),
            *cross(42.0, 2),
            *green(46.0, 4),
            *ends(66.0, 4, reason="max_out"),
            *cross(66.0, 1),
            *green(70.0, 2, 6),
        ],
    )


def test_soft_recall() -> None:
    """Soft recall on 2 and 6 calls them only when no other phase calls.

    At start-up 2+6 are served and then 4+8 (start-up calls); with no other call
    the soft recall brings 2+6 back and they rest there. A call on 4 is served
    and the soft recall returns the controller to 2+6.
    """
    soft = {"recall": ["soft"]}
    site = make_site("four", main_recall=False, phase_timing={2: soft, 6: soft})
    r = run(site, 60.0, occupancy=[(4, 30.0, 30.2)])
    assert_timeline(
        r.timeline(since=1.0),
        [
            *four_settle(),
            *ends(30.0, 2, 6),
            *cross(30.0, 2),
            *green(34.0, 4),
            *ends(39.0, 4),
            *cross(39.0, 1),
            *green(43.0, 2, 6),
        ],
    )


# --- detector functions --------------------------------------------------------------


def test_detector_delay() -> None:
    """Delay 3 s on loop 4: a car leaving after 1 s places no call; one staying places
    its call at 43.0. Once 4 is green the delay does not apply: presence extends."""
    site = make_site("four", detector_opts={4: {"delay_s": 3.0}})
    r = run(site, 70.0, occupancy=[(4, 30.0, 31.0), (4, 40.0, 51.0)])
    assert_timeline(
        r.timeline(since=FOUR_SETTLED_S + 0.1),
        [
            *ends(43.0, 2, 6),
            *cross(43.0, 2),
            *green(47.0, 4),
            *ends(53.0, 4),  # car off 51.0 + passage 2 (min green ended 52.0)
            *cross(53.0, 1),
            *green(57.0, 2, 6),
        ],
    )


@pytest.mark.parametrize(("carryover", "gap_out_at"), [(0.0, 42.0), (1.5, 43.5)])
def test_detector_carryover(carryover, gap_out_at) -> None:
    """A car on 4 from 37.0 to 40.0; carryover stretches the output, then passage times."""
    site = make_site("four", detector_opts={4: {"carryover_s": carryover}})
    r = run(site, 60.0, occupancy=[(4, 30.0, 30.2), (4, 37.0, 40.0)])
    assert_timeline(
        r.timeline(since=FOUR_SETTLED_S + 0.1),
        [
            *ends(30.0, 2, 6),
            *cross(30.0, 2),
            *green(34.0, 4),
            *ends(gap_out_at, 4),
            *cross(gap_out_at, 1),
            *green(gap_out_at + 4, 2, 6),
        ],
    )


@pytest.mark.parametrize("locking", [True, False])
def test_locking_and_non_locking_memory(locking) -> None:
    """A car on 4 for 0.5 s while 2 is extended (until 42.0): a locking loop keeps the
    call and 4 is served; a non-locking one forgets it and nothing changes."""
    site = make_site("four", detector_opts={4: {"locking": locking}})
    r = run(site, 60.0, occupancy=[(2, 23.0, 40.0), (4, 30.0, 30.5)])
    expected = [
        *ends(42.0, 2, 6),
        *cross(42.0, 2),
        *green(46.0, 4),
        *ends(51.0, 4),
        *cross(51.0, 1),
        *green(55.0, 2, 6),
    ]
    assert_timeline(r.timeline(since=FOUR_SETTLED_S + 0.1), expected if locking else [])


@pytest.mark.parametrize(
    ("actuations", "gap_out_at"),
    [
        (2, 39.0),  # 2 x 1.5 = 3 s < min green 5 s
        (4, 40.0),  # 6 s
        (6, 43.0),  # 9 s
        (10, 46.0),  # 15 s, capped at max initial 12 s
    ],
)
def test_added_initial(actuations, gap_out_at) -> None:
    """Added initial 1.5 s per actuation counted on red, max initial 12 s."""
    site = make_site("four", phase_timing={4: {"added_initial_s": 1.5, "max_initial_s": 12.0}})
    cars = [(4, 30.0 + 0.4 * k, 30.2 + 0.4 * k) for k in range(actuations)]
    r = run(site, 60.0, occupancy=cars)
    assert_timeline(
        r.timeline(since=FOUR_SETTLED_S + 0.1),
        [
            *ends(30.0, 2, 6),
            *cross(30.0, 2),
            *green(34.0, 4),
            *ends(gap_out_at, 4),
            *cross(gap_out_at, 1),
            *green(gap_out_at + 4, 2, 6),
        ],
    )


def test_gap_reduction_reduces_the_passage() -> None:
    """Passage 4 s reduced to a 2 s min gap: 5 s before reduction, 10 s to reduce.

    Phase 4 is green at 34.0 with conflicting calls (recall on 2 and 6), so
    reduction starts at 39.0 and reaches the min gap at 49.0. Each car sets the
    passage timer to the gap allowed when it leaves:
      off 35.2 -> 4.0 (39.2); off 39.0 -> 4.0 (43.0); off 43.0 -> 3.2 (46.2);
      off 46.0 -> 2.6 (48.6); off 48.5 -> 2.1 (50.6); off 50.7 -> 2.0 (52.7).
    The car at 52.8 comes too late: gap-out at 52.7, and that car (on 4's
    yellow, locking) calls 4 back for the next cycle.
    """
    site = make_site("four", phase_timing={4: _REDUCING})
    r = run(site, 68.0, occupancy=_CARS)
    assert_timeline(
        r.timeline(since=FOUR_SETTLED_S + 0.1),
        [
            *ends(30.0, 2, 6),
            *cross(30.0, 2),
            *green(34.0, 4),
            *ends(52.7, 4),
            *cross(52.7, 1),
            *green(56.7, 2, 6),
            *ends(61.7, 2, 6),
            *cross(61.7, 2),
            *green(65.7, 4),
        ],
    )


def test_gap_reduction_off_keeps_the_passage() -> None:
    """The same cars without reduction: the passage stays 4 s, the car at 52.8 still
    extends and 4 gaps out at 53.0 + 4 = 57.0."""
    site = make_site("four", phase_timing={4: {**_REDUCING, "time_to_reduce_s": 0.0}})
    r = run(site, 68.0, occupancy=_CARS)
    assert_timeline(
        r.timeline(since=FOUR_SETTLED_S + 0.1),
        [
            *ends(30.0, 2, 6),
            *cross(30.0, 2),
            *green(34.0, 4),
            *ends(57.0, 4),
            *cross(57.0, 1),
            *green(61.0, 2, 6),
        ],
    )


_REDUCING = {
    "passage_s": 4.0,
    "max_green_s": 40.0,
    "time_before_reduction_s": 5.0,
    "time_to_reduce_s": 10.0,
    "min_gap_s": 2.0,
}
_CARS = [
    (4, 30.0, 30.2),
    (4, 35.0, 35.2),
    (4, 38.8, 39.0),
    (4, 42.8, 43.0),
    (4, 45.8, 46.0),
    (4, 48.3, 48.5),
    (4, 50.5, 50.7),
    (4, 52.8, 53.0),
]


# --- overlaps ------------------------------------------------------------------------

# Overlap A: the side street's right-turn arrow (S.R), green with phase 4 (S.T)
# and phase 1 (the westbound left, which it does not cross). It conflicts with
# phase 2 (W.T, same exit) and phase 3 (N.L, same exit). A green arrow never
# yields, so the east crosswalk it turns across cannot walk with phase 4.
_OVERLAP_PHASE_4: dict[int, dict[str, Any]] = {4: {"movements": ["S.T"], "ped_crossing": None}}


def test_overlap_green_through_parent_to_parent_change() -> None:
    """Calls on 4 and 1: A is green with 4 (54.0), stays green through 4's yellow and
    red clearance into 1 (63.0), and clears with 1 (yellow 68.0, red 72.0); 2, which
    it conflicts with, starts when A's red clearance ends."""
    site = make_site(
        "eight",
        phase_opts=_OVERLAP_PHASE_4,
        overlaps=[{"id": "A", "parents": [4, 1], "movements": ["S.R"]}],
    )
    r = run(site, 80.0, occupancy=[(4, 50.0, 50.2), (1, 50.0, 50.2)])
    assert_timeline(
        r.timeline(since=45.0),
        [
            *ends(50.0, 2, 6),
            *cross(50.0, 2),
            *green(54.0, 4, 8),
            *ev(54.0, "overlap_green", "overlap A"),
            *ends(59.0, 4, 8),
            *cross(59.0, 1),
            *green(63.0, 1, 6),
            *ends(68.0, 1),
            *ev(68.0, "overlap_yellow", "overlap A"),
            *ev(72.0, "overlap_red", "overlap A"),
            *green(72.0, 2),
        ],
    )
    for t in (54.0, 59.0, 61.0, 62.5, 63.0, 67.9):
        assert r.overlap(t, "A") == Lamp.GREEN, t
    assert r.overlap(68.0, "A") == Lamp.YELLOW
    assert r.overlap(71.0, "A") == Lamp.RED


def test_overlap_trailing_green_delays_conflicting_phase() -> None:
    """A trails 4 by 2 s: green to 61.0, yellow to 64.0, red clearance to 65.0.

    After the barrier both rings have cleared at 63.0: 6 starts then, but 2
    (conflicting with A) waits for A's red clearance to end, at 65.0.
    """
    site = make_site(
        "eight",
        phase_opts=_OVERLAP_PHASE_4,
        overlaps=[{"id": "A", "parents": [4], "movements": ["S.R"], "trail_green_s": 2.0}],
    )
    r = run(site, 80.0, occupancy=[(4, 50.0, 50.2)])
    assert_timeline(
        r.timeline(since=45.0),
        [
            *ends(50.0, 2, 6),
            *cross(50.0, 2),
            *green(54.0, 4, 8),
            *ev(54.0, "overlap_green", "overlap A"),
            *ends(59.0, 4, 8),
            *cross(59.0, 1),
            *ev(61.0, "overlap_yellow", "overlap A"),
            *green(63.0, 6),
            *ev(65.0, "overlap_red", "overlap A"),
            *green(65.0, 2),
        ],
    )
    assert r.overlap(60.9, "A") == Lamp.GREEN
    assert r.overlap(61.0, "A") == Lamp.YELLOW
    assert r.phase(64.9, 2) == Lamp.RED
