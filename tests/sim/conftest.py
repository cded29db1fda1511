"""Fixtures for the SUMO tests: real SUMO, short episodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim.sumo import scenarios


@pytest.fixture(scope="session")
def hangzhou_dir() -> Path:
    """The Hangzhou data beside the repository (skipped when this checkout has none)."""
    path = scenarios.data_dir() / "hangzhou"
    if not path.is_dir():
        pytest.skip(f"Hangzhou data not found at {path}")
    return path
