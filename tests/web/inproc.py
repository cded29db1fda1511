"""The page's app in-process over a real Runtime whose controller is stepped by the test.

No board is attached (the session stays closed): the controller runs its real
start-up sequence and phases on the test's clock, 100 ms a step, and the page
reads it as it would on a device. Fakes stand in only for the sensing and
central-link views, which are built elsewhere.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edge import credentials
from edge.config import load_config
from edge.runtime import Runtime
from edge.web.app import create_app
from edge.web.live import Recorder
from edge.web.sessions import COOKIE, Sessions

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "four_leg_protected.toml"
USER, PASSWORD = "tech", "correct horse battery"
CHEAP = 2**12  # a cheap hash: these tests are about the page, not the scrypt cost


class FakeSensing:
    """A SensingView with one healthy and one frozen camera and a tiny JPEG."""

    JPEG = bytes.fromhex(
        "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c"
        "0b0b0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e"
        "333432ffc0000b080001000101011100ffc4001f0000010501010101010100000000000000000102030405"
        "060708090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613516107"
        "227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a4344"
        "45464748494a535455565758595a636465666768696a737475767778797a838485868788898a9293949596"
        "9798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3"
        "e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00fbd3ffd9"
    )

    def cameras(self) -> list[dict[str, Any]]:
        zone = {
            "id": "N-T1",
            "polygon": [[0, 0], [1, 0], [1, 1]],
            "presence": True,
            "count": 3,
            "queue_veh": 2,
            "queue_m": 12.5,
            "reliable": True,
        }
        det = {"box": [0, 0, 1, 1], "cls": "car", "score": 0.9}
        return [
            {"id": "north", "health": "ok", "reliable": True, "fps": 10.0, "zones": [zone],
             "detections": [det]},
            {"id": "south", "health": "frozen", "reliable": False, "fps": 0.0, "zones": [],
             "detections": []},
        ]  # fmt: skip

    def camera_jpeg(self, camera_id: str) -> bytes | None:
        return self.JPEG if camera_id == "north" else None


class FakeLink:
    def link_status(self) -> dict[str, Any]:
        return {"connected": True, "broker": "mqtts://broker:8883", "plan_version": 7,
                "spool_depth": 0, "last_error": None}  # fmt: skip


def make_runtime(site: Path = EXAMPLE) -> Runtime:
    return Runtime(load_config(site), "/nonexistent/edge-web-test-port")


def write_credentials(tmp: Path) -> Path:
    path = tmp / "technicians.json"
    credentials.set_user(path, USER, PASSWORD, n=CHEAP)
    return path


class Stepper:
    """Steps the runtime's controller (and the page's recorder) as the control tick would."""

    def __init__(self, rt: Runtime, recorder: Recorder) -> None:
        self.rt = rt
        self.recorder = recorder
        self.now_ms = rt.board.clock_ms()  # the controller was made on this clock

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.now_ms += 100
            self.rt.driver.tick(self.now_ms)
            self.rt.ticks += 1
            self.recorder.on_tick(self.rt.tick_snapshot())

    async def run(self, every_s: float = 0.005) -> None:
        while True:
            self.step()
            await asyncio.sleep(every_s)


def app_for(rt: Runtime, creds: Path | None) -> tuple[Any, Recorder]:
    """The app, with a technician's session started for the tests' reads (`signed_in`)."""
    recorder = Recorder(rt)
    sessions = Sessions()
    app = create_app(recorder, str(creds) if creds else None, sessions=sessions)
    app.state.reader = sessions.start(USER)
    return app, recorder


def signed_in(app: Any) -> dict[str, str]:
    """The cookies of the session `app_for` started: a client with them may read."""
    return {COOKIE: app.state.reader}
