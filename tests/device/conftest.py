"""Fixtures for the device tests that talk to central."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from edge.link.mosquitto import Mosquitto

from tests.link.harness import running_broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with running_broker(tmp_path / "broker") as b:
        yield b
