"""The `j2735` extension beside the central link, against Mosquitto: the device's frames
arrive on edge/v1/<device>/j2735 (QoS 0, binary), each a MessageFrame pycrate decodes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge.j2735.device import J2735, J2735Config
from edge.link import central, topics
from edge.link.device import DeviceRuntime
from edge.link.mosquitto import Mosquitto

from tests.j2735.decode import decode
from tests.link.harness import Keys, central_config, device_config, wait_for


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_frames_are_published_on_the_j2735_topic(
    broker: Mosquitto, keys: Keys, tmp_path: Path
) -> None:
    cfg = device_config(broker, tmp_path, "dev-j2735", keys)
    got: list[bytes] = []
    async with central.connect(central_config(broker)) as client:
        await client.subscribe(topics.topic("dev-j2735", "j2735"), qos=0)

        async def listen() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                got.append(message.payload)

        listener = asyncio.create_task(listen())
        rt = DeviceRuntime(cfg)
        ext = rt.runtime.add(J2735(J2735Config(rsu=None, mqtt=True), None))
        task = asyncio.create_task(rt.run())
        try:
            await wait_for(lambda: len(got) >= 20 or task.done(), 15, "20 frames on j2735")
        finally:
            rt.stopping = True
            assert await asyncio.wait_for(task, 15) == 0, rt.runtime.reason
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
    ids = [decode(f)[0] for f in got]
    assert set(ids) == {19}  # SPaT only: this site has no [map]
    assert ext.status_fields()["j2735"]["sent_mqtt"] >= 20


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    from tests.link.harness import make_keys

    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    from tests.link.harness import running_broker

    with running_broker(Path(tmp_path_factory.mktemp("broker"))) as b:
        yield b
