"""Per-client and per-account limits on the page's credential checks: guessing is slow,
and never in a technician's way.

The rules, per client address (the connection's peer; no proxy header is trusted), and
the same per account (the user name a request gives, known or not, so that the
answers do not tell which names exist) and per known browser (below):

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

Accounts (`Logins`): ACCOUNT_MAX_FAILURES wrong credentials for one user name within
the window lock the name out, however many addresses guess (each still one at a time). A lockout of
a name would let guessers lock its technician out too, so a browser that has logged in
as that user before carries a known-browser cookie (signed by this runtime, for that
user, KNOWN_S): its checks skip the address and account limits (it has its own, as an
address has) and go before every other waiting check. A valid technician in a browser
that has logged in before is never queued behind, nor locked out by, anyone's guesses;
a first login from a new browser while its name is under attack is refused with
Retry-After, as a guesser is.

The guard and the queue are used from the event loop only (no thread touches them).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import hmac
import itertools
import math
import secrets
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
ACCOUNT_MAX_FAILURES = 10  # per user name, from all addresses together
KNOWN_S = 30 * 86400  # a known-browser cookie's life


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
        label: Callable[[str], str] = lambda addr: f"from {addr}",
        one_at_a_time: bool = True,
    ) -> None:
        self.label = label
        self.one_at_a_time = one_at_a_time
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
                f"too many wrong credentials {self.label(addr)}: locked out for another "
                f"{math.ceil(left)} s; nothing was done",
            )
        if c.busy and self.one_at_a_time:
            return Refusal(
                1,
                f"a credential {self.label(addr)} is being checked; one at a time; "
                "nothing was done",
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
            f"{self.max_failures} wrong credentials {self.label(addr)}: locked out for "
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


@dataclass
class Attempt:
    """One admitted check: the limits it counts against (released once, by `release`)."""

    held: list[tuple[LoginGuard, str]]
    rank: int  # in the CheckQueue: a known browser's -1 goes first
    known: bool

    def failed(self) -> Refusal | None:
        """Count the wrong credential everywhere; the first lockout it starts, if any."""
        lockouts = [guard.failed(key) for guard, key in self.held]
        return next((r for r in lockouts if r is not None), None)

    def succeeded(self) -> None:
        for guard, key in self.held:
            guard.succeeded(key)

    def release(self) -> None:
        for guard, key in self.held:
            guard.release(key)


class Logins:
    """The limits of every credential check: per address, per account, per known browser."""

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, secret: bytes | None = None
    ) -> None:
        self.clock = clock
        self.addresses = LoginGuard(clock=clock)
        self.accounts = LoginGuard(
            clock=clock,
            max_failures=ACCOUNT_MAX_FAILURES,
            label=lambda u: f"for user {u}",
            one_at_a_time=False,  # the addresses are; one account's checks may overlap
        )
        self.browsers = LoginGuard(clock=clock, label=lambda _: "from this browser")
        self.secret = secret if secret is not None else secrets.token_bytes(32)

    def admit(self, addr: str, user: str, cookie: str | None) -> Attempt | Refusal:
        browser = self.known_browser(cookie, user)
        if browser is not None:
            refusal = self.browsers.admit(browser)
            if refusal is not None:
                return refusal
            return Attempt([(self.browsers, browser)], -1, known=True)
        refusal = self.addresses.admit(addr)
        if refusal is not None:
            return refusal
        refusal = self.accounts.admit(user)
        if refusal is not None:
            self.addresses.release(addr)
            return refusal
        held = [(self.addresses, addr), (self.accounts, user)]
        return Attempt(held, self.addresses.standing(addr), known=False)

    def browser_cookie(self, user: str) -> str:
        """A known-browser cookie for `user`: `user.expiry.nonce.mac` (URL-safe)."""
        body = f"{user}.{int(time.time() + KNOWN_S)}.{secrets.token_urlsafe(12)}"
        return f"{body}.{self._mac(body)}"

    def known_browser(self, cookie: str | None, user: str) -> str | None:
        """The browser's id (its nonce) if `cookie` is this runtime's, for `user`, unexpired."""
        if not cookie or len(cookie) > 200:
            return None
        body, _, mac = cookie.rpartition(".")
        parts = body.split(".")
        if len(parts) < 3 or not hmac.compare_digest(mac, self._mac(body)):
            return None
        name, expiry, nonce = ".".join(parts[:-2]), parts[-2], parts[-1]
        if name != user or not expiry.isdigit() or int(expiry) < time.time():
            return None
        return nonce

    def _mac(self, body: str) -> str:
        digest = hmac.new(self.secret, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()


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
