"""Fixtures for the SUMO tests: real SUMO, short episodes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sim.sumo import scenarios


@pytest.fixture(scope="session")
def hangzhou_dir() -> Path:
    """The Hangzhou data beside the repository.

    The data may not be redistributed, so it is not in the repository: it sits in
    ../shared beside the checkout, as it does in CI. A developer's checkout
    without it skips these tests; in CI (CI set) a missing copy is a failure.
    """
    path = scenarios.data_dir() / "hangzhou"
    if not path.is_dir():
        if os.environ.get("CI"):
            pytest.fail(
                f"Hangzhou data not found at {path}: CI must have ../shared beside the clone"
            )
        pytest.skip(f"Hangzhou data not found at {path} (it lives in ../shared, outside the repo)")
    return path
