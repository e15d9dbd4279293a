"""The websocket hub: agent sockets (screen pops) and the supervisor feed.

One consumer task reads a bounded bus subscription (CallOffered, CallAnswered, CallEnded,
AgentStateChanged) and routes each event to the sockets it concerns:

* CallOffered -> a ``pop`` to the offered agent's sockets only, carrying the customer 360;
* CallAnswered / CallEnded -> the agent of that call only;
* AgentStateChanged -> that agent's sockets, and every supervisor socket.

The AMI links' state (``WebDeps.links``) goes out as a ``links`` frame after ``hello`` and on
every update: in full to the supervisors, and in the agents' view (no address, user or
count) to every agent socket when that view changed.

Every socket has its own bounded send queue and sender task, so a slow client never stalls
the consumer or the other clients: a client whose queue fills is dropped (closed with 1013).
A pop is queued at once as a pending lookup (a task shared by the agent's sockets); each
sender awaits it in turn, which keeps the frames of one socket in event order while the
consumer moves on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import WSCloseCode, web

from cti.ami.link import LinkState
from cti.bus import Subscription
from cti.domain import AgentStateChanged, CallAnswered, CallEnded, CallOffered, DomainEvent
from screen_pop.deps import WebDeps
from screen_pop.errors import MessageError
from screen_pop.messages import (
    CallAnsweredMsg,
    CallEndedMsg,
    ClientMessage,
    DispositionMsg,
    ErrorMsg,
    Hello,
    LinksMsg,
    NotReady,
    Ping,
    Pong,
    Pop,
    Ready,
    StateMsg,
    StatsMsg,
    encode,
    parse_client,
)

log = logging.getLogger(__name__)

MAX_TRACKED_CALLS = 100_000



class Connection:
    """One websocket with its bounded send queue and sender task."""

    def __init__(self, hub: Hub, ws: web.WebSocketResponse, *, agent_id: str | None, token: str,
                 username: str) -> None:
        self.hub = hub
        self.ws = ws
        self.agent_id = agent_id
        self.token = token
        self.username = username
        cfg = hub.deps.config
        self._q: asyncio.Queue[str | asyncio.Task[str]] = asyncio.Queue(cfg.send_queue)
        self._timeout = cfg.send_timeout_s
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self.sent = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._sender(), name=f"ws-send-{self.username}")

    def send(self, frame: str | asyncio.Task[str]) -> bool:
        """Queue a frame (never blocks); a client that lags too far behind is dropped."""
        if self.closed:
            return False
        try:
            self._q.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning("dropping slow websocket client", extra={"agent_id": self.agent_id,
                                                                "user": self.username})
            self.hub.dropped_clients += 1
            self.close(WSCloseCode.TRY_AGAIN_LATER, b"too slow")
            return False
        return True

    def close(self, code: int = WSCloseCode.GOING_AWAY, message: bytes = b"") -> None:
        if self.closed:
            return
        self.closed = True
        if self._task is not None:
            self._task.cancel()
        self.hub.spawn(self._close_ws(code, message))

    async def aclose(self, code: int = WSCloseCode.GOING_AWAY, message: bytes = b"") -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._close_ws(code, message)

    async def _close_ws(self, code: int, message: bytes) -> None:
        try:
            await self.ws.close(code=code, message=message)
        except Exception:  # the peer is gone already
            log.debug("close failed", exc_info=True)

    async def _sender(self) -> None:
        try:
            while True:
                frame = await self._q.get()
                text = frame if isinstance(frame, str) else await asyncio.shield(frame)
                await asyncio.wait_for(self.ws.send_str(text), self._timeout)
                self.sent += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  write timeout, reset, closing transport: logged, socket closed
            log.info("websocket send failed: %s", type(exc).__name__,
                     extra={"agent_id": self.agent_id, "user": self.username})
            self.close(WSCloseCode.GOING_AWAY, b"send failed")


class Hub:
    def __init__(self, deps: WebDeps) -> None:
        self.deps = deps
        self._agents: dict[str, set[Connection]] = {}
        self._supervisors: set[Connection] = set()
        self._call_agent: OrderedDict[str, str] = OrderedDict()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sub: Subscription | None = None
        self._sem: asyncio.Semaphore | None = None
        self._unwatch: Callable[[], None] | None = None
        self._agent_links = ""  # the last links frame broadcast to the agents
        self.pops = 0
        self.dropped_clients = 0
        self.lookup_errors = 0

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        cfg = self.deps.config
        self._sem = asyncio.Semaphore(cfg.max_lookups)
        self._sub = self.deps.bus.queue(CallOffered, CallAnswered, CallEnded, AgentStateChanged,
                                        maxsize=cfg.bus_queue)
        self.spawn(self._consume())
        self.spawn(self._stats_loop())
        if self.deps.links is not None:
            self._unwatch = self.deps.links.watch_links(self._link_update)

    async def stop(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        if self._sub is not None:
            self.deps.bus.unsubscribe(self._sub)
            self._sub = None
        await self.close_all()
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def close_all(self) -> None:
        """Close every socket ("server shutdown"): their handlers end, so the server's shutdown
        does not wait out its grace period for them."""
        conns = [c for cs in self._agents.values() for c in cs] + list(self._supervisors)
        await asyncio.gather(*(c.aclose(WSCloseCode.GOING_AWAY, b"server shutdown") for c in conns),
                             return_exceptions=True)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        t = asyncio.create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    # -- connections ---------------------------------------------------------------------

    def add_agent(self, conn: Connection) -> None:
        assert conn.agent_id is not None
        self._agents.setdefault(conn.agent_id, set()).add(conn)
        conn.start()
        conn.send(encode(Hello(conn.agent_id, self.agent_state(conn.agent_id))))
        frames = self._links_frames()
        if frames is not None:
            conn.send(frames[1])

    def remove_agent(self, conn: Connection) -> None:
        conn.close()
        assert conn.agent_id is not None
        conns = self._agents.get(conn.agent_id)
        if conns is None:
            return
        conns.discard(conn)
        if conns:
            return
        del self._agents[conn.agent_id]
        if self.deps.config.not_ready_on_disconnect:
            try:
                self.deps.acd.set_not_ready(conn.agent_id, "disconnected")
            except Exception as exc:  # noqa: BLE001  logged out, on a call ...: logged, nothing to do
                log.debug("not_ready on disconnect refused: %s", exc, extra={"agent_id": conn.agent_id})

    def add_supervisor(self, conn: Connection) -> None:
        self._supervisors.add(conn)
        conn.start()
        conn.send(encode(Hello(None, "")))
        frames = self._links_frames()
        if frames is not None:
            conn.send(frames[0])
        try:
            conn.send(encode(StatsMsg(self.deps.acd.snapshot())))
        except Exception:
            log.exception("acd snapshot failed")

    def remove_supervisor(self, conn: Connection) -> None:
        conn.close()
        self._supervisors.discard(conn)

    def connections(self, agent_id: str) -> int:
        return len(self._agents.get(agent_id, ()))

    @property
    def supervisor_count(self) -> int:
        return len(self._supervisors)

    async def close_session(self, token: str) -> set[str]:
        """Close every socket opened with this session; the agent ids left with no socket."""
        conns = [c for cs in self._agents.values() for c in cs if c.token == token]
        conns += [c for c in self._supervisors if c.token == token]
        await asyncio.gather(*(c.aclose(WSCloseCode.POLICY_VIOLATION, b"logged out") for c in conns),
                             return_exceptions=True)
        orphaned: set[str] = set()
        for c in conns:
            if c.agent_id is None:
                self._supervisors.discard(c)
                continue
            cs = self._agents.get(c.agent_id)
            if cs is not None:
                cs.discard(c)
                if not cs:
                    del self._agents[c.agent_id]
                    orphaned.add(c.agent_id)
        return orphaned

    def agent_state(self, agent_id: str) -> str:
        try:
            snap = self.deps.acd.snapshot()
        except Exception:
            log.exception("acd snapshot failed")
            return "unknown"
        for a in snap.get("agents", ()):
            if isinstance(a, dict) and a.get("id") == agent_id:
                return str(a.get("state", "unknown"))
        return "logged_out"

    # -- the AMI links ------------------------------------------------------------------

    def _links_frames(self) -> tuple[str, str] | None:
        """The ``links`` frames now: (supervisors' view, agents' view); None without links."""
        links = self.deps.links
        if links is None:
            return None
        try:
            states = list(links.link_states())
        except Exception:
            log.exception("link states failed")
            return None
        return (encode(LinksMsg(tuple(s.to_json() for s in states))),
                encode(LinksMsg(tuple(s.public() for s in states))))

    def _link_update(self, state: LinkState) -> None:
        frames = self._links_frames()
        if frames is None:
            return
        full, public = frames
        for c in list(self._supervisors):
            c.send(full)
        if public != self._agent_links:
            self._agent_links = public
            for conns in list(self._agents.values()):
                for c in list(conns):
                    c.send(public)

    # -- agent -> server -----------------------------------------------------------------

    def handle_text(self, conn: Connection, raw: str | bytes) -> None:
        """One frame from an agent; every failure becomes an ``error`` frame."""
        try:
            msg = parse_client(raw)
        except MessageError as exc:
            conn.send(encode(ErrorMsg(exc.error_id, exc.message)))
            return
        try:
            reply = self._command(conn, msg)
        except Exception as exc:  # noqa: BLE001  the ACD refused (illegal state change, unknown call ...): error frame
            code = getattr(exc, "error_id", "rejected")
            conn.send(encode(ErrorMsg(str(code), str(exc) or type(exc).__name__, msg.TYPE)))
            return
        if reply is not None:
            conn.send(encode(reply))

    def _command(self, conn: Connection, msg: ClientMessage) -> Pong | None:
        acd = self.deps.acd
        agent_id = conn.agent_id
        if isinstance(msg, Ping):
            return Pong(self.deps.clock())
        if agent_id is None:
            raise MessageError("forbidden", "supervisor sockets take no commands")
        if isinstance(msg, Ready):
            try:
                acd.set_ready(agent_id)
            except Exception:
                if self.agent_state(agent_id) != "logged_out":
                    raise
                acd.login(agent_id)  # first ready of the shift logs the agent in
                acd.set_ready(agent_id)
        elif isinstance(msg, NotReady):
            reason = msg.reason or "break"
            try:
                acd.set_not_ready(agent_id, reason)
            except Exception:
                if self.agent_state(agent_id) != "logged_out":
                    raise
                acd.login(agent_id)
                acd.set_not_ready(agent_id, reason)
        elif isinstance(msg, DispositionMsg):
            acd.disposition(agent_id, msg.call_id, msg.code, msg.notes)
        return None

    # -- bus -> sockets ------------------------------------------------------------------

    async def _consume(self) -> None:
        assert self._sub is not None
        sub = self._sub
        while True:
            ev = await sub.get()
            try:
                self.dispatch(ev)
            except Exception:
                log.exception("hub dispatch failed", extra={"event": type(ev).__name__})

    def dispatch(self, ev: DomainEvent) -> None:
        if isinstance(ev, CallOffered):
            self._remember(ev.call_id, ev.agent_id)
            conns = self._agents.get(ev.agent_id)
            if not conns:
                log.info("pop for %s: agent has no socket", ev.agent_id, extra={"call_id": ev.call_id})
                return
            task = self.spawn(self._pop_text(ev))
            for c in list(conns):
                c.send(task)
            self.pops += 1
        elif isinstance(ev, CallAnswered):
            self._remember(ev.call_id, ev.agent_id)
            self._to_agent(ev.agent_id, encode(CallAnsweredMsg.from_event(ev)))
        elif isinstance(ev, CallEnded):
            agent_id = self._call_agent.pop(ev.call_id, None)
            if agent_id is not None:
                self._to_agent(agent_id, encode(CallEndedMsg.from_event(ev)))
        elif isinstance(ev, AgentStateChanged):
            text = encode(StateMsg.from_event(ev))
            self._to_agent(ev.agent_id, text)
            for c in list(self._supervisors):
                c.send(text)

    def _remember(self, call_id: str, agent_id: str) -> None:
        self._call_agent[call_id] = agent_id
        self._call_agent.move_to_end(call_id)
        while len(self._call_agent) > MAX_TRACKED_CALLS:
            self._call_agent.popitem(last=False)

    def _to_agent(self, agent_id: str, text: str) -> None:
        for c in list(self._agents.get(agent_id, ())):
            c.send(text)

    async def _pop_text(self, ev: CallOffered) -> str:
        customer: dict[str, Any] | None = None
        assert self._sem is not None
        try:
            async with self._sem:
                customer = await asyncio.wait_for(self._customer(ev), self.deps.config.customer_timeout_s)
        except TimeoutError:
            self.lookup_errors += 1
            log.warning("customer lookup timed out; pop without it", extra={"call_id": ev.call_id})
        except Exception:
            self.lookup_errors += 1
            log.exception("customer lookup failed; pop without it", extra={"call_id": ev.call_id})
        return encode(Pop.from_event(ev, customer))

    async def _customer(self, ev: CallOffered) -> dict[str, Any] | None:
        store = self.deps.customers
        cid = ev.customer_id
        if cid is None and self.deps.config.lookup_by_phone and ev.caller_num:
            found = await store.find_customer_by_phone(ev.caller_num)
            cid = found.id if found is not None else None
        if cid is None:
            return None
        rec = await store.customer_360(cid)
        return rec.to_json() if rec is not None else None

    async def _stats_loop(self) -> None:
        interval = self.deps.config.stats_interval_s
        while True:
            await asyncio.sleep(interval)
            if not self._supervisors:
                continue
            try:
                text = encode(StatsMsg(self.deps.acd.snapshot()))
            except Exception:
                log.exception("acd snapshot failed")
                continue
            for c in list(self._supervisors):
                c.send(text)
