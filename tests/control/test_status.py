"""The status displays read (Controller.status(), outputs.py rule 5; the page's timers).

Seeded random runs of every example, with calls, holds and omits; after every step
the status agrees with the outputs (a green interval on a green lamp, and so on),
names only the documented intervals, and its times are ms left, never negative and
never the core's NEVER (the page once stood `1 << 61` in for it).
"""

from __future__ import annotations

import random

import pytest
from edge.control.controller import Controller
from edge.control.intervals import Interval
from edge.control.messages import Hold, Inputs, Lamp, Omit, PlaceCall, SetPlan

from tests.control.test_properties import SITES

GREENS = {"min_green", "passage", "max", "rest", "walk", "ped_clear"}
LAMP_OF = {"yellow": Lamp.YELLOW, "red_clear": Lamp.RED, "red": Lamp.RED}
HOUR_MS = 3_600_000  # longer than any timer an example configures


@pytest.mark.parametrize("name", sorted(SITES))
def test_status_follows_the_outputs(name: str) -> None:
    site = SITES[name]
    rng = random.Random(16)
    ctl = Controller(site)
    dets = [d.id for d in site.detectors]
    occupied: frozenset[int] = frozenset()
    seen: set[str] = set()
    for k in range(6000):
        if rng.random() < 0.05:
            occupied = frozenset(d for d in dets if rng.random() < 0.3)
        cmds: tuple[object, ...] = ()
        if rng.random() < 0.005:
            p = rng.choice(site.phases).id
            cmds = (
                rng.choice([PlaceCall(p), Hold((p,)), Hold(None), Omit(p, rng.random() < 0.3)]),
            )
        out = ctl.step(k * 100, Inputs(occupied=occupied, commands=cmds))
        st = ctl.status()
        assert st.t_ms == k * 100 and st.plan == ctl.plan.id
        assert st.detectors == tuple(d.id in occupied for d in site.detectors)
        assert [p.phase for p in st.phases] == [p.id for p in site.phases]
        for i, ps in enumerate(st.phases):
            seen.add(ps.interval)
            assert ps.interval in GREENS or ps.interval in LAMP_OF, ps
            for left in (ps.left_ms, ps.max_left_ms):
                assert left is None or 0 <= left < HOUR_MS, ps
            if ps.interval not in GREENS:
                assert ps.max_left_ms is None, ps
            if ps.interval in ("red", "rest"):
                assert ps.left_ms is None, ps
            else:
                assert ps.left_ms is not None, ps
            assert (ps.hold, ps.omit) == (ctl.hold[i], ctl.omit[i])
            if out.mode in ("run", "all_red") and out.phases[i] != Lamp.DARK:
                want = Lamp.GREEN if ps.interval in GREENS else LAMP_OF[ps.interval]
                assert out.phases[i] == want, (k, ps, out.phases[i])
    assert {"yellow", "red_clear", "red"} <= seen and seen & GREENS


def test_a_call_shows_until_its_green() -> None:
    site = SITES["four_leg_protected"]
    ctl = Controller(site)
    now = 0
    while ctl.mode != "run":
        now += 100
        ctl.step(now, Inputs())
    red = next(i for i, p in enumerate(ctl.status().phases) if p.interval == "red")
    pid = site.phases[red].id
    now += 100
    ctl.step(now, Inputs(commands=(PlaceCall(pid),)))
    assert ctl.status().phases[red].call
    while ctl.status().phases[red].interval not in GREENS:
        now += 100
        ctl.step(now, Inputs())
        assert now < 600_000
    assert not ctl.status().phases[red].call


@pytest.mark.parametrize("name", sorted(SITES))
def test_the_tick_view_agrees_with_the_status(name: str) -> None:
    """The runtime's per-tick read (Controller.tick_view, outputs.py rule 6): the same
    facts as the status, copied; a cycle position only while coordinated."""
    site = SITES[name]
    rng = random.Random(6)
    ctl = Controller(site)
    dets = [d.id for d in site.detectors]
    plans = sorted(site.plans)
    occupied: frozenset[int] = frozenset()
    kinds = {"red": Interval.RED, "yellow": Interval.YELLOW, "red_clear": Interval.RED_CLEAR}
    coordinated = 0
    for k in range(4000):
        if rng.random() < 0.05:
            occupied = frozenset(d for d in dets if rng.random() < 0.3)
        cmds: tuple[object, ...] = ()
        if rng.random() < 0.003:
            cmds = (
                rng.choice([PlaceCall(rng.choice(site.phases).id), SetPlan(rng.choice(plans))]),
            )
        out = ctl.step(k * 100, Inputs(occupied=occupied, commands=cmds))
        view, st = ctl.tick_view(), ctl.status()
        assert (view.t_ms, view.plan, view.present) == (st.t_ms, st.plan, st.detectors)
        assert view.calls == tuple(p.call for p in st.phases)
        assert view.ped_calls == tuple(p.ped_call for p in st.phases)
        for v, ps in zip(view.intervals, st.phases, strict=True):
            assert v == kinds.get(ps.interval, Interval.GREEN), (k, ps)
        for r, nxt in enumerate(view.nexts):
            assert nxt == -1 or ctl.rings.ring_of[nxt] == r
        if out.control == "coordinated":
            coordinated += 1
            assert view.cycle_ms is not None and 0 <= view.cycle_ms < HOUR_MS
        else:
            assert view.cycle_ms is None
        ctl.timers.vcall[0] = not ctl.timers.vcall[0]  # a copy: the view does not follow
        assert view.calls[0] != ctl.timers.vcall[0]
        ctl.timers.vcall[0] = not ctl.timers.vcall[0]
    assert coordinated or not any(p.pattern for p in site.plans.values())
