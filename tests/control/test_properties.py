"""Property tests: random detector, pedestrian, operator and plan-change sequences.

Every example config is driven through random inputs; after every step an
independent checker asserts the safety rules (tests/control/invariants.py).
The runs add up to well over 300,000 steps per test run; set
EDGE_PROPERTY_STEPS=10000000 to make test_long_random_run do the documented
ten-million-step run.
"""

from __future__ import annotations

import os
import random
import tomllib
from pathlib import Path

import pytest
from edge.config import load_site, site_from_dict
from edge.control.controller import Controller
from edge.control.messages import (
    AllRed,
    Automatic,
    Flash,
    ForceOff,
    Hold,
    Inputs,
    Omit,
    Outputs,
    PlaceCall,
    Preempt,
    SetMode,
    SetPlan,
    UseMax2,
)
from edge.control.site import Site
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control.invariants import InvariantChecker
from tests.hypothesis_profiles import examples

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.toml"))
SITES = {p.stem: load_site(p) for p in EXAMPLES}


def _lagging_left(path: Path) -> Site:
    """The T-junction with its FYA left after the opposing through (rings rule 2a)."""
    raw = tomllib.loads(path.read_text())
    by_id = {p["id"]: p for p in raw["phases"]}
    raw["phases"] = [by_id[2], by_id[1], *(p for p in raw["phases"] if p["id"] not in (1, 2))]
    return site_from_dict(raw)


SITES["t_junction_lagging_left"] = _lagging_left(EXAMPLES[0].parent / "t_junction.toml")
# A derived cross: four right-turn overlaps with parents in both barrier groups, FYA
# lefts and per-pair intergreens, every overlap channel among them (issue 17, RTO).
SITES["derived_cross_right_overlaps"] = load_site(
    EXAMPLES[0].parents[1] / "tests/sites/derived_cross_right_overlaps.toml"
)
STEP_MS = 100
STEPS_RUN = [0]  # reported at the end of the session by tests/conftest.py


def _commands(site: Site, blocking: bool) -> st.SearchStrategy[object]:
    ids = [p.id for p in site.phases]
    peds = [p.id for p in site.phases if p.ped_crossing]
    phase = st.sampled_from([*ids, 99])
    options: list[st.SearchStrategy[object]] = [
        st.builds(PlaceCall, phase),
        st.builds(ForceOff, phase),
        st.builds(SetPlan, st.sampled_from([*site.plans, "no-such-plan"])),
        st.builds(UseMax2, st.booleans()),
        st.just(Automatic()),
        st.just("not a command"),
        st.builds(PlaceCall, st.just("2")),
    ]
    if peds:
        options.append(st.builds(PlaceCall, st.sampled_from(peds), st.just(True)))
    if blocking and site.preempts:
        pre = st.sampled_from([p.id for p in site.preempts] + [9])
        options += [st.builds(Preempt, pre, st.booleans())] * 3
    if blocking:
        options += [
            st.builds(Hold, st.one_of(st.none(), st.lists(phase, max_size=2).map(tuple))),
            st.builds(Omit, phase, st.booleans()),
            st.builds(AllRed, st.booleans()),
            st.builds(Flash, st.booleans()),
        ]
    return st.one_of(options)


@st.composite
def scenarios(
    draw: st.DrawFn, site: Site, blocking: bool
) -> list[tuple[int, frozenset[int], tuple[object, ...]]]:
    """Segments of (steps to hold, occupied detectors, commands at the segment start)."""
    dets = [d.id for d in site.detectors] + [250]  # 250: an unknown detector id
    segment = st.tuples(
        st.integers(1, 120),
        st.frozensets(st.sampled_from(dets), max_size=4),
        st.lists(_commands(site, blocking), max_size=2).map(tuple),
    )
    return draw(st.lists(segment, min_size=5, max_size=40))


def run(
    site: Site,
    segments: list[tuple[int, frozenset[int], tuple[object, ...]]],
    checker: InvariantChecker | None = None,
    always_slow: bool = False,
    jitter_seed: int | None = None,
    mode: str | None = None,
) -> list[Outputs]:
    """Step every 100 ms (late by up to 40 ms at random with a jitter seed).

    `mode` (e.g. "adaptive") is set locally at the first step.
    """
    ctl = Controller(site)
    first: tuple[object, ...] = (SetMode(mode),) if mode is not None else ()
    outs = []
    now = 0
    index = {p.id: i for i, p in enumerate(site.phases)}
    servable = {d.id: d for d in site.detectors if d.locking and d.delay_ms == 0}
    previous: frozenset[int] = frozenset()
    jitter = random.Random(jitter_seed) if jitter_seed is not None else None
    for steps, occupied, commands in segments:
        for k in range(steps):
            cmds = commands if k == 0 else ()
            if first:
                cmds, first = (*first, *cmds), ()
            if checker is not None:
                checker.commands(now, cmds)
                for det_id in occupied - previous:
                    if det_id in servable:
                        for pid in servable[det_id].calls:
                            checker.call(now, index[pid])
            if always_slow:
                ctl.deadline = 0  # defeat the quiet-step shortcut
            late = jitter.randint(0, 40) if jitter is not None else 0
            out = ctl.step(now + late, Inputs(occupied=occupied, commands=cmds))
            if checker is not None:
                checker.check(now + late, out)
            outs.append(out)
            STEPS_RUN[0] += 1
            previous = occupied
            now += STEP_MS
    return outs


@pytest.mark.parametrize("name", sorted(SITES))
@settings(
    max_examples=examples(60),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_safety_under_random_demand(name: str, data: st.DataObject) -> None:
    site = SITES[name]
    segments = data.draw(scenarios(site, blocking=False))
    run(site, segments, InvariantChecker(site))


@pytest.mark.parametrize("name", sorted(SITES))
@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_safety_under_operator_commands(name: str, data: st.DataObject) -> None:
    site = SITES[name]
    segments = data.draw(scenarios(site, blocking=True))
    run(site, segments, InvariantChecker(site, check_service=False))


@pytest.mark.parametrize("name", sorted(SITES))
@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), jitter_seed=st.integers(0, 2**32))
def test_safety_when_steps_come_late(name: str, data: st.DataObject, jitter_seed: int) -> None:
    """A real-time caller steps a few ms late at random: no interval may come out short."""
    site = SITES[name]
    segments = data.draw(scenarios(site, blocking=True))
    run(site, segments, InvariantChecker(site, check_service=False), jitter_seed=jitter_seed)


@pytest.mark.parametrize("name", sorted(SITES))
@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_replay_is_identical_and_quiet_steps_change_nothing(name: str, data: st.DataObject) -> None:
    site = SITES[name]
    segments = data.draw(scenarios(site, blocking=True))
    first = run(site, segments)
    assert run(site, segments) == first
    assert run(site, segments, always_slow=True) == first


@pytest.mark.parametrize("mode", ["plan", "adaptive"])
def test_long_random_run(mode: str) -> None:
    """A seeded random run; EDGE_PROPERTY_STEPS sets its length (default 100,000)."""
    total = int(os.environ.get("EDGE_PROPERTY_STEPS", "100000"))
    rng = random.Random(20261125)
    per_site = total // len(SITES)
    for name, site in sorted(SITES.items()):
        dets = [d.id for d in site.detectors]
        segments = []
        steps = 0
        while steps < per_site:
            n = rng.randint(1, 150)
            occ = frozenset(d for d in dets if rng.random() < 0.25)
            cmds: tuple[object, ...] = ()
            if rng.random() < 0.02:
                cmds = (SetPlan(rng.choice(list(site.plans))),)
            elif rng.random() < 0.02:
                cmds = (ForceOff(rng.choice(site.phases).id),)
            segments.append((min(n, per_site - steps), occ, cmds))
            steps += n
        checker = InvariantChecker(site)
        run(site, segments, checker, mode=mode)
        assert checker.steps == per_site, name
