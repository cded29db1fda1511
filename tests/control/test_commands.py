"""Exact timelines of operator commands, plan changes and bad input.

Site "four" with main-street recall (tests/control/timeline.py): 2 and 6 rest
green from 22.0. Unless a test says otherwise, a call on 4 is served as
    2+6 yellow, red clearance 1 s, 4 green 4 s later, min green 5 s, back to 2+6.
"""

from __future__ import annotations

import pytest
from edge.control.messages import (
    AllRed,
    Automatic,
    Flash,
    ForceOff,
    Hold,
    Lamp,
    Omit,
    Outputs,
    PlaceCall,
    Recover,
    SetPlan,
    UseMax2,
)

from tests.control.timeline import (
    FOUR_SETTLED_S,
    Entry,
    Runner,
    assert_timeline,
    cross,
    ends,
    ev,
    green,
    make_site,
    run,
    walk,
)

SINCE = FOUR_SETTLED_S + 0.1


def applied(t: float, command: str) -> list[Entry]:
    return ev(t, "command_applied", command)


def rejected(t: float, command: str) -> list[Entry]:
    return ev(t, "command_rejected", command)


def serve_4(t: float) -> list[Entry]:
    """A call on 4 at t, with 2 and 6 resting green past their minimums."""
    return [
        *ends(t, 2, 6),
        *cross(t, 2),
        *green(t + 4, 4),
        *ends(t + 9, 4),
        *cross(t + 9, 1),
        *green(t + 13, 2, 6),
    ]


def restart(t: float) -> list[Entry]:
    """Leaving flash at t: start-up all red (2 s), then run with calls on every phase."""
    return [
        *ev(t, "mode", "startup_all_red"),
        *ev(t + 2, "mode", "run"),
        *green(t + 2, 2, 6),
        *ends(t + 7, 2, 6),
        *cross(t + 7, 2),
        *green(t + 11, 4, 8),
        *ends(t + 16, 4, 8),
        *cross(t + 16, 1),
        *green(t + 20, 2, 6),
    ]


# --- hold, force-off, calls, omit -------------------------------------------------------


def test_hold() -> None:
    """Hold 2: the call on 4 (30.0) waits; 6 has gapped out but waits at the barrier.
    Released at 45.0, both end at once."""
    site = make_site("four")
    r = run(
        site,
        62.0,
        occupancy=[(4, 30.0, 30.5)],
        commands=[(28.0, Hold((2,))), (45.0, Hold(None))],
    )
    assert_timeline(
        r.timeline(since=SINCE),
        [*applied(28.0, "Hold"), *applied(45.0, "Hold"), *serve_4(45.0)],
    )
    assert r.phase(44.9, 2) == Lamp.GREEN
    assert r.phase(44.9, 6) == Lamp.GREEN


def test_force_off() -> None:
    """Force-off ends an extending green at once, but never inside its min green.

    2 is extended without a break; ForceOff(2) at 35.0 ends it then (6, gapped
    out, crosses the barrier with it). 4, green at 39.0 and extended by a
    standing queue, is forced off at 40.0 but keeps its min green to 44.0.
    ForceOff(8) while 8 is red is rejected.
    """
    site = make_site("four")
    r = run(
        site,
        60.0,
        occupancy=[(2, 23.0, 100.0), (4, 30.0, 30.5), (4, 38.0, 100.0)],
        commands=[(31.0, ForceOff(8)), (35.0, ForceOff(2)), (40.0, ForceOff(4))],
    )
    assert_timeline(
        r.timeline(since=SINCE),
        [
            *rejected(31.0, "ForceOff"),
            *applied(35.0, "ForceOff"),
            *ends(35.0, 2, reason="force_off"),
            *ends(35.0, 6),
            *cross(35.0, 2),
            *green(39.0, 4),
            *applied(40.0, "ForceOff"),
            *ends(44.0, 4, reason="force_off"),
            *cross(44.0, 1),
            *green(48.0, 2, 6),
        ],
    )


@pytest.mark.parametrize(
    ("command", "site_kwargs", "expected"),
    [
        (PlaceCall(4), {}, [*applied(30.0, "PlaceCall"), *serve_4(30.0)]),
        (
            PlaceCall(4, ped=True),
            {},
            [
                *applied(30.0, "PlaceCall"),
                *ends(30.0, 2, 6),
                *cross(30.0, 2),
                *green(34.0, 4),
                *walk(34.0, 4),
                *ends(45.0, 4),
                *cross(45.0, 1),
                *green(49.0, 2, 6),
            ],
        ),
        # A ped call on the resting phase itself: a walk at once (recycle).
        (PlaceCall(2, ped=True), {}, [*applied(30.0, "PlaceCall"), *walk(30.0, 2)]),
        # A ped call on a phase without a pedestrian signal.
        (
            PlaceCall(8, ped=True),
            {"phase_opts": {8: {"ped_crossing": None}}},
            rejected(30.0, "PlaceCall"),
        ),
        # A phase the site does not have.
        (PlaceCall(3), {}, rejected(30.0, "PlaceCall")),
    ],
)
def test_place_call(command, site_kwargs, expected) -> None:
    site = make_site("four", **site_kwargs)
    r = run(site, 60.0, commands=[(30.0, command)])
    assert_timeline(r.timeline(since=SINCE), expected)


def test_omit_keeps_the_call_until_restored() -> None:
    site = make_site("four")
    r = run(
        site,
        60.0,
        occupancy=[(4, 30.0, 30.5)],
        commands=[(25.0, Omit(4)), (40.0, Omit(4, on=False))],
    )
    assert_timeline(
        r.timeline(since=SINCE),
        [*applied(25.0, "Omit"), *applied(40.0, "Omit"), *serve_4(40.0)],
    )
    assert r.phase(39.9, 2) == Lamp.GREEN


# --- all red, flash, fault ----------------------------------------------------------------


@pytest.mark.parametrize(("release", "green_again"), [(40.0, 40.0), (34.5, 35.0)])
def test_all_red(release, green_again) -> None:
    """All red at 30.0: 2 and 6 clear through yellow and red clearance; the mode is all
    red from 34.0, when the clearances end. On release 2 and 6 start again at once, or
    when red revert (from the end of yellow, 33.0 + 2 s) allows. Then the controller
    runs as before: a call on 4 at 50.0 is served."""
    site = make_site("four")
    r = run(
        site,
        64.0,
        occupancy=[(4, 50.0, 50.5)],
        commands=[(30.0, AllRed()), (release, AllRed(on=False))],
    )
    assert_timeline(
        r.timeline(since=SINCE),
        [
            *applied(30.0, "AllRed"),
            *ends(30.0, 2, 6, reason=None),
            *ev(34.0, "mode", "all_red"),
            *ev(34.0, "all_red_enter"),
            *applied(release, "AllRed"),
            *ev(release, "all_red_exit"),
            *ev(release, "mode", "run"),
            *green(green_again, 2, 6),
            *serve_4(50.0),
        ],
    )
    assert r.at(33.9).mode == "run"
    assert r.at(34.0).mode == "all_red"
    assert set(r.at(34.0).phases) == {Lamp.RED}


def test_all_red_waits_for_min_green_and_pedestrian_clearance() -> None:
    """All red requested at 35.0 during 4's walk: the walk and its clearance finish
    (45.0) before 4's yellow; all red from 49.0; released at 55.0."""
    site = make_site("four")
    r = run(
        site,
        60.0,
        commands=[(30.0, PlaceCall(4, ped=True)), (35.0, AllRed()), (55.0, AllRed(on=False))],
    )
    assert_timeline(
        r.timeline(since=SINCE),
        [
            *applied(30.0, "PlaceCall"),
            *ends(30.0, 2, 6),
            *cross(30.0, 2),
            *green(34.0, 4),
            *walk(34.0, 4),
            *applied(35.0, "AllRed"),
            *ends(45.0, 4, reason=None),
            *ev(49.0, "mode", "all_red"),
            *ev(49.0, "all_red_enter"),
            *applied(55.0, "AllRed"),
            *ev(55.0, "all_red_exit"),
            *ev(55.0, "mode", "run"),
            *green(55.0, 2, 6),
        ],
    )


def test_flash_via_yellow_and_red_exit_via_startup_all_red() -> None:
    site = make_site("four")
    r = run(site, 64.0, commands=[(30.0, Flash()), (40.0, Flash(on=False))])
    assert_timeline(
        r.timeline(since=SINCE),
        [
            *applied(30.0, "Flash"),
            *ends(30.0, 2, 6, reason=None),
            *ev(34.0, "mode", "flash"),
            *ev(34.0, "flash_enter"),
            *applied(40.0, "Flash"),
            *restart(40.0),
        ],
    )
    assert r.phase(31.0, 2) == Lamp.YELLOW
    flashing = r.at(34.0)
    assert flashing.mode == "flash"
    assert [r.phase(34.0, p) for p in (2, 4, 6, 8)] == [
        Lamp.FLASH_YELLOW,
        Lamp.FLASH_RED,
        Lamp.FLASH_YELLOW,
        Lamp.FLASH_RED,
    ]
    assert set(r.at(40.0).phases) == {Lamp.RED}


def test_recover_from_fault_flash(monkeypatch) -> None:
    """A monitor fault at 30.0 (injected) latches fault flash at once, with no clearance.

    Automatic and Flash(off) do not leave it; Recover does, through start-up
    all red, with calls on every phase. Recover outside fault flash is rejected.
    """
    site = make_site("four")
    r = Runner(
        site,
        commands=[
            (25.0, Recover()),
            (30.0, UseMax2(False)),  # a harmless command, so that the step is checked
            (35.0, Automatic()),
            (35.0, Flash(on=False)),
            (40.0, Recover()),
        ],
    )
    r.until(29.9)
    real_check = r.ctl.monitor.check

    def check(now: int, out: Outputs) -> str | None:
        return "injected fault" if now == 30_000 else real_check(now, out)

    monkeypatch.setattr(r.ctl.monitor, "check", check)
    r.until(64.0)
    assert_timeline(
        r.timeline(since=SINCE),
        [
            *rejected(25.0, "Recover"),
            *applied(30.0, "UseMax2"),
            *ev(30.0, "mode", "fault_flash"),
            *ev(30.0, "fault_flash"),
            *applied(35.0, "Automatic"),
            *applied(35.0, "Flash"),
            *applied(40.0, "Recover"),
            *ev(40.0, "fault_recovered"),
            *restart(40.0),
        ],
    )
    assert r.at(30.0).mode == "fault_flash"
    assert r.at(30.0).fault == "injected fault"
    assert r.phase(30.0, 2) == Lamp.FLASH_YELLOW
    assert r.at(39.9).mode == "fault_flash"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            [(25.0, Omit(4)), (26.0, Hold((2,)))],
            [*applied(25.0, "Omit"), *applied(26.0, "Hold"), *serve_4(40.0)],
        ),
        (
            [(28.0, Flash())],
            [
                *applied(28.0, "Flash"),
                *ends(28.0, 2, 6, reason=None),
                *ev(32.0, "mode", "flash"),
                *ev(32.0, "flash_enter"),
                *restart(40.0),
            ],
        ),
        (
            [(28.0, AllRed())],
            [
                *applied(28.0, "AllRed"),
                *ends(28.0, 2, 6, reason=None),
                *ev(32.0, "mode", "all_red"),
                *ev(32.0, "all_red_enter"),
                *ev(40.0, "all_red_exit"),
                *ev(40.0, "mode", "run"),
                *green(40.0, 2, 6),
                *serve_4(50.0),
            ],
        ),
    ],
)
def test_automatic_drops_operator_overrides(overrides, expected) -> None:
    """Automatic at 40.0 ends holds and omits (the call on 4 from 30.0 is served),
    operator flash (through start-up all red) and all red; then the controller
    runs normally (a call on 4 at 50.0 after all red is served)."""
    site = make_site("four")
    if isinstance(overrides[0][1], Omit):
        occupancy = [(4, 30.0, 30.5)]
    elif isinstance(overrides[0][1], AllRed):
        occupancy = [(4, 50.0, 50.5)]
    else:
        occupancy = []
    r = run(site, 63.0, occupancy=occupancy, commands=[*overrides, (40.0, Automatic())])
    assert_timeline(r.timeline(since=SINCE), [*expected, *applied(40.0, "Automatic")])


# --- plan changes -------------------------------------------------------------------------

_NIGHT = {
    "defaults": {
        "min_green_s": 7.0,
        "passage_s": 2.0,
        "max_green_s": 30.0,
        "yellow_s": 4.0,
        "red_clear_s": 1.5,
        "walk_s": 5.0,
        "ped_clear_s": 6.0,
    },
    "phase": {"2": {"recall": ["min"]}, "6": {"recall": ["min"]}},
}


def test_plan_change_waits_for_the_end_of_clearance() -> None:
    """SetPlan at 31.0 during 2+6's yellow (day: 3 s): the yellow keeps 3 s, the plan
    applies when the red clearance ends (34.0), and 4 times on the night plan (min
    green 7, yellow 4, red clearance 1.5)."""
    site = make_site("four", plans={"night": _NIGHT})
    r = run(
        site,
        55.0,
        occupancy=[(4, 30.0, 30.5)],
        commands=[(31.0, SetPlan("night"))],
    )
    assert_timeline(
        r.timeline(since=SINCE),
        [
            *ends(30.0, 2, 6),
            *cross(30.0, 2),
            *applied(31.0, "SetPlan"),
            *ev(31.0, "plan_pending", "night"),
            *ev(34.0, "plan_applied", "night"),
            *green(34.0, 4),
            *ends(41.0, 4, yellow=4.0, red=1.5),
            *cross(41.0, 1),
            *green(46.5, 2, 6),
        ],
    )
    assert r.phase(32.9, 2) == Lamp.YELLOW
    assert r.phase(33.0, 2) == Lamp.RED


def test_plan_change_while_resting_green() -> None:
    """SetPlan at 25.0 while 2+6 rest green (nothing clearing): applied at once. The
    greens already running finish on the plan they started with (their yellow stays
    3 s); 4 is the first green on the night plan."""
    site = make_site("four", plans={"night": _NIGHT})
    r = run(
        site,
        55.0,
        occupancy=[(4, 30.0, 30.5)],
        commands=[(25.0, SetPlan("night")), (26.0, SetPlan("no-such-plan"))],
    )
    assert_timeline(
        r.timeline(since=SINCE),
        [
            *applied(25.0, "SetPlan"),
            *ev(25.0, "plan_pending", "night"),
            *ev(25.0, "plan_applied", "night"),
            *rejected(26.0, "SetPlan"),
            *ends(30.0, 2, 6),
            *cross(30.0, 2),
            *green(34.0, 4),
            *ends(41.0, 4, yellow=4.0, red=1.5),
            *cross(41.0, 1),
            *green(46.5, 2, 6),
        ],
    )


# --- bad input ------------------------------------------------------------------------------


def test_unknown_detector_id_reported_once() -> None:
    site = make_site("four")
    r = run(site, 50.0, occupancy=[(99, 25.0, 26.0), (99, 27.0, 28.0), (4, 30.0, 30.5)])
    assert_timeline(
        r.timeline(since=SINCE),
        [*ev(25.0, "input_error", "detector 99"), *serve_4(30.0)],
    )


def test_time_going_backwards() -> None:
    """A step at 29.5 after 30.0 is reported (at the controller's time, 30.0: the event
    log stays in time order) and ignored; the displays stay those of 30.0."""
    site = make_site("four")
    r = Runner(site, occupancy=[(4, 31.0, 31.5)])
    r.until(30.0)
    out = r.step(29_500)
    assert out.t_ms == 30_000
    assert out.phases == r.at(30.0).phases
    r.until(51.0)
    assert_timeline(
        r.timeline(since=SINCE),
        [*ev(30.0, "input_error"), *serve_4(31.0)],
    )


_MALFORMED: list[tuple[object, str]] = [
    ("not a command", "str"),
    (PlaceCall(99), "PlaceCall"),  # unknown phase
    (PlaceCall("4"), "PlaceCall"),  # type: ignore[arg-type]
    (PlaceCall(True), "PlaceCall"),
    (PlaceCall(4, ped="yes"), "PlaceCall"),  # type: ignore[arg-type]
    (ForceOff(None), "ForceOff"),  # type: ignore[arg-type]
    (Omit(99), "Omit"),
    (Omit(4, on="no"), "Omit"),  # type: ignore[arg-type]
    (Hold((99,)), "Hold"),
    (Hold(5), "Hold"),  # type: ignore[arg-type]
    (Hold("24"), "Hold"),  # type: ignore[arg-type]
    (AllRed(on="off"), "AllRed"),  # type: ignore[arg-type]
    (Flash(on="off"), "Flash"),  # type: ignore[arg-type]
    (SetPlan(5), "SetPlan"),  # type: ignore[arg-type]
    (SetPlan("no-such-plan"), "SetPlan"),
]


@pytest.mark.parametrize(("command", "kind"), _MALFORMED, ids=[repr(c) for c, _ in _MALFORMED])
def test_malformed_command_rejected_and_intersection_keeps_running(command, kind) -> None:
    site = make_site("four")
    r = run(site, 50.0, occupancy=[(4, 30.0, 30.5)], commands=[(25.0, command)])
    assert_timeline(r.timeline(since=SINCE), [*rejected(25.0, kind), *serve_4(30.0)])
