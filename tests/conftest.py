"""Session-wide reporting."""

from __future__ import annotations

import sys

import pytest

from tests import hypothesis_profiles

hypothesis_profiles.load()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    props = sys.modules.get("tests.control.test_properties")
    if props is not None and props.STEPS_RUN[0]:
        steps = props.STEPS_RUN[0]
        terminalreporter.write_line(
            f"control core: {steps:,} controller steps checked by properties"
        )
