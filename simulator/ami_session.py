"""One AMI connection as Asterisk 22's manager keeps it: the banner, a bounded output queue
drained by a writer task, ``writetimeout`` (a session whose socket is not drained within it is
dropped, as Asterisk does), the logged-in user's read classes and event filters.

What the actions do is not here: each parsed action goes to the ``Dispatch`` the server hands in
(``ami_actions.AmiActions.dispatch``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable

from cti.ami.protocol import AmiError, AmiParser, Banner, Message, format_message

from .manager_conf import AmiUser, Filters
from .model import Headers

log = logging.getLogger(__name__)
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
MAX_QUEUE_BYTES = 4 * 1024 * 1024

Dispatch = Callable[["AmiSession", Message], Awaitable[None]]


class AmiSession:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, dispatch: Dispatch,
                 write_timeout_ms: int) -> None:
        self.reader, self.writer = reader, writer
        self.dispatch = dispatch
        self.user: str | None = None
        self.user_read: frozenset[str] = frozenset()  # the user's read classes (manager.conf)
        self.read: frozenset[str] = frozenset()  # those the session receives (Events: mask)
        self.write: frozenset[str] = frozenset()
        self.events_on = True
        self.challenge: str | None = None
        self.out: collections.deque[bytes] = collections.deque()
        self.out_bytes = 0
        self.ready = asyncio.Event()
        self.closed = False
        self.held: list[bytes] | None = None
        self.filters = Filters([], [])
        self.write_timeout_ms = write_timeout_ms

    # ------------------------------------------------------------------ login state

    def log_in(self, name: str, spec: AmiUser, mask: str) -> None:
        self.user = name
        self.user_read = self.read = spec.read
        self.write = spec.write
        self.filters = spec.filters()
        if spec.writetimeout_ms is not None:
            self.write_timeout_ms = spec.writetimeout_ms
        self.set_mask(mask)

    def set_mask(self, mask: str) -> None:
        full = self.user_read
        if mask in ("off", "no", "false", "0"):
            self.events_on = False
        elif mask in ("on", "yes", "true", "1", "all"):
            self.events_on, self.read = True, full
        else:
            self.events_on = True
            self.read = full & {c.strip() for c in mask.split(",")}

    # ------------------------------------------------------------------ output

    def send(self, headers: Headers) -> None:
        self._queue(format_message(headers))

    def _queue(self, data: bytes) -> None:
        if self.closed:
            return
        if self.out_bytes + len(data) > MAX_QUEUE_BYTES:
            log.warning("AMI session %s: output queue full, dropping it", self.user)
            self.close()
            return
        self.out.append(data)
        self.out_bytes += len(data)
        self.ready.set()

    def event(self, klass: str, data: bytes, name: str = "", text: str = "") -> None:
        if self.user is None or not self.events_on or klass not in self.read:
            return
        if self.filters and not self.filters.allows(name, text or data.decode("latin-1")):
            return
        if self.held is not None:
            self.held.append(data)
            return
        self._queue(data)

    def hold_events(self) -> None:
        """Keep events back (a synchronous Originate's come after its response)."""
        self.held = []

    def release_events(self) -> None:
        held, self.held = self.held or [], None
        for data in held:
            self._queue(data)

    def respond(self, msg: Message, *headers: tuple[str, str]) -> None:
        h: Headers = [headers[0]]
        aid = msg.get("ActionID")
        if aid is not None:
            h.append(("ActionID", aid))
        h.extend(headers[1:])
        self.send(h)

    def error(self, msg: Message, text: str) -> None:
        self.respond(msg, ("Response", "Error"), ("Message", text))

    def list_end(self, msg: Message, name: str, n: int, items: bool = False) -> None:
        h: Headers = [("Event", name)]
        aid = msg.get("ActionID")
        if aid is not None:
            h.append(("ActionID", aid))
        h += [("EventList", "Complete"), ("ListItems", str(n))]
        if items:
            h.append(("Items", str(n)))
        self.send(h)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.ready.set()

    def abort(self) -> None:
        """Cut the connection at once (nothing more is written)."""
        self.closed = True
        self.writer.transport.abort()

    async def writer_loop(self) -> None:
        transport = self.writer.transport
        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                if self.out:
                    chunk = b"".join(self.out)
                    self.out.clear()
                    self.out_bytes = 0
                    self.writer.write(chunk)
                    if transport.get_write_buffer_size() > 0:
                        try:
                            await asyncio.wait_for(self.writer.drain(), self.write_timeout_ms / 1000)
                        except TimeoutError:
                            log.warning("AMI session %s: write timeout, dropped", self.user)
                            self.closed = True
                            transport.abort()
                            return
                if self.closed and not self.out:
                    self.writer.close()  # flushed: Asterisk closes the socket (Logoff, a shutdown)
                    return
        except (ConnectionError, OSError):
            self.closed = True

    # ------------------------------------------------------------------ input

    async def run(self) -> None:
        wtask = asyncio.ensure_future(self.writer_loop())
        parser = AmiParser(expect_banner=False)
        self._queue(BANNER)
        try:
            while not self.closed:
                data = await self.reader.read(65536)
                if not data:
                    break
                try:
                    items = parser.feed(data)
                except AmiError:
                    break
                for item in items:
                    if isinstance(item, Banner) or self.closed:
                        continue
                    await self.dispatch(self, item)
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(wtask, 1.0)
            wtask.cancel()
            self.writer.close()
