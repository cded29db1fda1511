"""Golden traces: the control core's outputs, step by step, stay byte-identical.

Every example site (examples/*.toml) and every derived site of the shipped SUMO
scenarios (recorded once under tests/control/golden/sites/) is driven by a
seeded script (tests/control/golden.py: demand, preemption, transit priority,
plan changes into and out of coordination, new timing, mode overrides, operator
commands, a fault and its recovery). Each step's outputs are compared with the
recorded trace (tests/control/golden/RUN.trace.xz, one JSON line per step); a
mismatch names the run, the first differing step and the fields that differ.

The traces are recorded, never rewritten by a normal run. When behaviour is
meant to change, regenerate them and review what moved:

    EDGE_GOLDEN_WRITE=1 pytest -q tests/control/test_golden.py

The derived sites change only when re-derived on purpose (needs SUMO):

    python -m tests.control.golden   # writes tests/control/golden/sites/*.toml
"""

from __future__ import annotations

import os

import pytest

from tests.control import golden

RUNS = golden.runs()


def test_every_site_has_runs() -> None:
    sites = {r.path.stem for r in RUNS}
    assert {"four_leg_protected", "single-C", "tee-C"} <= sites, sites


@pytest.mark.parametrize("run", RUNS, ids=[r.name for r in RUNS])
def test_replays_identically(run: golden.Run) -> None:
    now = list(golden.drive(run))
    if os.environ.get("EDGE_GOLDEN_WRITE") == "1":
        golden.write(run, now)
        return
    if not golden.trace_path(run).is_file():
        pytest.fail(
            f"{run.name}: no recorded trace at {golden.trace_path(run)}; record it with "
            "EDGE_GOLDEN_WRITE=1 pytest -q tests/control/test_golden.py"
        )
    diff = golden.first_difference(golden.read(run), now)
    assert diff is None, f"golden run {run.name}: {diff}"
