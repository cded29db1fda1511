"""The `web` extension (WebPage, edge/extensions.py): uvicorn serving the page in the
runtime's own event loop.

The socket is bound before the runtime starts, so a port in use is a start-up
error with a clear message, not a failure mid-run. It listens on loopback
unless the unit file or the command line chooses another address (`--web-host`);
an address other than loopback is logged as a warning at start. uvicorn's own
signal handlers are kept out (the runtime owns SIGTERM/SIGINT and its shutdown
path), and a failure of the page after start is logged and leaves the
intersection running: the page is for people, the control tick is not its to
stop. Its per-tick bookkeeping is the `web` tick hook (its own thread, never in
the tick); what could cost the loop is bounded in edge/web/app.py (request
bodies, credential checks) and here (at most MAX_CONNECTIONS at once, 503 beyond).
No `server` header names the software; the security headers are edge/web/pageguard.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

import uvicorn

from edge.extensions import Extension
from edge.web import LOOPBACK
from edge.web.app import create_app
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


def bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, addr = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(32)
    except OSError as exc:
        raise WebError(f"technician page: cannot listen on {host}:{port}: {exc}") from exc
    sock.setblocking(False)
    return sock


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    ) -> None:
        self.sock = bind(host, port)
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
        if not is_loopback(self.host):
            log.warning(
                "web_public host=%s port=%d: the page is reachable from the network on this "
                "address (chosen with --web-host); manual control needs a technician's password",
                self.host,
                self.port,
            )

    def on_tick(self, tick: Tick) -> None:
        assert self.recorder is not None
        self.recorder.on_tick(tick)

    def stop(self) -> None:
        self.sock.close()  # closed already when it served

    async def run(self) -> None:
        recorder, sock = self.recorder, self.sock
        assert recorder is not None, "WebPage.start comes first"
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
            # the peer's address is the client (per-address login limits): no header from a
            # client, not even from loopback, may claim another one
            proxy_headers=False,
            server_header=False,  # no banner naming the server software (and its version)
        )
        server = _Server(config)
        log.info("web_listening url=http://%s:%d/", self.host, self.port)
        try:
            await server.serve(sockets=[sock])
            log.error("web_stopped: the technician page ended; the intersection runs on")
        except asyncio.CancelledError:
            # The runtime is shutting down (after its board handover): end the live
            # streams and close the connections rather than leave them to the loop's end.
            recorder.closing = True
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.shutdown(sockets=[sock]), SHUTDOWN_S)
            raise
        except Exception as exc:
            log.exception("web_failed error=%r: the intersection runs on without the page", exc)
        finally:
            logging.getLogger("edge").removeHandler(capture)
            sock.close()
        await asyncio.Event().wait()  # until the runtime's shutdown cancels this task


def attach_web(
    rt: Runtime,
    port: int,
    *,
    host: str = LOOPBACK,
    credentials_path: str | None = None,
    board_lamps: Callable[[], Sequence[int]] | None = None,
) -> Recorder:
    """Add the `web` extension to `rt` (before it runs); raises WebError at once."""
    page = WebPage(port, host=host, credentials_path=credentials_path, board_lamps=board_lamps)
    rt.add(page)
    assert page.recorder is not None
    return page.recorder
