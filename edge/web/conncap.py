"""How many connections the page holds, and how long one may idle: never the runtime's
descriptors.

The page runs in the runtime's own process: a descriptor the page holds is one the
control loop, the board's port, the status file and the store cannot have. 1,100 idle
connections once took all 1,024 and the runtime's next `open` failed. The rules:

- the listening socket (`CappedListener`) holds at most `cap` accepted connections
  open at once: one more is closed as soon as it is accepted (the kernel's backlog
  holds at most BACKLOG not yet accepted). The cap is a quarter of the process's soft
  RLIMIT_NOFILE, at most MAX_OPEN: the rest is the runtime's, whatever clients do;
- a connection that has not sent a whole request within FIRST_REQUEST_S of being
  accepted (after its TLS handshake, over TLS) is closed (`PageH11`): idle and
  trickling connections free their place; uvicorn closes one idle after an answer
  after its keep-alive (5 s);
- refusals are logged at most once a minute, with how many since the last line.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import socket
import time

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

MAX_OPEN = 128  # connections at once; a technician's browser uses about 6
BACKLOG = 64
FIRST_REQUEST_S = 10.0
LOG_EVERY_S = 60.0


def default_cap() -> int:
    """A quarter of the soft descriptor limit, at most MAX_OPEN (at least 4)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_OPEN
    return max(4, min(MAX_OPEN, soft // 4))


class CappedListener(socket.socket):
    """A listening socket whose `accept` keeps at most `cap` connections open (asyncio's
    accept loop calls it; a connection over the cap is closed and skipped)."""

    def __init__(self, family: int, kind: int, proto: int = 0, cap: int | None = None) -> None:
        super().__init__(family, kind, proto)
        self.cap = cap if cap is not None else default_cap()
        self.open: list[socket.socket] = []
        self.refused = 0
        self._logged_s = 0.0

    def accept(self) -> tuple[socket.socket, object]:
        conn, addr = super().accept()
        self.open = [s for s in self.open if s.fileno() != -1]  # closed by their transports
        if len(self.open) < self.cap:
            self.open.append(conn)
            return conn, addr
        conn.close()
        self.refused += 1
        now = time.monotonic()
        if now - self._logged_s >= LOG_EVERY_S:
            log.warning(
                "web_connections_refused count=%d open=%d cap=%d: the page holds no more "
                "connections at once; the intersection is not affected",
                self.refused, len(self.open), self.cap,
            )  # fmt: skip
            self._logged_s, self.refused = now, 0
        raise ConnectionAbortedError  # asyncio: nothing to serve from this one


class PageH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection without a request in time."""

    _first: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._first = self.loop.call_later(FIRST_REQUEST_S, self._no_request)

    def _no_request(self) -> None:
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._first is not None:
            self._first.cancel()
        super().connection_lost(exc)
