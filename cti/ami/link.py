"""The state of one AMI link as people need to see it: up or down, since when, and why.

Pure: no I/O, no logging.  The client (:mod:`cti.ami.client`) feeds the outcome of each
connection attempt to :func:`logged_in` or :func:`failed`, and logs and reports a change only
when :func:`changed` says the state did (a link that keeps failing the same way says so once).

States (``LinkState.state``)::

    connecting ──login──> up ──drop──> lost ──retry──> up
        │                  ^             │
        │                  │             └──retry fails──┐
        └──fails──> unreachable | auth_failed | no_login ┘ (each one until another, or up)

* ``connecting``: no attempt has an outcome yet (the process is starting);
* ``unreachable``: no TCP connection (refused, timed out, no route, no such host);
* ``auth_failed``: Asterisk answered the Login with an error (user or secret wrong, ACL);
* ``no_login``: connected, but no AMI login came of it (silent peer, closed, not an AMI);
* ``lost``: a logged-in link dropped (EOF, reset, silent for too long);
* ``up``: logged in.

``since`` is when the link last went up, or down (``connecting`` counts as down from the
start); ``attempts`` counts the failed attempts since it was last up.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass, replace
from typing import Any

CONNECTING = "connecting"
UP = "up"
LOST = "lost"
UNREACHABLE = "unreachable"
AUTH_FAILED = "auth_failed"
NO_LOGIN = "no_login"

STATES = (CONNECTING, UP, LOST, UNREACHABLE, AUTH_FAILED, NO_LOGIN)

# how each state reads in a log line or on a page
WORDS = {CONNECTING: "connecting", UP: "up", LOST: "link lost", UNREACHABLE: "unreachable",
         AUTH_FAILED: "authentication failed", NO_LOGIN: "connected but no login"}

MAX_REASON = 200  # a peer's message is cut to this many characters


@dataclass(frozen=True, slots=True)
class LinkState:
    """One AMI link's state.  ``reason`` is empty when up; it may hold Asterisk's own words
    (a Login's ``Message``): text to show as text, never markup."""

    server: str
    host: str
    port: int
    username: str
    state: str = CONNECTING
    reason: str = ""
    since: float = 0.0  # wall clock: when the link last went up or down
    attempts: int = 0  # failed attempts since it was last up
    changed_at: float = 0.0  # wall clock: when ``state`` last changed

    @property
    def up(self) -> bool:
        return self.state == UP

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def to_json(self) -> dict[str, Any]:
        """Everything, for supervisors (``/api/health``, the supervisor feed)."""
        return {"server": self.server, "host": self.host, "port": self.port, "username": self.username,
                "up": self.up, "state": self.state, "reason": self.reason, "since": self.since,
                "attempts": self.attempts, "changed_at": self.changed_at}

    def public(self) -> dict[str, Any]:
        """What an agent's page may know: no address, no user, no count."""
        return {"server": self.server, "up": self.up, "state": self.state, "reason": self.reason,
                "since": self.since}


def initial(server: str, host: str, port: int, username: str, now: float) -> LinkState:
    return LinkState(server, host, port, username, CONNECTING, "", now, 0, now)


def logged_in(s: LinkState, now: float) -> LinkState:
    if s.up:
        return s
    return replace(s, state=UP, reason="", since=now, attempts=0, changed_at=now)


def failed(s: LinkState, state: str, reason: str, now: float) -> LinkState:
    """The state after an attempt (or a logged-in link) failed as ``state`` for ``reason``."""
    if state not in (LOST, UNREACHABLE, AUTH_FAILED, NO_LOGIN):
        raise ValueError(f"not a failure state: {state!r}")
    reason = " ".join(reason.split())[:MAX_REASON]
    since = now if s.up else s.since
    attempts = 0 if state == LOST else s.attempts + 1
    changed_at = now if state != s.state else s.changed_at
    return replace(s, state=state, reason=reason, since=since, attempts=attempts, changed_at=changed_at)


def changed(old: LinkState, new: LinkState) -> bool:
    """Whether the move from ``old`` to ``new`` is worth a log line (the state differs)."""
    return old.state != new.state


def describe(old: LinkState, new: LinkState, retry_max: float) -> str:
    """The log line for the change from ``old`` to ``new`` (never the secret: it is not here)."""
    who = f"AMI {new.server!r} at {new.address} (user {new.username!r})"
    if new.up:
        if old.state == CONNECTING:
            return f"{who}: connected"
        tries = f", {old.attempts} failed attempt{'s' * (old.attempts != 1)}" if old.attempts else ""
        return f"{who}: connected again after {new.since - old.since:.1f} s down{tries}"
    retry = f"retrying with backoff (at most {retry_max:g} s apart)"
    words = WORDS[new.state]
    if new.state == LOST:
        return f"{who}: {words} ({new.reason}); reconnecting"
    if new.state == AUTH_FAILED:
        return (f"{who}: {words} ({new.reason}); check the username and secret against manager.conf; "
                f"{retry}")
    return f"{who}: {words} ({new.reason}); {retry}"


def reason_of(e: BaseException) -> str:
    """``connection refused``, ``timed out``, ``Name or service not known``: short and lower case
    for an OS error, the message for anything else."""
    if isinstance(e, socket.gaierror):
        return e.strerror or str(e)
    if isinstance(e, TimeoutError) and not e.errno:
        return "timed out"
    if isinstance(e, OSError) and e.errno:
        text = os.strerror(e.errno) if e.errno in errno.errorcode else (e.strerror or str(e))
        return text[:1].lower() + text[1:]
    return str(e) or type(e).__name__
