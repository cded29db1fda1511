from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from edge.link.mosquitto import Mosquitto

from tests.link.harness import Keys, make_keys, running_broker


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    with running_broker(Path(tmp_path_factory.mktemp("broker"))) as b:
        yield b
