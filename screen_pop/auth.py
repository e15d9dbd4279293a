"""Sessions, login rate limiting and role checks.

A session is a random token (``secrets.token_urlsafe(32)``) kept in memory with an expiry;
the browser holds it in an HttpOnly, SameSite=Strict cookie, bots may send it as
``Authorization: Bearer <token>``.  Neither tokens nor passwords are ever logged.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

COOKIE_NAME = "cti_session"


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    username: str
    role: str
    agent_id: str | None
    created_at: float
    expires_at: float

    def public(self) -> dict[str, Any]:
        return {"username": self.username, "role": self.role, "agent_id": self.agent_id,
                "expires_at": self.expires_at}


class SessionTable:
    """Sessions by token, bounded (the oldest is evicted past ``max_sessions``)."""

    def __init__(self, *, ttl_s: float, max_sessions: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._by_token: OrderedDict[str, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_token)

    def create(self, username: str, role: str, agent_id: str | None) -> Session:
        now = self._clock()
        self.purge()
        while len(self._by_token) >= self._max:
            self._by_token.popitem(last=False)
        s = Session(secrets.token_urlsafe(32), username, role, agent_id, now, now + self._ttl)
        self._by_token[s.token] = s
        return s

    def get(self, token: str) -> Session | None:
        s = self._by_token.get(token)
        if s is None:
            return None
        if s.expires_at <= self._clock():
            del self._by_token[token]
            return None
        return s

    def delete(self, token: str) -> Session | None:
        return self._by_token.pop(token, None)

    def purge(self) -> None:
        now = self._clock()
        for tok in [t for t, s in self._by_token.items() if s.expires_at <= now]:
            del self._by_token[tok]


class LoginLimiter:
    """At most ``max_failures`` failed logins per username in ``window_s``."""

    def __init__(self, *, max_failures: int, window_s: float, clock: Callable[[], float],
                 max_users: int = 100_000) -> None:
        self._max = max_failures
        self._window = window_s
        self._clock = clock
        self._max_users = max_users
        self._fails: OrderedDict[str, deque[float]] = OrderedDict()

    @staticmethod
    def key(username: str) -> str:
        return username.strip().casefold()

    def retry_after(self, username: str) -> float | None:
        """Seconds until another attempt is allowed, or None when allowed now."""
        q = self._fails.get(self.key(username))
        if q is None:
            return None
        now = self._clock()
        while q and q[0] <= now - self._window:
            q.popleft()
        if len(q) < self._max:
            return None
        return max(0.0, q[0] + self._window - now)

    def failure(self, username: str) -> None:
        k = self.key(username)
        q = self._fails.get(k)
        if q is None:
            if len(self._fails) >= self._max_users:
                self._fails.popitem(last=False)
            q = self._fails[k] = deque(maxlen=self._max)
        q.append(self._clock())
        self._fails.move_to_end(k)

    def success(self, username: str) -> None:
        self._fails.pop(self.key(username), None)


SESSIONS_KEY = web.AppKey("sessions", SessionTable)
SESSION_KEY = web.RequestKey("session", Session)  # set by require_role on the request


def request_token(request: web.Request) -> tuple[str | None, bool]:
    """The session token of a request and whether it came as a Bearer header."""
    authz = request.headers.get("Authorization", "")
    if authz[:7].lower() == "bearer ":
        return authz[7:].strip() or None, True
    return request.cookies.get(COOKIE_NAME) or None, False


def json_error(status: type[web.HTTPException], error_id: str, message: str,
               **kw: Any) -> web.HTTPException:
    body = json.dumps({"error": error_id, "message": message})
    return status(text=body, content_type="application/json", **kw)


def session_of(request: web.Request) -> Session | None:
    """The live session of a request (cookie or Bearer), or None."""
    token, _ = request_token(request)
    if token is None:
        return None
    return request.app[SESSIONS_KEY].get(token)


def check_role(session: Session | None, roles: tuple[str, ...]) -> Session:
    """The session when it may act in one of ``roles`` (admin may do everything); else raise."""
    if session is None:
        raise json_error(web.HTTPUnauthorized, "not-authenticated", "log in first")
    if roles and session.role not in roles and session.role != "admin":
        raise json_error(web.HTTPForbidden, "forbidden", "your role may not do this")
    return session


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def require_role(*roles: str) -> Callable[[Handler], Handler]:
    """Decorator: 401 when not logged in, 403 for a role not in ``roles`` (admin passes)."""

    def deco(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            request[SESSION_KEY] = check_role(session_of(request), roles)
            return await handler(request)

        return wrapper

    return deco
