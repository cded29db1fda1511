"""The page's JSON API in-process: state, history, log, cameras, link, manual control."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from edge.config import load_site
from edge.web.layout import layout_of

from tests.web.inproc import (
    EXAMPLE,
    PASSWORD,
    USER,
    FakeLink,
    FakeSensing,
    Stepper,
    app_for,
    make_runtime,
    signed_in,
    write_credentials,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Harness:
    def __init__(self, creds: Path | None) -> None:
        self.rt = make_runtime()
        self.app, self.recorder = app_for(self.rt, creds)
        self.stepper = Stepper(self.rt, self.recorder)
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://page",
            cookies=signed_in(self.app),
        )

    async def control(self, **body: Any) -> httpx.Response:
        return await self.client.post("/api/control", json=body)


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[Harness]:
    harness = Harness(write_credentials(tmp_path))
    harness.stepper.step(200)  # through start-up flash and all red into run
    ticker = asyncio.create_task(harness.stepper.run())
    yield harness
    ticker.cancel()
    await harness.client.aclose()


def test_layout_of_every_example() -> None:
    for path in sorted((ROOT / "examples").glob("*.toml")):
        site = load_site(path)
        lay = layout_of(site)
        served = {lane.movement for arm in lay.arms for lane in arm.lanes if lane.head is not None}
        wanted = {m.name for p in site.phases for m in (*p.movements, *p.permissive)}
        assert wanted <= served, path.name
        assert {p.id for r in lay.rings for p in r.phases} == {p.id for p in site.phases}
        crossings = {a.id: a.crosswalk_phase for a in lay.arms if a.crosswalk_phase}
        assert crossings == {p.ped_crossing: p.id for p in site.phases if p.ped_crossing}


def test_layout_overlap_heads_win_over_phases() -> None:
    lay = layout_of(load_site(ROOT / "examples" / "t_junction.toml"))
    heads = {lane.movement: lane.head for arm in lay.arms for lane in arm.lanes}
    site = load_site(ROOT / "examples" / "t_junction.toml")
    for ov in site.overlaps:
        for m in ov.movements:
            head = heads[m.name]
            assert head is not None and (head.kind, head.id) == ("overlap", ov.id)


@pytest.mark.anyio
async def test_state_follows_the_controller(h: Harness) -> None:
    st = (await h.client.get("/api/state")).json()
    assert st["mode"] == "run"
    assert [p["id"] for p in st["phases"]] == [p.id for p in h.rt.site.phases]
    assert st["board"]["session"] == "closed" and st["board"]["lamps"] is None
    # No board fault yet: no class, no channels, no record (issue 19's fields).
    assert (st["board"]["fault_class"], st["board"]["fault_channels"]) == (None, [])
    assert st["board"]["fault_record"] is None
    assert st["link"] == "not_configured" and st["cameras"] == "not_configured"
    seen: set[str] = set()
    intervals: set[str] = set()
    for _ in range(300):
        st = (await h.client.get("/api/state")).json()
        seen |= {f"{p['id']}:{p['lamp']}" for p in st["phases"]}
        intervals |= {p["timer"]["interval"] for p in st["phases"] if p["lamp"] == "green"}
        await asyncio.sleep(0.005)
    assert intervals and intervals <= {"min_green", "passage", "max", "rest", "walk", "ped_clear"}
    assert any(s.endswith(":yellow") for s in seen) and len(seen) > len(st["phases"])


@pytest.mark.anyio
async def test_history_and_event_log_filters(h: Harness) -> None:
    await asyncio.sleep(0.5)
    hist = (await h.client.get("/api/history")).json()
    assert sum(m["served_calls"] for m in hist["minutes"]) > 0  # min recalls call and serve
    events = (await h.client.get("/api/events", params={"source": "controller"})).json()
    assert events and all(e["source"] == "controller" for e in events)
    greens = (await h.client.get("/api/events", params={"text": "phase_green"})).json()
    assert greens and all("phase_green" in e["name"] for e in greens)
    after = greens[-1]["seq"]
    later = (await h.client.get("/api/events", params={"after": after})).json()
    assert all(e["seq"] > after for e in later)
    bad = await h.client.get("/api/events", params={"source": "nobody"})
    assert bad.status_code == 422 and "source" in bad.json()["error"]


@pytest.mark.anyio
async def test_cameras_and_link_from_their_views(h: Harness) -> None:
    r = (await h.client.get("/api/cameras")).json()
    assert r == {"configured": False, "cameras": []}
    assert (await h.client.get("/api/cameras/north/frame.jpg")).status_code == 404
    assert (await h.client.get("/api/link")).json() == {"configured": False, "status": None}
    h.rt.sensing = FakeSensing()
    h.rt.link = FakeLink()
    cams = (await h.client.get("/api/cameras")).json()
    assert [c["health"] for c in cams["cameras"]] == ["ok", "frozen"]
    frame = await h.client.get("/api/cameras/north/frame.jpg")
    assert frame.status_code == 200 and frame.headers["content-type"] == "image/jpeg"
    assert frame.content.startswith(b"\xff\xd8")
    none_yet = await h.client.get("/api/cameras/south/frame.jpg")
    assert none_yet.status_code == 404 and "no frame yet" in none_yet.json()["error"]
    unknown = await h.client.get("/api/cameras/west/frame.jpg")
    assert unknown.status_code == 404 and "no camera 'west'" in unknown.json()["error"]
    st = (await h.client.get("/api/state")).json()
    assert st["cameras"] == "degraded" and st["link"] == "connected"
    assert (await h.client.get("/api/link")).json()["status"]["plan_version"] == 7


@pytest.mark.anyio
async def test_all_red_by_a_technician_goes_through_the_controller(h: Harness) -> None:
    r = await h.control(action="all_red", user=USER, password=PASSWORD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["result"] == "applied" and body["user"] == USER and body["at"].endswith("+00:00")
    manual = (await h.client.get("/api/events", params={"source": "manual"})).json()
    assert manual[-1]["name"] == "manual_command" and manual[-1]["subject"] == USER
    for _ in range(400):  # clearances run in full (the core's property tests back that)
        st = (await h.client.get("/api/state")).json()
        if st["mode"] == "all_red":
            break
        await asyncio.sleep(0.01)
    assert st["mode"] == "all_red"
    assert all(p["lamp"] == "red" for p in st["phases"])
    r = await h.control(action="automatic", user=USER, password=PASSWORD)
    assert r.status_code == 200 and r.json()["result"] == "applied"


@pytest.mark.anyio
async def test_hold_and_call(h: Harness) -> None:
    r = await h.control(action="hold", phase=2, user=USER, password=PASSWORD)
    assert r.status_code == 200, r.text
    await asyncio.sleep(0.05)
    st = (await h.client.get("/api/state")).json()
    assert next(p for p in st["phases"] if p["id"] == 2)["hold"]
    r = await h.control(action="call", phase=4, ped=True, user=USER, password=PASSWORD)
    assert r.status_code == 200, r.text


@pytest.mark.anyio
async def test_wrong_credential_is_refused_and_logged(h: Harness) -> None:
    r = await h.control(action="flash", user=USER, password="not the password")
    assert r.status_code == 401 and "wrong user or password" in r.json()["error"]
    r = await h.control(action="flash", user="nobody", password=PASSWORD)
    assert r.status_code == 401
    await asyncio.sleep(0.3)
    st = (await h.client.get("/api/state")).json()
    assert st["mode"] == "run"
    refused = (await h.client.get("/api/events", params={"text": "manual_refused"})).json()
    assert len(refused) == 2


@pytest.mark.anyio
async def test_no_credentials_file_means_no_manual_control(tmp_path: Path) -> None:
    for creds in (None, tmp_path / "missing.json"):
        harness = Harness(creds)
        r = await harness.control(action="all_red", user=USER, password=PASSWORD)
        assert r.status_code == 403
        assert "no technician credential is set" in r.json()["error"]
        await harness.client.aclose()


MALFORMED: list[tuple[Any, str]] = [
    ({"action": "all_red", "user": USER}, "body.password: Field required"),
    ({"action": "reboot", "user": USER, "password": PASSWORD}, "body.action"),
    ({"action": "hold", "phase": 0, "user": USER, "password": PASSWORD}, "body.phase"),
    ({"action": "hold", "phase": "two", "user": USER, "password": PASSWORD}, "body.phase"),
    ({"action": "flash", "user": USER, "password": PASSWORD, "force": True}, "body.force"),
    ([1, 2], "body"),
    ("not json", "body"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("body", "where"), MALFORMED)
async def test_malformed_requests_get_a_422_naming_the_field(
    h: Harness, body: Any, where: str
) -> None:
    if isinstance(body, str):
        r = await h.client.post(
            "/api/control", content=body, headers={"content-type": "application/json"}
        )
    else:
        r = await h.client.post("/api/control", json=body)
    assert r.status_code == 422
    assert where in r.json()["error"]


@pytest.mark.anyio
async def test_a_body_that_is_not_json_gets_a_400_with_an_error(h: Harness) -> None:
    r = await h.client.post(
        "/api/control", content=b"\t)>\xff~", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and "error parsing the body" in r.json()["error"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": "hold"}, "hold needs a phase (one of [1, 2, 3, 4, 5, 6, 7, 8])"),
        ({"action": "call", "phase": 9}, "phase 9 is not on this site"),
        ({"action": "call", "phase": 1, "ped": True}, "phase 1 has no pedestrian signal"),
        ({"action": "all_red", "phase": 2}, "all_red takes no phase"),
    ],
)
async def test_requests_that_do_not_fit_the_site(
    h: Harness, body: dict[str, Any], message: str
) -> None:
    r = await h.control(**body, user=USER, password=PASSWORD)
    assert r.status_code == 422 and message in r.json()["error"], r.text
    st = (await h.client.get("/api/state")).json()
    assert not any(p["hold"] for p in st["phases"])


@pytest.mark.anyio
async def test_the_stream_sends_state_and_log(h: Harness) -> None:
    # The ASGI transport buffers a streaming body, so read the stream from a live app task.
    events: list[str] = []

    async def read() -> None:
        async with h.client.stream("GET", "/api/stream") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
                if events.count("state") >= 5:
                    return

    h.recorder.closing = False
    task = asyncio.create_task(read())
    await asyncio.sleep(1.0)
    h.recorder.closing = True  # ends the generator, so a buffering transport returns
    await asyncio.wait_for(task, 5)
    assert events.count("state") >= 5 and "log" in events


def test_example_is_the_one_the_tests_assume() -> None:
    site = load_site(EXAMPLE)
    assert [p.id for p in site.phases] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert site.phase(1).ped_crossing is None and site.phase(4).ped_crossing is not None


def test_a_failing_recorder_never_stops_the_control_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from edge.tickhooks import MAX_FAILURES, Tick
    from edge.web.server import attach_web

    rt = make_runtime()
    attach_web(rt, 0, host="127.0.0.1")
    page = rt.extensions["web"]
    hook = rt.hook_for(page)  # as its task's start adds it: the recorder's own thread
    assert hook.fn == page.on_tick
    calls: list[int] = []

    def broken(tick: Tick) -> None:
        calls.append(1)
        raise ZeroDivisionError("a bug in the page's bookkeeping")

    hook.fn = broken
    for _ in range(MAX_FAILURES + 3):
        hook.put(rt.tick_snapshot())
        hook.take_one(block=False)
    assert hook.disabled and len(calls) == MAX_FAILURES  # logged, then left alone
    assert "tick_hook_failed hook=web" in caplog.text
    assert "tick_hook_disabled hook=web" in caplog.text

    async def serve_briefly() -> None:
        task = asyncio.create_task(rt.extensions["web"].run())
        await asyncio.sleep(0.3)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(serve_briefly())


@pytest.mark.anyio
async def test_state_shows_the_agency_interfaces_the_device_runs(h: Harness) -> None:
    from edge.j2735.device import J2735, J2735Config

    assert (await h.client.get("/api/state")).json()["interfaces"] == {}
    ext = h.rt.add(J2735(J2735Config(None, mqtt=False), None))
    ext.udp_errors = 2
    for _ in range(100):  # the state is rebuilt at the next tick
        st = (await h.client.get("/api/state")).json()
        if st["interfaces"]:
            break
        await asyncio.sleep(0.01)
    assert list(st["interfaces"]) == ["j2735"] and "2 send errors" in st["interfaces"]["j2735"]
