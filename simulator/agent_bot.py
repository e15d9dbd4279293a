"""A simulated agent desktop: logs in over HTTP and holds /ws/agent as a browser does.

It sends ``ready``, records every ``pop`` (with its latency from ``CallOffered.at``), and
closes each call it answered with a ``disposition`` ("resolved") once ``call_ended`` comes,
after ``disposition_delay_s``.  A dropped socket is reconnected (bounded retries, backoff);
a refused session (401) logs in again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Self

import aiohttp
import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

log = logging.getLogger(__name__)

COOKIE_NAME = "cti_session"  # screen_pop.auth.COOKIE_NAME (simulator does not import screen_pop)


class AgentBotError(Exception):
    """Login refused, or the socket could not be (re)opened within the retries."""


class AgentBot:
    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        agent_id: str,
        *,
        origin: str,
        disposition_delay_s: float = 0.0,
        clock: Callable[[], float] = time.time,
        max_retries: int = 5,
        retry_delay_s: float = 0.2,
        send_ready: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.agent_id = agent_id
        self.origin = origin
        self.disposition_delay_s = disposition_delay_s
        self.clock = clock
        self.max_retries = max_retries
        self.retry_delay_s = retry_delay_s
        self.send_ready = send_ready
        self.pops: list[dict[str, Any]] = []
        self.latencies_ms: list[float] = []
        self.errors: list[str] = []
        self.states: list[str] = []
        self.dispositions: list[str] = []
        self.connects = 0
        self.connected = asyncio.Event()
        self._token: str | None = None
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._answered: set[str] = set()
        self._popped: set[str] = set()
        self._stopping = False

    def __repr__(self) -> str:  # never shows the password or the token
        return f"AgentBot({self.username!r}, agent_id={self.agent_id!r})"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name=f"agent-bot-{self.agent_id}")
        return self._task

    async def stop(self) -> None:
        self._stopping = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        for t in [self._task, *self._tasks]:
            if t is not None:
                t.cancel()
        await asyncio.gather(*(t for t in [self._task, *self._tasks] if t is not None),
                             return_exceptions=True)
        self._tasks.clear()
        self.connected.clear()

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def run(self) -> None:
        """Connect and serve until stopped; raises AgentBotError past the retries."""
        failures = 0
        while not self._stopping:
            before = self.connects
            try:
                if self._token is None:
                    await self.login()
                await self._session()
            except InvalidStatus as exc:
                status = exc.response.status_code
                self.errors.append(f"ws refused: HTTP {status}")
                if status == 401:
                    self._token = None  # session expired or logged out: log in again
                elif status == 403:
                    raise AgentBotError(f"websocket refused with 403 for {self.username}") from exc
            except AgentBotError:
                raise
            except (TimeoutError, OSError, aiohttp.ClientError, websockets.exceptions.WebSocketException) as exc:
                self.errors.append(f"connection: {type(exc).__name__}: {exc}")
            finally:
                self.connected.clear()
                self._ws = None
            if self._stopping:
                return
            if self.connects > before:
                failures = 0  # the socket was up: a drop starts the count again
            failures += 1
            if failures > self.max_retries:
                raise AgentBotError(f"{self.username}: gave up after {self.max_retries} retries")
            await asyncio.sleep(min(5.0, self.retry_delay_s * 2 ** (failures - 1)))

    # -- HTTP ----------------------------------------------------------------------------

    async def login(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.post(f"{self.base_url}/api/login",
                             json={"username": self.username, "password": self._password},
                             headers={"Origin": self.origin}) as resp:
            if resp.status != 200:
                raise AgentBotError(f"login of {self.username} refused: HTTP {resp.status}")
            morsel = resp.cookies.get(COOKIE_NAME)
            if morsel is None or not morsel.value:
                raise AgentBotError("login answered without a session cookie")
            self._token = morsel.value

    # -- websocket -----------------------------------------------------------------------

    def _ws_url(self) -> str:
        if self.base_url.startswith("https://"):
            return "wss://" + self.base_url[len("https://"):] + "/ws/agent"
        return "ws://" + self.base_url.removeprefix("http://") + "/ws/agent"

    async def _session(self) -> None:
        assert self._token is not None
        async with connect(
            self._ws_url(),
            origin=self.origin,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"{COOKIE_NAME}={self._token}"},
            proxy=None,
            open_timeout=10,
        ) as ws:
            self._ws = ws
            self.connects += 1
            if self.send_ready:
                await self.send({"type": "ready"})
            self.connected.set()
            async for raw in ws:
                self._on_frame(raw)

    async def send(self, msg: dict[str, Any]) -> None:
        if self._ws is None:
            raise AgentBotError("not connected")
        await self._ws.send(json.dumps(msg))

    def _on_frame(self, raw: str | bytes) -> None:
        now = self.clock()
        try:
            m = json.loads(raw)
        except ValueError:
            self.errors.append("server sent a frame that is not JSON")
            return
        if not isinstance(m, dict):
            self.errors.append("server sent a frame that is not an object")
            return
        t = m.get("type")
        if t == "pop":
            offered = m.get("offered_at")
            lat = (now - offered) * 1000.0 if isinstance(offered, (int, float)) else float("nan")
            self.pops.append({**m, "received_at": now, "latency_ms": lat})
            self.latencies_ms.append(lat)
            self._popped.add(str(m.get("call_id")))
        elif t == "call_answered":
            self._answered.add(str(m.get("call_id")))
        elif t == "call_ended":
            call_id = str(m.get("call_id"))
            self._popped.discard(call_id)
            if call_id in self._answered:
                self._answered.discard(call_id)
                t_ = asyncio.create_task(self._dispose(call_id))
                self._tasks.add(t_)
                t_.add_done_callback(self._tasks.discard)
        elif t in ("state", "hello"):
            self.states.append(str(m.get("state")))
        elif t == "error":
            self.errors.append(f"{m.get('code')}: {m.get('message')}")

    async def _dispose(self, call_id: str) -> None:
        if self.disposition_delay_s > 0:
            await asyncio.sleep(self.disposition_delay_s)
        try:
            await self.send({"type": "disposition", "call_id": call_id, "code": "resolved", "notes": ""})
            self.dispositions.append(call_id)
        except (AgentBotError, websockets.exceptions.WebSocketException, OSError) as exc:  # the socket dropped
            self.errors.append(f"disposition for {call_id} not sent: {exc}")
