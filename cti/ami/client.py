"""Asyncio AMI client: a thin shell around :mod:`cti.ami.protocol`.

* Logs in (plaintext, or MD5 challenge) before sending anything else.
* ``send_action`` returns the :class:`Response`; list actions (``EventList: start``)
  collect their events until ``...Complete``.  Each action has a timeout (2 s, 5 s for
  lists).
* A dropped link fails every pending action at once with :class:`AmiConnectionLost`.
  Nothing is replayed after a reconnect: non-idempotent actions (Originate, Redirect,
  Hangup, Setvar) are the caller's decision to retry.
* Never gives up: an unreachable Asterisk, a refused login or a dropped link is retried
  with exponential backoff and jitter (``backoff_initial`` doubling, each wait drawn in
  0.5x-1.5x of the step and capped at ``backoff_max``; the first step again after a link
  that had logged in); pings every ``ping_interval``; a peer silent for ``dead_after``
  seconds is declared dead.
* Keeps the link's state (:mod:`cti.ami.link`: up, or why not, since when) in ``link``,
  logs a line only when that state changes (one line for a thousand refused retries; one
  when it is up again) and hands every update to the ``on_link_state`` callbacks.
* The reader never blocks: events are handed to inline listeners (which must be cheap)
  right after parsing, and typed (:mod:`cti.ami.events`) into bounded per-subscriber
  queues (``subscribe``) that drop their oldest event when full and count it, so the
  socket is always drained.
* ``on_connected`` callbacks run after every successful login (resynchronisation).

Exceptions::

    AmiError (cti.ami.protocol)
     ├── AmiClientError
     │    ├── AmiConnectionLost   the link dropped with the action pending
     │    ├── AmiTimeout          no response in time
     │    ├── AmiLoginError       Asterisk refused our credentials
     │    └── AmiNotConnected     no logged-in link right now
     └── AmiActionError          Response: Error (``.response`` holds it)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Self

from cti.ami import link as lk
from cti.ami.events import AmiEvent, typed
from cti.ami.protocol import AmiError, AmiParser, Banner, Fields, Message, format_action
from cti.ami.queue import EventQueue

__all__ = ["AmiActionError", "AmiClient", "AmiClientError", "AmiConnectionLost", "AmiLoginError",
           "AmiNotConnected", "AmiTimeout", "EventQueue", "Response"]

log = logging.getLogger(__name__)


class AmiClientError(AmiError):
    pass


class AmiConnectionLost(AmiClientError):
    pass


class AmiTimeout(AmiClientError):
    pass


class AmiLoginError(AmiClientError):
    pass


class AmiNotConnected(AmiClientError):
    pass


class AmiActionError(AmiError):
    def __init__(self, response: Response) -> None:
        super().__init__(f"{response.action}: {response.message}")
        self.response = response


@dataclass(slots=True)
class Response:
    action: str
    message_obj: Message
    events: list[Message] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.message_obj.get("Response") or "").lower() in ("success", "goodbye", "follows")

    @property
    def message(self) -> str:
        return self.message_obj.get("Message") or ""

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.message_obj.get(name, default)


@dataclass(slots=True)
class _Pending:
    action: str
    future: asyncio.Future[Response]
    response: Response | None = None
    is_list: bool = False


EventListener = Callable[[Message], None]


class AmiClient:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        name: str = "default",
        auth: str = "plain",
        events: str | None = None,
        action_timeout: float = 2.0,
        list_timeout: float = 5.0,
        ping_interval: float = 5.0,
        dead_after: float = 20.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 30.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self.host, self.port, self.username = host, port, username
        self._secret = secret
        self.name = name
        self.auth = auth
        self.events_mask = events
        self.action_timeout = action_timeout
        self.list_timeout = list_timeout
        self.ping_interval = ping_interval
        self.dead_after = dead_after
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.connect_timeout = connect_timeout
        self._ids = itertools.count(1)
        self._prefix = f"cti-{random.getrandbits(32):08x}-"
        self._pending: dict[str, _Pending] = {}
        self._lists = 0  # pending actions collecting an event list
        self._listeners: list[EventListener] = []
        self._queues: list[EventQueue] = []
        self._on_connected: list[Callable[[], Awaitable[None]]] = []
        self._on_disconnected: list[Callable[[], None]] = []
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._hook_tasks: set[asyncio.Task[None]] = set()  # on-connect hooks in flight (owned, cancelled on stop)
        self._logged_in = asyncio.Event()
        self._stopping = False
        self._last_rx = 0.0
        self.connects = 0
        self.reconnects = 0
        self.events_received = 0
        self.listener_errors = 0
        self.banner: str | None = None
        # wall-clock (lost_at, logged_in_again_at or None) of the latest link outages
        self.outages: collections.deque[tuple[float, float | None]] = collections.deque(maxlen=1000)
        self.link = lk.initial(name, host, port, username, time.time())
        self._link_listeners: list[Callable[[lk.LinkState], None]] = []
        self._attempted = asyncio.Event()  # the first attempt has an outcome
        self._phase = "connect"  # of the current attempt: connect, login, up

    # -- lifecycle --------------------------------------------------------------------

    def add_listener(self, fn: EventListener) -> None:
        """``fn(message)`` runs inline in the reader for every event: it must be cheap."""
        self._listeners.append(fn)

    def subscribe(self, *names: str, maxsize: int = 10_000) -> EventQueue:
        """A bounded queue receiving the named events (all when none is named), typed."""
        q = EventQueue(frozenset(names) if names else None, maxsize)
        self._queues.append(q)
        return q

    def unsubscribe(self, q: EventQueue) -> None:
        if q in self._queues:
            self._queues.remove(q)

    def on_connected(self, fn: Callable[[], Awaitable[None]]) -> None:
        self._on_connected.append(fn)

    def on_disconnected(self, fn: Callable[[], None]) -> None:
        """``fn()`` runs inline when a logged-in link drops (before any later event)."""
        self._on_disconnected.append(fn)

    def on_link_state(self, fn: Callable[[lk.LinkState], None]) -> None:
        """``fn(state)`` runs inline on every update of ``link``: a change of state, and each
        further failed attempt (``attempts``).  It must be cheap."""
        self._link_listeners.append(fn)

    @property
    def connected(self) -> bool:
        return self._logged_in.is_set()

    async def wait_attempted(self, timeout: float) -> bool:
        """Wait until the first attempt has an outcome (logged in, or failed and retrying);
        False when none came within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._attempted.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def start(self, wait: bool = True, timeout: float = 10.0) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"ami-{self.name}")
        if wait:
            await self.wait_connected(timeout)

    async def wait_connected(self, timeout: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._logged_in.wait(), timeout)
        except TimeoutError:
            raise AmiNotConnected(f"AMI {self.host}:{self.port} not connected after {timeout}s") from None

    async def stop(self) -> None:
        self._stopping = True
        if self._writer is not None and self._logged_in.is_set():
            with contextlib.suppress(ConnectionError, RuntimeError):
                self._writer.write(format_action("Logoff", self._next_id()))
        for hook in list(self._hook_tasks):
            hook.cancel()
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._drop_link("client stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _next_id(self) -> str:
        return f"{self._prefix}{next(self._ids)}"

    # -- connection loop --------------------------------------------------------------

    async def _run(self) -> None:
        delay = self.backoff_initial
        while not self._stopping:
            logins = self.connects
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (OSError, AmiError, EOFError) as e:
                self._failed(e)
            except Exception as e:  # a bug of ours: said with its traceback, and the link retried
                log.exception("AMI session failed", extra={"server": self.name})
                self._failed(e)
            finally:
                self._drop_link("connection lost")
                if self.connects != logins:
                    delay = self.backoff_initial  # this link had logged in: start over from the first step
            if self._stopping:
                return
            await asyncio.sleep(min(delay * (0.5 + random.random()), self.backoff_max))
            delay = min(delay * 2, self.backoff_max)
            self.reconnects += 1

    def _failed(self, e: BaseException) -> None:
        """Classify a failed attempt (or the loss of a logged-in link) by how far it got."""
        if self._phase == "connect":
            state = lk.UNREACHABLE
        elif self._phase == "login":
            state = lk.AUTH_FAILED if isinstance(e, AmiLoginError) else lk.NO_LOGIN
        else:
            state = lk.LOST
        self._set_link(lk.failed(self.link, state, lk.reason_of(e), time.time()))

    def _set_link(self, new: lk.LinkState) -> None:
        old, self.link = self.link, new
        self._attempted.set()
        if lk.changed(old, new):
            level = logging.INFO if new.up else logging.ERROR if new.state == lk.AUTH_FAILED else logging.WARNING
            log.log(level, lk.describe(old, new, self.backoff_max),
                    extra={"server": self.name, "host": self.host, "port": self.port, "user": self.username,
                           "link": new.state, "reason": new.reason,
                           "attempts": old.attempts if new.up else new.attempts})
        for fn in self._link_listeners:
            try:
                fn(new)
            except Exception:
                log.exception("AMI link-state listener failed", extra={"server": self.name})

    async def _session(self) -> None:
        self._phase = "connect"
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port),
                                                self.connect_timeout)
        self._phase = "login"
        self._writer = writer
        parser = AmiParser()
        self._last_rx = time.monotonic()
        reader_task = asyncio.create_task(self._read_loop(reader, parser))
        try:
            await self._login()
            self._phase = "up"
            self.connects += 1
            if self.outages and self.outages[-1][1] is None:
                self.outages[-1] = (self.outages[-1][0], time.time())
            self._logged_in.set()
            self._set_link(lk.logged_in(self.link, time.time()))
            for fn in self._on_connected:
                hook = asyncio.create_task(self._run_hook(fn))
                self._hook_tasks.add(hook)
                hook.add_done_callback(self._hook_tasks.discard)
            await self._keepalive(reader_task)
        finally:
            reader_task.cancel()
            await asyncio.gather(reader_task, return_exceptions=True)

    async def _run_hook(self, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            await fn()
        except AmiError as e:
            log.warning("AMI on-connect hook failed: %s", e)
        except Exception:
            log.exception("AMI on-connect hook failed")

    async def _keepalive(self, reader_task: asyncio.Task[None]) -> None:
        while True:
            done, _ = await asyncio.wait({reader_task}, timeout=self.ping_interval)
            if done:
                exc = reader_task.exception()
                if exc:
                    raise exc
                raise AmiConnectionLost("EOF from Asterisk")
            if time.monotonic() - self._last_rx > self.dead_after:
                raise AmiConnectionLost(f"no data from Asterisk for {self.dead_after}s")
            with contextlib.suppress(AmiTimeout):  # the silence check above decides
                await self.send_action("Ping", timeout=self.action_timeout)

    async def _read_loop(self, reader: asyncio.StreamReader, parser: AmiParser) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    raise AmiConnectionLost("EOF from Asterisk")
                self._last_rx = time.monotonic()
                for msg in parser.feed(data):
                    if isinstance(msg, Banner):
                        self.banner = msg.text
                        continue
                    self._dispatch(msg)
        except (OSError, AmiError) as e:
            if self._phase == "login":  # fail the Login now, not at its timeout (once logged in,
                for p in self._pending.values():  # _drop_link fails what is pending)
                    if not p.future.done():
                        p.future.set_exception(AmiConnectionLost(lk.reason_of(e)))
            raise

    async def _login(self) -> None:
        fields: dict[str, object] = {"Username": self.username}
        if self.auth == "md5":
            r = await self._raw_action("Challenge", {"AuthType": "MD5"})
            challenge = r.get("Challenge") or ""
            fields["AuthType"] = "MD5"
            fields["Key"] = hashlib.md5((challenge + self._secret).encode()).hexdigest()
        else:
            fields["Secret"] = self._secret
        if self.events_mask is not None:
            fields["Events"] = self.events_mask
        wait = max(self.action_timeout, 3.0)  # Asterisk answers a refused login after a delay
        try:
            r = await self._raw_action("Login", fields, timeout=wait)
        except AmiActionError as e:
            raise AmiLoginError(e.response.message or "Authentication failed") from None
        except AmiTimeout:
            raise AmiTimeout(f"no answer to the login within {wait:g} s") from None

    def _drop_link(self, why: str) -> None:
        if self._logged_in.is_set():
            self.outages.append((time.time(), None))
            for fn in self._on_disconnected:
                try:
                    fn()
                except Exception:
                    log.exception("AMI on-disconnect hook failed")
        self._logged_in.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        pending, self._pending = self._pending, {}
        self._lists = 0
        for p in pending.values():
            if not p.future.done():
                p.future.set_exception(AmiConnectionLost(f"{p.action}: {why}"))

    # -- actions ----------------------------------------------------------------------

    async def send_action(self, action: str, fields: Fields | None = None, *,
                          timeout: float | None = None, check: bool = False) -> Response:
        """Send an action on the logged-in link; ``check`` raises on ``Response: Error``."""
        if not self._logged_in.is_set():
            raise AmiNotConnected(f"{action}: AMI not connected")
        r = await self._raw_action(action, fields, timeout=timeout)
        if check and not r.ok:
            raise AmiActionError(r)
        return r

    async def _raw_action(self, action: str, fields: Fields | None = None, *,
                          timeout: float | None = None) -> Response:
        writer = self._writer
        if writer is None:
            raise AmiNotConnected(f"{action}: AMI not connected")
        aid = self._next_id()
        data = format_action(action, aid, fields)  # injection check before anything is queued
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[aid] = _Pending(action, fut)
        writer.write(data)
        try:
            return await self._await(fut, aid, self.action_timeout if timeout is None else timeout)
        finally:
            done = self._pending.pop(aid, None)
            if done is not None and done.is_list:
                self._lists -= 1

    async def _await(self, fut: asyncio.Future[Response], aid: str, limit: float) -> Response:
        try:
            r = await asyncio.wait_for(fut, limit)
        except TimeoutError:
            p = self._pending.get(aid)
            if p is not None and p.is_list:
                # a list answered "will follow": give it the list timeout in total
                try:
                    return await asyncio.wait_for(fut, max(self.list_timeout - limit, 0.1))
                except TimeoutError:
                    pass
            raise AmiTimeout(f"no response to {aid} within the timeout") from None
        if (r.message_obj.get("Response") or "").lower() == "error" and r.action == "Login":
            raise AmiActionError(r)
        return r

    def _dispatch(self, msg: Message) -> None:
        if not msg.is_event:
            aid = msg.get("ActionID")
            p = self._pending.get(aid) if aid else None
            if p is not None and msg.is_response:
                resp = Response(p.action, msg)
                if (msg.get("EventList") or "").lower() == "start":
                    p.response, p.is_list = resp, True
                    self._lists += 1
                elif not p.future.done():
                    p.future.set_result(resp)
            return
        if self._lists:  # an event list is being collected: its events carry our ActionID
            aid = msg.get("ActionID")
            p = self._pending.get(aid) if aid else None
            if p is not None and p.is_list and p.response is not None:
                if (msg.get("EventList") or "").lower() == "complete":
                    if not p.future.done():
                        p.future.set_result(p.response)
                else:
                    p.response.events.append(msg)
                return
        self.events_received += 1
        for fn in self._listeners:
            try:
                fn(msg)
            except Exception:
                self.listener_errors += 1
                log.exception("AMI event listener failed", extra={"event": msg.name})
        if not self._queues:
            return
        ev: AmiEvent | None = None
        name = msg.name
        for q in self._queues:
            if q.names is None or name in q.names:
                if ev is None:
                    ev = typed(msg, name)  # once, shared by every queue that wants it
                q._put(ev)

    # -- convenience for call control -------------------------------------------------

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1) -> None:
        await self.send_action("Redirect", {"Channel": channel, "Context": context, "Exten": exten,
                                            "Priority": priority}, check=True)

    async def hangup(self, channel: str, cause: int = 16) -> None:
        await self.send_action("Hangup", {"Channel": channel, "Cause": cause}, check=True)

    async def setvar(self, channel: str, variable: str, value: str) -> None:
        await self.send_action("Setvar", {"Channel": channel, "Variable": variable, "Value": value}, check=True)
