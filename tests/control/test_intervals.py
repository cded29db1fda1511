"""Interval sequencing: the transition tables, and a bad move is a fault.

Vehicle phases (edge/control/intervals.py), crossings (pedestrians.py) and overlaps
(overlaps.py: a normal overlap's table and a flashing-yellow-arrow head's):

- Every move a table lists is taken; every other one raises IllegalTransition and
  changes nothing. Only all red, flash and start-up all red put every signal to its
  stopped state at once, from any interval.
- Random command and demand sequences on every example (and the T junction with a
  trailing green) never make an illegal move (one would latch fault flash, naming it).
- A corrupted interval is a fault flash that names the illegal move: the old
  sequencer took a green phase turned red through red -> red without a word (only the
  conflict monitor's view of the lamps caught it), and put a normal overlap left in a
  flashing yellow arrow straight to red, and a flashing-yellow-arrow head put in a red
  clearance it cannot have back to its green arrow.
"""

from __future__ import annotations

import itertools
import tomllib
from pathlib import Path

import pytest
from edge.config import site_from_dict
from edge.control import overlaps, pedestrians
from edge.control.controller import Controller
from edge.control.intervals import TRANSITIONS, IllegalTransition, Interval, Intervals
from edge.control.messages import Inputs
from edge.control.overlaps import OverlapInterval
from edge.control.pedestrians import Pedestrians, PedInterval
from edge.control.site import Site
from edge.control.states import DONT_WALK, FAULT, RUN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control.test_properties import SITES, run, scenarios
from tests.hypothesis_profiles import examples


def _trailing_t_junction() -> Site:
    """The T junction with overlap A trailing its parents by 2 s (no example trails)."""
    raw = tomllib.loads((Path(__file__).parents[2] / "examples/t_junction.toml").read_text())
    for ov in raw["overlaps"]:
        if ov["id"] == "A":
            ov["trail_green_s"] = 2.0
    return site_from_dict(raw)


PROPERTY_SITES = {**SITES, "t_junction_trailing": _trailing_t_junction()}


@pytest.mark.parametrize(("was", "to"), list(itertools.product(Interval, Interval)))
def test_only_the_tables_moves_are_legal(was: Interval, to: Interval) -> None:
    ivs = Intervals([7], now=0)
    ivs.iv[0] = was
    if to in TRANSITIONS[was]:
        ivs.move(0, to)
        assert ivs.iv == [to]
    else:
        with pytest.raises(IllegalTransition, match=f"phase 7: {was.name.lower()} -> "):
            ivs.move(0, to)
        assert ivs.iv == [was]  # an illegal move changes nothing


def test_the_table_is_one_cycle() -> None:
    """red -> green -> yellow -> red clearance -> red, and nothing else."""
    seen, iv = [], Interval.RED
    for _ in Interval:
        (iv,) = TRANSITIONS[iv]
        seen.append(iv)
    assert seen == [Interval.GREEN, Interval.YELLOW, Interval.RED_CLEAR, Interval.RED]
    assert DONT_WALK == 0  # intervals.gate_clear and timing.deadlines test it for truth


def test_the_pedestrian_table_is_one_cycle() -> None:
    """don't walk -> walk -> pedestrian clearance -> don't walk, and nothing else."""
    table = pedestrians.TRANSITIONS
    assert set(table) == set(PedInterval)
    seen, iv = [], PedInterval.DONT_WALK
    for _ in PedInterval:
        (iv,) = table[iv]
        seen.append(iv)
    assert seen == [PedInterval.WALK, PedInterval.PED_CLEAR, PedInterval.DONT_WALK]
    assert DONT_WALK is PedInterval.DONT_WALK
    assert int(DONT_WALK) == 0  # intervals.gate_clear and timing.deadlines test it for truth


@pytest.mark.parametrize(("was", "to"), list(itertools.product(PedInterval, PedInterval)))
def test_only_the_pedestrian_tables_moves_are_legal(was: PedInterval, to: PedInterval) -> None:
    peds = Pedestrians([4])
    peds.iv[0] = was
    if to in pedestrians.TRANSITIONS[was]:
        peds.move(0, to)
        assert peds.iv == [to]
    else:
        with pytest.raises(IllegalTransition, match=f"phase 4 crossing: {was.name.lower()} -> "):
            peds.move(0, to)
        assert peds.iv == [was]
    peds.clear()  # the one exception: all red or flash, from any interval
    assert peds.iv == [PedInterval.DONT_WALK]


_R, _G, _Y, _RC, _TRAIL, _FYA = OverlapInterval


def test_the_overlap_tables() -> None:
    """A normal overlap clears through its own yellow and red clearance, and only a
    trailing green returns to green; a flashing-yellow-arrow head flashes only from red,
    leaves the flashing arrow through yellow or to the green arrow, and its yellow ends in
    red (its parent's red clearance times the rest)."""
    normal = {(a, b) for a, tos in overlaps.TRANSITIONS.items() for b in tos}
    assert normal == {
        (_R, _G), (_G, _TRAIL), (_G, _Y), (_TRAIL, _G), (_TRAIL, _Y), (_Y, _RC), (_RC, _R),
    }  # fmt: skip
    fya = {(a, b) for a, tos in overlaps.FYA_TRANSITIONS.items() for b in tos}
    assert fya == {(_R, _G), (_R, _FYA), (_FYA, _G), (_FYA, _Y), (_G, _Y), (_Y, _R)}
    assert set(overlaps.TRANSITIONS) == set(overlaps.FYA_TRANSITIONS) == set(OverlapInterval)
    # The lamp table (outputs.VEH_LAMP) indexes by value: a phase's four keep theirs.
    assert [int(v) for v in (_R, _G, _Y, _RC)] == [int(v) for v in Interval]


@pytest.mark.parametrize(("was", "to"), list(itertools.product(OverlapInterval, OverlapInterval)))
@pytest.mark.parametrize("name", ["A", "B"])  # the T junction's normal overlap, its FYA head
def test_only_an_overlaps_tables_moves_are_legal(
    name: str, was: OverlapInterval, to: OverlapInterval
) -> None:
    ovs = Controller(SITES["t_junction"]).overlaps
    k = ovs.index[name]
    table = overlaps.FYA_TRANSITIONS if name == "B" else overlaps.TRANSITIONS
    ovs.iv[k] = was
    if to in table[was]:
        ovs.move(k, to)
        assert ovs.iv[k] == to
    else:
        with pytest.raises(IllegalTransition, match=f"overlap {name}: {was.name.lower()} -> "):
            ovs.move(k, to)
        assert ovs.iv[k] == was
    ovs.clear()  # the one exception: all red, flash or start-up all red
    assert set(ovs.iv) == {_R}


@pytest.mark.parametrize("name", sorted(PROPERTY_SITES))
@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_commands_never_make_an_illegal_move(name: str, data: st.DataObject) -> None:
    """Vehicle, pedestrian and overlap moves alike: an illegal one latches fault flash."""
    site = PROPERTY_SITES[name]
    outs = run(site, data.draw(scenarios(site, blocking=True)))
    faults = [e for o in outs for e in o.events if e.name == "fault_flash"]
    assert not faults, faults[0]
    assert all(o.mode != FAULT for o in outs)


def test_a_corrupted_interval_is_a_fault_not_a_silent_state() -> None:
    site = SITES["four_leg_protected"]
    ctl = Controller(site)
    now = 0
    while ctl.mode != RUN or Interval.GREEN not in ctl.iv:
        now += 100
        ctl.step(now, Inputs())
    i = ctl.iv.index(Interval.GREEN)
    ctl.intervals.iv[i] = Interval.RED  # behind the sequencer's back
    out = ctl.step(now + 100, Inputs(commands=()))
    for _ in range(50):
        if out.mode == FAULT:
            break
        now += 100
        out = ctl.step(now + 100, Inputs(occupied=frozenset(d.id for d in site.detectors)))
    assert out.mode == FAULT
    assert ctl.fault is not None and "IllegalTransition" in ctl.fault
    assert f"phase {site.phases[i].id}: red -> red" in ctl.fault


def _fault_after_corrupting(
    overlap: str, when: OverlapInterval, to: OverlapInterval, busy: bool
) -> str:
    """Run the T junction (every detector occupied if `busy`) until overlap `overlap` is in
    `when`, put it to `to` behind the sequencer's back, and run on until fault flash."""
    site = SITES["t_junction"]
    ctl = Controller(site)
    k = ctl.overlaps.index[overlap]
    inputs = Inputs(occupied=frozenset(d.id for d in site.detectors) if busy else frozenset())
    now = 0
    while ctl.mode != RUN or ctl.overlaps.iv[k] != when:
        now += 100
        ctl.step(now, inputs)
        assert now < 600_000, f"overlap {overlap} never {when.name}"
    ctl.overlaps.iv[k] = to
    for _ in range(3000):
        now += 100
        if ctl.step(now, inputs).mode == FAULT:
            break
    assert ctl.fault is not None and "IllegalTransition" in ctl.fault, ctl.fault
    return ctl.fault


def test_a_corrupted_overlap_is_a_fault_not_a_silent_state() -> None:
    # A normal overlap cannot show a flashing yellow arrow; the old core took it straight
    # to red (no yellow) once its parents were done.
    fault = _fault_after_corrupting("A", _R, _FYA, busy=False)
    assert "overlap A: fya_flash -> red" in fault
    # A flashing-yellow-arrow head has no red clearance of its own; the old core took it
    # from there back to the green arrow (its protected phase green) without a word.
    fault = _fault_after_corrupting("B", _G, _RC, busy=True)
    assert "overlap B: red_clear -> green" in fault
