"""The board driver hands the neighbours' predicted arrivals (edge/link/outflow.py) to the
controller's step, and a failing source never stops the tick."""

from __future__ import annotations

import logging

import pytest
from edge.control.messages import Inputs, Outputs

from hw import codec
from tests.board.fakelink import FakeLink


def started() -> tuple[FakeLink, list[Inputs]]:
    fl = FakeLink()
    fl.connect()
    assert fl.run_until(lambda: fl.state == codec.STATE_RUNNING, 5000)
    seen: list[Inputs] = []
    ctl = fl.driver.controller
    step = ctl.step

    def spy(now: int, inputs: Inputs) -> Outputs:
        seen.append(inputs)
        return step(now, inputs)

    ctl.step = spy  # type: ignore[method-assign]
    return fl, seen


def test_a_set_reaches_the_controllers_step_and_none_leaves_the_inputs_alone() -> None:
    fl, seen = started()
    ctl = fl.driver.controller
    pid = next(p.id for p in ctl.site.phases if p.movements)
    fl.driver.arrivals = lambda now: ((pid, 3000),) if now % 1000 == 0 else None
    fl.step_to(fl.now + 2000)
    sets = [i.arrivals for i in seen if i.arrivals is not None]
    assert sets and set(sets) == {((pid, 3000),)} and len(sets) < len(seen)
    assert ctl.arrivals.due and ctl.arrivals.due[0][0] == ctl.index[pid]


def test_a_failing_source_is_logged_and_dropped_and_the_tick_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fl, seen = started()

    def broken(now: int) -> None:
        raise RuntimeError("a bug")

    fl.driver.arrivals = broken
    fl.step_to(fl.now + 2000)
    assert fl.driver.arrivals is None and fl.state == codec.STATE_RUNNING
    assert len(seen) >= 19 and all(i.arrivals is None for i in seen)
    failed = [r for r in caplog.records if r.getMessage().startswith("arrivals_failed")]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR
