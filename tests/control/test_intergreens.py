"""Per-pair intergreens (issue 17): the core's gate, its red clearance, the monitor, the
site file's [intergreens] and the RiLSA formula.

The property tests drive every example site and every recorded derived site
(tests/control/golden/sites) with random intergreen tables and random demand
and operator sequences; the independent checker (invariants.py) asserts after
every step that no green started before its pair's intergreen elapsed since
the conflicting group's green ended, and fails on any fault flash (so the
software monitor, which checks the same rule on the outputs, never disagrees).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from edge.clearance import VEHICLE_LENGTH_M
from edge.config import ConfigError, config_from_dict, load_site, site_from_dict
from edge.control import intergreens
from edge.control.intervals import LONG_AGO
from edge.control.messages import Lamp
from edge.control.monitor import Monitor
from edge.control.site import SignalKey, SignalKind, Site
from edge.intergreen import ENTER_VEHICLE_MPS, clearing_speed, intergreen_ms
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sim.sumo.conflicts import LinkPath, conflict_points

from tests.control import test_monitor as tm
from tests.control.invariants import InvariantChecker
from tests.control.test_properties import run, scenarios
from tests.control.timeline import make_site, ms, site_dict
from tests.control.timeline import run as run_timeline
from tests.hypothesis_profiles import examples

ROOT = Path(__file__).resolve().parents[2]
SITES = {
    p.stem: load_site(p)
    for p in [
        *sorted((ROOT / "examples").glob("*.toml")),
        *sorted((ROOT / "tests/control/golden/sites").glob("*.toml")),
    ]
}
P = SignalKind.PHASE


def _key(pid: int) -> SignalKey:
    return (P, pid)


# --- the core ------------------------------------------------------------------------


def test_a_long_intergreen_holds_the_entering_green() -> None:
    """Phase 2's yellow starts at 9.0; its pair to 4 needs 7 s: 4 waits to 16.0, while 8
    (no listed pair) starts after the blanket yellow + red clearance, at 13.0."""
    site = make_site("four")
    site = replace(site, intergreens={(_key(2), _key(4)): 7000})
    r = run_timeline(site, 20.0)
    assert r.phase(9.0, 2) is Lamp.YELLOW and r.phase(8.9, 2) is Lamp.GREEN
    assert r.phase(13.0, 8) is Lamp.GREEN
    assert r.phase(15.9, 4) is Lamp.RED
    assert r.phase(16.0, 4) is Lamp.GREEN


def test_a_fully_listed_phase_clears_in_its_shortest_intergreen() -> None:
    """Red clearance 2 s: the blanket change is 5 s. With every pair that 2 and 6 leave
    listed at 4 s, 4 and 8 start 4 s after the yellows began (13.0, not 14.0)."""
    site = make_site("four", timing={"red_clear_s": 2.0})
    blanket = run_timeline(site, 16.0)
    assert blanket.phase(13.9, 4) is Lamp.RED and blanket.phase(14.0, 4) is Lamp.GREEN
    table = {(a, b): 4000 for a, b in site.conflicts if a in (_key(2), _key(6))}
    r = run_timeline(replace(site, intergreens=table), 16.0)
    assert r.phase(12.9, 4) is Lamp.RED and r.phase(13.0, 4) is Lamp.GREEN
    assert r.phase(13.0, 8) is Lamp.GREEN


def test_the_red_clearance_never_goes_below_the_floor() -> None:
    """A table below yellow + minimum red clearance (built without edge.config's check)
    still gets the site's minimum red clearance (1 s) after the 3 s yellow."""
    site = make_site("four")
    table = {(a, b): 0 for a, b in site.conflicts}
    r = run_timeline(replace(site, intergreens=table), 16.0)
    assert r.phase(12.9, 4) is Lamp.RED and r.phase(13.0, 4) is Lamp.GREEN


def test_the_rule_functions() -> None:
    ends: tuple[list[int], ...] = ([100, LONG_AGO], [LONG_AGO], [])
    assert intergreens.opens_at([(0, 0, 5000)], ends) == 5100
    assert intergreens.opens_at([(0, 1, 5000), (1, 0, 3)], ends) < 0
    assert intergreens.opens_at([], ends) == LONG_AGO
    # A red clearance starting at 3000 after a yellow from 0: plan's, or shortest/floor.
    assert intergreens.red_clear_end(3000, 0, 2000, 1000, None) == 5000
    assert intergreens.red_clear_end(3000, 0, 2000, 1000, 4500) == 4500
    assert intergreens.red_clear_end(3000, 0, 2000, 1000, 3200) == 4000
    site = make_site("four")
    assert intergreens.shortest_leaving(site, _key(2)) is None
    some = {(a, b): 4000 + 100 * n for n, (a, b) in enumerate(sorted(site.conflicts, key=str))}
    site = replace(site, intergreens=some)
    owed = [v for (a, _), v in some.items() if a == _key(2)]
    assert intergreens.shortest_leaving(site, _key(2)) == min(owed)


@st.composite
def tables(draw: st.DrawFn, site: Site) -> dict[tuple[SignalKey, SignalKey], int]:
    """A random table: every conflicting pair (half the time) or some; 0 to 9 s."""
    pairs = sorted(site.conflicts, key=str)
    every = draw(st.booleans())
    value = st.integers(0, 90).map(lambda n: n * 100)
    return {pair: draw(value) for pair in pairs if every or draw(st.booleans())}


@pytest.mark.parametrize("name", sorted(SITES))
@settings(
    max_examples=examples(10),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), blocking=st.booleans(), jitter=st.one_of(st.none(), st.integers(0, 99)))
def test_no_green_before_its_intergreens(
    name: str, data: st.DataObject, blocking: bool, jitter: int | None
) -> None:
    site = SITES[name]
    site = replace(site, intergreens=data.draw(tables(site)))
    segments = data.draw(scenarios(site, blocking=blocking))
    run(site, segments, InvariantChecker(site, check_service=not blocking), jitter_seed=jitter)


@pytest.mark.parametrize("name", sorted(SITES))
@settings(max_examples=examples(4), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_quiet_steps_wake_when_an_intergreen_ends(name: str, data: st.DataObject) -> None:
    """The deadline covers a gate held by an intergreen: stepping every 100 ms without
    the quiet-step shortcut shows exactly the same displays."""
    site = SITES[name]
    site = replace(site, intergreens=data.draw(tables(site)))
    segments = data.draw(scenarios(site, blocking=True))
    assert run(site, segments, always_slow=True) == run(site, segments)


# --- the monitor -----------------------------------------------------------------------


def test_the_monitor_flags_a_green_before_its_intergreen() -> None:
    """tests/control/test_monitor.py's correct sequence: 2 yellow at 13.0, 4 green at 17.0
    (3 s yellow + 1 s red). With a 5 s intergreen from 2 to 4 that is a violation."""
    assert tm.first_fault(tm.CORRECT) is None
    site = replace(tm.SITE, intergreens={(_key(2), _key(4)): 5000})
    monitor = Monitor(site)
    fault = None
    for k, (t, veh, peds) in enumerate(tm.CORRECT):
        stop = ms(tm.CORRECT[k + 1][0]) if k + 1 < len(tm.CORRECT) else ms(t) + 100
        for now in range(ms(t), stop, 100):
            fault = fault or monitor.check(now, tm._outputs(now, "run", veh, peds))
    assert (
        fault is not None
        and "phase 4 opened 4000 ms after the green of conflicting phase 2" in (fault)
    ), fault


def test_the_monitor_takes_a_walk_end_and_flash_as_green_ends() -> None:
    site = replace(tm.SITE, intergreens={((SignalKind.PED, 2), _key(4)): 8000})
    monitor = Monitor(site)
    walk = {2: Lamp.GREEN}
    frames = [
        (0, "run", {}, {}),
        (2000, "run", {2: Lamp.GREEN}, walk),
        (7000, "run", {2: Lamp.GREEN}, {2: Lamp.FLASH_RED}),
        (13000, "run", {2: Lamp.YELLOW}, {}),
        (16000, "run", {}, {}),
    ]
    for now, mode, veh, peds in frames:
        assert monitor.check(now, tm._outputs(now, mode, veh, peds)) is None
    reason = monitor.check(17000, tm._outputs(17000, "run", {4: Lamp.GREEN}, {}))
    assert reason is None  # 10 s after the walk ended
    site = replace(tm.SITE, intergreens={(_key(2), _key(4)): 6000})
    monitor = Monitor(site)
    monitor.check(0, tm._outputs(0, "run", {2: Lamp.GREEN}, {}))
    monitor.check(5000, tm._outputs(5000, "fault_flash", {}, {}))  # the green cut by flash
    monitor.check(6000, tm._outputs(6000, "run", {}, {}))
    reason = monitor.check(10000, tm._outputs(10000, "run", {4: Lamp.GREEN}, {}))
    assert reason is not None and "intergreen 6000 ms" in reason


# --- the site file ---------------------------------------------------------------------


def _with(table: dict[str, dict[str, float]]) -> dict[str, object]:
    raw = site_dict("four")
    raw["intergreens"] = table
    return raw


def test_a_site_file_states_its_intergreens() -> None:
    site = site_from_dict(_with({"P2": {"P4": 5.2, "P8": 4.0}, "Ped4": {"P2": 6.5}}))
    assert site.intergreens == {
        (_key(2), _key(4)): 5200,
        (_key(2), _key(8)): 4000,
        ((SignalKind.PED, 4), _key(2)): 6500,
    }


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"P9": {"P4": 5.0}}, "intergreens: P9: no such signal group"),
        ({"P2": {"O1": 5.0}}, "intergreens: P2 -> O1: no such signal group 'O1'"),
        ({"P2": {"P6": 5.0}}, "intergreens: P2 -> P6: phase 2 and phase 6 do not conflict"),
        (
            {"P2": {"P4": 3.9}},
            "intergreens: P2 -> P4: 3.9 s is below 4.0 s (its yellow + the minimum red",
        ),
        ({"Ped4": {"P2": 5.9}}, "intergreens: Ped4 -> P2: 5.9 s is below 6.0 s (its pedestrian"),
    ],
)
def test_a_bad_intergreen_is_named(table: dict[str, dict[str, float]], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        site_from_dict(_with(table))
    assert any(message in p for p in err.value.problems), err.value.problems


def test_the_floor_is_the_longest_yellow_of_any_plan() -> None:
    raw = _with({"P2": {"P4": 4.0}})
    raw["plans"]["night"] = {  # type: ignore[index]
        "defaults": {**raw["plans"]["day"]["defaults"], "yellow_s": 4.0}  # type: ignore[index]
    }
    with pytest.raises(ConfigError, match=r"4 s is below 5.0 s"):
        site_from_dict(raw)


# --- the formula and the geometry ---------------------------------------------------


def test_the_rilsa_formula() -> None:
    # 4.0 s yellow; 20 m + 6.1 m at 10 m/s = 2.61 s; entering 11.1 m at 11.1 m/s = 1 s.
    got = intergreen_ms(
        4000, 20.0, 10.0, ENTER_VEHICLE_MPS, vehicle=True, entering_vehicle=True, floor_ms=1000
    )
    assert got == 4000 + 1700  # 1.61 s rounded up to 1.7
    assert pytest.approx(1.61) == (20.0 + VEHICLE_LENGTH_M) / 10.0 - 1.0
    # The floor: a conflict right at the entering stop line, far from the leaving one.
    assert intergreen_ms(
        4000, 0.0, 10.0, 50.0, vehicle=True, entering_vehicle=True, floor_ms=1000
    ) == (5000)
    # An entering walk gets no entry time; a leaving walk no vehicle length.
    assert intergreen_ms(
        4000, 10.0, 10.0, 50.0, vehicle=True, entering_vehicle=False, floor_ms=1000
    ) == (4000 + 1700)
    assert intergreen_ms(0, 6.0, 1.2, 0.0, vehicle=False, entering_vehicle=True, floor_ms=0) == (
        5000
    )
    assert clearing_speed("T") == 10.0 and clearing_speed("L", 6.0) == 6.0
    assert clearing_speed("ped") == 1.2
    with pytest.raises(ValueError, match="not T, L, R or ped"):
        clearing_speed("U")
    with pytest.raises(ValueError, match="clearing speed"):
        intergreen_ms(4000, 1.0, 0.0, 1.0, vehicle=True, entering_vehicle=True, floor_ms=0)


def test_conflict_points_of_crossing_merging_and_walked_paths() -> None:
    through = LinkPath(0, ((0.0, 0.0), (20.0, 0.0)), 3.2, 13.9, "T")
    across = LinkPath(1, ((10.0, -5.0), (10.0, 15.0)), 3.2, 13.9, "T")
    [c] = conflict_points(through, across)
    assert (c.along_a, c.along_b) == pytest.approx((10.0, 5.0))
    merging = LinkPath(2, ((20.0, -10.0), (20.0, 0.0)), 3.2, 7.0, "R")
    [m] = conflict_points(through, merging)
    assert (m.along_a, m.along_b) == pytest.approx((20.0, 10.0))
    walk = LinkPath(3, ((5.0, -2.0), (5.0, 10.0)), 4.0, 1.0, "ped")
    [w] = conflict_points(walk, through)  # walked either way: the longer side, 10 m
    assert (w.along_a, w.along_b) == pytest.approx((10.0, 5.0))
    apart = LinkPath(4, ((0.0, 5.0), (20.0, 5.0)), 3.2, 13.9, "T")
    assert conflict_points(through, apart) == []


@example(leave=3000, clear=0.0, enter=0.0, floor=1000)
@given(
    leave=st.integers(3000, 6000),
    clear=st.floats(0, 80),
    enter=st.floats(-5, 80),
    floor=st.integers(500, 3000),
)
def test_the_formula_never_goes_below_the_floor(
    leave: int, clear: float, enter: float, floor: int
) -> None:
    got = intergreen_ms(
        leave, clear, 7.0, enter, vehicle=True, entering_vehicle=True, floor_ms=floor
    )
    assert got >= leave + floor
    exact = leave + 1000 * ((clear + VEHICLE_LENGTH_M) / 7.0 - max(enter, 0) / ENTER_VEHICLE_MPS)
    assert got >= exact - 1e-6  # never understated: rounded up


def test_edge_check_warns_where_an_intergreen_is_below_the_kinematic_yellow() -> None:
    """An approach speed (the site's geometry for ITE's check) sets the yellow an
    intergreen must hold: 60 km/h needs 3.8 s, so 4.0 s from P2 (+ 1 s red) is short."""
    raw = _with({"P2": {"P4": 4.0}, "P4": {"P2": 4.0}})
    for a in raw["approaches"]:  # type: ignore[attr-defined]
        if a["id"] in ("E", "W"):
            a["speed_kmh"] = 60.0
    warnings = config_from_dict(raw).warnings
    assert any(
        w.startswith("intergreens: P2 -> P4: 4.0 s is below ITE's yellow 3.8 s for approach")
        and "+ the 1.0 s minimum red clearance" in w
        for w in warnings
    ), warnings
    assert not any(w.startswith("intergreens: P4 -> P2") for w in warnings), warnings
