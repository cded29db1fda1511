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
from pathlib import Path
from typing import Any

from edge.link import central
from edge.link.mosquitto import Mosquitto

from tests.board.procs import CROSSING, REPO, BoardProcess, poll
from tests.link.harness import collecting, make_keys, wait_for

DEVICE = "hz-run-1"


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

    def start(log: Path) -> subprocess.Popen[bytes]:
        with open(log, "w") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "run", "--config", str(CROSSING), "--port",
                 board.path, "--device", str(device_toml), "--status-file", str(status),
                 "--status-every", "1"],
                env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    log2 = tmp_path / "run2.log"
    proc = start(log)
    try:
        acks = asyncio.run(central_side())
        assert [a["status"] for a in acks] == ["accepted", "applied"], acks
        assert acks[-1]["version"] == 1

        def snapshot() -> dict[str, Any]:
            try:
                return dict(json.loads(status.read_text()))
            except (OSError, ValueError):
                return {}

        assert poll(lambda: (snapshot().get("link") or {}).get("plan_version") == 1, 10)
        st = snapshot()
        assert st["link"]["connected"] and st["session"] == "running"
        # the ATSPM hi-res log is kept beside the device store (edge/atspm/device.py)
        assert st["hires_log"]["bytes"] > 0 and st["hires_log"]["lost"] == 0
        proc.terminate()
        assert proc.wait(15) == 0, log.read_text()[-3000:]
        assert "central_plan_applied version=1 plan=fast" in log.read_text()
        # restarted: the stored bundle is the controller's plan again
        proc = start(log2)
        assert poll(lambda: "central_plan_applied version=1" in log2.read_text(), 20)
        assert "central_plan_restored version=1 plan=fast" in log2.read_text()

        async def board_fault_event() -> None:
            # A field fault on the board (lamp sensing): central gets the board's fault.
            async with collecting(broker, device=DEVICE) as col:
                await wait_for(
                    lambda: col.status.get(DEVICE, {}).get("board") == "RUNNING", 30, "RUNNING"
                )
                board.command("fault 0 dead all")

                def published() -> bool:
                    return any(
                        (e["name"], e["subject"]) == ("board_fault", "RED_FAIL")
                        for b in col.by_kind["events"].values()
                        for e in b["events"]
                    )

                await wait_for(published, 20, "board_fault event")

        asyncio.run(board_fault_event())
        assert poll(lambda: snapshot().get("board_fault") == "RED_FAIL", 10)
        assert snapshot()["board_fault_class"] == "absence of red (red lamp failure)"
    finally:
        proc.terminate()
        proc.wait(15)
        board.close()
