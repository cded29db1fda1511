"""Session-wide set-up: the Hypothesis profile, the virtual-board fixture, reporting."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import hypothesis_profiles
from tests.board.procs import BoardProcess

hypothesis_profiles.load()

# The pure layer and the slow layers (markers, and the guard that keeps the pure layer pure).
pytest_plugins = ["tests.layers", "pytester"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    props = sys.modules.get("tests.control.test_properties")
    if props is not None and props.STEPS_RUN[0]:
        steps = props.STEPS_RUN[0]
        terminalreporter.write_line(
            f"control core: {steps:,} controller steps checked by properties"
        )


@pytest.fixture
def board(tmp_path: Path) -> Iterator[BoardProcess]:
    """A virtual IO board in its own process on a pty (a module may define its own)."""
    b = BoardProcess(tmp_path / "ttyBOARD")
    try:
        yield b
    finally:
        b.close()
