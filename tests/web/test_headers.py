"""The page's security headers, the Origin check on actions and the user-name rule, in process.

- Every answer (the page, its static files, the API, refusals) carries the CSP and the
  other security headers; the API's answers are never cached; the page's own files need
  nothing the CSP forbids (no inline script, style or handler).
- A state-changing request whose Origin (or Referer) is another site is refused 403
  before anything is checked or done; the page's own origin and a request naming none
  are let through.
- A user name that `edge passwd` would not accept is refused 422, so none can forge
  `key=value` fields in the log, and every logged user name is one escaped word.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from edge import credentials
from edge.web import app as web_app
from edge.web.live import Recorder
from edge.web.pageguard import CSP, HEADERS, cross_origin
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.hypothesis_profiles import examples
from tests.web.inproc import (
    PASSWORD,
    USER,
    Stepper,
    app_for,
    make_runtime,
    signed_in,
    write_credentials,
)

STATIC = Path(web_app.__file__).parent / "static"
NO_CREDENTIAL = "no technician credential"  # the 403 of a device without credentials


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def client_for(creds: Path | None) -> tuple[httpx.AsyncClient, Recorder]:
    app, recorder = app_for(make_runtime(), creds)
    Stepper(recorder.rt, recorder).step(150)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://page", cookies=signed_in(app)
    ), recorder


@pytest.fixture
async def page() -> AsyncIterator[httpx.AsyncClient]:
    client, _ = client_for(None)  # no credentials: an action let through answers 403 at once
    yield client
    await client.aclose()


def assert_secure(r: httpx.Response) -> None:
    for name, value in HEADERS.items():
        assert r.headers.get(name) == value, (r.request.url, name, r.headers)


# -- headers --------------------------------------------------------------------------------


def test_the_policy_allows_only_the_page_itself() -> None:
    directives = dict(d.split(" ", 1) for d in CSP.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    for kind in ("script-src", "style-src", "img-src", "connect-src"):
        assert directives[kind] == "'self'", kind
    assert "unsafe" not in CSP and "*" not in CSP


@pytest.mark.anyio
async def test_every_answer_carries_the_security_headers(page: httpx.AsyncClient) -> None:
    pages = ("/", "/static/app.js", "/static/style.css", "/no/such/page", "/static/nothing.js")
    for path in (*pages, "/api/site", "/api/state", "/api/events", "/openapi.json"):
        assert_secure(await page.get(path))
    refusals = [
        await page.post("/api/control", content=b"{", headers={"Content-Type": "application/json"}),
        await page.post("/api/control", json={"action": "dance"}),  # 422
        await page.post("/api/control", content=b"x" * 10_000),  # BodyLimit's 413
        await page.post("/api/control", json={}, headers={"Origin": "http://evil"}),  # 403
    ]
    assert [r.status_code for r in refusals] == [422, 422, 413, 403]
    for r in refusals:
        assert_secure(r)


@pytest.mark.anyio
async def test_the_api_is_never_cached(page: httpx.AsyncClient) -> None:
    for path in ("/api/site", "/api/state", "/api/history", "/api/events", "/api/link",
                 "/api/cameras", "/openapi.json", "/api/cameras/x/frame.jpg"):  # fmt: skip
        assert (await page.get(path)).headers["cache-control"] == "no-store", path
    assert (await page.post("/api/control", json={})).headers["cache-control"] == "no-store"


def test_the_page_needs_nothing_the_policy_forbids() -> None:
    """No inline script, style attribute, style element or event handler attribute, in
    the HTML or in markup the script writes (the browser would block them)."""
    html = (STATIC / "index.html").read_text()
    js = (STATIC / "app.js").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    assert "<style" not in html
    for text, name in ((html, "index.html"), (js, "app.js")):
        assert re.findall(r"""\son[a-z]+\s*=\s*["']""", text) == [], name
        assert re.findall(r"""\sstyle\s*=\s*["'\\]""", text) == [], name
        assert "javascript:" not in text and "eval(" not in text, name
    assert 'setAttribute("style"' not in js and "new Function" not in js


# -- the Origin check -----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://page.evil.example"},
        {"Origin": "http://page:8080"},  # another port is another origin
        {"Origin": "https://page"},  # and another scheme
        {"Origin": "null"},  # a sandboxed frame, a data: page
        {"Origin": "http://page@evil"},
        {"Origin": ""},
        {"Referer": "http://evil.example/attack.html"},
        {"Referer": "not a url"},
        {"Origin": "http://evil.example", "Referer": "http://page/"},  # Origin decides
    ],
)
async def test_an_action_from_another_site_is_refused(
    page: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    r = await page.post(
        "/api/control", json={"action": "flash", "user": USER, "password": "x"}, headers=headers
    )
    assert r.status_code == 403, r.text
    error = r.json()["error"]
    assert "another site" in error and "this page is http://page" in error


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, a script: no browser page sent it
        {"Origin": "http://page"},
        {"Origin": "HTTP://PAGE:80"},
        {"Referer": "http://page/?x=1"},
    ],
)
async def test_an_action_from_the_page_itself_or_no_page_is_let_through(
    page: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    r = await page.post(
        "/api/control", json={"action": "flash", "user": USER, "password": "x"}, headers=headers
    )
    assert r.status_code == 403 and NO_CREDENTIAL in r.json()["error"], r.text


@pytest.mark.anyio
async def test_a_cross_site_action_with_the_right_password_does_nothing(tmp_path: Path) -> None:
    client, recorder = client_for(write_credentials(tmp_path))
    async with client:
        body = {"action": "all_red", "user": USER, "password": PASSWORD}
        r = await client.post("/api/control", json=body, headers={"Origin": "http://evil"})
        assert r.status_code == 403
    assert not recorder.event_log(source="manual")
    assert not recorder.event_log(source="controller", text="AllRed")


def test_the_origin_is_compared_with_the_port_filled_in() -> None:
    def scope(host: str, origin: str, scheme: str = "http") -> dict[str, object]:
        return {
            "scheme": scheme,
            "headers": [(b"host", host.encode()), (b"origin", origin.encode())],
        }

    assert cross_origin(scope("10.0.0.5:8080", "http://10.0.0.5:8080")) is None
    assert cross_origin(scope("10.0.0.5", "http://10.0.0.5:80")) is None
    assert cross_origin(scope("dev:443", "https://dev", "https")) is None
    assert cross_origin(scope("[::1]:8080", "http://[::1]:8080")) is None
    assert cross_origin(scope("10.0.0.5:8080", "http://10.0.0.5:8081")) is not None
    assert cross_origin(scope("10.0.0.5:8080", "http://10.0.0.5:bad")) is not None
    assert cross_origin(scope("", "http://10.0.0.5")) is not None  # no Host: nothing matches


# -- user names -----------------------------------------------------------------------------

FORGED = ["x action=automatic", "tech at=2020-01-01", "a=b", "tech\nmanual_command", "tech ",
          "Tech", "técnico", "-tech", "9tech", "a" * 33, ""]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("user", FORGED)
async def test_a_user_name_that_could_forge_log_fields_is_refused(
    user: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, recorder = client_for(write_credentials(tmp_path))
    async with client:
        with caplog.at_level(logging.INFO, logger="edge"):
            r = await client.post(
                "/api/control", json={"action": "flash", "user": user, "password": "wrong!"}
            )
    assert r.status_code == 422, r.text
    assert r.json()["error"].startswith("body.user: ") and "not a user name" in r.json()["error"]
    assert "manual_" not in caplog.text and not recorder.event_log(source="manual")


@pytest.mark.anyio
async def test_a_technician_is_logged_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, recorder = client_for(write_credentials(tmp_path))
    ticker = asyncio.create_task(Stepper(recorder.rt, recorder).run())
    try:
        async with client:
            with caplog.at_level(logging.INFO, logger="edge"):
                body = {"action": "automatic", "user": USER, "password": PASSWORD}
                r = await client.post("/api/control", json=body)
    finally:
        ticker.cancel()
    assert r.status_code in (200, 202), r.text
    assert re.search(rf"manual_command user={USER} action=automatic at=\S+$", caplog.text, re.M)


@settings(max_examples=examples(200))
@given(st.text(max_size=40))
@example("x action=automatic")
@example('a"b c=d')
def test_a_logged_value_is_one_word_that_reads_back(value: str) -> None:
    from urllib.parse import unquote

    word = web_app._logged(value)
    assert re.fullmatch(r"[A-Za-z0-9_.~%-]*", word) and unquote(word) == value
    if credentials.USER_RE.fullmatch(value):
        assert word == value  # a real user name reads as itself


@settings(max_examples=examples(100))
@given(st.text(max_size=40))
@example("x action=automatic")
@example("tech")
def test_only_names_edge_passwd_accepts_pass_the_request(user: str) -> None:
    fits = credentials.USER_RE.fullmatch(user) is not None
    try:
        web_app.ControlRequest(action="flash", user=user, password="p")
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == fits


@pytest.mark.anyio
@pytest.mark.parametrize("site", ["cross-site", "same-site"])
async def test_a_browser_saying_another_site_is_refused_whatever_its_origin(
    page: httpx.AsyncClient, site: str
) -> None:
    """Issue 20: the Origin check let through what named no origin; a browser's
    Sec-Fetch-Site other than same-origin is refused for every state-changing request."""
    for path, body in (
        ("/api/control", {"action": "flash", "user": USER, "password": "x"}),
        ("/api/login", {"user": USER, "password": "x"}),
    ):
        for extra in ({}, {"Origin": "http://page"}):
            r = await page.post(path, json=body, headers={"Sec-Fetch-Site": site, **extra})
            assert r.status_code == 403, (path, extra, r.text)
            assert f"Sec-Fetch-Site '{site}'" in r.json()["error"]
    r = await page.post(
        "/api/control",
        json={"action": "flash", "user": USER, "password": "x"},
        headers={"Sec-Fetch-Site": "same-origin", "Origin": "http://page"},
    )
    assert r.status_code == 403 and NO_CREDENTIAL in r.json()["error"]  # let through


@pytest.mark.anyio
async def test_a_refused_request_path_cannot_forge_log_fields_or_lines(
    page: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    # Review of issue 20: the refusals before any login (cross-site 403, 413) logged the
    # request's path as it was decoded: a space and `=` added fields, and a newline at the
    # end of a word ended the journal line, so one request wrote a whole forged event.
    from edge.device.logfmt import KeyValueFormatter

    forged = "/x%20a=b%0A%20level=error%20event=manual_command%20user=admin%20action=flash"
    caplog.set_level(logging.WARNING, "edge.web")
    cross = await page.post(forged, headers={"Origin": "http://evil.example"})
    large = await page.post(forged, content=b"x" * 5000)
    assert (cross.status_code, large.status_code) == (403, 413)
    lines = [KeyValueFormatter(priority_prefix=True).format(r) for r in caplog.records]
    assert len(lines) == 2
    for line in lines:
        assert "\n" not in line and " user=" not in line and " action=" not in line, line
        assert "path=/x%20a%3Db%0A%20level%3Derror" in line, line
