"""Per-client limits on the page's credential checks: guessing is slow, and never in
anyone else's way.

The rules, per client address (the connection's peer; no proxy header is trusted):

- one check at a time: a second request while one is being checked (or is in its
  wrong-password delay) is refused at once (429, Retry-After);
- MAX_FAILURES wrong credentials within WINDOW_S lock the address out for LOCKOUT_S,
  doubling with each lockout that follows (at most LOCKOUT_MAX_S): refused at once
  (429 with Retry-After), nothing is checked;
- a right credential clears the address's failures and lockouts;
- no lock is shared between addresses, and the checks (scrypt, in a pool of
  threads of their own, CheckQueue) that wait for a thread are taken in order of their
  address's recent wrong guesses, fewest first: a technician's check is not queued
  behind addresses that keep guessing;
- the table is bounded (MAX_CLIENTS): the stalest address that is neither locked
  nor being checked is forgotten first.

The guard and the queue are used from the event loop only (no thread touches them).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

MAX_FAILURES = 5
WINDOW_S = 600.0
LOCKOUT_S = 60.0
LOCKOUT_MAX_S = 900.0
MAX_CLIENTS = 1024


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a client is refused now, and when it may try again."""

    retry_after_s: int
    message: str


@dataclass
class _Client:
    seen_s: float
    failures: deque[float] = field(default_factory=deque)
    locked_until_s: float = 0.0
    lockouts: int = 0
    busy: bool = False


class LoginGuard:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        lockout_s: float = LOCKOUT_S,
        lockout_max_s: float = LOCKOUT_MAX_S,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.clock = clock
        self.max_failures = max_failures
        self.window_s = window_s
        self.lockout_s = lockout_s
        self.lockout_max_s = lockout_max_s
        self.max_clients = max_clients
        self.clients: dict[str, _Client] = {}

    def admit(self, addr: str) -> Refusal | None:
        """None: go on and check (the address is busy until `release`); else why not."""
        now = self.clock()
        c = self._client(addr, now)
        if c.locked_until_s > now:
            left = c.locked_until_s - now
            return Refusal(
                math.ceil(left),
                f"too many wrong credentials from {addr}: locked out for another "
                f"{math.ceil(left)} s; nothing was done",
            )
        if c.busy:
            return Refusal(
                1, f"a credential from {addr} is being checked; one at a time; nothing was done"
            )
        c.busy = True
        return None

    def failed(self, addr: str) -> Refusal | None:
        """A wrong credential; the lockout it starts, if it starts one."""
        now = self.clock()
        c = self._client(addr, now)
        while c.failures and now - c.failures[0] > self.window_s:
            c.failures.popleft()
        if not c.failures and now - c.locked_until_s > self.window_s:
            c.lockouts = 0  # quiet for a window since the last lockout: start over
        c.failures.append(now)
        if len(c.failures) < self.max_failures:
            return None
        c.failures.clear()
        c.lockouts += 1
        lock_s = min(self.lockout_max_s, self.lockout_s * 2 ** (c.lockouts - 1))
        c.locked_until_s = now + lock_s
        return Refusal(
            math.ceil(lock_s),
            f"{self.max_failures} wrong credentials from {addr}: locked out for "
            f"{math.ceil(lock_s)} s",
        )

    def succeeded(self, addr: str) -> None:
        c = self._client(addr, self.clock())
        c.failures.clear()
        c.lockouts = 0

    def standing(self, addr: str) -> int:
        """How much the address has guessed wrong lately (0: not at all); lower goes first."""
        c = self.clients.get(addr)
        return 0 if c is None else len(c.failures) + self.max_failures * c.lockouts

    def release(self, addr: str) -> None:
        c = self.clients.get(addr)
        if c is not None:
            c.busy = False

    def _client(self, addr: str, now: float) -> _Client:
        c = self.clients.get(addr)
        if c is None:
            if len(self.clients) >= self.max_clients:
                self._forget_one(now)
            c = self.clients[addr] = _Client(now)
        c.seen_s = now
        return c

    def _forget_one(self, now: float) -> None:
        idle = [(c.seen_s, a) for a, c in self.clients.items() if not c.busy]
        free = [(s, a) for s, a in idle if self.clients[a].locked_until_s <= now]
        pool = free or idle or [(c.seen_s, a) for a, c in self.clients.items()]
        del self.clients[min(pool)[1]]


class CheckQueue:
    """Credential checks in `threads` threads of their own; waiting ones by rank, then
    arrival (a lower rank goes first)."""

    def __init__(self, threads: int) -> None:
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="edge-web-check")
        self.free = threads
        self.waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._arrival = itertools.count()

    async def run(self, rank: int, fn: Callable[..., T], *args: object) -> T:
        await self._acquire(rank)
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
        finally:
            self._release()

    async def _acquire(self, rank: int) -> None:
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiting, (rank, next(self._arrival), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # handed a thread just as the client went away: pass it on
            raise

    def _release(self) -> None:
        while self.waiting:
            _, _, turn = heapq.heappop(self.waiting)
            if not turn.done():
                turn.set_result(None)
                return
        self.free += 1
