"""The layer guard (tests/layers.py): a pure-layer test cannot start a process or use a socket."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from tests import layers


def _patched() -> tuple[object, ...]:
    return (vars(subprocess.Popen)["_execute_child"], os.fork, os.openpty, socket.socket.connect)


def test_the_guard_refuses_processes_ptys_and_sockets_and_puts_everything_back() -> None:
    before = _patched()
    found: list[str] = []
    with layers.guard("tests/x.py::test_y", found):
        calls = [
            lambda: subprocess.run(["true"], check=False),
            lambda: os.system("true"),
            lambda: os.posix_spawn("/bin/true", ["true"], dict(os.environ)),
            os.openpty,
        ]
        for call in calls:
            with pytest.raises(layers.LayerViolation, match=r"tests/x.py::test_y is in the pure"):
                call()
        with socket.socket() as s, pytest.raises(layers.LayerViolation):
            s.bind(("127.0.0.1", 0))
        with socket.socket() as s, pytest.raises(layers.LayerViolation):
            s.connect(("127.0.0.1", 9))
        assert os.fork is not before[1]  # refused, not called: a fork here would run on
    assert len(found) == len(calls) + 2
    assert all("SLOW_LAYERS in tests/layers.py" in f for f in found)
    assert _patched() == before


def test_a_pure_test_that_swallows_the_refusal_still_fails(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        "[pytest]\nmarkers =\n" + "".join(f"    {m}: x\n" for m in ("pure", *layers.LAYERS))
    )
    pytester.makeconftest('pytest_plugins = ["tests.layers"]\n')
    pytester.makepyfile(
        test_hidden="""
        import subprocess

        def test_hides_a_process():
            try:
                subprocess.run(["true"])
            except Exception:
                pass
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*test_hides_a_process is in the pure test layer*Popen*"])


def test_the_table_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    declared = {"pure", *layers.LAYERS}
    assert layers.check_table(declared) == []
    monkeypatch.setitem(layers.SLOW_LAYERS, "tests/gone.py", (frozenset({"sumo"}), "SUMO"))
    monkeypatch.setitem(layers.SLOW_LAYERS, "tests/sim/", (frozenset({"bus"}), " "))
    assert layers.check_table(declared - {"cli"}) == [
        "tests/sim/: layers ['bus']: expected some of " + str(list(layers.LAYERS)),
        "tests/sim/: no reason given",
        "tests/gone.py: no such file",
        "marker 'cli' is not declared in pyproject.toml",
    ]


def test_the_most_specific_entry_wins() -> None:
    whole = layers._entry("tests/sim/test_derive.py::test_one_way_street")
    one = layers._entry("tests/sim/test_realtime.py::test_x[a]")
    assert whole is not None and whole[0] == {"sumo"}
    assert one is not None and one[0] == {"sumo", "cli", "board"}
    assert layers._entry("tests/control/test_commands.py::test_x") is None
    assert layers._entry("tests/test_config.py::test_edge_check_prints_every_problem_and_fails")
    assert layers._entry("tests/test_config.py::test_edge_check_prints_every_problem") is None
