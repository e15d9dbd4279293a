"""Shared fakes and fixtures of the screen_pop tests (no tests here).

In-memory fakes of the Protocols in screen_pop.deps (not mocks), the real Bus, and a real
aiohttp server on 127.0.0.1 with real HTTP and websockets clients.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from websockets.asyncio.client import ClientConnection, connect

from cti.bus import Bus
from cti.domain import AgentStateChanged, CallOffered
from screen_pop.deps import WebConfig, WebDeps
from screen_pop.hub import Hub
from screen_pop.web import HUB_KEY, build_app

COOKIE = "cti_session"


@dataclass(frozen=True)
class User:
    username: str
    role: str
    agent_id: str | None


class FakeAuth:
    def __init__(self) -> None:
        self.users: dict[str, tuple[str, User]] = {}
        self.calls = 0

    def add(self, username: str, password: str, role: str, agent_id: str | None = None) -> None:
        self.users[username] = (password, User(username, role, agent_id))

    async def verify_user(self, username: str, password: str) -> User | None:
        self.calls += 1
        entry = self.users.get(username)
        if entry is None or entry[0] != password:
            return None
        return entry[1]


@dataclass(frozen=True)
class Record:
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)


@dataclass(frozen=True)
class CustomerRow:
    id: int
    data: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dict(self.data)


class FakeCustomers:
    def __init__(self) -> None:
        self.by_id: dict[int, dict[str, Any]] = {}
        self.phones: dict[str, int] = {}
        self.gate: asyncio.Event | None = None  # when set, lookups wait for it
        self.lookups = 0

    def add(self, cid: int, phone: str, record: dict[str, Any]) -> None:
        self.by_id[cid] = record
        self.phones[phone] = cid

    async def customer_360(self, customer_id: int) -> Record:
        self.lookups += 1
        if self.gate is not None:
            await self.gate.wait()
        return Record(self.by_id[customer_id])

    async def find_customer_by_phone(self, raw: str) -> CustomerRow | None:
        cid = self.phones.get(raw)
        return None if cid is None else CustomerRow(cid, self.by_id[cid])


class IllegalState(Exception):
    error_id = "invalid-transition"


class UnknownCallError(Exception):
    error_id = "unknown-call"


_ALLOWED = {
    "login": {"logged_out"},
    "logout": {"ready", "not_ready", "wrap_up", "reserved"},
    "set_ready": {"ready", "not_ready", "wrap_up"},
    "set_not_ready": {"ready", "not_ready", "wrap_up", "reserved"},
}
_TARGET = {"login": "not_ready", "logout": "logged_out", "set_ready": "ready", "set_not_ready": "not_ready"}


class FakeAcd:
    """The AgentControl Protocol over a small state table; publishes AgentStateChanged."""

    def __init__(self, bus: Bus, agents: list[str]) -> None:
        self.bus = bus
        self.states: dict[str, str] = dict.fromkeys(agents, "logged_out")
        self.current: dict[str, str | None] = dict.fromkeys(agents)
        self.log: list[tuple[Any, ...]] = []
        self.dispositions: list[tuple[str, str, str, str]] = []

    def _go(self, op: str, agent_id: str, reason: str = "", call_id: str | None = None) -> None:
        self.log.append((op, agent_id, reason))
        if agent_id not in self.states:
            raise KeyError(f"unknown agent {agent_id!r}")
        state = self.states[agent_id]
        if state not in _ALLOWED[op]:
            raise IllegalState(f"agent event {op!r} is not allowed in state {state!r}")
        self.states[agent_id] = _TARGET[op]
        self.bus.publish(AgentStateChanged(agent_id, _TARGET[op], reason, call_id, time.time()))

    def login(self, agent_id: str) -> None:
        self._go("login", agent_id, "login")

    def logout(self, agent_id: str) -> None:
        self._go("logout", agent_id, "logout")

    def set_ready(self, agent_id: str) -> None:
        self._go("set_ready", agent_id)

    def set_not_ready(self, agent_id: str, reason: str) -> None:
        self._go("set_not_ready", agent_id, reason)

    def disposition(self, agent_id: str, call_id: str, code: str, notes: str) -> None:
        if self.current.get(agent_id) != call_id:
            raise UnknownCallError(f"unknown call {call_id!r}")
        self.dispositions.append((agent_id, call_id, code, notes))

    # test helpers: what the real ACD does on its own
    def force(self, agent_id: str, state: str, call_id: str | None = None, reason: str = "") -> None:
        self.states[agent_id] = state
        self.current[agent_id] = call_id
        self.bus.publish(AgentStateChanged(agent_id, state, reason, call_id, time.time()))

    def snapshot(self) -> dict[str, Any]:
        ready = sum(1 for s in self.states.values() if s == "ready")
        return {
            "at": time.time(),
            "agents": [{"id": a, "name": a.upper(), "state": s, "reason": "", "current_call": self.current[a]}
                       for a, s in sorted(self.states.items())],
            "calls": [],
            "queues": {"sales": {"waiting": 1, "offering": 0, "ready_agents": ready}},
        }


CUSTOMER_360 = {
    "customer": {"id": 7, "name": "Ada Lovelace", "account_no": "ACC-0007"},
    "value_tier": "gold",
    "account_manager": {"name": "Grace Hopper"},
    "churn": {"risk": "high", "reasons": ["3 complaints in 30 days"]},
    "last_contacts": [{"at": "2024-05-01", "channel": "phone", "disposition": "complaint", "notes": "late"}],
}


@dataclass
class Env:
    base_url: str
    origin: str
    bus: Bus
    auth: FakeAuth
    customers: FakeCustomers
    acd: FakeAcd
    app: web.Application
    runner: web.AppRunner

    @property
    def hub(self) -> Hub:
        return self.app[HUB_KEY]

    @property
    def ws_url(self) -> str:
        return "ws" + self.base_url.removeprefix("http")

    async def login(self, username: str, password: str) -> tuple[int, str | None, aiohttp.ClientResponse]:
        async with aiohttp.ClientSession() as http, http.post(f"{self.base_url}/api/login",
                             json={"username": username, "password": password}) as r:
            await r.read()
            m = r.cookies.get(COOKIE)
            return r.status, (m.value if m is not None else None), r

    async def token(self, username: str) -> str:
        status, tok, _ = await self.login(username, "pw-" + username)
        assert status == 200 and tok
        return tok

    def ws(self, path: str, token: str | None, *, origin: str | None = "", bearer: bool = False) -> Any:
        headers: dict[str, str] = {}
        if token is not None:
            if bearer:
                headers["Authorization"] = f"Bearer {token}"
            else:
                headers["Cookie"] = f"{COOKIE}={token}"
        o = self.origin if origin == "" else origin
        return connect(self.ws_url + path, origin=o, additional_headers=headers, proxy=None,  # type: ignore[arg-type]
                       open_timeout=5)

    def offer(self, agent_id: str, call_id: str = "c1", customer_id: int | None = 7, **kw: Any) -> CallOffered:
        ev = CallOffered(call_id, "cti-" + call_id, agent_id, kw.get("offer_no", 1), kw.get("queue", "sales"),
                         kw.get("caller_num", "+15550001"), kw.get("caller_name", "ADA L"), customer_id,
                         kw.get("ivr_choice", "billing"), "", time.time())
        self.bus.publish(ev)
        return ev


async def recv_json(ws: ClientConnection, timeout: float = 3.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def recv_type(ws: ClientConnection, t: str, timeout: float = 3.0) -> dict[str, Any]:
    """The next frame of type ``t``, skipping others."""
    async def go() -> dict[str, Any]:
        while True:
            m = json.loads(await ws.recv())
            if m["type"] == t:
                return m  # type: ignore[no-any-return]
    return await asyncio.wait_for(go(), timeout)


async def frames_for(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                out.append(json.loads(await ws.recv()))
    except TimeoutError:
        pass
    return out


USERS = [("alice", "agent", "a1"), ("bob", "agent", "a2"), ("sue", "supervisor", None),
         ("root", "admin", None), ("nobody", "agent", None)]


async def start_env(config: WebConfig | None = None, store: Any = None) -> Env:
    """The web edge on a real socket. ``store``: a real ``crm_core.Store`` for logins and
    customers (its users are created here); else the fakes with ``CUSTOMER_360``."""
    bus = Bus()
    auth: Any
    customers: Any
    if store is not None:
        for name, role, agent in USERS:
            await store.set_user(name, "pw-" + name, role, agent_id=agent)
        auth = customers = store
    else:
        auth = FakeAuth()
        for name, role, agent in USERS:
            auth.add(name, "pw-" + name, role, agent)
        customers = FakeCustomers()
        customers.add(7, "+15550001", CUSTOMER_360)
    acd = FakeAcd(bus, ["a1", "a2"])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    origin = f"http://127.0.0.1:{port}"
    cfg = config or WebConfig(stats_interval_s=0.2)
    deps = WebDeps(bus=bus, auth=auth, customers=customers, acd=acd, config=cfg)
    app = build_app(deps, allowed_origins=[origin])
    runner = web.AppRunner(app)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return Env(origin, origin, bus, auth, customers, acd, app, runner)


__all__ = ["CUSTOMER_360", "Env", "FakeAcd", "frames_for", "recv_json", "recv_type", "start_env"]
