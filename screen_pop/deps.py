"""What the web edge needs from the rest of the system, as Protocols, and its settings.

The composition root passes the real ones (``crm_core.store.Store`` for ``AuthStore`` and
``CustomerStore``, ``acd.distributor.Distributor`` for ``AgentControl``, ``callcenter.app.CtiApp``
for ``AsteriskLinks`` and ``IvrReloader``); tests pass small in-memory fakes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cti.ami.link import LinkState
from cti.bus import Bus

ROLES: tuple[str, ...] = ("agent", "supervisor", "admin")


class UserLike(Protocol):
    @property
    def username(self) -> str: ...
    @property
    def role(self) -> str: ...  # 'agent' | 'supervisor' | 'admin'
    @property
    def agent_id(self) -> str | None: ...


class AuthStore(Protocol):
    async def verify_user(self, username: str, password: str) -> UserLike | None: ...


class JsonRecord(Protocol):
    def to_json(self) -> dict[str, Any]: ...


class CustomerRecord(Protocol):
    @property
    def id(self) -> int: ...
    def to_json(self) -> dict[str, Any]: ...


class CustomerStore(Protocol):
    async def customer_360(self, customer_id: int) -> JsonRecord: ...
    async def find_customer_by_phone(self, raw: str) -> CustomerRecord | None: ...


class AgentControl(Protocol):
    """The ACD's agent commands.  They may raise (an exception whose message is shown to the
    agent, with an ``error_id`` when it has one) for an illegal state change.

    ``snapshot()`` returns at least ``{"agents": [{"id": ..., "state": ...}, ...]}``.
    """

    def login(self, agent_id: str) -> None: ...
    def logout(self, agent_id: str) -> None: ...
    def set_ready(self, agent_id: str) -> None: ...
    def set_not_ready(self, agent_id: str, reason: str) -> None: ...
    def disposition(self, agent_id: str, call_id: str, code: str, notes: str) -> None: ...
    def snapshot(self) -> dict[str, Any]: ...


class AsteriskLinks(Protocol):
    """The state of each Asterisk server's AMI link, and a watch on its updates."""

    def link_states(self) -> Sequence[LinkState]: ...

    def watch_links(self, fn: Callable[[LinkState], None]) -> Callable[[], None]:
        """Call ``fn(state)`` inline on every update (it must be cheap); returns the call
        that stops watching."""
        ...


class IvrReloader(Protocol):
    def reload_ivr(self, by: str) -> dict[str, Any]:
        """Reload the IVR flows; ``{"ok", "version", "old_version", "flows", "added", "removed",
        "changed", "errors": [one "FILE: node ID: field: reason" line each]}``.  A failed reload
        (``ok`` false) has changed nothing."""
        ...


@dataclass(frozen=True, slots=True)
class WebConfig:
    session_ttl_s: float = 12 * 3600.0
    max_sessions: int = 50_000
    cookie_secure: bool = False  # set True behind HTTPS
    login_max_failures: int = 5  # per username ...
    login_window_s: float = 60.0  # ... in this window -> 429
    send_queue: int = 256  # frames waiting per connection before it is dropped as too slow
    send_timeout_s: float = 10.0  # one frame's write may take this long
    heartbeat_s: float = 30.0
    max_msg_size: int = 64 * 1024
    stats_interval_s: float = 2.0
    bus_queue: int = 10_000
    customer_timeout_s: float = 2.0  # a pop goes out without the 360 past this
    lookup_by_phone: bool = True  # no customer_id: try the caller's number
    max_lookups: int = 64  # concurrent customer lookups
    not_ready_on_disconnect: bool = True  # the agent's last socket closed -> not_ready


@dataclass(frozen=True, slots=True)
class WebDeps:
    bus: Bus
    auth: AuthStore
    customers: CustomerStore
    acd: AgentControl
    config: WebConfig = field(default_factory=WebConfig)
    clock: Callable[[], float] = time.time
    links: AsteriskLinks | None = None  # None: no Asterisk link to show (the pages show none)
    ivr: IvrReloader | None = None  # None: POST /api/ivr/reload answers 503
