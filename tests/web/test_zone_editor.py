"""The camera zone editor's API in-process: a real site file, the real Sensing, a stepped tick.

The runtime is built from a site file in tmp_path (tests/vision/sitefile.py: the example
intersection and a commented camera on a looping clip, a stand-in model of fixed boxes),
so its Sensing is the real one, and `config_path` is that file, as `edge run --config`
gives it. A save goes through the technician check (a real credentials file), the site
file's own checks, the atomic write and the running camera; the controller is stepped on
the same event loop meanwhile, as the control tick would be, and must not stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge.assemble import site_extensions
from edge.config import load_config
from edge.runtime import Runtime
from edge.vision.sensing import Sensing
from edge.web.app import create_app
from edge.web.live import Recorder
from edge.web.logins import Logins
from edge.web.sessions import COOKIE, Sessions

from tests.vision.sitefile import write_site
from tests.web.conftest import FIGURES
from tests.web.inproc import PASSWORD, USER, Stepper, write_credentials

CAM = "cam-n"
LAYOUT = f"/api/cameras/{CAM}/layout"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Page:
    """The app over a Runtime started from a real site file, its tick stepped on the loop."""

    def __init__(self, tmp: Path, *, site_file: bool = True) -> None:
        self.path = write_site(tmp)
        self.rt = Runtime(
            load_config(self.path),
            "/nonexistent/edge-web-test-port",
            config_path=str(self.path) if site_file else None,
            extensions=site_extensions(load_config(self.path)),
        )
        assert isinstance(self.rt.sensing, Sensing)
        self.sensing: Sensing = self.rt.sensing
        self.recorder = Recorder(self.rt)
        sessions = Sessions()
        self.app = create_app(
            self.recorder, str(write_credentials(tmp)), Logins(), sessions=sessions
        )
        self.reader = sessions.start("tech")  # a technician's session for the reads
        self.stepper = Stepper(self.rt, self.recorder)
        self.stepper.step(200)
        self.steps: list[float] = []  # when each tick ran (monotonic s)
        self.client = self.client_from("127.0.0.1")

    def client_from(self, host: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(host, 40000))
        return httpx.AsyncClient(
            transport=transport, base_url="http://page", cookies={COOKIE: self.reader}
        )

    async def tick(self) -> None:
        while True:
            self.stepper.step()
            self.steps.append(time.monotonic())
            await asyncio.sleep(0.005)

    async def layout(self) -> dict[str, Any]:
        r = await self.client.get(LAYOUT)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def save(self, layout: dict[str, Any], **over: Any) -> httpx.Response:
        return await self.client.put(LAYOUT, json=edit(layout, **over))

    def zone(self, zone_id: str) -> dict[str, Any]:
        cam = next(c for c in self.sensing.cameras() if c["id"] == CAM)
        z: dict[str, Any] = next(z for z in cam["zones"] if z["id"] == zone_id)
        return z


def edit(layout: dict[str, Any], **over: Any) -> dict[str, Any]:
    """The PUT body for a layout as the GET gave it (with changes)."""
    return {"user": USER, "password": PASSWORD, "site_hash": layout["site_hash"],
            "zones": layout["zones"], "lines": layout["lines"], **over}  # fmt: skip


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    p = Page(tmp_path)
    ticker = asyncio.create_task(p.tick())
    yield p
    ticker.cancel()
    await p.client.aclose()


async def wait_for(pred: Callable[[], bool], timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.anyio
async def test_a_good_edit_is_saved_applied_and_the_tick_runs_on(
    page: Page, caplog: pytest.LogCaptureFixture
) -> None:
    page.sensing.start()  # the camera's worker on the clip: zones measured from its frames
    try:
        # the stand-in model's boxes: two ground points in n-stop, one in n-left
        assert await wait_for(lambda: page.zone("n-stop")["count"] == 2), page.zone("n-stop")
        layout = await page.layout()
        assert layout["editable"] and layout["width"] == 320 and layout["height"] == 192
        assert [z["id"] for z in layout["zones"]] == ["n-stop", "n-left"]
        assert layout["detectors"] == [1, 2, 3, 4, 5, 6, 7, 8, 12, 16]
        zones = layout["zones"]
        zones[0]["polygon"] = [[0, 60], [50, 60], [50, 10], [0, 10]]  # away from the vehicles
        zones[1]["detector"] = 8  # n-left now drives detector 8 (its fallback stays recall)
        lines = [*layout["lines"],
                 {"id": "n-mid", "approach": "N", "points": [[40, 150], [300, 150]]}]  # fmt: skip
        ticks = page.rt.ticks
        with caplog.at_level(logging.WARNING, logger="edge.web"):
            t0 = time.monotonic()
            r = await page.save(layout, zones=zones, lines=lines)
            t1 = time.monotonic()
        assert r.status_code == 200, r.text
        saved = r.json()
        assert saved["site_hash"] != layout["site_hash"] and saved["zones"] == zones

        # the tick ran on while the file was checked and written (off the loop)
        assert page.rt.ticks > ticks
        during = [t for t in page.steps if t0 <= t <= t1]
        gaps = [b - a for a, b in zip([t0, *during], [*during, t1], strict=True)]
        assert max(gaps) < 1.0, f"the tick waited {max(gaps):.3f} s during the save"
        FIGURES["zone save"] = (
            f"{(t1 - t0) * 1000:.0f} ms (check, scrypt, write), {len(during)} ticks meanwhile, "
            f"longest gap {max(gaps) * 1000:.0f} ms"
        )

        # the file: what `edge run` loads, the technician's comments kept
        cfg = load_config(page.path)
        assert cfg.vision is not None
        cam = cfg.vision.cameras[0]
        assert cam.zones[0].polygon == ((0, 60), (50, 60), (50, 10), (0, 10))
        assert [(z.id, z.detector) for z in cam.zones] == [("n-stop", 4), ("n-left", 8)]
        assert [ln.id for ln in cam.lines] == ["n-top", "n-mid"]
        text = page.path.read_text()
        assert "# measured on site" in text and "# loop 7 is cut" in text

        # running: the bindings rebuilt at once, the zones measured anew by the worker
        assert {(b.detector, b.zone) for b in page.sensing.binds} == {(4, "n-stop"), (8, "n-left")}
        assert page.rt.config.vision == cfg.vision
        assert await wait_for(lambda: page.zone("n-stop")["count"] == 0), page.zone("n-stop")
        assert page.zone("n-stop")["polygon"] == [[0, 60], [50, 60], [50, 10], [0, 10]]
        assert page.zone("n-left")["detector"] == 8
        assert await wait_for(lambda: page.sensing.sources.get(8) == "camera")
        assert 7 not in page.sensing.sources  # detector 7 is back on its own loop

        # who did it: a WARNING line and the page's event log, as manual commands
        assert f"zones_saved user={USER} camera={CAM} zones=2 lines=2" in caplog.text
        events = (await page.client.get("/api/events", params={"source": "manual"})).json()
        assert events[-1]["name"] == "zones_saved" and events[-1]["subject"] == USER
        assert (await page.layout())["site_hash"] == saved["site_hash"]
    finally:
        page.sensing.stop()


STOP_3 = [[60, 180], [160, 180], [150, 120]]
OUTSIDE = [[60, 180], [160, 180], [330, 120], [80, 120]]
BAD: list[tuple[str, Callable[[list[dict[str, Any]]], None], str]] = [
    ("a point outside the frame", lambda z: z[0].update(polygon=OUTSIDE),
     "camera cam-n: zone n-stop: polygon: point 3 (330, 120) is outside the 320x192 frame"),
    ("a queue zone of 3 corners", lambda z: z[0].update(polygon=STOP_3),
     "camera cam-n: zone n-stop: a queue zone has 4 corners, stop-bar edge first"),
    ("a duplicate id", lambda z: z[1].update(id="n-stop"),
     "camera cam-n: zone n-stop: id is also used by camera cam-n: zone n-stop"),
    ("an unknown detector", lambda z: z[1].update(detector=42),
     "camera cam-n: zone n-left: detector: no detector 42 in the site"),
]  # fmt: skip


@pytest.mark.anyio
async def test_bad_edits_are_refused_with_their_reasons_and_nothing_changes(page: Page) -> None:
    before = page.path.read_bytes()
    binds = page.sensing.binds
    vision = page.sensing.vision
    for what, edit, problem in BAD:
        layout = await page.layout()
        edit(layout["zones"])
        r = await page.save(layout)
        assert r.status_code == 422, (what, r.text)
        body = r.json()
        assert body["problems"] == [problem], what
        assert "nothing was saved" in body["error"] and problem in body["error"]
        assert page.path.read_bytes() == before, what
        assert page.sensing.vision is vision and page.sensing.binds is binds
    refused = (await page.client.get("/api/events", params={"text": "zones_refused"})).json()
    assert len(refused) == len(BAD) and all(e["subject"] == USER for e in refused)


@pytest.mark.anyio
async def test_a_wrong_password_is_refused_and_locks_out_as_manual_control_does(
    page: Page,
) -> None:
    layout = await page.layout()
    before = page.path.read_bytes()
    guesser = page.client_from("10.0.0.9")
    for k in range(5):
        r = await guesser.put(LAYOUT, json=edit(layout, password=f"guess {k}"))
        assert r.status_code == 401, r.text
    assert "locked out for 60 s" in r.json()["error"]
    r = await guesser.put(LAYOUT, json=edit(layout))
    assert r.status_code == 429 and r.headers["Retry-After"] == "60"
    control = await guesser.post(
        "/api/control", json={"action": "flash", "user": USER, "password": PASSWORD}
    )
    assert control.status_code == 429  # one lockout for every technician action
    assert page.path.read_bytes() == before
    refused = (await page.client.get("/api/events", params={"text": "manual_refused"})).json()
    assert len(refused) == 5 and "save_zones camera=cam-n from 10.0.0.9" in refused[0]["detail"]
    assert (await page.save(layout)).status_code == 200  # another address is not locked out
    await guesser.aclose()


@pytest.mark.anyio
async def test_a_stale_hash_or_a_read_only_file_is_refused(page: Page) -> None:
    layout = await page.layout()
    with page.path.open("a") as f:
        f.write("# a note added by hand\n")
    changed = page.path.read_bytes()
    r = await page.save(layout)
    assert r.status_code == 409 and "has changed on disk since this layout was loaded" in r.text
    assert page.path.read_bytes() == changed

    layout = await page.layout()
    page.path.chmod(0o444)
    r = await page.save(layout)
    assert r.status_code == 409 and "is read-only (mode 0444)" in r.json()["error"]
    assert page.path.read_bytes() == changed
    page.path.chmod(0o644)
    assert (await page.save(layout)).status_code == 200


@pytest.mark.anyio
async def test_without_a_site_file_there_is_nothing_to_save_to(tmp_path: Path) -> None:
    p = Page(tmp_path, site_file=False)
    layout = await p.layout()
    assert not layout["editable"] and layout["site_hash"] is None
    assert "not a site file" in layout["why"]
    r = await p.save(layout, site_hash="0" * 64)
    assert r.status_code == 409 and "nothing to save to" in r.json()["error"]
    assert (await p.client.get("/api/cameras/cam-x/layout")).status_code == 404
    await p.client.aclose()


@pytest.mark.anyio
async def test_the_edit_has_its_own_body_limit_and_the_origin_check(page: Page) -> None:
    layout = await page.layout()
    # 40 zones of 32 corners: over the 4 kB of a manual action, within the editor's 64 kB
    many = [{"id": f"z{k}", "approach": "N", "lane": 0,
             "polygon": [[1.5 + k, 1.5 + j] for j in range(32)]} for k in range(40)]  # fmt: skip
    r = await page.save(layout, zones=many)
    assert r.status_code == 422 and len(r.request.content) > 16000  # the checks, not 413
    assert "camera cam-n: zone z0: polygon:" in r.json()["problems"][0]
    huge = [{**many[0], "id": f"y{k}"} for k in range(200)]
    r = await page.save(layout, zones=huge)
    assert r.status_code == 413 and "over the limit of 65536 bytes" in r.json()["error"]
    r = await page.client.put(LAYOUT, json=edit(layout), headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "another site" in r.json()["error"]
    malformed = await page.save(layout, zones=[{"id": "z", "polygon": "all of it"}])
    assert malformed.status_code == 422 and "body.zones.0" in malformed.json()["error"]
