"""Asyncio FastAGI server: reads the environment, routes on ``agi_network_script``.

* The environment must arrive within ``env_timeout``; an empty connection, garbage or
  an oversized block is closed at once (never a busy loop).
* Routes are prefixes: ``ivr/`` (flow name after it), ``hold``, ``offer/``.
* At most ``max_sessions`` run at once; beyond that the session is refused with a
  VERBOSE line and handed to the fallback (never silence).
* An unhandled handler error is logged with the call's uniqueid and the session is
  handed to ``fallback(session, error)``, which sends the caller somewhere safe.
* On return the server half-closes and waits briefly for Asterisk's final ``HANGUP``
  and EOF (F3), then closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from cti.agi.errors import AgiError, AgiHangup, AgiProtocolError
from cti.agi.protocol import AgiParser, Environment, HangupNotice, Reply
from cti.agi.session import AgiSession

log = logging.getLogger(__name__)

Handler = Callable[[AgiSession], Awaitable[None]]
Fallback = Callable[[AgiSession, BaseException | None], Awaitable[None]]


class FastAgiServer:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        max_sessions: int = 2000,
        env_timeout: float = 5.0,
        command_timeout: float = 60.0,
        close_wait: float = 1.0,
        backlog: int = 4096,
        fallback: Fallback | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.max_sessions = max_sessions
        self.env_timeout = env_timeout
        self.command_timeout = command_timeout
        self.close_wait = close_wait
        self.backlog = backlog
        self.fallback = fallback
        self._routes: list[tuple[str, Handler]] = []
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.active = 0
        self.sessions_total = 0
        self.refused = 0
        self.rejected_bad = 0
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
        self._server = await asyncio.start_server(self._on_conn, self.host, self.port, backlog=self.backlog)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("FastAGI listening", extra={"host": self.host, "port": self.port})

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> FastAgiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _on_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def _read_env(self, reader: asyncio.StreamReader, parser: AgiParser
                        ) -> tuple[Environment, list[Reply | HangupNotice]] | None:
        async def read() -> tuple[Environment, list[Reply | HangupNotice]] | None:
            while True:
                data = await reader.read(4096)
                if not data:
                    return None
                evs = parser.feed(data)
                for i, ev in enumerate(evs):
                    if isinstance(ev, Environment):
                        rest = [e for e in evs[i + 1:] if not isinstance(e, Environment)]
                        return ev, rest
        try:
            async with asyncio.timeout(self.env_timeout):
                return await read()
        except (TimeoutError, AgiProtocolError) as e:
            log.info("FastAGI connection refused: %s", e or "environment timeout")
            return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = AgiParser()
        got = None
        try:
            got = await self._read_env(reader, parser)
        except (ConnectionError, OSError):
            got = None
        if got is None:
            self.rejected_bad += 1
            writer.close()
            return
        env, pending = got
        session = AgiSession(reader, writer, parser, env, command_timeout=self.command_timeout, pending=pending)
        self.sessions_total += 1
        script = env.script
        handler = self._find(script)
        try:
            if self.active >= self.max_sessions:
                self.refused += 1
                log.warning("FastAGI session refused: %d sessions running", self.active,
                            extra={"uniqueid": session.uniqueid, "script": script})
                await self._fallback(session, None, "cti: server busy")
            elif handler is None:
                log.warning("FastAGI: no route for script %r", script, extra={"uniqueid": session.uniqueid})
                await self._fallback(session, None, f"cti: no route for {script}")
            else:
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
            await self._close(reader, writer)

    async def _fallback(self, session: AgiSession, error: BaseException | None, note: str) -> None:
        if session.hung_up:
            return
        try:
            await session.verbose(note, 1)
            if self.fallback is not None:
                await self.fallback(session, error)
        except AgiError:
            pass
        except Exception:
            log.exception("FastAGI fallback failed", extra={"uniqueid": session.uniqueid})

    async def _close(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
            async def drain_to_eof() -> None:
                while await reader.read(4096):
                    pass
            async with asyncio.timeout(self.close_wait):
                await drain_to_eof()
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
