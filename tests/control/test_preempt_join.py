"""Rule 6 of edge/control/preemption.py: a request in force whose dwell greens can show with
the served preempt's joins its dwell (two emergency vehicles from opposite ends of a street
whose preempts dwell in their own through only are served at once); safety holds as ever."""

from __future__ import annotations

import re
from pathlib import Path

from edge.config import load_site
from edge.control.controller import Controller
from edge.control.messages import Inputs, Lamp, Preempt
from edge.control.site import Site
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.control.invariants import InvariantChecker
from tests.hypothesis_profiles import examples

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "four_leg_protected.toml"
# Shared-lane street approaches (derived arterials): each dwells in its own through only.
# 1 W, 2 E: phases 2 and 6 (group 1, rings 1 and 2): they join. 3 S: phase 4 (group 2):
# it never joins them. 4 N: phases 3 and 8 (group 2): 3 and 4 share ring 1, never joined.
PREEMPTS = """
[[preempts]]
id = 1
approach = "W"
dwell_phases = [2]
[[preempts]]
id = 2
approach = "E"
dwell_phases = [6]
[[preempts]]
id = 3
approach = "S"
dwell_phases = [4]
[[preempts]]
id = 4
approach = "N"
dwell_phases = [3, 8]
"""


def _site(tmp: Path) -> Site:
    text = EXAMPLE.read_text()
    start = text.index("[[preempts]]")
    end = text.index("[plans.day]")
    text = text[:start] + PREEMPTS + "\n" + text[end:]
    text = re.sub(r"^input = 1[45]\n", "", text, flags=re.M)
    path = tmp / "site.toml"
    path.write_text(text)
    return load_site(path)


def test_a_second_vehicle_from_the_other_end_is_served_with_the_first(tmp_path: Path) -> None:
    """Regression (issue 17, arterial-4): the eastbound vehicle's preempt (phase 2) was
    served first; the westbound one's (phase 6) waited red until the first was cancelled,
    then for a full change. Now phase 6 joins the dwell while phase 2 holds."""
    site = _site(tmp_path)
    idx = {p.id: i for i, p in enumerate(site.phases)}
    ctl = Controller(site)
    checker = InvariantChecker(site, check_service=False)
    both_green = None
    six_ended = False
    for now in range(0, 120_000, 100):
        cmds: tuple[object, ...] = ()
        if now == 20_000:
            cmds = (Preempt(1),)
        elif now == 24_000:
            cmds = (Preempt(2),)
        elif now == 80_000:
            cmds = (Preempt(1, on=False),)
        elif now == 95_000:
            cmds = (Preempt(2, on=False),)
        out = ctl.step(now, Inputs(commands=cmds))
        checker.check(now, out)
        lamps = out.phases
        if both_green is None and now > 24_000 and lamps[idx[2]] == lamps[idx[6]] == Lamp.GREEN:
            both_green = now
        if both_green is not None and now < 95_000 and lamps[idx[6]] != Lamp.GREEN:
            six_ended = True
    assert both_green is not None and both_green < 80_000, both_green  # before the first's cancel
    assert not six_ended  # held through the first's exit until its own cancel


def _lamps_green(lamps: tuple[Lamp, ...]) -> set[int]:
    return {i for i, lamp in enumerate(lamps) if lamp == Lamp.GREEN}


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requests=st.lists(
        st.tuples(
            st.sampled_from([1, 2, 3, 4]),
            st.integers(5_000, 90_000),
            st.integers(1_000, 40_000),
        ),
        min_size=1,
        max_size=4,
    ),
    demand=st.lists(st.frozensets(st.integers(1, 12)), min_size=2, max_size=5),
)
@example(requests=[(1, 20_000, 60_000), (2, 24_000, 71_000)], demand=[frozenset(), frozenset()])
@example(requests=[(2, 10_000, 30_000), (3, 12_000, 30_000)], demand=[frozenset(), frozenset()])
# found by the ci profile: both requested in the start-up flash, joined at the run's start and
# cancelled at once; phase 6 (joined) stays green through its minimum in 1's minimum dwell
@example(requests=[(1, 5_000, 4_100), (2, 5_000, 4_100)], demand=[frozenset(), frozenset()])
def test_joined_dwells_keep_every_safety_rule_and_show_only_what_is_requested(
    requests: list[tuple[int, int, int]], demand: list[frozenset[int]]
) -> None:
    """Random overlapping requests: the independent checker passes every step, and during a
    dwell every green is a dwell phase of the served preempt or of a request in force
    (joined), or one whose joined request ended and that ends within a minimum green."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        site = _site(Path(tmp))
    detectors = {d.id for d in site.detectors}
    dwell = {p.id: {i for i, ph in enumerate(site.phases) if ph.id in p.dwell_phases}
             for p in site.preempts}  # fmt: skip
    # A joined green whose request ended ends like any green the entry cuts: once its
    # minimum allows (counted from its start, so within a minimum green of the cancel).
    grace_ms = max(
        [t.min_green_ms for plan in site.plans.values() for t in plan.timings.values()]
        + [p.min_green_ms for p in site.preempts]
    )
    ctl = Controller(site)
    checker = InvariantChecker(site, check_service=False)
    on: dict[int, bool] = {}
    outside: dict[int, int] = {}  # phase -> since when it is green outside what is requested
    dwelling = False
    served = 0
    for now in range(0, 150_000, 100):
        cmds: list[object] = []
        for pid, at, hold in requests:
            at -= at % 100
            end = at + hold - hold % 100
            if now == at and not on.get(pid):
                cmds.append(Preempt(pid))
                on[pid] = True
            elif now == end and on.get(pid):
                cmds.append(Preempt(pid, on=False))
                on[pid] = False
        occupied = frozenset(d for d in demand[now // 9000 % len(demand)] if d in detectors)
        out = ctl.step(now, Inputs(occupied=occupied, commands=tuple(cmds)))
        checker.check(now, out)
        names = {e.name for e in out.events}
        for e in out.events:
            if e.name == "preempt_enter":
                served = int(e.subject.split()[-1])
        if "preempt_dwell" in names:
            dwelling = True
        if names & {"preempt_exit", "preempt_enter"}:
            dwelling = "preempt_dwell" in names
        green = _lamps_green(out.phases)
        # the served one's (its minimum dwell outlasts a cancel) and those in force
        allowed = dwell.get(served, set()).union(*(dwell[p] for p, v in on.items() if v))
        outside = {i: outside.get(i, now) for i in green - allowed}
        if dwelling:
            late = {i: now - t for i, t in outside.items() if now - t > grace_ms}
            assert not late, (now, out.phases, on, late)
