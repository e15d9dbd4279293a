"""The simulator's AMI server: Asterisk 22's manager as seen by a client (F10).

``AmiServer`` listens, keeps one ``AmiSession`` per connection and broadcasts every event to the
sessions (per-session event classes from the Privilege header, and event filters); the actions
run in ``ami_actions.AmiActions``. It is the channel core's ``EventSink``.
"""

from __future__ import annotations

import asyncio
import contextlib

from cti.ami.protocol import format_message

from .ami_actions import AUTHORITY, BLACKLISTED_APPS, AmiActions
from .ami_session import BANNER, MAX_QUEUE_BYTES, AmiSession
from .config import SimConfig
from .model import Headers

__all__ = ["AUTHORITY", "BANNER", "BLACKLISTED_APPS", "MAX_QUEUE_BYTES", "AmiActions", "AmiServer", "AmiSession"]


class AmiServer:
    def __init__(self, config: SimConfig, actions: AmiActions) -> None:
        self.config = config
        self.actions = actions
        self.sessions: set[AmiSession] = set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self.port = 0

    async def start(self, port: int | None = None) -> None:
        """Listen on ``port`` (default: the configured one; a restart passes the one it had)."""
        cfg = self.config
        self._server = await asyncio.start_server(self._accept, cfg.ami_host, cfg.ami_port if port is None else port,
                                                  backlog=1024)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def exit(self) -> None:
        """Asterisk's process ends: the listener goes and every session closes once its queued
        output is written (what was broadcast before, such as ``Shutdown``, still arrives)."""
        if self._server is not None:
            self._server.close()
        for s in list(self.sessions):
            s.close()
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = AmiSession(reader, writer, self.actions.dispatch, self.config.write_timeout_ms)
        self.sessions.add(s)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await s.run()
        except asyncio.CancelledError:
            # the server is shutting down this connection handler; it owns no other work
            writer.close()
        finally:
            self.sessions.discard(s)
            if task is not None:
                self._tasks.discard(task)

    def broadcast(self, headers: Headers) -> None:
        if not self.sessions:
            return
        priv = next((v for k, v in headers if k == "Privilege"), "")
        klass = priv.split(",", 1)[0].lower()
        data = format_message(headers)
        name = headers[0][1] if headers and headers[0][0] == "Event" else ""
        text = data.decode("latin-1") if any(s.filters for s in self.sessions) else ""
        for s in list(self.sessions):
            s.event(klass, data, name, text)

    def drop_all(self) -> None:
        for s in list(self.sessions):
            s.abort()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.drop_all()
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(BaseException):
                await t
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
