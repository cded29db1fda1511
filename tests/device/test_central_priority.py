"""`edge run --device DEVICE.toml`: central's emergency priority requests drive the
controller's preemption, and counts (loops and camera zones) reach central. A real
Mosquitto (mTLS, ACL), the virtual IO board on a pty and `edge run` as its own
process, as in the field."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from devtools.vision.synthetic import fixed_boxes_model
from edge.config import load_config
from edge.link import central
from edge.link.central import Collected
from edge.link.mosquitto import Mosquitto
from sim.sumo.site_toml import to_toml
from sim.virtual_board import VirtualBoard

from tests.board.procs import CROSSING, REPO, BoardProcess, poll
from tests.link.harness import (
    SITE,
    Keys,
    collecting,
    device_config,
    make_keys,
    wait_for,
    write_device_toml,
)
from tests.link.schemas import check
from tests.vision.conftest import H, W, live_frames, write_video

DEVICE = "hz-prio-1"


def events_of(col: Collected) -> list[tuple[str, str]]:
    """(name, subject) of every event central has, in sequence order."""
    batches = sorted(col.by_kind["events"].items())
    return [(e["name"], e["subject"]) for _k, b in batches for e in b["events"]]


def test_central_preempts_the_controller_and_gets_counts(broker: Mosquitto, tmp_path: Path) -> None:
    keys: Keys = make_keys(tmp_path / "keys")
    cfg = device_config(broker, tmp_path, DEVICE, keys, counts_interval_ms=2000)
    device_toml = tmp_path / "device.toml"
    write_device_toml(cfg, device_toml)
    board = BoardProcess(tmp_path / "ttyB")
    status = tmp_path / "status.json"
    detector_ids = sorted(d.id for d in load_config(str(SITE)).site.detectors)

    def start(log: Path) -> subprocess.Popen[bytes]:
        with open(log, "w") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "edge.cli", "run", "--config", str(SITE), "--port",
                 board.path, "--device", str(device_toml), "--status-file", str(status),
                 "--status-every", "1"],
                env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def snapshot() -> dict[str, Any]:
        try:
            return dict(json.loads(status.read_text()))
        except (OSError, ValueError):
            return {}

    def in_force() -> list[str] | None:
        return (snapshot().get("link") or {}).get("priority")

    async def command(cmd: dict[str, Any], ttl_s: float = 60) -> list[dict[str, Any]]:
        _cid, raw = central.signed_command(keys.central, DEVICE, cmd, ttl_s=ttl_s)
        async with central.connect(broker.client_config("central")) as client:
            return await central.request(client, DEVICE, "cmd", raw, until=("accepted",
                                         "rejected"), timeout_s=10)  # fmt: skip

    ev_n = {"kind": "ev_priority", "approach": "N", "eta_s": 15, "vehicle_id": "E-17"}

    async def first_run() -> None:
        async with collecting(broker, device=DEVICE) as col:
            await wait_for(
                lambda: col.status.get(DEVICE, {}).get("board") == "RUNNING", 30, "birth RUNNING"
            )
            acks = await command(ev_n)
            assert acks[-1]["status"] == "accepted", acks
            # The north approach's preempt (4) is requested of the core and entered.
            await wait_for(
                lambda: ("preempt_enter", "preempt 4") in events_of(col), 30, "preempt 4 entered"
            )
            assert ("preempt_request", "preempt 4") in events_of(col)
            assert ("ev_priority_request", acks[-1]["ref"]) in events_of(col)
            await asyncio.to_thread(poll, lambda: in_force() == ["ev:E-17"], 5)
            assert in_force() == ["ev:E-17"]
            acks = await command({**ev_n, "cancel": True})
            assert acks[-1]["status"] == "accepted", acks
            await wait_for(
                lambda: ("preempt_exit", "preempt 4") in events_of(col), 30, "preempt 4 ended"
            )
            assert ("preempt_cancel", "preempt 4") in events_of(col)
            await asyncio.to_thread(poll, lambda: in_force() == [], 5)
            # Counts every 2 s (the device file's interval), valid against the schema.
            await wait_for(lambda: len(col.by_kind["counts"]) >= 2, 15, "two counts records")
            for (dev, stream, seq), rec in sorted(col.by_kind["counts"].items()):
                assert dev == DEVICE and (rec["stream"], rec["seq"]) == (stream, seq)
                check("counts", rec)
                assert sorted(d["id"] for d in rec["detectors"]) == detector_ids
                assert 1.5 <= rec["interval_s"] <= 3.0, rec
                assert rec["start"] < rec["end"] <= central.now_ms()
            # In force at a restart: a request whose command expires in 20 s.
            acks = await command({**ev_n, "vehicle_id": "E-18"}, ttl_s=20)
            assert acks[-1]["status"] == "accepted", acks
            await asyncio.to_thread(poll, lambda: in_force() == ["ev:E-18"], 5)

    async def second_run() -> None:
        async with collecting(broker, device=DEVICE) as col:
            await wait_for(lambda: in_force() == ["ev:E-18"], 30, "stored request in force")
            # Never cancelled: it lapses at the command's expiry and the core lets go.
            await wait_for(lambda: ("priority_expired", "ev:E-18") in events_of(col), 30, "expiry")
            await wait_for(
                lambda: ("preempt_cancel", "preempt 4") in events_of(col), 5, "cancel at expiry"
            )

    log1, log2 = tmp_path / "run1.log", tmp_path / "run2.log"
    proc = start(log1)
    try:
        asyncio.run(first_run())
        proc.terminate()
        assert proc.wait(15) == 0, log1.read_text()[-3000:]
        status.unlink()
        proc = start(log2)
        asyncio.run(second_run())
        # The stored request went to the core at start-up, before central said anything.
        assert "central_priority command=Preempt(preempt=4, on=True)" in log2.read_text()
        assert poll(lambda: in_force() == [], 5)
    finally:
        proc.terminate()
        proc.wait(15)
        board.close()


def test_counts_take_camera_zones(broker: Mosquitto, tmp_path: Path) -> None:
    """A camera zone drives detector 2 (a parked car in view, no loop on the board):
    central's counts show it occupied, from the Inputs the controller stepped on."""
    fixed_boxes_model(tmp_path / "m.onnx", [(160, 100, 40, 30, 0, 0.9)])
    write_video(tmp_path / "street.mp4", live_frames(60))
    raw = tomllib.loads(CROSSING.read_text())
    raw["vision"] = {"model": "m.onnx"}
    raw["cameras"] = [
        {
            "id": "c1", "url": "street.mp4", "width": W, "height": H, "fps": 10.0,
            "infer_fps": 5.0,
            "zones": [{"id": "z2", "approach": "N", "lane": 0, "detector": 2,
                       "polygon": [[0.0, 0.0], [320.0, 0.0], [320.0, 192.0], [0.0, 192.0]]}],
        }
    ]  # fmt: skip
    site = tmp_path / "site.toml"
    site.write_text(to_toml(raw))
    keys = make_keys(tmp_path / "keys")
    cfg = device_config(broker, tmp_path, DEVICE, keys, site_path=site, counts_interval_ms=2000)
    device_toml = tmp_path / "device.toml"
    write_device_toml(cfg, device_toml)
    log = tmp_path / "run.log"

    async def central_side() -> dict[str, Any]:
        async with collecting(broker, device=DEVICE) as col:

            def camera_counted() -> dict[str, Any] | None:
                for rec in col.by_kind["counts"].values():
                    occ = {d["id"]: d["occ"] for d in rec["detectors"]}
                    if occ[2] >= 50:
                        return rec
                return None

            await wait_for(lambda: camera_counted() is not None, 40, "detector 2 occupied")
            rec = camera_counted()
            assert rec is not None
            return rec

    with VirtualBoard(tmp_path / "ttyB", record_rx=False) as vb, open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "run", "--config", str(site), "--port", vb.path,
             "--device", str(device_toml)],
            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=out,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            rec = asyncio.run(central_side())
        finally:
            proc.terminate()
            code = proc.wait(20)
    check("counts", rec)
    # the board has no loop input at all: every other detector stays empty
    assert all(d["occ"] == 0 and d["volume"] == 0 for d in rec["detectors"] if d["id"] != 2), rec
    assert code == 0, log.read_text()[-3000:]
    assert "detector=2 source=camera" in log.read_text()
