"""Pieces shared by the real-Asterisk suite and its simulator twin: an AMI observer that records
the PBX's own events, a TCP proxy that can cut the backend's AMI link, and the agent desks.

Nothing here knows which PBX is behind the AMI port: the real suite points it at Asterisk 22,
``tests/test_callog_scenarios_sim.py`` at the built-in simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from cti.ami.client import AmiClient
from cti.ami.protocol import Message
from simulator.agent_bot import AgentBot
from tests.ami_proxy import AmiProxy

OBSERVER_USER, OBSERVER_SECRET = "ctitest", "testsecret"
# the events the reference times come from (the rest, VarSet, CEL, Newstate ..., are dropped)
T = TypeVar("T")
KEEP = frozenset({"Newchannel", "Newexten", "BridgeEnter", "BridgeLeave", "Hangup", "HangupRequest",
                  "SoftHangupRequest", "UserEvent", "DialBegin", "DialEnd", "OriginateResponse",
                  "SuccessfulAuth", "FullyBooted", "Shutdown", "AGIExecStart"})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(interval)


@dataclass(frozen=True, slots=True)
class Seen:
    """One event as the PBX stamped it (``Timestamp``, Asterisk's ``timestampevents``) or, from a
    PBX that does not stamp its events (the simulator), as it arrived here."""

    at: float
    msg: Message


class Observer:
    """Our own AMI connection (a second user, read=all): every event the scenarios need, with
    the PBX's own time."""

    def __init__(self, host: str, port: int, user: str = OBSERVER_USER, secret: str = OBSERVER_SECRET) -> None:
        # retries fast: after a restart it must be back before the backend logs in again
        self.client = AmiClient(host, port, user, secret, name="observer", backoff_initial=0.05, backoff_max=0.25)
        self.events: list[Seen] = []
        self.client.add_listener(self._on_event)

    def _on_event(self, msg: Message) -> None:
        if msg.name not in KEEP:
            return
        stamp = msg.get("Timestamp")
        try:
            at = float(stamp) if stamp else time.time()
        except ValueError:
            at = time.time()
        self.events.append(Seen(at, msg))

    async def start(self) -> None:
        await self.client.start(timeout=10)

    async def stop(self) -> None:
        await self.client.stop()

    def of(self, linkedid: str) -> list[Seen]:
        return [e for e in self.events if e.msg.get("Linkedid") == linkedid]

    def hung_up(self, uniqueid: str) -> Seen | None:
        for e in self.events:
            if e.msg.name == "Hangup" and e.msg.get("Uniqueid") == uniqueid:
                return e
        return None

    def entered(self, uniqueid: str, context: str) -> bool:
        return any(e.msg.name == "Newexten" and e.msg.get("Uniqueid") == uniqueid
                   and e.msg.get("Context") == context for e in self.events)

    def bridged(self, uniqueid: str) -> bool:
        """The caller shares a (non-holding) bridge with another channel."""
        members: dict[str, set[str]] = {}
        for e in self.events:
            m = e.msg
            if m.name not in ("BridgeEnter", "BridgeLeave") or m.get("BridgeTechnology") == "holding_bridge":
                continue
            b = members.setdefault(m.get("BridgeUniqueid") or "", set())
            if m.name == "BridgeEnter":
                b.add(m.get("Uniqueid") or "")
            else:
                b.discard(m.get("Uniqueid") or "")
            if uniqueid in b and len(b) > 1:
                return True
        return False

    def logins(self, user: str, after: float) -> list[float]:
        """When ``user`` logged in (``SuccessfulAuth``, class security) after ``after``."""
        return [e.at for e in self.events if e.msg.name == "SuccessfulAuth"
                and e.msg.get("AccountID") == user and e.at >= after]

    async def wait_hangup(self, uniqueid: str, timeout: float) -> Seen:
        await wait_until(lambda: self.hung_up(uniqueid) is not None, timeout, f"Hangup of {uniqueid}")
        seen = self.hung_up(uniqueid)
        assert seen is not None
        return seen


class CutProxy(AmiProxy):
    """Relays the backend's AMI link; ``cut`` aborts it and refuses reconnections until ``restore``."""

    def __init__(self, upstream_port: int) -> None:
        super().__init__(upstream_port)
        self.is_cut = False
        self.cut_at: float | None = None
        self.restored_at: float | None = None
        self.linked: list[float] = []  # when each upstream link was made
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def _accept(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        if self.is_cut:
            cw.transport.abort()
            return
        try:
            await super()._accept(cr, cw)
        except OSError:  # the PBX is not listening (restarting): the client tries again
            cw.transport.abort()

    async def relay(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter,
                    ur: asyncio.StreamReader, uw: asyncio.StreamWriter) -> None:
        self.linked.append(time.time())
        link = (cw, uw)
        self._links.add(link)

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, RuntimeError):
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()

        try:
            up = asyncio.ensure_future(pump(cr, uw))
            down = asyncio.ensure_future(pump(ur, cw))
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            for t in (up, down):
                t.cancel()
            await asyncio.gather(up, down, return_exceptions=True)
        finally:
            self._links.discard(link)

    async def cut(self) -> float:
        self.is_cut = True
        self.cut_at = time.time()
        for cw, uw in list(self._links):
            cw.transport.abort()
            uw.transport.abort()
        return self.cut_at

    async def restore(self) -> float:
        self.is_cut = False
        self.restored_at = time.time()
        return self.restored_at


class ProxyThread:
    """A :class:`CutProxy` on an event loop of its own, so it relays whatever the test's loop is doing
    (or between two tests, when pytest's loop is not running)."""

    def __init__(self, upstream_port: int) -> None:
        self.proxy = CutProxy(upstream_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ami-proxy", daemon=True)

    @property
    def port(self) -> int:
        return self.proxy.port

    async def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def start(self) -> None:
        self._thread.start()
        await self._call(self.proxy.start())

    async def cut(self) -> float:
        return await self._call(self.proxy.cut())

    async def restore(self) -> float:
        return await self._call(self.proxy.restore())

    async def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            await self._call(self.proxy.cut())
            await self._call(self.proxy.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        await asyncio.to_thread(self._thread.join, 5)
        if not self._thread.is_alive():
            self._loop.close()


class AgentDesk:
    """One agent bot per agent (HTTP login, the agent websocket, dispositions "resolved"), and
    who is ready, in which order (the ACD offers to the agent idle longest)."""

    def __init__(self, base_url: str, passwords: dict[str, str]) -> None:
        self.bots = {aid: AgentBot(base_url, f"agent{aid}", pw, aid, origin=base_url, send_ready=False)
                     for aid, pw in passwords.items()}

    async def start(self) -> None:
        for b in self.bots.values():
            b.start()
        await asyncio.gather(*(asyncio.wait_for(b.connected.wait(), 10) for b in self.bots.values()))
        await self.ready_only(())

    async def stop(self) -> None:
        await asyncio.gather(*(b.stop() for b in self.bots.values()))

    def state(self, aid: str) -> str:
        states = self.bots[aid].states
        return states[-1] if states else ""

    async def _to(self, aid: str, state: str) -> None:
        if self.state(aid) == state:
            return
        await self.bots[aid].send({"type": state} if state == "ready" else {"type": state, "reason": "lab"})
        await wait_until(lambda: self.state(aid) == state, 5, f"agent {aid} {state}")

    async def wait_settled(self, timeout: float = 10) -> None:
        """No agent on a call, ringing or in wrap-up (the last scenario is over)."""
        busy = ("reserved", "ringing", "on_call", "wrap_up")
        await wait_until(lambda: not any(self.state(a) in busy for a in self.bots), timeout,
                         "every agent off calls: " + str({a: self.state(a) for a in self.bots}))

    async def ready_only(self, order: tuple[str, ...]) -> None:
        """Exactly these agents ready, the first idle longest."""
        await self.wait_settled()
        for aid in self.bots:
            await self._to(aid, "not_ready")
        for aid in order:
            await self._to(aid, "ready")
            await asyncio.sleep(0.02)  # distinct idle_since, in this order
