"""Asyncio FastAGI server: reads the environment, routes on ``agi_network_script``.

* The environment must arrive within ``env_timeout``; an empty connection, garbage or
  an oversized block is closed at once (never a busy loop).
* Routes are prefixes: ``ivr/`` (flow name after it), ``hold``, ``offer/``.
* At most ``max_sessions`` run at once; beyond that the session is refused with a
  VERBOSE line and handed to the fallback (never silence).
* An unhandled handler error is logged with the call's uniqueid and the session is
  handed to ``fallback(session, error)``, which sends the caller somewhere safe.
* On return the server half-closes and waits briefly for Asterisk's final ``HANGUP``
  and EOF (F3), then closes (at once when Asterisk has closed already).

Each connection is an :class:`asyncio.Protocol` (:class:`AgiConnection`) that parses
what arrives in ``data_received`` and hands replies to the waiting command through one
future; the handler runs in one task, started only once the environment is complete
(a connection that never sends one costs no task).  All the deadlines of a connection
(environment, commands, the final wait) share one loop timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Self

from cti.agi.errors import AgiError, AgiHangup, AgiProtocolError
from cti.agi.protocol import AgiParser, Environment, HangupNotice, Reply
from cti.agi.session import AgiSession

log = logging.getLogger(__name__)

Handler = Callable[[AgiSession], Awaitable[None]]
Fallback = Callable[[AgiSession, BaseException | None], Awaitable[None]]

MAX_QUEUED = 32  # replies nobody asked for yet: beyond this, stop reading until they are taken

# connection states
_ENV, _RUNNING, _CLOSING, _DONE = range(4)


class AgiConnection(asyncio.Protocol):
    """One FastAGI connection: environment, then replies for :class:`AgiSession`."""

    __slots__ = (
        "deadline",
        "eof",
        "hangup_notice",
        "loop",
        "parser",
        "paused",
        "queue",
        "server",
        "session",
        "state",
        "task",
        "timer",
        "transport",
        "waiter",
    )

    def __init__(self, server: FastAgiServer) -> None:
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.parser = AgiParser()
        self.session: AgiSession | None = None
        self.task: asyncio.Task[None] | None = None
        self.state = _ENV
        self.eof = False  # Asterisk closed (EOF, reset) or the stream broke: nothing more will come
        self.hangup_notice = False  # Asterisk sent HANGUP
        self.queue: deque[Reply] = deque()
        self.waiter: asyncio.Future[object] | None = None
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        if len(server._conns) >= server.max_connections:  # a flood: shed it before any work
            self.state = _DONE
            server.shed += 1
            if server.shed % 1000 == 1:
                log.warning("FastAGI: %d connections open, shedding new ones (%d so far)",
                            len(server._conns), server.shed)
            transport.close()
            return
        server._conns.add(self)
        self.deadline = self.loop.time() + self.server.env_timeout
        self.timer = self.loop.call_at(self.deadline, self._on_timer)

    def data_received(self, data: bytes) -> None:
        if self.state != _RUNNING:
            if self.state == _ENV:
                self._env_data(data)
            return  # after the handler: Asterisk's final HANGUP, nothing to do
        try:
            events = self.parser.feed(data)
        except AgiProtocolError as e:
            self._broken(e)
            return
        waiter = self.waiter
        for ev in events:
            if ev.__class__ is not Reply:  # a HANGUP notice: noted at once, whenever it comes
                self.hangup_notice = True
                continue
            if waiter is not None:
                self.waiter = None
                if not waiter.done():
                    waiter.set_result(ev)
                    waiter = None
                    continue
                waiter = None  # its command was cancelled: keep the reply in order (owed)
            self.queue.append(ev)
        if len(self.queue) > MAX_QUEUED and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        if self.state == _ENV:
            self._refuse("EOF before the environment")
        elif self.state == _RUNNING:
            self._lost()
        return False  # the transport closes; Asterisk reads nothing after its EOF anyway

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if self.state == _ENV:
            self._refuse("connection lost before the environment")
        elif self.state == _RUNNING:
            self._lost()
        self.state = _DONE
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.server._conns.discard(self)

    # -- the environment -----------------------------------------------------------------

    def _env_data(self, data: bytes) -> None:
        try:
            events = self.parser.feed(data)
        except AgiProtocolError as e:
            self._refuse(str(e))
            return
        for i, ev in enumerate(events):
            if ev.__class__ is Environment:
                self._start(ev, events[i + 1:])  # type: ignore[arg-type]
                return
        # a HANGUP before the environment is dropped, as Asterisk sends none there

    def _start(self, env: Environment, rest: list[Reply | HangupNotice]) -> None:
        server = self.server
        self.state = _RUNNING
        session = self.session = AgiSession(self, env, command_timeout=server.command_timeout)
        for ev in rest:
            if ev.__class__ is Reply:
                self.queue.append(ev)
            else:
                self.hangup_notice = True
        if server._stopping:
            self.state = _DONE
            self.transport.close()
            return
        # the environment timer stays armed: when it fires, it moves itself to the
        # deadline of the command then waiting (usually there is none: a cheap no-op)
        task = self.task = self.loop.create_task(server._run(self, session))
        server._tasks.add(task)
        task.add_done_callback(server._tasks.discard)

    def _refuse(self, why: str) -> None:
        self.state = _DONE
        self.server.rejected_bad += 1
        log.info("FastAGI connection refused: %s", why)
        self.transport.close()

    # -- the session's ReplyChannel ------------------------------------------------------

    def send(self, line: bytes) -> None:
        self.transport.write(line)

    def peername(self) -> object:
        return self.transport.get_extra_info("peername")

    def take(self) -> Reply | None:
        """The next reply already received (``HANGUP`` notices never queue: see data_received)."""
        queue = self.queue
        if not queue:
            return None
        ev = queue.popleft()
        if self.paused and len(queue) <= MAX_QUEUED // 2:
            self.paused = False
            self.transport.resume_reading()
        return ev

    def wait(self, timeout: float) -> asyncio.Future[object]:
        """A future for the next reply: a :class:`Reply`, ``None`` (EOF) or ``TIMEOUT``."""
        if self.paused:
            self.paused = False
            self.transport.resume_reading()
        waiter = self.waiter = self.loop.create_future()
        if self.eof:  # Asterisk is gone: nothing more will come
            self.waiter = None
            waiter.set_result(None)
            return waiter
        deadline = self.deadline = self.loop.time() + timeout
        timer = self.timer
        if timer is None or timer.when() > deadline:  # else the armed timer moves itself on
            if timer is not None:
                timer.cancel()
            self.timer = self.loop.call_at(deadline, self._on_timer)
        return waiter

    def _wake(self, value: object) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(value)

    def _lost(self) -> None:
        """EOF or a reset while the handler runs: every later command gets AgiHangup."""
        self._wake(None)

    def _broken(self, error: AgiProtocolError) -> None:
        session = self.session
        log.warning("FastAGI protocol error, connection dropped: %s", error,
                    extra={"uniqueid": session.uniqueid if session else ""})
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)
        self.eof = True
        self.transport.abort()

    # -- the one timer -----------------------------------------------------------------------

    def _on_timer(self) -> None:
        self.timer = None
        state = self.state
        if state == _RUNNING:
            waiter = self.waiter
            if waiter is None or waiter.done():
                return  # no command waiting: the next one arms the timer again
            if self.loop.time() + 0.001 >= self.deadline:
                self.waiter = None
                waiter.set_result(TIMEOUT)
            else:
                self.timer = self.loop.call_at(self.deadline, self._on_timer)
        elif state == _ENV:
            self._refuse("environment timeout")
        elif state == _CLOSING:
            self.transport.close()

    # -- the end -------------------------------------------------------------------------

    def finish(self) -> None:
        """The handler is done: close now if Asterisk has, else half-close and wait a little."""
        if self.state != _RUNNING:
            return
        self.state = _CLOSING
        self.waiter = None
        if self.eof or self.server._stopping or self.transport.is_closing():
            self.transport.close()
            return
        if self.paused:  # we must see Asterisk's EOF
            self.paused = False
            self.transport.resume_reading()
        # Asterisk's EOF often is already in the socket (HANGUP command, AGIEXITONHANGUP):
        # look once more before the half-close, after the loop has read what is pending
        self.loop.call_soon(self._half_close)

    def _half_close(self) -> None:
        if self.state != _CLOSING or self.eof:
            return
        transport = self.transport
        if transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(self.server.close_wait, self._on_timer)


def _printable(text: str) -> str:
    """``text`` for a VERBOSE line: caller-controlled parts (a script name) cannot break it."""
    return repr(text)[1:-1]


TIMEOUT = object()
"""What :meth:`AgiConnection.wait` resolves to when the deadline passed."""


class FastAgiServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        max_sessions: int = 2000,
        max_connections: int | None = None,
        env_timeout: float = 5.0,
        command_timeout: float = 60.0,
        close_wait: float = 1.0,
        backlog: int = 4096,
        fallback: Fallback | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.max_sessions = max_sessions
        # beyond the sessions, room for refusals and connections still sending their
        # environment; past it, new connections are closed at once (``shed``)
        self.max_connections = max_connections or 2 * max_sessions + 100
        self.env_timeout = env_timeout
        self.command_timeout = command_timeout
        self.close_wait = close_wait
        self.backlog = backlog
        self.fallback = fallback
        self._routes: list[tuple[str, Handler]] = []
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[AgiConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self.active = 0
        self.sessions_total = 0
        self.refused = 0
        self.rejected_bad = 0
        self.shed = 0
        self.errors = 0

    def route(self, prefix: str, handler: Handler) -> None:
        self._routes.append((prefix, handler))
        self._routes.sort(key=lambda r: -len(r[0]))

    def _find(self, script: str) -> Handler | None:
        for prefix, h in self._routes:
            if script == prefix or (prefix.endswith("/") and script.startswith(prefix)):
                return h
        return None

    async def start(self) -> None:
        self._stopping = False
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: AgiConnection(self), self.host, self.port,
                                                backlog=self.backlog)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI listening", extra={"host": self.host, "port": self.port})

    async def stop(self) -> None:
        self._stopping = True
        if self._server:
            self._server.close()
        tasks = [t for t in self._tasks if not t.done()]  # also those whose connection is gone
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for conn in list(self._conns):  # waiting for an environment or Asterisk's EOF
            conn.transport.close()
        if self._server:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self, conn: AgiConnection, session: AgiSession) -> None:
        self.sessions_total += 1
        script = session.environment.script
        try:
            if self.active >= self.max_sessions:
                self.refused += 1
                log.warning("FastAGI session refused: %d sessions running", self.active,
                            extra={"uniqueid": session.uniqueid, "script": script})
                await self._fallback(session, None, "cti: server busy")
                return
            handler = self._find(script)
            if handler is None:
                log.warning("FastAGI: no route for script %r", script, extra={"uniqueid": session.uniqueid})
                await self._fallback(session, None, f"cti: no route for {script}")
                return
            self.active += 1
            try:
                await handler(session)
            except AgiHangup:
                pass
            except asyncio.CancelledError:
                raise
            except Exception as e:  # a failure never leaves the caller in silence
                self.errors += 1
                log.exception("FastAGI handler failed", extra={"uniqueid": session.uniqueid, "script": script})
                await self._fallback(session, e, "cti: internal error")
            finally:
                self.active -= 1
        finally:
            conn.finish()

    async def _fallback(self, session: AgiSession, error: BaseException | None, note: str) -> None:
        if session.hung_up or session.eof:
            return
        try:
            await session.verbose(_printable(note), 1)
        except AgiHangup:
            return
        except AgiError as e:  # the note is only a note: the fallback still runs
            log.warning("FastAGI fallback note failed: %s", e, extra={"uniqueid": session.uniqueid})
        if self.fallback is None or session.hung_up or session.eof:
            return
        try:
            await self.fallback(session, error)
        except AgiHangup:
            pass
        except AgiError as e:
            log.warning("FastAGI fallback failed: %s", e, extra={"uniqueid": session.uniqueid})
        except Exception:
            log.exception("FastAGI fallback failed", extra={"uniqueid": session.uniqueid})
