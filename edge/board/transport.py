"""Serial transport for the board link: pyserial-asyncio-fast on the runner's event loop.

Why pyserial-asyncio-fast and not a reader thread around plain pyserial:

- The runner is one asyncio supervisor (DESIGN.md, STYLE.md point 7). With
  pyserial-asyncio-fast the port's file descriptor is watched by the event
  loop itself (add_reader): bytes reach the sans-IO session in the loop's
  thread the moment they arrive, with no thread hop (call_soon_threadsafe and
  its self-pipe wake-up), no lock around the session and no second place
  where an error can hide.
- Writes go straight to the fd from write() (the "fast" fork's change over
  pyserial-asyncio, which queued them to a later loop iteration), so an
  OUTPUTS frame is on the wire in the same tick it was made; this is what
  `edge bench board` measures.
- A port that vanishes (USB pulled, pty closed) raises in the read callback;
  the transport closes and connection_lost() tells the runner at once.
  Closing a blocking pyserial read in another thread is the awkward part of
  the thread design (cancel_read, timeouts, join).
- It is maintained (pyserial-asyncio, its parent, has had no release since
  2021) and is what Home Assistant uses for serial radios on Raspberry Pis.

The price: POSIX only (the Pi runs Linux), and a stalled event loop delays
reads; the loop runs only the 10 Hz controller step (tens of microseconds),
everything heavy (inference) lives in its own worker. Lifetimes follow
aiomqtt: `async with open_link(...) as link:`, and reconnection is the
caller's loop with backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

import serial_asyncio_fast

BAUDRATE = 115200
CLOSE_TIMEOUT_S = 2.0


class LinkLostError(ConnectionError):
    """The port closed under us (cable pulled, device gone, I/O error)."""


class SerialLink(asyncio.Protocol):
    """Bytes in through `on_data`, bytes out through write(); `lost` resolves when the port dies."""

    def __init__(self, on_data: Callable[[bytes], None]) -> None:
        self._on_data = on_data
        self._transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.made: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[BaseException | None] = loop.create_future()
        self.bytes_in = 0
        self.bytes_out = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self.made.done():
            self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        self._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.lost.done():
            self.lost.set_result(exc)

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self.is_open:
            raise LinkLostError("write on a closed port")
        assert self._transport is not None
        self._transport.write(data)
        self.bytes_out += len(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@asynccontextmanager
async def open_link(
    port: str, on_data: Callable[[bytes], None], baudrate: int = BAUDRATE
) -> AsyncIterator[SerialLink]:
    """Open `port` (raises OSError if it cannot be opened); closes it on exit."""
    loop = asyncio.get_running_loop()
    transport, protocol = await serial_asyncio_fast.create_serial_connection(
        loop,
        lambda: SerialLink(on_data),
        port,
        baudrate=baudrate,
        exclusive=True,  # a second host on the same board is refused at open
    )
    assert isinstance(protocol, SerialLink)
    try:
        await protocol.made  # connection_made() runs on the loop's next iteration
        ser = transport.serial
        if ser is not None:
            ser.reset_input_buffer()  # whatever sat in the buffers belongs to no one now
        yield protocol
    finally:
        protocol.close()
        with suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(protocol.lost), CLOSE_TIMEOUT_S)
