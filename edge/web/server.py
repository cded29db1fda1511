"""The `web` extension (WebPage, edge/extensions.py): uvicorn serving the page in the
runtime's own event loop.

The socket is bound before the runtime starts, so a port in use is a start-up
error with a clear message, not a failure mid-run. It listens on loopback
unless told otherwise, and off loopback over TLS only (edge/web/listen.py decides;
clear HTTP there only when chosen, logged at error level). uvicorn's own signal
handlers are kept out (the runtime owns SIGTERM/SIGINT and its shutdown path). A
failure of the page after start (running out of descriptors included) ends its task
only: the runtime logs it and starts the page again after a backoff, the socket bound
anew, and the intersection runs on: the page is for people, the control tick is not
its to stop. Its per-tick bookkeeping is the `web` tick hook (its own thread, never in
the tick); what could cost the loop is bounded in edge/web/app.py (request bodies,
credential checks), edge/web/conncap.py (connections held open, idle ones closed)
and here (at most MAX_CONNECTIONS requests at once, 503 beyond).
No `server` header names the software; the security headers are edge/web/pageguard.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

import uvicorn

from edge.extensions import Extension
from edge.web import LOOPBACK
from edge.web.app import create_app
from edge.web.conncap import BACKLOG, CappedListener, PageH11
from edge.web.listen import is_loopback
from edge.web.live import LogCapture, Recorder

if TYPE_CHECKING:
    from edge.runtime import Runtime
    from edge.tickhooks import Tick

log = logging.getLogger(__name__)

SHUTDOWN_S = 1.5
MAX_CONNECTIONS = 32  # connections and requests at once; uvicorn answers 503 beyond


class WebError(RuntimeError):
    """The page cannot be served (the port is taken, the host unknown)."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the runtime owns the signals


def bind(host: str, port: int, cap: int | None = None) -> CappedListener:
    """The listening socket, holding at most `cap` connections (edge/web/conncap.py)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, addr = infos[0]
        sock = CappedListener(family, kind, proto, cap=cap)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise WebError(f"technician page: cannot listen on {host}:{port}: {exc}") from exc
    sock.setblocking(False)
    return sock


__all__ = ["WebError", "WebPage", "attach_web", "bind", "is_loopback"]


class WebPage(Extension):
    """The `web` extension: the page's recorder gets every tick (its tick hook), its task
    serves the page. The socket is bound when it is built (WebError at once)."""

    name = "web"
    ticks = True

    def __init__(
        self,
        port: int,
        *,
        host: str = LOOPBACK,
        credentials_path: str | None = None,
        board_lamps: Callable[[], Sequence[int]] | None = None,
        tls: ssl.SSLContext | None = None,
        insecure: bool = False,
        cap: int | None = None,
    ) -> None:
        if tls is None and not is_loopback(host) and not insecure:
            raise WebError(
                f"technician page: {host} is not loopback and no TLS certificate is given: "
                "passwords would cross the network in clear (edge/web/listen.py)"
            )
        self.tls, self.insecure, self.cap = tls, insecure, cap
        self.sock: CappedListener | None = bind(host, port, cap)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.credentials_path = credentials_path
        self.board_lamps = board_lamps
        self.recorder: Recorder | None = None
        self.app: Any = None

    def start(self, rt: Runtime) -> None:
        self.recorder = Recorder(rt, self.board_lamps)
        self.recorder.host, self.recorder.port = self.host, self.port
        self.app = create_app(self.recorder, self.credentials_path)
        if self.credentials_path is None:
            log.warning(
                "web_no_credentials: manual control on the page is refused (no --credentials)"
            )
        else:
            _warn_weak(self.credentials_path)
        if self.insecure:
            log.error(
                "web_insecure host=%s port=%d: the page serves this network in CLEAR "
                "(--web-insecure): technicians' passwords and session cookies can be read "
                "on the wire; give it the device's certificate or listen on loopback",
                self.host,
                self.port,
            )
        elif not is_loopback(self.host):
            log.warning(
                "web_public host=%s port=%d: the page is reachable from the network on this "
                "address, over TLS; reading and acting need a technician's password",
                self.host,
                self.port,
            )

    def on_tick(self, tick: Tick) -> None:
        assert self.recorder is not None
        self.recorder.on_tick(tick)

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()  # closed already when it served

    async def run(self) -> None:
        """Serve until cancelled; a failure or an end is the runtime's to log and restart
        (with backoff): the socket is closed, and bound again on the next start."""
        recorder = self.recorder
        assert recorder is not None, "WebPage.start comes first"
        if self.sock is None:  # a restart: the port again (WebError: tried again later)
            self.sock = bind(self.host, self.port, self.cap)
        sock = self.sock
        capture = LogCapture(recorder)
        logging.getLogger("edge").addHandler(capture)
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            timeout_graceful_shutdown=1,
            limit_concurrency=MAX_CONNECTIONS,
            backlog=BACKLOG,
            http=PageH11,  # closes a connection that sends no request in time
            # the peer's address is the client (per-address login limits): no header from a
            # client, not even from loopback, may claim another one
            proxy_headers=False,
            server_header=False,  # no banner naming the server software (and its version)
        )
        config.load()
        config.ssl = self.tls  # TLS 1.2+ with the device's certificate (listen.tls_context)
        server = _Server(config)
        scheme = "https" if self.tls else "http"
        log.info("web_listening url=%s://%s:%d/", scheme, self.host, self.port)
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn's way to fail a start: the page's, not ours
            raise WebError(f"technician page: the server stopped ({exc})") from None
        except asyncio.CancelledError:
            # The runtime is shutting down (after its board handover): end the live
            # streams and close the connections rather than leave them to the loop's end.
            recorder.closing = True
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.shutdown(sockets=[sock]), SHUTDOWN_S)
            raise
        finally:
            logging.getLogger("edge").removeHandler(capture)
            sock.close()
            self.sock = None


def _warn_weak(path: str) -> None:
    """Name the users whose hashes are below today's cost (an older file): they still
    log in; `edge passwd` rehashes (the service cannot: the file is root's)."""
    from edge import credentials

    try:
        weak = credentials.weak_users(credentials.load(path))
    except credentials.CredentialError as exc:
        log.error("credentials_unreadable %s", exc)
        return
    if weak:
        log.warning(
            "credentials_weak file=%s users=%s: hashed at a cost below N=2^17; set their "
            "passwords again with `edge passwd USER --file %s`",
            path, ",".join(weak), path,
        )  # fmt: skip


def attach_web(
    rt: Runtime,
    port: int,
    *,
    host: str = LOOPBACK,
    credentials_path: str | None = None,
    board_lamps: Callable[[], Sequence[int]] | None = None,
    tls: ssl.SSLContext | None = None,
    insecure: bool = False,
    cap: int | None = None,
) -> Recorder:
    """Add the `web` extension to `rt` (before it runs); raises WebError at once."""
    page = WebPage(
        port, host=host, credentials_path=credentials_path, board_lamps=board_lamps,
        tls=tls, insecure=insecure, cap=cap,
    )  # fmt: skip
    rt.add(page)
    assert page.recorder is not None
    return page.recorder
