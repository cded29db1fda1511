"""A BoardDriver and the real firmware core (hw.board.Board) over a virtual wire and clock.

No pty, no threads, no sleeps: time is an integer the test advances. Bytes
from each side reach the other 1 ms later, through optional bit errors. The
board's side is handled message by message, as sim/virtual_board.py does, so
that every valid OUTPUTS arrival is logged with its time.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.board.driver import TICK_MS, BoardDriver, SentMap
from edge.config import load_site
from edge.control.site import Site
from sim.virtual_board import BitErrors

from hw import board, codec

HERE = Path(__file__).resolve().parent
CROSSING = HERE / "crossing.toml"
BOARD_TICK_MS = 10  # the board's loop runs at least this often (and on every arrival)


def crossing() -> Site:
    return load_site(CROSSING)


@dataclass
class Wire:
    """Bytes in flight: (arrival ms, data)."""

    ber: float = 0.0
    seed: int = 0
    queue: list[tuple[int, bytes]] = field(default_factory=list)
    errors: BitErrors | None = None

    def __post_init__(self) -> None:
        if self.ber > 0:
            self.errors = BitErrors(self.ber, random.Random(self.seed))

    def send(self, t_arrive: int, data: bytes) -> None:
        if data:
            if self.errors is not None:
                data = self.errors.apply(data)
            self.queue.append((t_arrive, data))

    def due(self, now: int) -> bytes:
        out = b"".join(d for t, d in self.queue if t <= now)
        self.queue = [(t, d) for t, d in self.queue if t > now]
        return out


class FakeLink:
    """Drive `driver` against `board` for a while; records what the board did."""

    def __init__(
        self,
        site: Site | None = None,
        *,
        ber: float = 0.0,
        seed: int = 1,
        fw: Any = None,
        start_ms: int = 1_000_000,
    ) -> None:
        self.site = site if site is not None else crossing()
        self.now = start_ms
        self.driver = BoardDriver(self.site, self.now)
        self.board: Any = fw if fw is not None else board.Board(self.now)
        self.down = Wire(ber, seed)  # host -> board
        self.up = Wire(ber, seed + 1)  # board -> host
        self.connected = False
        self.raw_inputs = 0  # board input levels, bit k-1 = input k
        self.sent: list[SentMap] = []
        self.rx: list[tuple[int, list[int], int]] = []  # board: (t, codes, state after)
        self.trace: list[tuple[int, int, int, tuple[int, ...]]] = []  # (t, state, fault, lamps)
        self._next_tick = self.now
        self._record()

    def connect(self) -> None:
        self.driver.connect(self.now)
        self.connected = True
        self._pump_host()

    def disconnect(self) -> None:
        self.driver.disconnect(self.now, "test")
        self.connected = False
        self.down.queue.clear()
        self.up.queue.clear()

    def _record(self) -> None:
        s = self.board.safety
        key = (s.state, s.fault, tuple(s.lamps()))
        if not self.trace or self.trace[-1][1:] != key:
            self.trace.append((self.now, *key))

    def _pump_host(self) -> None:
        data = self.driver.data_to_send()
        if self.connected:
            self.down.send(self.now + 1, data)

    def _next_event(self, until_ms: int) -> int:
        t = min(until_ms, self._next_tick, (self.now // BOARD_TICK_MS + 1) * BOARD_TICK_MS)
        for wire in (self.down, self.up):
            for arrive, _ in wire.queue:
                t = min(t, max(arrive, self.now + 1))
        return t

    def step_to(self, until_ms: int) -> None:
        """Advance the clock to until_ms event by event, ticking the host every 100 ms."""
        while self.now < until_ms:
            self.now = now = self._next_event(until_ms)
            data = self.down.due(now)
            replies = b""
            for msg in self.board.decoder.feed(data):
                replies += self.board.handle(now, msg)
                if msg[0] == codec.MSG_OUTPUTS:
                    self.rx.append((now, list(msg[2]["codes"]), self.board.safety.state))
            self.board.tick(now)
            self.board.sample_inputs(now, self.raw_inputs)
            self._record()
            if self.connected:
                self.up.send(now + 1, replies)
                got = self.up.due(now)
                if got:
                    self.driver.receive(now, got)
                    self._pump_host()
            if now >= self._next_tick:
                self._next_tick += TICK_MS
                m = self.driver.tick(now)
                if m is not None:
                    self.sent.append(m)
                self._pump_host()

    def run_until(self, cond: Any, limit_ms: int) -> bool:
        """Step in 10 ms slices until cond() or limit_ms of virtual time have passed."""
        end = self.now + limit_ms
        while self.now < end:
            if cond():
                return True
            self.step_to(self.now + 10)
        return bool(cond())

    @property
    def state(self) -> int:
        s: int = self.board.safety.state
        return s
