"""What the page shows without a login, and the session a login starts (issue 20).

Before, the event log (with technicians' names), camera frames, the link status and
the OpenAPI document answered anyone who reached the port. Now every read needs a
session; `/api/status` (intersection id, mode, healthy or not) and the page's own
files are all that is open.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from edge.web.logins import Logins
from edge.web.sessions import COOKIE, Sessions

from tests.web.inproc import (
    PASSWORD,
    USER,
    FakeLink,
    FakeSensing,
    Stepper,
    make_runtime,
    write_credentials,
)

READS = [
    "/api/site",
    "/api/state",
    "/api/history",
    "/api/events",
    "/api/events?source=manual",
    "/api/link",
    "/api/cameras",
    "/api/cameras/north/frame.jpg",
    "/api/stream",
    "/api/session",
    "/openapi.json",
]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def page(tmp: Path, sessions: Sessions | None = None) -> httpx.AsyncClient:
    from edge.web.app import create_app
    from edge.web.live import Recorder

    rt = make_runtime()
    rt.sensing = FakeSensing()
    rt.link = FakeLink()
    recorder = Recorder(rt)
    Stepper(rt, recorder).step(150)
    app = create_app(recorder, str(write_credentials(tmp)), Logins(), sessions=sessions)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://page")


@pytest.mark.anyio
async def test_nothing_but_the_status_is_shown_without_a_login(tmp_path: Path) -> None:
    async with page(tmp_path) as c:
        for path in READS:
            r = await c.get(path)
            assert r.status_code == 401, (path, r.status_code)
            assert r.json() == {"error": "log in first (POST /api/login); nothing is shown"}
        status = await c.get("/api/status")
        assert status.status_code == 200
        assert status.json().keys() == {"intersection", "mode", "healthy"}
        assert (await c.get("/docs")).status_code == 404  # no Swagger UI at all
        assert (await c.get("/")).status_code == 200  # the page's files hold no data
        assert (await c.get("/static/app.js")).status_code == 200
        c.cookies.set(COOKIE, "forged-token")
        assert (await c.get("/api/state")).status_code == 401


@pytest.mark.anyio
async def test_a_login_starts_a_session_that_reads_and_a_logout_ends_it(tmp_path: Path) -> None:
    async with page(tmp_path) as c:
        wrong = await c.post("/api/login", json={"user": USER, "password": "not it"})
        assert wrong.status_code == 401 and COOKIE not in wrong.cookies
        r = await c.post("/api/login", json={"user": USER, "password": PASSWORD})
        assert r.status_code == 200 and r.json() == {"user": USER}
        cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith(COOKIE))
        parts = {p.strip() for p in cookie.split(";")}
        assert {"HttpOnly", "SameSite=strict", "Path=/"} <= parts
        assert "Secure" not in parts  # over clear loopback HTTP; Secure over TLS
        for path in READS:
            if path == "/api/stream":
                continue  # never ends; its 401 above is the point
            got = await c.get(path)
            assert got.status_code in (200, 404), (path, got.status_code)  # 404: no frame
        assert (await c.get("/api/session")).json() == {"user": USER}
        log = (await c.get("/api/events", params={"text": "web_login"})).json()
        assert log and log[-1]["subject"] == USER and log[-1]["detail"] == "from 127.0.0.1"
        assert (await c.post("/api/logout")).status_code == 204
        assert (await c.get("/api/state")).status_code == 401


def test_sessions_end_when_idle_or_old_and_are_bounded() -> None:
    now = [0.0]
    s = Sessions(clock=lambda: now[0], idle_s=10, max_age_s=30, max_sessions=2)
    a = s.start("anna")
    now[0] = 9
    assert s.user(a) == "anna"
    now[0] = 18
    assert s.user(a) == "anna"  # each request restarts the idle time
    now[0] = 29
    assert s.user(a) is None  # idle 11 s
    b = s.start("ben")
    for t in (38, 47, 56):
        now[0] = t
        assert s.user(b) == "ben"
    now[0] = 60
    assert s.user(b) is None  # 31 s after its login, however busy
    c, d, e = s.start("c"), s.start("d"), s.start("e")
    assert s.user(c) is None and s.user(d) == "d" and s.user(e) == "e"  # the oldest ended
    assert s.user("x" * 500) is None and s.user(None) is None
    assert all(len(k) == 64 and k not in (d, e) for k in s.live)  # only hashes are kept


@pytest.mark.anyio
async def test_a_live_stream_ends_when_its_session_does(tmp_path: Path) -> None:
    # Review of issue 20: the stream checked the session once, at its start, and then sent
    # state and the event log for as long as the browser kept it open, logged out or not.
    sessions = Sessions()
    async with page(tmp_path, sessions) as c:
        r = await c.post("/api/login", json={"user": USER, "password": PASSWORD})
        token = r.cookies[COOKIE]
        app = c._transport.app  # type: ignore[attr-defined]  # the stream needs a live task
    sent: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/api/stream", "raw_path": b"/api/stream",
        "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
        "server": ("page", 80),
        "headers": [(b"host", b"page"), (b"cookie", f"{COOKIE}={token}".encode())],
    }  # fmt: skip

    asked = [False]

    async def receive() -> dict[str, object]:
        if not asked[0]:
            asked[0] = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the browser stays connected
        return {"type": "http.disconnect"}

    stream = asyncio.create_task(app(scope, receive, sent.put))
    try:
        assert (await asyncio.wait_for(sent.get(), 5))["status"] == 200
        assert b"event: state" in (await asyncio.wait_for(sent.get(), 5))["body"]  # type: ignore[operator]
        sessions.end(token)  # as POST /api/logout does
        while (await asyncio.wait_for(sent.get(), 5)).get("more_body"):
            pass  # frames already on their way; then the stream ends
        await asyncio.wait_for(stream, 5)
    finally:
        stream.cancel()
