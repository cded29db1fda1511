"""Emergency-vehicle preemption: entry bound, dwell greens, clearances kept, exit."""

from __future__ import annotations

from pathlib import Path

from edge.config import load_site
from edge.control.controller import Controller
from edge.control.messages import Flash, Inputs, Lamp, Preempt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control.invariants import InvariantChecker
from tests.hypothesis_profiles import examples

FOUR_LEG = load_site(Path(__file__).resolve().parents[2] / "examples" / "four_leg_protected.toml")


def entry_bound_ms(site=FOUR_LEG) -> int:
    """Longest entry: min green, then min walk and ped clearance, then yellow, red, red revert."""
    worst = 0
    for pre in site.preempts:
        for plan in site.plans.values():
            for t in plan.timings.values():
                green = max(pre.min_green_ms, site.safety.min_green_ms)
                ped = pre.min_walk_ms + pre.ped_clear_ms
                worst = max(worst, max(green, ped) + t.yellow_ms + t.red_revert_ms)
    return worst + 200


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    demand=st.lists(st.frozensets(st.sampled_from([d.id for d in FOUR_LEG.detectors])), min_size=3),
    preempt=st.sampled_from([p.id for p in FOUR_LEG.preempts]),
    request_at=st.integers(9_000, 60_000),
    hold_ms=st.integers(1_000, 30_000),
)
def test_preempt_reaches_dwell_in_bound_and_exits(
    demand: list[frozenset[int]], preempt: int, request_at: int, hold_ms: int
) -> None:
    site = FOUR_LEG
    pre = next(p for p in site.preempts if p.id == preempt)
    dwell = [i for i, p in enumerate(site.phases) if p.id in pre.dwell_phases]
    ctl = Controller(site)
    checker = InvariantChecker(site, check_service=False)
    request_at -= request_at % 100
    cancel_at = request_at + hold_ms - hold_ms % 100
    dwell_at = exit_at = None
    for now in range(0, cancel_at + 20_000, 100):
        cmds: tuple[object, ...] = ()
        if now == request_at:
            cmds = (Preempt(preempt),)
        elif now == cancel_at:
            cmds = (Preempt(preempt, on=False),)
        out = ctl.step(now, Inputs(occupied=demand[now // 7000 % len(demand)], commands=cmds))
        checker.check(now, out)
        names = {e.name for e in out.events}
        if "preempt_dwell" in names:
            dwell_at = now
        if "preempt_exit" in names:
            exit_at = now
        if dwell_at is not None and exit_at is None:
            assert all(out.phases[i] == Lamp.GREEN for i in dwell), f"t={now}: dwell lost"
            other = [i for i in range(len(site.phases)) if i not in dwell]
            assert all(out.phases[i] == Lamp.RED for i in other), f"t={now}: non-dwell shown"
    if dwell_at is None:
        # Cancelled before the dwell was reached: it exits at once.
        assert exit_at == cancel_at and cancel_at - request_at < entry_bound_ms()
        return
    assert dwell_at - request_at <= entry_bound_ms()
    assert exit_at == max(cancel_at, dwell_at + pre.min_dwell_ms)


def test_higher_priority_request_takes_over_and_stuck_input_times_out() -> None:
    ctl = Controller(FOUR_LEG)
    events: list[tuple[int, str, str]] = []
    for now in range(0, 400_000, 100):
        cmds: tuple[object, ...] = ()
        if now == 20_000:
            cmds = (Preempt(3),)
        if now == 40_000:
            cmds = (Preempt(1),)  # priority 1 beats 3
        out = ctl.step(now, Inputs(commands=cmds))
        events += [(e.t_ms, e.name, e.subject) for e in out.events if e.name.startswith("pre")]
    names = [(n, s) for _, n, s in events]
    assert names.index(("preempt_enter", "preempt 1")) > names.index(("preempt_dwell", "preempt 3"))
    # Both inputs stay on: preempt 1 times out after 180 s, then 3 (still requested) is served.
    assert (40_000 + 180_000, "preempt_timeout", "preempt 1") in events
    assert (20_000 + 180_000, "preempt_timeout", "preempt 3") in events
    assert names[-1] == ("preempt_exit", "preempt 3") or names[-1][0] == "preempt_exit"


def test_preempt_rejected_in_operator_flash_and_unknown_ids() -> None:
    ctl = Controller(FOUR_LEG)
    # A request during start-up waits for the run; one in operator flash is refused.
    ctl.step(0, Inputs(commands=(Flash(),)))
    rejected = []
    for now in range(100, 40_000, 100):
        cmds = (Preempt(1), Preempt(77)) if now == 30_000 else ()
        out = ctl.step(now, Inputs(commands=cmds))
        rejected += [e.detail for e in out.events if e.name == "command_rejected"]
    assert out.mode == "flash"
    assert rejected == ["the intersection is held in flash or all red", "unknown preempt 77"]


def test_dwell_phase_waiting_out_red_revert_starts_on_time_on_quiet_steps() -> None:
    """Regression: the red revert of a dwell phase is a deadline the quiet path must see."""
    from tests.control.test_properties import run

    segments: list[tuple[int, frozenset[int], tuple[object, ...]]] = [
        (191, frozenset(), ()),
        (60, frozenset(), (Preempt(1),)),
    ]
    assert run(FOUR_LEG, segments) == run(FOUR_LEG, segments, always_slow=True)


def test_exit_calls_the_phases_cut_short_and_those_with_demand_not_every_phase() -> None:
    """Detector calls are kept through a preemption: the exit needs no call on every phase
    (each empty one would time a minimum green and clearances); the greens the entry cut
    short are called again, since their queues may reach past their loops."""
    site = FOUR_LEG
    ctl = Controller(site)
    checker = InvariantChecker(site, check_service=False)
    side = frozenset({4, 8})  # the side street's loops, held until the request
    requested = exit_at = None
    greens: set[int] = set()  # phases green at the last step
    after_exit: set[int] = set()
    for now in range(0, 200_000, 100):
        cmds: tuple[object, ...] = ()
        if requested is None and now > 20_000 and {4, 8} <= greens:
            requested = now  # the side street is green: preempt the west approach
            cmds = (Preempt(1),)
        elif requested is not None and now == requested + 30_000:
            cmds = (Preempt(1, on=False),)
        occupied = side if requested is None else frozenset()
        out = ctl.step(now, Inputs(occupied=occupied, commands=cmds))
        checker.check(now, out)
        greens = {
            p.id for p, lamp in zip(site.phases, out.phases, strict=True) if lamp == Lamp.GREEN
        }
        if any(e.name == "preempt_exit" for e in out.events):
            exit_at = now
        if exit_at is not None:
            after_exit |= greens
    assert requested is not None and exit_at is not None
    assert {4, 8} <= after_exit  # cut short by the entry: served again
    assert {2, 6} <= after_exit  # min recall
    assert not after_exit & {3, 7}  # served before, no demand since, not cut: not timed


def test_central_turn_request_takes_the_place_of_the_receivers_for_its_approach() -> None:
    """The receiver (preempt 1: west approach, dwell with its own left) hears the vehicle
    first; central's request naming its through turn (preempt 5: dwell with the opposing
    through) comes later for the same vehicle and is served at once, so the opposing
    through is not held red for it (served first come, it waited for the receiver's)."""
    site = FOUR_LEG
    ctl = Controller(site)
    checker = InvariantChecker(site, check_service=False)
    idx = {p.id: i for i, p in enumerate(site.phases)}
    entered: list[tuple[int, str]] = []
    dwell_lamps = None
    for now in range(0, 120_000, 100):
        cmds: tuple[object, ...] = ()
        if now == 30_000:
            cmds = (Preempt(1),)
        elif now == 33_000:
            cmds = (Preempt(5),)
        elif now == 90_000:
            cmds = (Preempt(1, on=False), Preempt(5, on=False))
        out = ctl.step(now, Inputs(commands=cmds))
        checker.check(now, out)
        entered += [(now, e.subject) for e in out.events if e.name == "preempt_enter"]
        if any(e.name == "preempt_dwell" for e in out.events):
            dwell_lamps = out.phases
    assert entered == [(30_000, "preempt 1"), (33_000, "preempt 5")]
    assert dwell_lamps is not None
    assert dwell_lamps[idx[2]] == dwell_lamps[idx[6]] == Lamp.GREEN
    assert dwell_lamps[idx[5]] == Lamp.RED


def test_exit_ends_a_dwell_green_that_has_had_its_max_when_others_wait() -> None:
    """Compensation: the dwell greens' max runs from their green's start, so the streets
    that waited through the preemption are served next (the max timer restarted at the
    exit let a busy dwell phase run another full max, 45 s here, first)."""
    site = FOUR_LEG
    ctl = Controller(site)
    checker = InvariantChecker(site, check_service=False)
    idx = {p.id: i for i, p in enumerate(site.phases)}
    busy = frozenset({2, 6, 4, 8})  # the main street's loops never gap; the side street waits
    exit_at = yellow_at = None
    for now in range(0, 200_000, 100):
        cmds: tuple[object, ...] = ()
        if now == 30_000:
            cmds = (Preempt(5),)
        elif now == 100_000:
            cmds = (Preempt(5, on=False),)
        out = ctl.step(now, Inputs(occupied=busy, commands=cmds))
        checker.check(now, out)
        if any(e.name == "preempt_exit" for e in out.events):
            exit_at = now
        if exit_at is not None and yellow_at is None and out.phases[idx[2]] == Lamp.YELLOW:
            yellow_at = now
    assert exit_at == 100_000 and yellow_at is not None
    assert yellow_at - exit_at <= 1_000
