"""Detector diagnostics: a loop stuck on (max presence) or dead (no activity) fails,
its phases are then called every cycle (a minimum recall) instead of being extended to
max or never served, and it recovers by itself when it behaves again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from edge.config import ConfigError, load_site
from edge.control.controller import Controller
from edge.control.messages import Inputs, Lamp
from edge.control.site import Site
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control.invariants import InvariantChecker
from tests.control.test_properties import run
from tests.hypothesis_profiles import examples

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "four_leg_protected.toml"
FOUR_LEG = load_site(EXAMPLE)


def diagnosed(site: Site, max_presence_ms: int, no_activity_ms: int) -> Site:
    dets = tuple(
        d
        if d.ped
        else dataclasses.replace(d, max_presence_ms=max_presence_ms, no_activity_ms=no_activity_ms)
        for d in site.detectors
    )
    return dataclasses.replace(site, detectors=dets)


def greens_of(
    site: Site, ctl: Controller, pid: int, steps: list[frozenset[int]], t0: int
) -> tuple[list[tuple[int, int]], list[tuple[int, str, str]]]:
    """Run the steps (100 ms each); the green intervals of phase pid and the events."""
    i = next(k for k, p in enumerate(site.phases) if p.id == pid)
    greens: list[tuple[int, int]] = []
    events: list[tuple[int, str, str]] = []
    start = None
    checker = InvariantChecker(site, check_service=False)
    for n, occupied in enumerate(steps):
        now = t0 + n * 100
        out = ctl.step(now, Inputs(occupied=occupied))
        checker.check(now, out)
        events += [(e.t_ms, e.name, e.detail) for e in out.events if e.name.startswith("detector")]
        green = out.phases[i] == Lamp.GREEN
        if green and start is None:
            start = now
        elif not green and start is not None:
            greens.append((start, now))
            start = None
    return greens, events


def test_stuck_loop_fails_after_max_presence_and_its_phase_runs_min_green() -> None:
    site = diagnosed(FOUR_LEG, max_presence_ms=150_000, no_activity_ms=0)
    ctl = Controller(site)
    stuck = frozenset({4})  # phase 4's loop held on for 5 minutes, then released
    steps = [stuck] * 3000 + [frozenset()] * 1500
    greens, events = greens_of(site, ctl, 4, steps, 0)
    fault_at = next(t for t, name, _ in events if name == "detector_fault")
    assert fault_at == 150_000  # on since the first step
    assert "max_presence: occupied for 150 s" in events[0][2]
    before = [b - a for a, b in greens if b <= fault_at]
    after = [b - a for a, b in greens if a > fault_at + 1000 and b < 300_000]
    max_green = site.plans["day"].timings[4].max_green_ms
    assert before and max(before) >= max_green  # stuck on: extended to max
    assert len(after) >= 2  # still served every cycle ...
    assert max(after) < max_green  # ... but no longer held to max by the stuck loop
    recovered = [t for t, name, _ in events if name == "detector_recovered"]
    assert recovered == [300_000]  # released: it behaves again


def test_dead_loop_fails_after_no_activity_and_its_phase_is_served_anyway() -> None:
    site = diagnosed(FOUR_LEG, max_presence_ms=0, no_activity_ms=300_000)
    ctl = Controller(site)
    # Nothing on any loop for 6 minutes: every loop fails at 300 s; phase 8 (side street,
    # no recall) is then served every cycle. Then a car on phase 8's loop: it recovers.
    none: frozenset[int] = frozenset()
    steps = [none] * 3600 + [frozenset({8})] * 20 + [none] * 1200
    greens, events = greens_of(site, ctl, 8, steps, 0)
    faults = [t for t, name, _ in events if name == "detector_fault"]
    assert faults and min(faults) == 300_000 and max(faults) == 300_000
    served = [a for a, _ in greens if 300_000 < a <= 360_000]
    assert served, "a phase whose loop is dead must still be served"
    assert (360_000, "detector_recovered", "") in events  # a car on it again


def test_bad_diagnostic_times_are_refused(tmp_path: Path) -> None:
    text = EXAMPLE.read_text().replace(
        "[[detectors]]\nid = 1\n",
        "[[detectors]]\nid = 1\nmax_presence_s = 10\nno_activity_s = 30\n",
        1,
    )
    bad = tmp_path / "site.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_site(bad)
    msg = str(err.value)
    assert "detector 1: max_presence_s 10 s would fail a car waiting out a red" in msg
    assert "detector 1: no_activity_s 30 s is shorter than a quiet spell" in msg


DIAGNOSED = diagnosed(FOUR_LEG, max_presence_ms=60_000, no_activity_ms=300_000)
DETS = [d.id for d in FOUR_LEG.detectors]


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    segments=st.lists(
        st.tuples(
            st.integers(1, 1500),  # steps: up to 150 s, so loops stick and die
            st.frozensets(st.sampled_from(DETS), max_size=4),
        ),
        min_size=2,
        max_size=12,
    )
)
def test_faults_keep_every_safety_rule_and_replay_alike(
    segments: list[tuple[int, frozenset[int]]],
) -> None:
    segs: list[tuple[int, frozenset[int], tuple[object, ...]]] = [
        (n, occ, ()) for n, occ in segments
    ]
    checker = InvariantChecker(DIAGNOSED, check_service=False)
    fast = run(DIAGNOSED, segs, checker)
    # The quiet-step shortcut must see every diagnostic deadline.
    assert fast == run(DIAGNOSED, segs, always_slow=True)


def test_outputs_name_the_failed_detectors_until_they_recover() -> None:
    site = diagnosed(FOUR_LEG, max_presence_ms=60_000, no_activity_ms=0)
    ctl = Controller(site)
    outs = [ctl.step(t, Inputs(occupied=frozenset({4, 6}))) for t in range(0, 61_000, 100)]
    assert outs[-12].detector_faults == () and outs[-1].detector_faults == (4, 6)
    out = ctl.step(61_000, Inputs(occupied=frozenset({6})))
    assert out.detector_faults == (6,)
    assert ctl.step(61_100, Inputs(occupied=frozenset({6}))).detector_faults == (6,)  # quiet step


def test_new_timing_that_turns_the_check_off_clears_the_fault() -> None:
    from edge.control.messages import LoadSite

    site = diagnosed(FOUR_LEG, max_presence_ms=60_000, no_activity_ms=0)
    ctl = Controller(site)
    stuck = Inputs(occupied=frozenset({4}))
    for t in range(0, 61_000, 100):
        ctl.step(t, stuck)
    assert ctl.step(61_000, stuck).detector_faults == (4,)
    load = Inputs(occupied=frozenset({4}), commands=(LoadSite(FOUR_LEG, "day"),))
    names: list[str] = []
    for t in range(61_100, 400_000, 100):
        out = ctl.step(t, load if t == 61_100 else stuck)
        names += [e.name for e in out.events if e.name in ("plan_applied", "detector_recovered")]
        if "detector_recovered" in names:
            break
    assert names == ["plan_applied", "detector_recovered"] and out.detector_faults == ()
