"""The camera and central-link panels in Chromium, from small fake SensingView/LinkView objects.

The real sensing and link land on other branches; the page reads them only
through the runtime's protocols, so fakes of those protocols are enough to see
the panels draw: a healthy camera's frame with its zones and detections, a frozen
camera flagged, the link's status. The app is served by uvicorn in a thread's
own event loop, with the runtime's controller stepped in the same loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from tests.web.browser import chromium, with_session
from tests.web.inproc import FakeLink, FakeSensing, Stepper, app_for, make_runtime, signed_in
from tests.web.simproc import free_port


@pytest.fixture(scope="module")
def url() -> Iterator[tuple[str, dict[str, str]]]:
    rt = make_runtime()
    rt.sensing = FakeSensing()
    rt.link = FakeLink()
    app, recorder = app_for(rt, None)
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

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", signed_in(app)
    finally:
        recorder.closing = True
        server.should_exit = True
        thread.join(10)


def test_camera_and_link_panels(url: tuple[str, dict[str, str]]) -> None:
    base, session = url
    with chromium() as ctx:
        with_session(ctx, base, session)  # no credentials here: a session made by the test
        page = ctx.new_page()
        page.goto(base + "/")
        page.wait_for_selector("[data-camera=north] img")
        page.wait_for_function(
            "() => document.querySelector('[data-camera=north] img').naturalWidth > 0"
        )
        assert page.get_attribute("[data-camera=north] [data-health]", "data-health") == "ok"
        assert page.get_attribute("[data-camera=south] [data-health]", "data-health") == "frozen"
        zone = page.locator("[data-camera=north] polygon[data-zone='N-T1']")
        assert zone.count() == 1
        assert page.locator("[data-camera=north] svg rect").count() == 1  # the detection
        assert "12.5" in page.inner_text("[data-camera=north] table")  # queue in metres
        assert page.inner_text("#camera-state") == "degraded"
        page.wait_for_function("() => document.getElementById('link').textContent.includes('7')")
        assert "mqtts://broker:8883" in page.inner_text("#link")
        assert page.inner_text("#link-state") == "connected"
