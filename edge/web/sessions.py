"""Technician sessions: what lets a browser read the page after a login.

The rules:

- `POST /api/login` with a right credential starts a session; its token is a random
  256-bit value in a cookie (`edge_session`: HttpOnly, so no script reads it;
  SameSite=Strict, so no other site's page sends it; Secure when the page is served
  over TLS; Path=/). Only its SHA-256 is kept, in memory: a restart ends every session.
- A session ends after IDLE_S without a request, MAX_AGE_S after the login however busy,
  or at `POST /api/logout`. At most MAX_SESSIONS at once: the oldest ends first.
- Every read of the page's data (state, history, event log, link, cameras, frames,
  the OpenAPI document) needs a live session; only `/api/status` (intersection id,
  mode, healthy or not) and the page's own files are open. The live stream checks its
  session before every frame and ends with it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE = "edge_session"
IDLE_S = 30 * 60.0
MAX_AGE_S = 12 * 3600.0  # a technician's shift
MAX_SESSIONS = 64


@dataclass
class Session:
    user: str
    started_s: float
    seen_s: float


class Sessions:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        idle_s: float = IDLE_S,
        max_age_s: float = MAX_AGE_S,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.clock = clock
        self.idle_s, self.max_age_s, self.max_sessions = idle_s, max_age_s, max_sessions
        self.live: dict[str, Session] = {}  # sha256(token) -> session

    def start(self, user: str) -> str:
        """A new session's token (for the cookie)."""
        now = self.clock()
        self._expire(now)
        while len(self.live) >= self.max_sessions:
            del self.live[min(self.live, key=lambda k: self.live[k].started_s)]
        token = secrets.token_urlsafe(32)
        self.live[_key(token)] = Session(user, now, now)
        return token

    def user(self, token: str | None) -> str | None:
        """The session's user, its idle time restarted; None: no such live session."""
        if not token or len(token) > 100:
            return None
        now = self.clock()
        key = _key(token)
        s = self.live.get(key)
        if s is None:
            return None
        if now - s.seen_s > self.idle_s or now - s.started_s > self.max_age_s:
            del self.live[key]
            return None
        s.seen_s = now
        return s.user

    def end(self, token: str | None) -> None:
        if token:
            self.live.pop(_key(token), None)

    def _expire(self, now: float) -> None:
        for key, s in list(self.live.items()):
            if now - s.seen_s > self.idle_s or now - s.started_s > self.max_age_s:
                del self.live[key]


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
