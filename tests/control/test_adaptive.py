"""Adaptive mode: control-mode selection and its reason, the queue-driven gap, split
balancing, permissive-first lefts with their bounded wait, and safety under random
demand (the independent invariant checker of test_properties drives it)."""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from edge.config import ConfigError, site_from_dict
from edge.control.adaptive import Adaptive, AdaptiveParams
from edge.control.controller import Controller
from edge.control.messages import Inputs, Lamp, Outputs, SetMode, SetPlan, TransitRequest
from edge.control.site import Site, TransitPriority
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control.invariants import InvariantChecker
from tests.control.test_properties import SITES, STEPS_RUN, run, scenarios
from tests.hypothesis_profiles import examples

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
LEFT_DET = 1  # the T-junction's westbound left loop (phase 1, FYA overlap B)


def t_junction(**plan: Any) -> Site:
    """The T-junction example with a non-locking left loop, as the SUMO derivation makes."""
    raw = tomllib.loads((EXAMPLES / "t_junction.toml").read_text())
    for det in raw["detectors"]:
        if det["id"] == LEFT_DET:
            det["locking"] = False
    raw["plans"]["day"].update(plan)
    return site_from_dict(raw)


# The examples, and the T-junction with the non-locking FYA left the permissive-first
# logic acts on.
ADAPTIVE_SITES = {**SITES, "t_junction_nonlocking_left": t_junction()}


def events(out: Outputs) -> list[str]:
    return [e.name for e in out.events]


# -- modes and their reasons ---------------------------------------------------------------


def test_plan_mode_and_reason_show_in_outputs() -> None:
    ctl = Controller(t_junction(adaptive=True))
    out = ctl.step(0, Inputs())
    assert (out.control, out.control_reason) == ("adaptive", "plan day")
    ctl = Controller(t_junction())
    assert ctl.step(0, Inputs()).control == "free"


def test_set_mode_overrides_and_plan_returns() -> None:
    site = site_from_dict(tomllib.loads((EXAMPLES / "four_leg_protected.toml").read_text()))
    ctl = Controller(site, plan="peak")  # a coordinated plan
    assert ctl.step(0, Inputs()).control == "coordinated"
    out = ctl.step(100, Inputs(commands=(SetMode("adaptive", "central"),)))
    assert (out.control, out.control_reason) == ("adaptive", "central command")
    assert ctl.coord is None
    out = ctl.step(200, Inputs(commands=(SetMode("free"),)))
    assert (out.control, out.control_reason) == ("free", "local command")
    out = ctl.step(300, Inputs(commands=(SetMode("plan", "central"),)))
    assert (out.control, out.control_reason) == ("coordinated", "plan peak")
    assert ctl.coord is not None


def test_coordinated_override_falls_back_when_the_plan_has_no_pattern() -> None:
    site = site_from_dict(tomllib.loads((EXAMPLES / "four_leg_protected.toml").read_text()))
    ctl = Controller(site, plan="peak")
    ctl.step(0, Inputs(commands=(SetMode("coordinated", "central"),)))
    out = ctl.step(100, Inputs(commands=(SetPlan("day"),)))
    for t in range(200, 200_000, 100):  # the plan applies at the next safe point
        out = ctl.step(t, Inputs())
        if ctl.plan.id == "day":
            break
    assert ctl.plan.id == "day"
    assert out.control == "free"
    assert out.control_reason == "plan day (no pattern for the central coordinated mode)"


@pytest.mark.parametrize(
    ("cmd", "why"),
    [
        (SetMode("turbo"), "unknown mode 'turbo'"),
        (SetMode("adaptive", ""), "source must name who sets the mode"),
        (SetMode("coordinated"), "plan day has no coordination pattern"),
    ],
)
def test_bad_mode_commands_are_rejected_with_the_reason(cmd: SetMode, why: str) -> None:
    ctl = Controller(t_junction())
    out = ctl.step(0, Inputs(commands=(cmd,)))
    rejected = [e for e in out.events if e.name == "command_rejected"]
    assert rejected and why in rejected[0].detail
    assert out.control == "free"


def test_a_plan_cannot_be_both_coordinated_and_adaptive() -> None:
    raw = tomllib.loads((EXAMPLES / "four_leg_protected.toml").read_text())
    raw["plans"]["peak"]["adaptive"] = True
    with pytest.raises(ConfigError) as exc:
        site_from_dict(raw, "site.toml")
    assert "plan peak: adaptive: a plan is either coordinated (pattern) or adaptive" in str(
        exc.value
    )


# -- the pieces of the method ----------------------------------------------------------------


def test_gap_shrinks_with_the_queue_waiting_elsewhere() -> None:
    a = Adaptive(t_junction(), AdaptiveParams(min_gap_ms=1000, full_queue_veh=6))
    assert a.gap_ms(2500, 0) == 2500
    assert a.gap_ms(2500, 3) == 1750
    assert a.gap_ms(2500, 6) == 1000
    assert a.gap_ms(2500, 60) == 1000
    assert a.gap_ms(800, 60) == 800  # never longer than the plan's passage


def test_queue_counts_arrivals_on_red_and_prefers_a_camera_estimate() -> None:
    site = t_junction()
    a = Adaptive(site)
    k = next(n for n, d in enumerate(site.detectors) if d.id == 4)  # phase 4's loop
    i = next(n for n, p in enumerate(site.phases) if p.id == 4)
    present = [False] * len(site.detectors)
    green = [False] * len(site.phases)
    for _ in range(3):
        a.count(k, 1, green)
    assert a.queue(i, present) == 3
    a.set_zone_queues([(4, 7.5)])
    assert a.queue(i, present) == 7.5
    a.green_started(i, 0)
    a.zone_queue.clear()
    assert a.queue(i, present) == 0


def test_split_balancing_moves_the_max_within_the_plan() -> None:
    a = Adaptive(t_junction(), AdaptiveParams(step_pct=10, floor_pct=50, short_pct=60))
    assert a.max_green_ms(0, 40_000, 6000) == 40_000
    for _ in range(20):
        a.green_ended(0, 8000, a.max_green_ms(0, 40_000, 6000), "gap_out")
    assert a.max_green_ms(0, 40_000, 6000) == 20_000  # the floor
    a.green_ended(0, 20_000, 20_000, "max_out")
    assert a.max_green_ms(0, 40_000, 6000) == 24_000
    for _ in range(20):
        a.green_ended(0, 40_000, 40_000, "max_out")
    assert a.max_green_ms(0, 40_000, 6000) == 40_000  # never above the plan's


def _left_served(out: Outputs, site: Site) -> bool:
    i = next(n for n, p in enumerate(site.phases) if p.id == 1)
    k = next(n for n, o in enumerate(site.overlaps) if o.id == "B")
    return out.phases[i] == Lamp.GREEN or out.overlaps[k] in (Lamp.GREEN, Lamp.FLASH_YELLOW)


def drive_left(site: Site, mode: str, seconds: int, left_on: bool) -> list[Outputs]:
    """Through traffic on every approach, the left loop held occupied or not."""
    ctl = Controller(site)
    outs = []
    occupied = frozenset({2, 4, 6} | ({LEFT_DET} if left_on else set()))
    for t in range(0, seconds * 1000, 100):
        cmds = (SetMode(mode),) if t == 0 else ()
        outs.append(ctl.step(t, Inputs(occupied=occupied, commands=cmds)))
    return outs


def left_waits_through_red(mode: str, **params: int) -> tuple[bool, Controller]:
    """A left arrives while the side road is green, waits, then turns in the permissive
    arrow as soon as the opposing through comes up. Was it given its protected phase?
    (The through loops are held, so the opposing through runs to its 40 s max.)"""
    site = t_junction()
    ctl = Controller(site)
    ctl.adaptive.params = replace(ctl.adaptive.params, **params)
    i, j, k = ctl.index[1], ctl.index[2], ctl.index[4]
    through = frozenset({2, 4, 6})
    t = 0
    ctl.step(t, Inputs(occupied=through, commands=(SetMode(mode),)))
    ctl.adaptive.protect[i] = False  # as after a run of permissive periods that cleared
    ctl.adaptive.fail_rate_pct[i] = 0
    ctl.adaptive.permissive_failed[i] = False
    # Past start-up (every phase is called once), to the side road's green.
    while t < 120_000 or ctl.iv[k] != 1:
        t += 100
        ctl.step(t, Inputs(occupied=through))
    protected = False
    while ctl.iv[j] != 1:  # waiting on red for the opposing through
        t += 100
        out = ctl.step(t, Inputs(occupied=through | {LEFT_DET}))
        protected |= out.phases[i] == Lamp.GREEN
    for _ in range(20):  # turns within 2 s of the permissive arrow
        t += 100
        ctl.step(t, Inputs(occupied=through | {LEFT_DET}))
    for _ in range(1200):
        t += 100
        out = ctl.step(t, Inputs(occupied=through))
        protected |= out.phases[i] == Lamp.GREEN
    return protected, ctl


def test_a_left_that_clears_in_the_permissive_is_not_given_a_protected_phase() -> None:
    protected, ctl = left_waits_through_red("adaptive", permissive_long_ms=60_000)
    assert not protected
    assert ctl.adaptive.fail_rate_pct[ctl.index[1]] == 0  # the permissive served it
    protected, _ = left_waits_through_red("free")
    assert protected  # actuated: the waiting left calls its leading protected phase


def lagging_left_t_junction() -> Site:
    """The T-junction with its protected left after the opposing through in ring 1."""
    raw = tomllib.loads((EXAMPLES / "t_junction.toml").read_text())
    for det in raw["detectors"]:
        if det["id"] == LEFT_DET:
            det["locking"] = False
    by_id = {p["id"]: p for p in raw["phases"]}
    raw["phases"] = [by_id[2], by_id[1], *(p for p in raw["phases"] if p["id"] not in (1, 2))]
    return site_from_dict(raw)


def test_a_lagging_left_is_not_held_back() -> None:
    """A protected left that lags its permissive phase is decided right after the
    permissive arrow ran: a left still on the loop then calls it, as in free operation.
    A leading left in the same state is held back (permissive first)."""
    for site, held in ((t_junction(), True), (lagging_left_t_junction(), False)):
        ad = Adaptive(site)
        i = next(n for n, p in enumerate(site.phases) if p.id == 1)
        ad.protect[i] = False
        ad.permissive_failed[i] = False
        present = [d.id == LEFT_DET for d in site.detectors]
        on_at = [0] * len(site.detectors)
        assert ad.left_call_counts(i, 1_000, present, on_at) is not held
        assert (ad.left_deadline(present, on_at) is not None) is held


def lagging_left_greens(mode: str, other_extends: bool) -> tuple[list[int], list[int], list[int]]:
    """The lagging T-junction with a left waiting on its loop, no westbound through after
    start-up (phase 2 gaps out at its minimum), the eastbound through's loop (phase 6)
    held occupied or empty: the times phases 1, 2 and 6 show green, over 60 s."""
    site = lagging_left_t_junction()
    ctl = Controller(site)
    occupied = frozenset({LEFT_DET, 6} if other_extends else {LEFT_DET})
    shown: tuple[list[int], list[int], list[int]] = ([], [], [])
    for t in range(0, 60_000, 100):
        out = ctl.step(t, Inputs(occupied=occupied, commands=(SetMode(mode),) if t == 0 else ()))
        for times, pid in zip(shown, (1, 2, 6), strict=True):
            if out.phases[ctl.index[pid]] == Lamp.GREEN:
                times.append(t)
    return shown


@pytest.mark.parametrize("mode", ["free", "adaptive"])
def test_a_lagging_left_waits_for_the_other_rings_green(mode: str) -> None:
    """Rings rule 2a: a through that gaps out before its lagging left holds its green while
    the other ring's through still extends, and the left runs once that one may end, at
    the latest when the held through reaches its own maximum (40 s, its timer started by
    the left's call); with the other through gapped out too the left follows at once.
    (Before the rule the left started at the through's gap-out, 12 s, mid-group.)"""
    left, through, other = lagging_left_greens(mode, other_extends=True)
    start = through[0]  # after the start-up all red
    assert left, "the lagging left never ran"
    assert through[-1] - start == 39_900  # held past its 12 s minimum, to its maximum
    assert left[0] - through[-1] == 5_600  # then yellow and red clearance
    assert other[0] == start and left[0] in other  # the other ring's through still green
    left, through, other = lagging_left_greens(mode, other_extends=False)
    end = next(t for t, u in itertools.pairwise(through) if u != t + 100)
    assert end - start == 11_900  # gap-out at its minimum
    assert left[0] - end == 5_600 and left[0] in other


def test_a_green_held_for_a_lagging_left_ends_as_a_gap_out() -> None:
    """Rings rule 2a: the through held from its gap-out to its maximum ends as a gap-out
    (hi-res log event, split balancing), not as a max-out: it was empty, only held.
    (Before: "max_out" every cycle, and split balancing raised its max from 80 % to 90 %.)"""
    site = lagging_left_t_junction()
    ctl = Controller(site)
    i2 = ctl.index[2]
    ctl.adaptive.max_pct[i2] = 80
    occupied = frozenset({LEFT_DET, 6})
    ends = []
    for t in range(0, 200_000, 100):
        out = ctl.step(
            t, Inputs(occupied=occupied, commands=(SetMode("adaptive"),) if t == 0 else ())
        )
        ends += [
            e.name
            for e in out.events
            if e.name in ("gap_out", "max_out") and e.subject == "phase 2"
        ]
    assert ends and set(ends) == {"gap_out"}
    assert ctl.adaptive.max_pct[i2] == 80


def test_a_transit_request_is_not_delayed_by_a_lagging_left_hold() -> None:
    """Rings rule 2a holds no green while a transit request is on: a bus for phase 4
    (the other group) gets its early green, the held through not delaying the barrier.
    (Before: phase 4 green at 75 s with the hold, 38 s without it.)"""
    limits = TransitPriority(
        max_share=0.3, max_extension_ms=10_000, max_early_ms=30_000, cycle_ms=90_000
    )
    site = replace(lagging_left_t_junction(), transit=limits)
    ctl = Controller(site)
    checker = InvariantChecker(site, check_service=False)
    green = None
    for t in range(0, 120_000, 100):
        cmds = (TransitRequest("S", True),) if t == 14_000 else ()
        out = ctl.step(t, Inputs(occupied=frozenset({LEFT_DET, 6}), commands=cmds))
        checker.check(t, out)
        if green is None and t >= 14_000 and out.phases[ctl.index[4]] == Lamp.GREEN:
            green = t
    assert green == 38_000


def test_a_long_permissive_green_counts_as_failed() -> None:
    """A 40 s opposing green is a dense stream: lefts may wait in the box, off the loop."""
    _, ctl = left_waits_through_red("adaptive", permissive_long_ms=30_000)
    assert ctl.adaptive.fail_rate_pct[ctl.index[1]] > 0


def test_a_left_stuck_on_its_loop_gets_its_protected_phase_within_the_bound() -> None:
    site = t_junction()
    wait = AdaptiveParams().left_wait_ms
    outs = drive_left(site, "adaptive", 240, left_on=True)
    i = next(n for n, p in enumerate(site.phases) if p.id == 1)
    greens = [o.t_ms for o in outs if o.phases[i] == Lamp.GREEN]
    assert greens, "the protected left never ran"
    checker = InvariantChecker(site)
    bound = wait + checker.service_bound_ms
    # Between consecutive protected greens no more than the bound passes.
    starts = [t for n, t in enumerate(greens) if n == 0 or t - greens[n - 1] > 100]
    assert all(b - a <= bound for a, b in itertools.pairwise(starts))


# -- safety and bounded wait under random demand -----------------------------------------------


@pytest.mark.parametrize("name", sorted(ADAPTIVE_SITES))
@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_adaptive_safety_and_service_under_random_demand(name: str, data: st.DataObject) -> None:
    """Every safety rule, and every locking call served within the plan-derived bound."""
    site = ADAPTIVE_SITES[name]
    segments = data.draw(scenarios(site, blocking=False))
    outs = run(site, segments, InvariantChecker(site), mode="adaptive")
    assert outs[-1].control == "adaptive"


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    left=st.lists(st.tuples(st.integers(1, 900), st.booleans()), min_size=3, max_size=30),
    through=st.frozensets(st.sampled_from([2, 4, 6]), max_size=3),
)
def test_held_back_left_waits_a_bounded_time(
    left: list[tuple[int, bool]], through: frozenset[int]
) -> None:
    """A left held back for the permissive arrow is served (arrow or protected) within
    left_wait_ms plus the plan-derived service bound, whatever the demand."""
    site = t_junction()
    checker = InvariantChecker(site)
    bound = AdaptiveParams().left_wait_ms + checker.service_bound_ms
    ctl = Controller(site)
    t = 0
    waiting_since: int | None = None
    for steps, on in left:
        for _ in range(steps):
            occ = through | ({LEFT_DET} if on else frozenset())
            cmds = (SetMode("adaptive"),) if t == 0 else ()
            out = ctl.step(t, Inputs(occupied=frozenset(occ), commands=cmds))
            checker.check(t, out)
            STEPS_RUN[0] += 1
            if on and not _left_served(out, site) and out.mode == "run":
                waiting_since = t if waiting_since is None else waiting_since
                assert t - waiting_since <= bound, f"left waiting {t - waiting_since} ms"
            else:
                waiting_since = None
            t += 100


@pytest.mark.parametrize("name", sorted(ADAPTIVE_SITES))
@settings(max_examples=examples(20), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_adaptive_replay_is_identical_and_quiet_steps_change_nothing(
    name: str, data: st.DataObject
) -> None:
    site = ADAPTIVE_SITES[name]
    segments = data.draw(scenarios(site, blocking=True))
    first = run(site, segments, mode="adaptive")
    assert run(site, segments, mode="adaptive") == first
    assert run(site, segments, always_slow=True, mode="adaptive") == first
