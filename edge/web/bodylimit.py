"""Request bodies read in a bounded way before anything parses them (an ASGI middleware).

The page runs in the runtime's own event loop, beside the control tick: a body
that is big to read or to parse would delay the tick. The rules:

- a Content-Length over the limit is answered 413 at once, the body unread, and the
  connection closed (`Connection: close`), so the rest is never read either;
- a body without Content-Length (chunked) is read chunk by chunk and refused 413 as
  soon as it passes the limit;
- the whole body must arrive within the timeout (408 otherwise): a trickled body
  cannot hold a connection open;
- an unreadable Content-Length is 400;
- a few paths have a larger limit of their own (`larger`: the camera layout editor's
  PUT, whose zones take more than a manual action), still read the same bounded way.

Only a body within the limit reaches the app (JSON parsing, validation), from memory.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4096  # a manual action is under 400 bytes; a long escaped password < 2 kB
BODY_TIMEOUT_S = 5.0


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        timeout_s: float = BODY_TIMEOUT_S,
        larger: Sequence[tuple[re.Pattern[str], int]] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.larger = tuple(larger)

    def limit(self, scope: Scope) -> int:
        path = scope.get("path", "")
        return next((n for pat, n in self.larger if pat.match(path)), self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        length = _content_length(scope)
        if length == -1:
            await self._refuse(scope, send, 400, "Content-Length is not a number")
            return
        if length is not None and length > limit:
            await self._too_big(scope, send, f"{length} bytes", limit)
            return
        try:
            async with asyncio.timeout(self.timeout_s):
                body = await self._read(receive, limit)
        except TimeoutError:
            await self._refuse(
                scope, send, 408, f"the request body did not arrive within {self.timeout_s:g} s"
            )
            return
        if body is None:
            await self._too_big(scope, send, "a chunked body", limit)
            return
        if isinstance(body, dict):  # the client went away: nothing to answer
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # e.g. a live stream waiting for the disconnect

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive, limit: int) -> bytes | Message | None:
        """The body (None once it passes the limit; the disconnect message if it came)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return msg
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return b"".join(chunks)

    async def _too_big(self, scope: Scope, send: Send, what: str, limit: int) -> None:
        await self._refuse(
            scope,
            send,
            413,
            f"request body too large: {what} over the limit of {limit} bytes; refused unread",
        )

    async def _refuse(self, scope: Scope, send: Send, status: int, error: str) -> None:
        client = scope.get("client") or ("?", 0)
        log.warning(
            "web_request_refused status=%d client=%s path=%s: %s",
            status,
            client[0],
            quote(scope.get("path", ""), safe="/"),  # one word: no forged field or line
            error,
        )
        # Connection: close: uvicorn closes the connection after the answer, the rest of
        # the body is never read.
        response = JSONResponse({"error": error}, status, headers={"Connection": "close"})
        await response(scope, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _content_length(scope: Scope) -> int | None:
    """The declared length, None without one, -1 for one that is not a number."""
    headers: Any = scope.get("headers", [])
    for name, value in headers:
        if name == b"content-length":
            try:
                n = int(value)
            except ValueError:
                return -1
            return n if n >= 0 else -1
    return None
