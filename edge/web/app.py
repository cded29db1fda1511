"""The JSON API and the static page (FastAPI; the OpenAPI document is at /openapi.json).

Reading the page's data needs a technician's session (edge/web/sessions.py: a login
sets an HttpOnly, SameSite=Strict cookie); open to anyone who reaches the port are
only `/api/status` (intersection id, mode, healthy or not), the login and the page's
own files (which hold no data).

Every manual action goes to the controller as a command (the same path as a
board input or central's command), so the core's own rules decide when it takes
effect: an all-red or a flash waits for minimum greens, walks and yellow and
red clearances. Each one needs a technician credential from the credentials
file (`edge passwd`; no file, no manual control), and is logged with who and when.

The app runs in the runtime's event loop, beside the control tick, so nothing a
client sends may cost that loop much: request bodies are capped before they are
parsed (edge/web/bodylimit.py: 413 over 4 kB, read in a bounded way); the
credentials file is read and the scrypt check run in a thread of its own (CHECK_THREADS;
hashlib's scrypt releases the GIL), waiting checks taken known browsers first, then
fewest-wrong-guesses first; and the checks are limited per client address (one at a
time) and per account, locked out after repeated wrong ones (edge/web/logins.py), with
no lock shared between addresses or accounts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from edge import credentials
from edge.atspm.web import add_routes as add_atspm_routes
from edge.control.messages import AllRed, Automatic, Flash, Hold, PlaceCall
from edge.vision.config import LineCfg, ZoneCfg
from edge.vision.siteedit import LayoutConflict, LayoutProblems, read_hash, save_layout
from edge.web.bodylimit import MAX_BODY_BYTES, BodyLimit
from edge.web.camlayout import CameraLayout, LayoutEditor, layout_of_camera
from edge.web.layout import Layout, layout_of
from edge.web.live import History, LoggedEvent, Recorder, State
from edge.web.logins import Attempt, CheckQueue, Logins
from edge.web.pageguard import PageGuard
from edge.web.sessions import COOKIE, Sessions

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
STREAM_EVERY_S = 0.1  # 10 snapshots a second
MAX_STREAMS = 8  # browsers at once; more would cost the Pi's control tick
COMMAND_WAIT_S = 1.0  # how long a manual action waits for the controller's answer
WRONG_CREDENTIAL_DELAY_S = 0.5  # per client: its next guess waits (logins: one at a time)
# scrypt checks at once: each takes 128 MiB (N=2^17); one keeps the runtime well under
# the unit's MemoryHigh, and a known browser's check goes before every waiting one.
CHECK_THREADS = 1
KNOWN_COOKIE = "edge_known"  # the known-browser cookie (edge/web/logins.py)
USER_PATTERN = f"^{credentials.USER_RE.pattern}$"  # in the OpenAPI document
MAX_ZONES = 64  # zones (and lines) per camera in one edit
# An edit of 64 zones of 32 corners is ~40 kB of JSON; parsed on the loop in ~1 ms.
LAYOUT_BODY_BYTES = 65536
NO_SITE_FILE = (
    "this runtime runs a derived site (a simulation), not a site file: nothing to save to"
)
LAYOUT_PATH = re.compile(r"^/api/cameras/[^/]+/layout$")


class ControlRequest(BaseModel):
    """A technician's manual action. `phase` is needed by hold and call."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["all_red", "flash", "hold", "call", "automatic"]
    phase: int | None = Field(default=None, ge=1, le=64)
    ped: bool = False
    # only names `edge passwd` accepts: no space or `=` that could forge log fields
    user: str = Field(min_length=1, max_length=32, pattern=USER_PATTERN)
    password: str = Field(min_length=1, max_length=256)

    @field_validator("user", mode="before")
    @classmethod
    def _user_name(cls, value: object) -> object:
        return _user_name(value)


def _user_name(value: object) -> object:
    if isinstance(value, str) and not credentials.USER_RE.fullmatch(value):
        raise ValueError(
            f"{value[:40]!r} is not a user name: 1 to 32 of a-z, 0-9, '_', '.', '-' "
            "(no capitals, spaces or '='), not starting with '.', '-' or a digit"
        )
    return value


class LayoutZone(ZoneCfg):
    """A `[[cameras.zones]]` entry as JSON brings it (JSON's 2.0 is the integer 2)."""

    model_config = ConfigDict(strict=False)


class LayoutLine(LineCfg):
    """A `[[cameras.lines]]` entry as JSON brings it."""

    model_config = ConfigDict(strict=False)


class LayoutEdit(BaseModel):
    """A technician's zones and count lines for one camera, as the site file writes them
    (the `[[cameras.zones]]` and `[[cameras.lines]]` keys), with the site file's hash the
    layout was loaded with."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=32, pattern=USER_PATTERN)
    password: str = Field(min_length=1, max_length=256)
    site_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    zones: list[LayoutZone] = Field(max_length=MAX_ZONES)
    lines: list[LayoutLine] = Field(default=[], max_length=MAX_ZONES)

    @field_validator("user", mode="before")
    @classmethod
    def _user_name(cls, value: object) -> object:
        return _user_name(value)


class Login(BaseModel):
    """A technician's login: a right one starts a session (the `edge_session` cookie)."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=32, pattern=USER_PATTERN)
    password: str = Field(min_length=1, max_length=256)

    @field_validator("user", mode="before")
    @classmethod
    def _user_name(cls, value: object) -> object:
        return _user_name(value)


class SessionInfo(BaseModel):
    user: str


class Status(BaseModel):
    """The open view: what anyone who reaches the port may know."""

    intersection: str
    mode: str
    healthy: bool  # no fault and the IO board's link up


class ControlResult(BaseModel):
    action: str
    user: str
    at: str  # UTC time the command was handed to the controller
    result: Literal["applied", "queued"]
    detail: str


class Problem(BaseModel):
    error: str


class LayoutRefusal(BaseModel):
    """An edit the site checks refuse: `problems` names each zone or line and what is wrong."""

    error: str
    problems: list[str] = []


class LinkInfo(BaseModel):
    configured: bool
    status: dict[str, Any] | None


class CameraList(BaseModel):
    configured: bool
    cameras: list[dict[str, Any]]


def create_app(
    recorder: Recorder,
    credentials_path: str | None,
    logins: Logins | None = None,
    sessions: Sessions | None = None,
) -> FastAPI:
    rt = recorder.rt
    guard = logins if logins is not None else Logins()
    live = sessions if sessions is not None else Sessions()
    checks = CheckQueue(CHECK_THREADS)
    layout = layout_of(rt.site)

    async def technician(request: Request) -> str:
        """Every read's dependency: the session's user, or 401."""
        user = live.user(request.cookies.get(COOKIE))
        if user is None:
            raise HTTPException(401, "log in first (POST /api/login); nothing is shown")
        return user

    signed_in = [Depends(technician)]
    app = FastAPI(
        title="edge technician page",
        version="1",
        description="Live state, history, event log and manual control of one intersection.",
        docs_url=None,  # Swagger UI and ReDoc load from a CDN; the device works offline
        redoc_url=None,
        openapi_url=None,  # served below, behind a session
    )
    app.add_middleware(
        BodyLimit, max_bytes=MAX_BODY_BYTES, larger=((LAYOUT_PATH, LAYOUT_BODY_BYTES),)
    )
    app.add_middleware(PageGuard)  # added last, so outermost: its headers on BodyLimit's refusals
    streams = {"open": 0}

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"error": "; ".join(problems)})

    @app.exception_handler(StarletteHTTPException)  # FastAPI's own (e.g. an unparsable body)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only its first route's
            headers["Allow"] = ", ".join(_methods_of(app, request.url.path))
        return JSONResponse(
            status_code=exc.status_code, content={"error": str(exc.detail)}, headers=headers
        )

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/openapi.json", include_in_schema=False, dependencies=signed_in)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/api/status", response_model=Status)
    async def status() -> Status:
        """Open: the intersection's id, its mode and whether it is healthy; nothing else."""
        st = recorder.state()
        healthy = st.fault is None and st.board.link == "up"
        return Status(intersection=rt.site.id, mode=st.mode, healthy=healthy)

    @app.get("/api/session", response_model=SessionInfo, responses={401: {"model": Problem}})
    async def session(request: Request) -> SessionInfo:
        """Who this browser's session is (401: none; the page shows its login)."""
        return SessionInfo(user=await technician(request))

    @app.post(
        "/api/login",
        response_model=SessionInfo,
        responses={
            400: {"model": Problem, "description": "the body is not JSON"},
            401: {"model": Problem, "description": "wrong user or password"},
            403: {"model": Problem, "description": "no technician credential on this device"},
            429: {"model": Problem, "description": "locked out; Retry-After says when"},
        },
    )
    async def login(req: Login, request: Request) -> JSONResponse:
        """Start a session: its cookie lets this browser read the page (HttpOnly,
        SameSite=Strict, Secure over TLS), and a known-browser cookie lets its next
        logins as this user skip the queue and lockouts that guessers cause."""
        await authorize(request, req.user, req.password, "action=login")
        log.warning("web_login user=%s client=%s", _logged(req.user), _client(request))
        recorder.add("manual", "warning", "web_login", req.user, f"from {_client(request)}")
        secure = request.url.scheme == "https"
        res = JSONResponse(SessionInfo(user=req.user).model_dump())
        res.set_cookie(
            COOKIE, live.start(req.user), httponly=True, secure=secure, samesite="strict"
        )
        res.set_cookie(
            KNOWN_COOKIE, guard.browser_cookie(req.user), max_age=30 * 86400,
            path="/api/", httponly=True, secure=secure, samesite="strict",
        )  # fmt: skip
        return res

    @app.post("/api/logout", status_code=204, response_class=Response)
    async def logout(request: Request) -> Response:
        live.end(request.cookies.get(COOKIE))
        res = Response(status_code=204)
        res.delete_cookie(COOKIE, httponly=True, samesite="strict")
        return res

    add_atspm_routes(app, rt, signed_in)  # GET /v1/asclog/xml/full (edge/atspm/web.py)

    @app.get("/api/site", response_model=Layout, dependencies=signed_in)
    async def site() -> Layout:
        return layout

    @app.get("/api/state", response_model=State, dependencies=signed_in)
    async def state() -> State:
        return recorder.state()

    @app.get("/api/history", response_model=History, dependencies=signed_in)
    async def history() -> History:
        return recorder.history()

    @app.get("/api/events", response_model=list[LoggedEvent], dependencies=signed_in)
    async def events(
        source: Annotated[
            Literal["controller", "manual", "runtime", "board", "link", "sense", "web"] | None,
            Query(),
        ] = None,
        level: Annotated[Literal["debug", "info", "warning", "error"] | None, Query()] = None,
        text: Annotated[str | None, Query(max_length=100)] = None,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=2000)] = 200,
    ) -> list[LoggedEvent]:
        return recorder.event_log(source=source, level=level, text=text, after=after, limit=limit)

    @app.get("/api/link", response_model=LinkInfo, dependencies=signed_in)
    async def link() -> LinkInfo:
        if rt.link is None:
            return LinkInfo(configured=False, status=None)
        return LinkInfo(configured=True, status=rt.link.link_status())

    @app.get("/api/cameras", response_model=CameraList, dependencies=signed_in)
    async def cameras() -> CameraList:
        if rt.sensing is None:
            return CameraList(configured=False, cameras=[])
        return CameraList(configured=True, cameras=rt.sensing.cameras())

    @app.get(
        "/api/cameras/{camera_id}/frame.jpg",
        dependencies=signed_in,
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 404: {"model": Problem}},
    )
    async def camera_frame(camera_id: Annotated[str, Field(max_length=64)]) -> Response:
        if rt.sensing is None:
            raise HTTPException(404, "no cameras are configured on this device")
        if camera_id not in {str(c.get("id")) for c in rt.sensing.cameras()}:
            raise HTTPException(404, f"no camera {camera_id!r}")
        jpeg = rt.sensing.camera_jpeg(camera_id)
        if jpeg is None:
            raise HTTPException(404, f"camera {camera_id!r} has no frame yet")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get(
        "/api/stream",
        dependencies=signed_in,
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "state at 10 Hz, log"},
            503: {"model": Problem},
        },
    )
    async def stream(request: Request) -> StreamingResponse:
        """Server-sent events: `state` (a State) at 10 Hz, `log` (new LoggedEvents); it
        ends when its session does (a logout, idle or too old, ended for a newer one)."""
        token = request.cookies.get(COOKIE)
        if streams["open"] >= MAX_STREAMS:
            raise HTTPException(503, f"at most {MAX_STREAMS} live views at once; close one")

        async def frames() -> AsyncIterator[str]:
            last_tick = -1
            last_seq = max(0, recorder.seq - 50)
            streams["open"] += 1  # counted while the generator runs: its finally uncounts it
            try:
                while not recorder.closing and live.user(token) is not None:
                    if rt.ticks != last_tick:
                        last_tick = rt.ticks
                        yield f"event: state\ndata: {recorder.state_json()}\n\n"
                    if recorder.seq > last_seq:
                        new = recorder.event_log(after=last_seq, limit=200)
                        last_seq = recorder.seq
                        body = ",".join(ev.model_dump_json() for ev in new)
                        yield f"event: log\ndata: [{body}]\n\n"
                    await asyncio.sleep(STREAM_EVERY_S)
            finally:
                streams["open"] -= 1

        return StreamingResponse(
            frames(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def authorize(request: Request, user: str, password: str, action: str) -> None:
        """Every credential check (a login, a technician action): per-address, per-account
        or per-known-browser admission and lockout, the scrypt check in the check
        thread, the wrong-credential delay; raises 429, 403 or 401. `action` is logged
        as the action's fields (`action=...`, already one word each)."""
        addr = _client(request)
        attempt = guard.admit(addr, user, request.cookies.get(KNOWN_COOKIE))
        if not isinstance(attempt, Attempt):
            log.warning(
                "manual_refused user=%s client=%s: %s", _logged(user), addr, attempt.message
            )
            raise HTTPException(
                429, attempt.message, headers={"Retry-After": str(attempt.retry_after_s)}
            )
        try:
            checked = await checks.run(attempt.rank, _check, credentials_path, user, password)
            if checked == "no_users":
                raise HTTPException(
                    403,
                    "manual control is refused: no technician credential is set on this device "
                    "(set one with `edge passwd USER --file FILE` and start with "
                    "--credentials FILE)",
                )
            if checked == "wrong":
                lockout = attempt.failed()
                log.warning(
                    "manual_refused user=%s client=%s %s: wrong credential%s",
                    _logged(user), addr, action, f"; {lockout.message}" if lockout else "",
                )  # fmt: skip
                recorder.add(
                    "manual", "warning", "manual_refused", user,
                    f"{action.removeprefix('action=')} from {addr}: wrong credential",
                )  # fmt: skip
                # This client's next try waits (it is busy until the delay is over).
                await asyncio.sleep(WRONG_CREDENTIAL_DELAY_S)
                if lockout is not None:
                    raise HTTPException(
                        401,
                        f"wrong user or password; nothing was done; {lockout.message}",
                        headers={"Retry-After": str(lockout.retry_after_s)},
                    )
                raise HTTPException(401, "wrong user or password; nothing was done")
            attempt.succeeded()
        finally:
            attempt.release()

    # What every technician action (a credential in the body) can answer besides its own.
    technician_errors: dict[int | str, dict[str, Any]] = {
        400: {"model": Problem, "description": "the body is not JSON"},
        401: {"model": Problem, "description": "wrong user or password"},
        403: {"model": Problem, "description": "no technician credential on this device"},
        408: {"model": Problem, "description": "the body did not arrive in time"},
        429: {
            "model": Problem,
            "description": "locked out after wrong credentials, or a check from this "
            "address is running; Retry-After says when to try again",
        },
    }

    @app.post(
        "/api/control",
        response_model=ControlResult,
        responses={
            202: {"model": ControlResult, "description": "queued, no answer yet"},
            **technician_errors,
            409: {"model": Problem, "description": "the controller refused the command"},
            413: {"model": Problem, "description": f"a body over {MAX_BODY_BYTES} bytes"},
            422: {"model": Problem, "description": "malformed request"},
        },
    )
    async def control(req: ControlRequest, request: Request) -> JSONResponse:
        await authorize(request, req.user, req.password, f"action={req.action}")
        cmd = _command(rt.site, req)
        at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        what = f"{req.action}" + (f" phase {req.phase}" if req.phase else "")
        what += " (ped)" if req.ped and req.action == "call" else ""
        log.warning("manual_command user=%s action=%s at=%s", _logged(req.user), what, at)
        before = recorder.seq
        recorder.add("manual", "warning", "manual_command", req.user, what)
        rt.driver.command(cmd)
        verdict = await _wait_verdict(recorder, before, type(cmd).__name__)
        if verdict is None:
            res = ControlResult(
                action=what, user=req.user, at=at, result="queued",
                detail="handed to the controller; no answer within 1 s",
            )  # fmt: skip
            return JSONResponse(status_code=202, content=res.model_dump())
        if verdict.name == "command_rejected":
            raise HTTPException(409, f"the controller refused {what}: {verdict.detail}")
        res = ControlResult(
            action=what, user=req.user, at=at, result="applied", detail=_effect(req)
        )
        return JSONResponse(status_code=200, content=res.model_dump())

    # -- camera zones and count lines: the technician's layout editor ---------------------
    saving = asyncio.Lock()  # one save at a time: each is checked against the file it replaces

    def editor_of(camera_id: str) -> LayoutEditor:
        sensing = rt.sensing
        if sensing is None:
            raise HTTPException(404, "no cameras are configured on this device")
        if not isinstance(sensing, LayoutEditor):
            raise HTTPException(404, "the cameras of this device cannot be edited from the page")
        if camera_id not in {c.id for c in sensing.vision.cameras}:
            raise HTTPException(404, f"no camera {camera_id[:64]!r}")
        return sensing

    layout_errors: dict[int | str, dict[str, Any]] = {
        404: {"model": Problem, "description": "no such camera, or no cameras"},
    }

    @app.get(
        "/api/cameras/{camera_id}/layout",
        response_model=CameraLayout,
        responses=layout_errors,
        dependencies=signed_in,
    )
    async def camera_layout(camera_id: Annotated[str, Field(max_length=64)]) -> CameraLayout:
        """The camera's zones and count lines as they run, with the site file's hash."""
        editor = editor_of(camera_id)
        path = rt.config_path
        site_hash, why = None, ""
        if path is None:
            why = NO_SITE_FILE
        else:
            try:
                site_hash = await asyncio.to_thread(read_hash, path)  # file I/O off the loop
            except OSError as exc:
                why = f"cannot read the site file {path}: {exc.strerror or exc}"
        return layout_of_camera(editor.vision, camera_id, rt.site, site_hash, why)

    @app.put(
        "/api/cameras/{camera_id}/layout",
        response_model=CameraLayout,
        responses={
            **layout_errors,
            **technician_errors,
            409: {
                "model": Problem,
                "description": "nothing saved: no site file, the file changed on disk since "
                "the layout was loaded, it is read-only, or it differs from what runs",
            },
            413: {"model": Problem, "description": f"a body over {LAYOUT_BODY_BYTES} bytes"},
            422: {
                "model": LayoutRefusal,
                "description": "malformed request, or the site checks refuse the edit "
                "(`problems`: each zone or line and what is wrong); nothing saved",
            },
        },
    )
    async def save_camera_layout(
        camera_id: Annotated[str, Field(max_length=64)], req: LayoutEdit, request: Request
    ) -> CameraLayout | JSONResponse:
        """Save the camera's zones and count lines to the site file and run them, or refuse.

        Checked by the site file's own rules (what `edge check` runs) on the whole edited
        file; written atomically; applied to the camera's processing without a restart."""
        editor = editor_of(camera_id)
        path = rt.config_path
        if path is None:
            raise HTTPException(409, NO_SITE_FILE)
        cam = _logged(camera_id)
        await authorize(request, req.user, req.password, f"action=save_zones camera={cam}")

        def refused(status: int, error: str) -> str:
            log.warning("zones_refused user=%s camera=%s status=%d: %s",
                        _logged(req.user), cam, status, error)  # fmt: skip
            recorder.add("manual", "warning", "zones_refused", req.user,
                         f"camera {camera_id}: {error}")  # fmt: skip
            return error

        async with saving:
            running = replace(rt.config, vision=editor.vision)
            try:
                saved = await asyncio.to_thread(  # file I/O and the checks off the loop
                    save_layout, path, req.site_hash, camera_id, req.zones, req.lines, running
                )
            except LayoutProblems as exc:
                n = len(exc.problems)
                error = refused(
                    422, f"camera {camera_id}: the site checks refuse the edit "
                    f"({n} problem{'s' if n != 1 else ''}); nothing was saved: "
                    + "; ".join(exc.problems),
                )  # fmt: skip
                body = LayoutRefusal(error=error, problems=exc.problems)
                return JSONResponse(status_code=422, content=body.model_dump())
            except LayoutConflict as exc:
                raise HTTPException(409, refused(409, str(exc))) from None
            # On the loop, between two ticks: the controller sees the old bindings or the new.
            editor.apply_layout(saved.camera)
            rt.config = saved.config
        n_zones, n_lines = len(saved.camera.zones), len(saved.camera.lines)
        log.warning(
            "zones_saved user=%s camera=%s zones=%d lines=%d site_hash=%s",
            _logged(req.user), cam, n_zones, n_lines, saved.site_hash[:12],
        )  # fmt: skip
        recorder.add(
            "manual", "warning", "zones_saved", req.user,
            f"camera {camera_id}: {n_zones} zones, {n_lines} lines saved to {path} and applied",
        )  # fmt: skip
        return layout_of_camera(editor.vision, camera_id, rt.site, saved.site_hash, "")

    for route in app.routes:  # every read behind a session says so in the document
        signed = isinstance(route, APIRoute) and any(
            d.dependency is technician for d in route.dependencies
        )
        if signed:
            assert isinstance(route, APIRoute)
            route.responses.setdefault(401, {"model": Problem, "description": "log in first"})
    return app


def _methods_of(app: FastAPI, path: str) -> list[str]:
    return sorted(
        {m for r in app.routes if isinstance(r, APIRoute) and r.path_regex.match(path)
         for m in r.methods or ()}
    )  # fmt: skip


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _logged(value: str) -> str:
    """`value` as one log word: what is not a letter, digit, '_', '.', '-' or '~' is
    %-escaped, so no value can end its field or add one (the request checks the user
    name already; this holds wherever a caller's text is logged)."""
    return urllib.parse.quote(value, safe="")


def _check(path: str | None, user: str, password: str) -> Literal["ok", "wrong", "no_users"]:
    """In a check thread: the file read and the scrypt check (hashlib releases the GIL)."""
    if path is None:
        return "no_users"
    try:
        users = credentials.load(path)
    except credentials.CredentialError as exc:
        log.error("credentials_unreadable %s", exc)
        return "no_users"
    if not users:
        return "no_users"
    return "ok" if credentials.check_user(users, user, password) else "wrong"


def _command(site: Any, req: ControlRequest) -> object:
    """The core command for a request; 422 when the phase does not fit the site."""
    if req.action in ("hold", "call"):
        ids = [p.id for p in site.phases]
        if req.phase is None:
            raise HTTPException(422, f"{req.action} needs a phase (one of {ids})")
        if req.phase not in ids:
            raise HTTPException(422, f"phase {req.phase} is not on this site (phases {ids})")
        if req.action == "hold":
            return Hold((req.phase,))
        if req.ped and site.phase(req.phase).ped_crossing is None:
            raise HTTPException(422, f"phase {req.phase} has no pedestrian signal")
        return PlaceCall(req.phase, ped=req.ped)
    if req.phase is not None:
        raise HTTPException(422, f"{req.action} takes no phase")
    if req.action == "all_red":
        return AllRed(True)
    if req.action == "flash":
        return Flash(True)
    return Automatic()


def _effect(req: ControlRequest) -> str:
    return {
        "all_red": "clearing to all red: greens end when their minimums allow, yellow and red "
        "clearance run in full",
        "flash": "clearing through yellow and red to flash",
        "hold": f"phase {req.phase} held green once it is green",
        "call": f"call placed on phase {req.phase}",
        "automatic": "operator overrides dropped; automatic operation",
    }[req.action]


async def _wait_verdict(recorder: Recorder, after: int, kind: str) -> LoggedEvent | None:
    """The controller's command_applied/command_rejected for `kind`, or None after 1 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + COMMAND_WAIT_S
    while loop.time() < deadline:
        for ev in recorder.event_log(source="controller", after=after, limit=2000):
            if ev.name in ("command_applied", "command_rejected") and ev.subject == kind:
                return ev
        await asyncio.sleep(0.02)
    return None
