"""The neighbours' predicted arrivals (edge/control/arrivals.py): one pinned test per
rule, silence equal to never having the input, and safety under any arrivals.

Sites are tests/control/timeline.py's "four" layout (2+6 | 4+8; min green 5,
passage 2, max 20, yellow 3, red clearance 1; 2+6 settled green at 22.0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import pytest
from edge.control.arrivals import CALL_MS, EXPIRE_MS, HOLD_FLOOR_MS, HOLD_MS, MAX_PAIRS
from edge.control.controller import Controller
from edge.control.messages import Inputs, Lamp, Outputs
from edge.control.site import Site
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.control.invariants import InvariantChecker
from tests.control.test_properties import SITES
from tests.control.timeline import make_site, ms
from tests.hypothesis_profiles import examples

Pairs = tuple[tuple[int, int], ...]
Script = Callable[[int], tuple[frozenset[int], Pairs | None]]


def drive(site: Site, until_s: float, script: Script) -> list[Outputs]:
    """Step every 100 ms; script(t_ms) gives the loops occupied and a set of arrivals."""
    ctl = Controller(site)
    outs = []
    for t in range(0, ms(until_s) + 1, 100):
        occupied, arrivals = script(t)
        outs.append(ctl.step(t, Inputs(occupied=occupied, arrivals=arrivals)))
    return outs


def first(outs: list[Outputs], site: Site, pid: int, lamp: Lamp, after_s: float) -> float:
    """When phase pid first shows `lamp` at or after after_s (seconds)."""
    k = [p.id for p in site.phases].index(pid)
    for o in outs:
        if o.t_ms >= ms(after_s) and o.phases[k] == lamp:
            return o.t_ms / 1000
    raise AssertionError(f"phase {pid} never {lamp.name} after {after_s}")


def sent(at: Mapping[float, Pairs], occupied: Callable[[int], frozenset[int]]) -> Script:
    """Arrival sets sent at the given seconds; loops from `occupied`."""
    by_ms = {ms(s): p for s, p in at.items()}
    return lambda t: (occupied(t), by_ms.get(t))


def loop_4_from_30(t: int) -> frozenset[int]:
    return frozenset({4}) if t >= ms(30.0) else frozenset()


def test_windows_match_the_issue() -> None:
    assert (HOLD_MS, HOLD_FLOOR_MS, CALL_MS, EXPIRE_MS) == (5000, 1000, 8000, 2000)


def test_hold_keeps_a_gapped_out_green_for_the_arrival() -> None:
    """Rule 2: 2+6 rest gapped out; phase 4 calls at 30.0; an arrival for 2 due at 32.0
    (sent at 29.0 and again at 30.0, latest wins) holds 2 until 32.0; 6, gapped out too,
    waits with it for the barrier crossing."""
    site = make_site("four")
    plain = drive(site, 40.0, sent({}, loop_4_from_30))
    assert first(plain, site, 2, Lamp.YELLOW, 29.0) == 30.0
    held = drive(site, 40.0, sent({29.0: ((2, 3000),), 30.0: ((2, 2000),)}, loop_4_from_30))
    assert first(held, site, 6, Lamp.YELLOW, 29.0) == 32.0
    assert first(held, site, 2, Lamp.YELLOW, 29.0) == 32.0


def test_hold_is_bounded_by_max_out() -> None:
    """Rule 2: arrivals for 2 sent every second forever; the max timer (20 s from the
    conflicting call at 30.0) still ends the green."""
    site = make_site("four")

    def script(t: int) -> tuple[frozenset[int], Pairs | None]:
        return loop_4_from_30(t), ((2, 1000),) if t >= ms(29.0) and t % 1000 == 0 else None

    outs = drive(site, 60.0, script)
    assert first(outs, site, 2, Lamp.YELLOW, 29.0) == 50.0


def test_hold_window_shrinks_with_the_conflicting_queue() -> None:
    """Rule 2a: an arrival for 2 due 2 s ahead, sent every second from 23.0, would hold
    2 to its max-out (44.0: 20 s from 4's first call at 24.0). Loop 4 counts a vehicle a
    second from 24.0; the window (5 s less 4 s x queue / 6) falls below 2 s at the fifth
    (28.0: 1.67 s), and 2 gaps out there. With no queue at 4 beyond its first car it
    still holds (window 4.33 s) to the max-out."""
    site = make_site("four")

    def pulses(upto_s: float) -> Callable[[int], frozenset[int]]:
        def occupied(t: int) -> frozenset[int]:
            s = t / 1000
            on = 24.0 <= s < upto_s and s % 1 < 0.5
            return frozenset({4}) if on or s >= upto_s else frozenset()

        return occupied

    stream = {float(s): ((2, 2000),) for s in range(23, 60)}
    queued = drive(site, 60.0, sent(stream, pulses(60.0)))
    assert first(queued, site, 2, Lamp.YELLOW, 23.0) == 28.0
    one_car = drive(site, 60.0, sent(stream, pulses(24.1)))
    assert first(one_car, site, 2, Lamp.YELLOW, 23.0) == 44.0


def test_expired_arrivals_stop_holding() -> None:
    """Rule 1: a set sent at 29.0 expires at 31.0, before its arrival was due (32.0)."""
    site = make_site("four")
    outs = drive(site, 40.0, sent({29.0: ((2, 3000),)}, loop_4_from_30))
    assert first(outs, site, 2, Lamp.YELLOW, 29.0) == 31.0


def test_call_changes_ahead_of_the_arrival_and_drops_with_it() -> None:
    """Rule 3: no recall, 4+8 rest green after start-up; an arrival for 2 due 9 s ahead,
    sent at 40.0, calls 2 from 41.0 (C = 8 s ahead) until its set expires at 42.0."""
    site = make_site("four", main_recall=False)
    none = frozenset[int]()
    plain = drive(site, 50.0, sent({}, lambda t: none))
    k4 = [p.id for p in site.phases].index(4)
    assert all(o.phases[k4] == Lamp.GREEN for o in plain if o.t_ms >= ms(30.0))
    called = drive(site, 50.0, sent({40.0: ((2, 9000),)}, lambda t: none))
    assert first(called, site, 4, Lamp.YELLOW, 30.0) == 41.0
    assert first(called, site, 2, Lamp.GREEN, 30.0) == 45.0
    # The latest set wins: an empty set at 40.5 takes the call back before it acts.
    dropped = drive(site, 50.0, sent({40.0: ((2, 9000),), 40.5: ()}, lambda t: none))
    assert [o.phases for o in dropped] == [o.phases for o in plain]


def test_saturation_guard() -> None:
    """Rule 4: phase 2 maxes out (loop 2 held 22.0-43.0 against a call on 4), so a later
    arrival neither holds it nor calls 4's conflicts; its next gap-out clears the guard."""
    site = make_site("four")

    def occupied(t: int) -> frozenset[int]:
        s = t / 1000
        loops = set()
        if 22.0 <= s < 43.0:
            loops |= {2, 4}
        if s >= 80.0:
            loops.add(4)
        return frozenset(loops)

    plain = drive(site, 120.0, sent({}, occupied))
    assert first(plain, site, 2, Lamp.YELLOW, 22.0) == 42.0  # max-out: 22.0 + 20
    green_again = first(plain, site, 2, Lamp.GREEN, 43.0)
    assert green_again < 80.0
    # Guarded: arrivals for 2 at 79.0 and 80.0 (due 82.0): 2 gaps out at 80.0 as plain.
    arrivals: dict[float, Pairs] = {79.0: ((2, 3000),), 80.0: ((2, 2000),)}
    guarded = drive(site, 120.0, sent(arrivals, occupied))
    assert first(guarded, site, 2, Lamp.YELLOW, 79.0) == first(plain, site, 2, Lamp.YELLOW, 79.0)
    assert first(plain, site, 2, Lamp.YELLOW, 79.0) == 80.0
    # Once phase 2 has gapped out (at 80.0; green again 106.0-111.0 at its minimum),
    # the next arrival holds it again.
    again = dict(arrivals)
    again.update({114.0: ((2, 3000),), 115.0: ((2, 2000),)})

    def occupied2(t: int) -> frozenset[int]:
        return occupied(t) if t < ms(100.0) else frozenset({4} if t >= ms(115.0) else ())

    base = drive(site, 130.0, sent(arrivals, occupied2))
    assert first(base, site, 2, Lamp.GREEN, 100.0) == 106.0
    assert first(base, site, 2, Lamp.YELLOW, 109.0) == 115.0
    held = drive(site, 130.0, sent(again, occupied2))
    assert first(held, site, 2, Lamp.YELLOW, 109.0) == 117.0


def test_bad_arrivals_are_reported_and_ignored() -> None:
    """Rule 5: an unknown phase, a negative or absurd time, a malformed pair: ignored, and
    the set reported once with the count and the first bad pair."""
    site = make_site("four")
    ctl = Controller(site)
    bad = ((99, 1000), (2, -5), (2, 10**9), (2,), "x", (2, 1.5), ([2], 1000), ("2", 1000))
    out = ctl.step(0, Inputs(arrivals=(*bad, (4, 3000))))  # type: ignore[arg-type]
    errors = [e for e in out.events if e.name == "input_error" and e.subject == "arrivals"]
    assert [e.detail for e in errors] == ["8 bad predicted arrival(s), the first (99, 1000)"]
    assert ctl.arrivals.due == ((site.phases.index(site.phase(4)), 3000),)
    assert ctl.fault is None


def test_a_bad_pair_whose_repr_raises_is_reported_not_flashed() -> None:
    """Review finding: the event text called repr(pair); a pair whose repr raised sent the
    tick to fault flash."""

    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

    ctl = Controller(make_site("four"))
    out = ctl.step(0, Inputs(arrivals=(Hostile(),)))  # type: ignore[arg-type]
    assert ctl.fault is None
    assert [e.name for e in out.events if e.subject == "arrivals"] == ["input_error"]
    out = ctl.step(100, Inputs(arrivals=((10**5000, 1),)))  # str() of it raises ValueError
    assert ctl.fault is None
    details = [e.detail for e in out.events if e.subject == "arrivals"]
    assert details == ["1 bad predicted arrival(s), the first (an out-of-range int, 1)"]


def test_a_set_beyond_the_cap_is_cut_and_reported_once() -> None:
    """Review finding: 100,000 bad pairs a second gave 100,000 events a set and a 366 ms
    step. Pairs beyond MAX_PAIRS are ignored, the set is reported once."""
    site = make_site("four")
    ctl = Controller(site)
    pairs = tuple((2, 5000) for _ in range(MAX_PAIRS)) + tuple((99, 1) for _ in range(100_000))
    out = ctl.step(0, Inputs(arrivals=pairs))
    errors = [e for e in out.events if e.name == "input_error" and e.subject == "arrivals"]
    assert len(errors) == 1
    assert f"100000 beyond the {MAX_PAIRS}" in errors[0].detail
    assert len(ctl.arrivals.due) == MAX_PAIRS
    assert ctl.fault is None


def test_the_guard_clears_on_any_end_but_a_max_out() -> None:
    """Review finding: only a gap-out cleared the guard, so a phase on max recall (it never
    gaps out) or ended by force-offs kept holds and calls off for good around it."""
    arrivals = Controller(make_site("four")).arrivals
    arrivals.green_ended(1, "max_out")
    assert arrivals.maxed == 0b10
    arrivals.green_ended(1, "force_off")
    assert arrivals.maxed == 0
    arrivals.green_ended(1, "max_out")
    arrivals.green_ended(1, "stop")
    assert arrivals.maxed == 0


@pytest.mark.parametrize("name", sorted(SITES))
def test_silence_and_expired_sets_equal_never_having_the_input(name: str) -> None:
    """Rule 1: no arrivals (None), or sets that expired (sent during start-up flash, or
    naming times already past), give the outputs of a controller without the field."""
    site = SITES[name]
    loops = [d.id for d in site.detectors]
    pid = site.phases[0].id

    def occupied(t: int) -> frozenset[int]:
        k = t // 4300
        return frozenset(d for j, d in enumerate(loops) if (k + j) % 3 == 0)

    def never(t: int) -> tuple[frozenset[int], Pairs | None]:
        return occupied(t), None

    def expired(t: int) -> tuple[frozenset[int], Pairs | None]:
        if t == 0:
            return occupied(t), ((pid, 1000),)
        return occupied(t), ((pid, 0),) if t % 7000 == 0 else None

    base = drive(site, 240.0, never)
    assert drive(site, 240.0, expired) == base
    ctl = Controller(site)  # the same through a caller that never names the field
    plain = [ctl.step(t, Inputs(occupied=occupied(t))) for t in range(0, 240_001, 100)]
    assert plain == base


# --- safety under any arrivals ----------------------------------------------------------


@st.composite
def segments(draw: st.DrawFn, site: Site) -> list[tuple[int, frozenset[int], Pairs | None]]:
    """(steps to hold, occupied loops, arrivals sent at the segment start)."""
    dets = [d.id for d in site.detectors]
    ids = [p.id for p in site.phases]
    pairs = st.lists(st.tuples(st.sampled_from(ids), st.integers(0, 12_000)), max_size=4)
    seg = st.tuples(
        st.integers(1, 60),
        st.frozensets(st.sampled_from(dets), max_size=4),
        st.one_of(st.none(), pairs.map(tuple)),
    )
    return draw(st.lists(seg, min_size=5, max_size=40))


def run_checked(site: Site, segs: list[tuple[int, frozenset[int], Pairs | None]]) -> None:
    ctl = Controller(site)
    checker = InvariantChecker(site)
    index = {p.id: i for i, p in enumerate(site.phases)}
    servable = {d.id: d for d in site.detectors if d.locking and d.delay_ms == 0}
    previous: frozenset[int] = frozenset()
    now = 0
    for steps, occupied, arrivals in segs:
        for k in range(steps):
            for det_id in occupied - previous:
                if det_id in servable:
                    for pid in servable[det_id].calls:
                        checker.call(now, index[pid])
            out = ctl.step(now, Inputs(occupied=occupied, arrivals=arrivals if k == 0 else None))
            checker.check(now, out)
            assert ctl.fault is None
            previous = occupied
            now += 100


@pytest.mark.parametrize("name", sorted(SITES))
@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_safety_under_any_arrivals(name: str, data: st.DataObject) -> None:
    """Minimum greens, clearances, intergreens, conflicts and bounded waits hold while
    neighbours predict anything (tests/control/invariants.py checks every step)."""
    site = SITES[name]
    run_checked(site, data.draw(segments(site)))


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segs=segments(make_site("four")))
@example(  # arrivals for 2 sent every 2 s against a standing call on 4: max-out bounds it
    segs=[(20, frozenset({4}), ((2, 1000),))] * 30,
)
def test_safety_with_holds_against_standing_calls(
    segs: list[tuple[int, frozenset[int], Pairs | None]],
) -> None:
    run_checked(make_site("four"), segs)


@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segs=segments(make_site("four")))
@example(  # a queue of three on 4 (window 3 s) while arrivals for 2 come due 4.5 s ahead
    segs=[(5, frozenset({4}), None), (5, frozenset(), None)] * 3
    + [(40, frozenset({4}), ((2, 4500),)), (40, frozenset({4}), ((2, 2500),))],
)
def test_quiet_steps_match_busy_steps_under_arrivals(
    segs: list[tuple[int, frozenset[int], Pairs | None]],
) -> None:
    """Deadlines: rule 2a's window has no deadline of its own (arrivals.py), yet a
    controller that sleeps to its next deadline shows what one working every step does."""
    site = make_site("four")
    lamps = []
    for busy in (False, True):
        ctl = Controller(site)
        now = 0
        shown = []
        for steps, occupied, arrivals in segs:
            for k in range(steps):
                if busy:
                    ctl.deadline = 0  # defeat the quiet-step shortcut
                out = ctl.step(
                    now, Inputs(occupied=occupied, arrivals=arrivals if k == 0 else None)
                )
                shown.append((out.channels, out.phases, out.peds, out.overlaps))
                now += 100
        lamps.append(shown)
    assert lamps[0] == lamps[1]
