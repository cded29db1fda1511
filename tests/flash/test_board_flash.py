"""Flashing the IO board with the real `mpremote` against the virtual board's USB REPL
(sim/raw_repl.py: raw REPL over a pty, the code run by real MicroPython)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from devtools.board_flash import FlashError, flash, wanted_files
from sim.raw_repl import RawRepl
from sim.virtual_board import VirtualBoard

from tests.board.procs import CROSSING, REPO

MPREMOTE = str(Path(sys.executable).with_name("mpremote"))


@pytest.fixture
def board(tmp_path: Path) -> Iterator[tuple[VirtualBoard, RawRepl, Path]]:
    vb = VirtualBoard(tmp_path / "ttyB").start()
    flash_dir = tmp_path / "flash"
    repl = RawRepl(flash_dir, tmp_path / "ttyREPL", on_reset=vb.reset).start()
    try:
        yield vb, repl, flash_dir
    finally:
        repl.stop()
        vb.stop()


def board_files(flash_dir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(flash_dir)): p.read_bytes() for p in flash_dir.rglob("*") if p.is_file()
    }


def test_flash_copies_resets_and_reads_back(board: tuple[VirtualBoard, RawRepl, Path]) -> None:
    vb, repl, flash_dir = board
    assert flash(repl.path, "hz-1", CROSSING) == 7
    files = board_files(flash_dir)
    assert files == wanted_files("hz-1", CROSSING)
    for name in ("__init__.py", "codec.py", "board_safety.py", "monitor.py", "board.py"):
        assert files[f"hw/{name}"] == (REPO / "hw" / name).read_bytes()  # byte for byte
    # the firmware's cp chain outgrows one guest heap (gc off): went on in a fresh one
    assert repl.fresh_interpreters >= 1
    assert vb.resets == 1  # machine.reset() reset the board
    assert repl.resets >= 3  # every mpremote connection soft-resets first
    assert any(code.startswith("w(b") for code in repl.executed)  # 256-byte chunks
    # the version came from the flashed hw/board.py, run by MicroPython
    assert any("import hw.board" in code for code in repl.executed)

    assert flash(repl.path, "hz-1", CROSSING) == 0  # up to date: nothing written
    assert vb.resets == 1

    (flash_dir / "hw/codec.py").write_bytes(b"# corrupted\n")
    assert flash(repl.path, "hz-1", CROSSING) == 1  # only what differs
    assert (flash_dir / "hw/codec.py").read_bytes() == (REPO / "hw/codec.py").read_bytes()


def test_mpremote_falls_back_when_raw_paste_is_refused(tmp_path: Path) -> None:
    with RawRepl(tmp_path / "flash", tmp_path / "ttyR", raw_paste=False) as repl:
        done = subprocess.run(
            [MPREMOTE, "connect", repl.path, "exec", "import sys; print(sys.implementation.name)"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "micropython"  # run by the real MicroPython


def test_dry_run_writes_nothing(board: tuple[VirtualBoard, RawRepl, Path]) -> None:
    vb, repl, flash_dir = board
    assert flash(repl.path, "hz-1", CROSSING, dry_run=True) == 7
    assert board_files(flash_dir) == {}
    assert vb.resets == 0


def test_a_board_that_does_not_answer_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FlashError, match=r"mpremote exec on .* failed"):
        flash(str(tmp_path / "ttyNONE"), "hz-1", CROSSING)
