"""Interval sequencing (edge/control/intervals.py): the transition table, and a bad move is a fault.

- Every move TRANSITIONS lists is taken; every other one raises IllegalTransition.
- Random command and demand sequences on every example never make an illegal move
  (one would latch fault flash, naming it).
- A corrupted interval (a green phase turned red behind the sequencer's back) is a
  fault flash that names the illegal move: the old sequencer took red -> red without a
  word, and only the conflict monitor's view of the lamps ("green ended without
  yellow") caught it.
"""

from __future__ import annotations

import itertools

import pytest
from edge.control.controller import Controller
from edge.control.intervals import TRANSITIONS, IllegalTransition, Interval, Intervals
from edge.control.messages import Inputs
from edge.control.states import DONT_WALK, FAULT, RUN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.control.test_properties import SITES, run, scenarios
from tests.hypothesis_profiles import examples


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
    assert DONT_WALK == 0  # intervals.gate_clear's _DONT_WALK


@pytest.mark.parametrize("name", sorted(SITES))
@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_random_commands_never_make_an_illegal_move(name: str, data: st.DataObject) -> None:
    site = SITES[name]
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
