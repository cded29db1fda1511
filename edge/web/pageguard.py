"""Security headers on every answer, and the Origin check on actions (an ASGI middleware).

The rules:

- Every answer (the page, its static files, the API, the refusals of the middlewares
  inside this one) carries a Content-Security-Policy that allows only the page's own
  files (`'self'`: no inline script or style, no other host, nothing may frame it),
  `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff`,
  `Referrer-Policy: no-referrer` and `Cross-Origin-Opener/Resource-Policy: same-origin`.
- Over TLS, every answer carries `Strict-Transport-Security` (a browser that has seen
  the page over TLS never falls back to clear HTTP for it).
- Every answer from the API (`/api/...`, `/openapi.json`) is `Cache-Control: no-store`:
  live state, the event log and camera frames are never kept by a browser or proxy.
- A state-changing request (any method but GET, HEAD, OPTIONS) whose `Origin` (or,
  without one, `Referer`) is not the page's own origin (scheme, host and port of the
  request's `Host`) is refused 403 before its body is read: that is the defence against
  another site's page making a technician's browser send an action (CSRF). Browsers
  send `Origin` on every cross-origin POST (and `Origin: null` from sandboxed or
  opaque contexts, refused too). A browser's `Sec-Fetch-Site` other than `same-origin`
  (or `none`: typed by the user) is refused too, whatever Origin says. A request with
  none of these headers is let through: it
  does not come from a browser page, and an action still needs a technician's
  password (curl, scripts, the tests).

A Host that resolves to the device under another name (DNS rebinding) matches its own
Origin, so this check does not stop that; an action still needs the password.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",  # the control form is sent by app.js, never submitted
        "frame-ancestors 'none'",
    )
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": 80, "https": 443}


class PageGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        no_store = path.startswith("/api/") or path == "/openapi.json"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
                if no_store:
                    headers["Cache-Control"] = "no-store"
                if scope.get("scheme") == "https":  # served over TLS: never in clear again
                    headers["Strict-Transport-Security"] = "max-age=31536000"
            await send(message)

        if scope["method"] not in SAFE_METHODS:
            refusal = cross_origin(scope)
            if refusal is not None:
                client = scope.get("client")
                log.warning(
                    "web_cross_origin_refused method=%s path=%s client=%s: %s",
                    scope["method"], quote(path, safe="/"),  # one word: no forged field
                    client[0] if client else "unknown", refusal,
                )  # fmt: skip
                answer = JSONResponse(status_code=403, content={"error": refusal})
                await answer(scope, receive, send_with_headers)
                return
        await self.app(scope, receive, send_with_headers)


def cross_origin(scope: Scope) -> str | None:
    """Why a state-changing request is not from the page's own origin, or None if it is
    (or names no origin at all: not a browser page's request)."""
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    scheme: str = scope.get("scheme", "http")
    host = headers.get("host", "")
    own = _origin(scheme, host)
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return (
            f"refused: a request from another site (Sec-Fetch-Site {site[:20]!r}); actions "
            "are taken only from the page itself"
        )
    if "origin" in headers:
        said, header = headers["origin"], "Origin"
    elif "referer" in headers:
        said, header = headers["referer"], "Referer"
    else:
        return None
    parts = urlsplit(said)
    try:
        theirs = _origin(parts.scheme, parts.netloc) if parts.scheme and parts.netloc else None
    except ValueError:
        theirs = None
    if own is None or theirs is None or theirs != own:
        return (
            f"refused: a request from another site ({header} {said[:100]!r}, this page is "
            f"{scheme}://{host[:100]}); actions are taken only from the page itself"
        )
    return None


def _origin(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of `scheme://netloc`, the default port filled in; None if
    the netloc cannot be read."""
    scheme = scheme.lower()
    if not netloc or "@" in netloc:
        return None
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None:
        return None
    return (
        scheme,
        parts.hostname.lower(),
        port if port is not None else DEFAULT_PORTS.get(scheme, 0),
    )
