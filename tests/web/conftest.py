"""Technician-page tests: figures measured on the way, printed at the end of the run."""

from __future__ import annotations

import pytest

# name -> text; filled by the browser tests (manual all-red latency).
FIGURES: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for name, text in FIGURES.items():
        terminalreporter.write_line(f"technician page: {name}: {text}")
