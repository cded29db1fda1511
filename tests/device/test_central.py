"""`edge run --device DEVICE.toml` with a broker: the central link runs as the `central`
task against a real Mosquitto (mTLS, ACL): birth status with the runtime's state, SPaT,
events with sequence numbers, and a signed plan accepted then applied by the controller
that drives the (virtual) IO board."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge.link import central
from edge.link.mosquitto import Mosquitto, mosquitto_binary

from tests.board.procs import CROSSING, REPO, BoardProcess, poll
from tests.link.harness import collecting, make_keys, wait_for

DEVICE = "hz-run-1"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    if mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed (scripts/install-mosquitto.sh)")
    with Mosquitto(tmp_path / "broker") as b:
        yield b


def test_edge_run_with_a_broker_runs_the_central_link(broker: Mosquitto, tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    b = broker.client_config(DEVICE)
    device_toml = tmp_path / "device.toml"
    device_toml.write_text(
        f'[device]\nid = "{DEVICE}"\nsite = "{CROSSING}"\nstore = "{tmp_path / "edge.db"}"\n'
        f'trusted_keys = ["{keys.central_pub}"]\n\n[broker]\nhost = "{b.host}"\nport = {b.port}\n'
        f'cafile = "{b.cafile}"\ncertfile = "{b.certfile}"\nkeyfile = "{b.keyfile}"\n'
    )
    board = BoardProcess(tmp_path / "ttyB")
    status = tmp_path / "status.json"
    log = tmp_path / "run.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "run", "--config", str(CROSSING), "--port",
             board.path, "--device", str(device_toml), "--status-file", str(status)],
            env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    plans = dict(tomllib.loads(CROSSING.read_text())["plans"])
    plans["fast"]["defaults"]["max_green_s"] = 5

    async def central_side() -> list[dict[str, object]]:
        async with collecting(broker, device=DEVICE) as col:
            await wait_for(
                lambda: col.status.get(DEVICE, {}).get("board") == "RUNNING", 30, "birth RUNNING"
            )
            await wait_for(lambda: col.spat.get(DEVICE, 0) >= 20, 10, "SPaT")
            bundle = central.signed_bundle(keys.central, DEVICE, 1, plans, "fast")
            async with central.connect(broker.client_config("central")) as client:
                acks = await central.request(
                    client, DEVICE, "plan", bundle, until=("applied", "rejected"), timeout_s=30
                )
            await wait_for(lambda: len(col.by_kind["events"]) >= 2, 10, "events")
            seqs = sorted(col.seqs(DEVICE))
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gaps
            return acks

    try:
        acks = asyncio.run(central_side())
        assert [a["status"] for a in acks] == ["accepted", "applied"], acks
        assert acks[-1]["version"] == 1
        assert poll(lambda: status.exists() and '"connected": true' in status.read_text(), 15)
        st = json.loads(status.read_text())
        assert st["link"]["plan_version"] == 1 and st["session"] == "running"
    finally:
        proc.terminate()
        proc.wait(15)
        board.close()
    text = log.read_text()
    assert "central_plan_applied version=1 plan=fast" in text, text[-3000:]
    assert proc.returncode == 0, text[-3000:]
