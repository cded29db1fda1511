"""The zone editor in Chromium: a technician drags a corner, adds a zone, saves, sees the result.

A real runtime from a real site file (tests/vision/sitefile.py) with its real Sensing
running the camera on a looping clip, served by uvicorn in a thread's own event loop
with the controller stepped in that loop (as tests/web/test_camera_panel.py does).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from edge.assemble import site_extensions
from edge.config import load_config
from edge.runtime import Runtime
from edge.vision.sensing import Sensing
from edge.web.app import create_app
from edge.web.live import Recorder
from playwright.sync_api import Page

from tests.vision.sitefile import write_site
from tests.web.browser import chromium, log_in
from tests.web.inproc import PASSWORD, USER, Stepper, write_credentials
from tests.web.simproc import free_port

CAM = "[data-camera=cam-n]"


@dataclass
class Served:
    url: str
    path: Path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    path = write_site(tmp_path)
    config = load_config(path)
    rt = Runtime(
        config,
        "/nonexistent/edge-web-test-port",
        config_path=str(path),
        extensions=site_extensions(config),
    )
    assert isinstance(rt.sensing, Sensing)
    sensing = rt.sensing
    recorder = Recorder(rt)
    app = create_app(recorder, str(write_credentials(tmp_path)))
    stepper = Stepper(rt, recorder)
    stepper.step(150)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))

    async def main() -> None:
        ticker = asyncio.create_task(stepper.run(0.1))
        try:
            await server.serve()
        finally:
            ticker.cancel()

    sensing.start()
    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield Served(f"http://127.0.0.1:{port}", path)
    finally:
        recorder.closing = True
        server.should_exit = True
        thread.join(10)
        sensing.stop()


def drag(page: Page, selector: str, dx: float, dy: float) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None, selector
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=6)
    page.mouse.up()


def click_frame(page: Page, fx: float, fy: float) -> None:
    """A click on the camera's picture at frame pixel (fx, fy) of its 320x192."""
    box = page.locator(f"{CAM} .frame svg").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + fx * box["width"] / 320, box["y"] + fy * box["height"] / 192)


def save(page: Page) -> None:
    page.fill(f"{CAM} [data-ed-user]", USER)
    page.fill(f"{CAM} [data-ed-password]", PASSWORD)
    page.click(f"{CAM} [data-ed=save]")


def test_a_technician_moves_a_corner_and_saves(served: Served) -> None:
    with chromium() as ctx:
        page = ctx.new_page()
        log_in(page, served.url, USER, PASSWORD)
        page.wait_for_function(
            f"() => document.querySelector('{CAM} img')?.naturalWidth === 320"
        )  # the camera's live picture
        page.click(f"{CAM} [data-edit-zones]")
        page.wait_for_selector(f"{CAM} circle[data-zone-handle='n-stop'][data-k='2']")

        # a new zone of 4 clicks, made a queue zone without its length: refused, with why
        page.click(f"{CAM} [data-ed=add-zone]")
        for fx, fy in ((10, 80), (50, 80), (50, 40), (10, 40)):
            click_frame(page, fx, fy)
        page.wait_for_selector(f"{CAM} polygon[data-zone='cam-n-zone1']")
        page.select_option(f"{CAM} [data-prop=kind]", "queue")
        save(page)
        page.wait_for_selector(f"{CAM} [data-ed-problems] li")
        assert page.inner_text(f"{CAM} [data-ed-problems] li") == (
            "camera cam-n: zone cam-n-zone1: a queue zone needs length_m (its length along "
            "the lane)"
        )
        assert "refused (422)" in page.inner_text(f"{CAM} [data-ed-result]")
        page.click(f"{CAM} [data-ed=delete]")  # the new zone is still selected
        assert page.locator(f"{CAM} polygon[data-zone='cam-n-zone1']").count() == 0

        # corner 3 of n-stop (150, 120) dragged 10 px left, 20 px up in the frame's pixels
        scale = page.locator(f"{CAM} .frame svg").bounding_box()["width"] / 320  # type: ignore[index]
        drag(page, f"{CAM} circle[data-zone-handle='n-stop'][data-k='2']", -10 * scale, -20 * scale)
        save(page)
        page.wait_for_selector(f"{CAM} .edit-note[data-saved]")
        assert "saved to the site file and running: 2 zones, 1 lines" in page.inner_text(
            f"{CAM} .edit-note"
        )
        cfg = load_config(served.path)
        assert cfg.vision is not None
        x, y = cfg.vision.cameras[0].zones[0].polygon[2]
        assert abs(x - 140) <= 1 and abs(y - 100) <= 1, (x, y)
        assert "# measured on site" in served.path.read_text()

        # the live view draws the zone as it now runs
        page.wait_for_function(
            f"() => document.querySelector(\"{CAM} polygon[data-zone='n-stop']\")"
            f"?.getAttribute('points').includes('{x:g},{y:g}')"
        )
        events = page.evaluate("fetch('/api/events?text=zones_saved').then(r => r.json())")
        assert events[-1]["subject"] == USER
