"""The simulator's AMI server: Asterisk 22's manager as seen by a client (F10).

Per-session event classes (the Privilege header), least-privilege refusals per action, responses
written before the events behind them, ``writetimeout``: a session whose socket is not drained
within it is dropped, as Asterisk does.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import random
import re
import time
from typing import TYPE_CHECKING

from cti.ami.protocol import AmiError, AmiParser, Banner, Message, format_message

from . import events as ev
from .manager_conf import EventFilter, FilterError, Filters, as_user
from .model import Headers

if TYPE_CHECKING:
    from .core import AsteriskSim

log = logging.getLogger(__name__)
BANNER = b"Asterisk Call Manager/11.0.0\r\n"
MAX_QUEUE_BYTES = 4 * 1024 * 1024

# action -> write classes that allow it (Asterisk's registration authority); None: no check
AUTHORITY: dict[str, frozenset[str] | None] = {
    "ping": None, "logoff": None, "events": None, "listcommands": None, "challenge": None,
    "login": None, "originate": frozenset({"originate"}), "redirect": frozenset({"call"}),
    "hangup": frozenset({"system", "call"}), "setvar": frozenset({"call"}),
    "getvar": frozenset({"call", "reporting"}), "status": frozenset({"system", "call", "reporting"}),
    "coreshowchannels": frozenset({"system", "reporting"}), "mixmonitormute": frozenset({"system", "call"}),
    "stopmixmonitor": frozenset({"system", "call"}), "mixmonitor": frozenset({"system"}),
    "dbput": frozenset({"system"}), "dbget": frozenset({"system", "reporting"}),
    "dbdel": frozenset({"system"}), "filter": frozenset({"system"}), "command": frozenset({"command"}),
    "playdtmf": frozenset({"call"}), "userevent": frozenset({"user"}),
    "queuestatus": frozenset({"agent", "reporting"}), "coresettings": frozenset({"system", "reporting"}),
    "corestatus": frozenset({"system", "reporting"}),
}
BLACKLISTED_APPS = {"system", "trysystem", "exec", "execif", "mixmonitor", "eval"}


class AmiSession:
    def __init__(self, server: AmiServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server, self.sim = server, server.sim
        self.reader, self.writer = reader, writer
        self.user: str | None = None
        self.read: frozenset[str] = frozenset()
        self.write: frozenset[str] = frozenset()
        self.events_on = True
        self.challenge: str | None = None
        self.out: collections.deque[bytes] = collections.deque()
        self.out_bytes = 0
        self.ready = asyncio.Event()
        self.closed = False
        self.held: list[bytes] | None = None
        self.filters = Filters([], [])
        self.write_timeout_ms = server.sim.config.write_timeout_ms

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

    def respond(self, msg: Message, *headers: tuple[str, str]) -> None:
        h: Headers = [headers[0]]
        aid = msg.get("ActionID")
        if aid is not None:
            h.append(("ActionID", aid))
        h.extend(headers[1:])
        self.send(h)

    def error(self, msg: Message, text: str) -> None:
        self.respond(msg, ("Response", "Error"), ("Message", text))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.ready.set()

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
                    await self.handle(item)
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(wtask, 1.0)
            wtask.cancel()
            self.writer.close()

    async def handle(self, msg: Message) -> None:
        action = (msg.get("Action") or "").strip()
        key = action.lower()
        if key not in ("login", "challenge", "logoff", "ping") and self.user is None:
            self.error(msg, "Authentication Required")
            return
        handler = getattr(self, f"a_{key}", None)
        if handler is None or key not in AUTHORITY:
            self.error(msg, f"Invalid/unknown command: {action}. Use Action: ListCommands to show "
                            "available commands.")
            return
        need = AUTHORITY[key]
        if need is not None and not (need & self.write):
            self.error(msg, "Permission denied")
            return
        await handler(msg)

    # ------------------------------------------------------------------ actions

    async def a_challenge(self, msg: Message) -> None:
        if (msg.get("AuthType") or "").lower() != "md5":
            self.error(msg, "Must specify AuthType")
            return
        self.challenge = str(random.randint(100000000, 999999999))
        self.respond(msg, ("Response", "Success"), ("Challenge", self.challenge))

    async def a_login(self, msg: Message) -> None:
        name = msg.get("Username") or ""
        raw = self.sim.config.users.get(name)
        spec = as_user(raw) if raw is not None else None
        ok = False
        if spec is not None:
            secret = spec.secret
            key = msg.get("Key")
            if (msg.get("AuthType") or "").lower() == "md5" and key is not None and self.challenge:
                ok = hashlib.md5((self.challenge + secret).encode()).hexdigest() == key.lower()
            else:
                ok = msg.get("Secret") == secret
        if not ok:
            await asyncio.sleep(self.sim.config.auth_fail_delay_s)
            self.error(msg, "Authentication failed")
            self.close()
            return
        assert spec is not None
        self.user = name
        self.read = spec.read
        self.write = spec.write
        self.filters = spec.filters()
        if spec.writetimeout_ms is not None:
            self.write_timeout_ms = spec.writetimeout_ms
        events = (msg.get("Events") or "on").lower()
        self.set_mask(events)
        self.respond(msg, ("Response", "Success"), ("Message", "Authentication accepted"))
        if self.events_on and "system" in self.read:
            up = str(int(time.time() - self.sim.started))
            self.send([("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", up),
                       ("LastReload", up), ("Status", "Fully Booted")])

    def set_mask(self, mask: str) -> None:
        full = as_user(self.sim.config.users[self.user or ""]).read
        if mask in ("off", "no", "false", "0"):
            self.events_on = False
        elif mask in ("on", "yes", "true", "1", "all"):
            self.events_on, self.read = True, full
        else:
            self.events_on = True
            self.read = full & {c.strip() for c in mask.split(",")}

    async def a_events(self, msg: Message) -> None:
        self.set_mask((msg.get("EventMask") or "off").lower())
        self.respond(msg, ("Response", "Success"), ("Events", "On" if self.events_on else "Off"))

    async def a_ping(self, msg: Message) -> None:
        self.respond(msg, ("Response", "Success"), ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))

    async def a_logoff(self, msg: Message) -> None:
        self.respond(msg, ("Response", "Goodbye"), ("Message", "Thanks for all the fish."))
        self.close()

    async def a_listcommands(self, msg: Message) -> None:
        self.respond(msg, ("Response", "Success"), *((k, k) for k in sorted(AUTHORITY)))

    async def a_coresettings(self, msg: Message) -> None:
        self.respond(msg, ("Response", "Success"), ("AMIversion", "11.0.0"), ("AsteriskVersion", "22.10.1"))

    async def a_corestatus(self, msg: Message) -> None:
        self.respond(msg, ("Response", "Success"), ("CoreCurrentCalls", str(len(self.sim.channels))))

    async def a_dbput(self, msg: Message) -> None:
        self.respond(msg, ("Response", "Success"), ("Message", "Updated database successfully"))

    a_dbget = a_dbdel = a_dbput

    async def a_filter(self, msg: Message) -> None:
        """``Operation: Add``, ``Filter: <pattern>``, optional ``MatchCriteria: name(X),header(Y),...``
        (the eventfilter syntax of manager.conf); for this session only."""
        if (msg.get("Operation") or "").lower() != "add":
            self.error(msg, "Unknown operation")
            return
        crit = msg.get("MatchCriteria") or ""
        try:
            flt = EventFilter.parse(f"eventfilter({crit})" if crit else "eventfilter", msg.get("Filter") or "")
        except FilterError as e:
            self.error(msg, "Filter did not compile.  Check the syntax of the filter given." if e.kind == "compile"
                       else "Filter was formatted incorrectly.  Check the syntax of the filter given.")
            return
        self.filters.add(flt)
        self.respond(msg, ("Response", "Success"), ("Message", "Success"))

    async def a_command(self, msg: Message) -> None:
        self.respond(msg, ("Response", "Success"), ("Message", "Command output follows"))

    async def a_queuestatus(self, msg: Message) -> None:
        self.respond(msg, ("Response", "Success"), ("EventList", "start"), ("Message", "Queue status will follow"))
        want, aid, n = msg.get("Queue"), msg.get("ActionID"), 0
        for queue, strategy, members in self.sim.config.queues:
            if want and want != queue:
                continue
            self.send(ev.queue_params(queue, strategy, aid))
            n += 1
            for name, location in members:
                self.send(ev.queue_member(queue, name, location, int(self.sim.started), aid))
                n += 1
        self.list_end(msg, "QueueStatusComplete", n)

    def list_end(self, msg: Message, name: str, n: int, items: bool = False) -> None:
        h: Headers = [("Event", name)]
        aid = msg.get("ActionID")
        if aid is not None:
            h.append(("ActionID", aid))
        h += [("EventList", "Complete"), ("ListItems", str(n))]
        if items:
            h.append(("Items", str(n)))
        self.send(h)

    async def a_originate(self, msg: Message) -> None:
        from .originate import originate

        app = msg.get("Application")
        if app is not None and "system" not in self.write and (
                app.lower() in BLACKLISTED_APPS or "(" in (msg.get("Data") or "")):
            self.error(msg, "Originate Access Forbidden: app or data blacklisted")
            return
        channel = msg.get("Channel") or ""
        variables = {}
        for v in msg.get_all("Variable"):
            for part in v.split(","):
                k, _, val = part.partition("=")
                variables[k] = val
        timeout = msg.get("Timeout") or "30000"
        is_async = (msg.get("Async") or "").lower() in ("true", "yes", "1")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        if not is_async:
            self.held = []
        originate(self.sim, channel=channel, context=msg.get("Context"), exten=msg.get("Exten"),
                  priority=int(msg.get("Priority") or 1), application=app, data=msg.get("Data"),
                  callerid=msg.get("CallerID"), variables=variables,
                  timeout_ms=int(timeout) if timeout.isdigit() else 30000,
                  action_id=msg.get("ActionID"),
                  on_response=lambda ok: done.done() or done.set_result(ok))
        if is_async:
            self.respond(msg, ("Response", "Success"), ("Message", "Originate successfully queued"))
            return
        ok = await done
        if ok:
            self.respond(msg, ("Response", "Success"), ("Message", "Originate successfully queued"))
        else:
            self.error(msg, "Originate failed")
        held, self.held = self.held or [], None
        for data in held:
            self._queue(data)

    async def a_redirect(self, msg: Message) -> None:
        name = msg.get("Channel") or ""
        ch = self.sim.find(name)
        if ch is None:
            self.error(msg, f"Channel does not exist: {name}")
            return
        self.respond(msg, ("Response", "Success"), ("Message", "Redirect successful"))
        self.sim.redirect(ch, msg.get("Context") or ch.context, msg.get("Exten") or ch.exten,
                          int(msg.get("Priority") or 1))

    async def a_hangup(self, msg: Message) -> None:
        name = msg.get("Channel") or ""
        cause_s = msg.get("Cause")
        cause = int(cause_s) if cause_s and cause_s.isdigit() else None
        if len(name) > 2 and name.startswith("/") and name.endswith("/"):
            try:
                rx = re.compile(name[1:-1])
            except re.error:
                self.error(msg, "Invalid regex")
                return
            hits = [c for n, c in list(self.sim.channels.items()) if rx.search(n)]
            self.respond(msg, ("Response", "Success"), ("EventList", "start"),
                         ("Message", "Channels hung up will follow"))
            for c in hits:
                h: Headers = [("Event", "ChannelHungup"), ("Channel", c.name)]
                if msg.get("ActionID") is not None:
                    h.append(("ActionID", msg.get("ActionID") or ""))
                self.send(h)
            self.list_end(msg, "ChannelsHungupListComplete", len(hits))
            for c in hits:
                self.sim.request_hangup(c, cause)
            return
        ch = self.sim.find(name)
        if ch is None:
            self.error(msg, "No such channel")
            return
        self.respond(msg, ("Response", "Success"), ("Message", "Channel Hungup"))
        self.sim.request_hangup(ch, cause)

    async def a_setvar(self, msg: Message) -> None:
        var, value = msg.get("Variable") or "", msg.get("Value") or ""
        if not var:
            self.error(msg, "No variable specified")
            return
        if var.upper().startswith(("DB(", "SHELL(", "FILE(")) and "system" not in self.write:
            self.error(msg, "Variable not set")
            return
        name = msg.get("Channel")
        if name:
            ch = self.sim.find(name)
            if ch is None:
                self.error(msg, "No such channel")
                return
            self.respond(msg, ("Response", "Success"), ("Message", "Variable Set"))
            self.sim.set_var(ch, var, value)  # the VarSet event trails the response, as in v3-05
            return
        self.sim.globals[var] = value
        self.respond(msg, ("Response", "Success"), ("Message", "Variable Set"))

    async def a_getvar(self, msg: Message) -> None:
        from .agi import resolve

        var = msg.get("Variable") or ""
        if var.upper().startswith(("SHELL(", "FILE(")) and "system" not in self.write:
            self.error(msg, "GetVar Access Forbidden: Variable")
            return
        name = msg.get("Channel")
        value = ""
        if name:
            ch = self.sim.find(name)
            if ch is None:
                self.error(msg, "No such channel")
                return
            if not var.upper().startswith("DB("):
                value = resolve(ch, var) or ""
        else:
            value = self.sim.globals.get(var, "")
        self.respond(msg, ("Response", "Success"), ("Variable", var), ("Value", value))

    async def a_status(self, msg: Message) -> None:
        from .agi import resolve

        name = msg.get("Channel")
        chans = list(self.sim.channels.values())
        if name:
            one = self.sim.find(name)
            if one is None:
                self.error(msg, "No such channel")
                return
            chans = [one]
        self.respond(msg, ("Response", "Success"), ("EventList", "start"),
                     ("Message", "Channel status will follow"))
        wanted = [v.strip() for v in (msg.get("Variables") or "").split(",") if v.strip()]
        now = time.monotonic()
        for c in chans:
            vs = [f"{v}={resolve(c, v) or ''}" for v in wanted]
            self.send(ev.status_item(c, int(now - c.created), vs, msg.get("ActionID")))
        self.list_end(msg, "StatusComplete", len(chans), items=True)

    async def a_coreshowchannels(self, msg: Message) -> None:
        self.respond(msg, ("Response", "Success"), ("EventList", "start"), ("Message", "Channels will follow"))
        now = time.monotonic()
        chans = list(self.sim.channels.values())
        for c in chans:
            self.send(ev.core_show_channel(c, int(now - c.created), msg.get("ActionID")))
        self.list_end(msg, "CoreShowChannelsComplete", len(chans))

    async def a_mixmonitor(self, msg: Message) -> None:
        ch = self.sim.find(msg.get("Channel") or "")
        if ch is None:
            self.error(msg, "No such channel")
            return
        self.respond(msg, ("Response", "Success"))
        self.sim.start_mixmonitor(ch, msg.get("File") or f"{ch.uniqueid}.wav", msg.get("Options") or "")

    async def a_mixmonitormute(self, msg: Message) -> None:
        ch = self.sim.find(msg.get("Channel") or "")
        if ch is None:
            self.error(msg, "No such channel")
            return
        if ch.mixmonitor is None:
            self.error(msg, "Cannot set mute flag")
            return
        self.respond(msg, ("Response", "Success"))
        direction, state = msg.get("Direction") or "both", msg.get("State") or "0"
        self.sim.mute_mixmonitor(ch, direction, state.lower() in ("1", "yes", "true", "on"))
        self.sim.emit(ev.mixmonitor_mute(ch, direction, state))

    async def a_stopmixmonitor(self, msg: Message) -> None:
        ch = self.sim.find(msg.get("Channel") or "")
        if ch is None:
            self.error(msg, "No such channel")
            return
        if ch.mixmonitor is None:
            self.error(msg, "Could not stop monitoring channel")
            return
        self.respond(msg, ("Response", "Success"))
        self.sim.stop_mixmonitor(ch)

    async def a_playdtmf(self, msg: Message) -> None:
        ch = self.sim.find(msg.get("Channel") or "")
        digit = (msg.get("Digit") or "")[:1]
        if ch is None:
            self.error(msg, "No such channel")
            return
        if not digit:
            self.error(msg, "No digit specified")
            return
        dur = int(msg.get("Duration") or 100)
        if (msg.get("Receive") or "").lower() in ("true", "yes", "1"):
            self.respond(msg, ("Response", "Success"), ("Message", "DTMF successfully queued"))
            await self.sim.send_dtmf(ch, digit, dur, begin=False)
            return
        await asyncio.sleep(self.sim.scale(dur / 1000))
        self.respond(msg, ("Response", "Success"), ("Message", "DTMF successfully queued"))
        if ch.peer is not None:  # played out of one Local half, the digit arrives on the other
            self.sim.spawn(self.sim.send_dtmf(ch.peer, digit, dur, wait=False))

    async def a_userevent(self, msg: Message) -> None:
        name = msg.get("UserEvent") or ""
        self.respond(msg, ("Response", "Success"))
        extra = [(k, v) for k, v in msg.headers if k.lower() not in ("action", "actionid", "userevent")]
        self.sim.emit([("Event", "UserEvent"), ("Privilege", "user,all"), ("UserEvent", name), *extra])


class AmiServer:
    def __init__(self, sim: AsteriskSim) -> None:
        self.sim = sim
        self.sessions: set[AmiSession] = set()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        cfg = self.sim.config
        self._server = await asyncio.start_server(self._accept, cfg.ami_host, cfg.ami_port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = AmiSession(self, reader, writer)
        self.sessions.add(s)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)  # type: ignore[arg-type]
        try:
            await s.run()
        except asyncio.CancelledError:
            # the server is shutting down this connection handler; it owns no other work
            writer.close()
        finally:
            self.sessions.discard(s)
            if task is not None:
                self._tasks.discard(task)  # type: ignore[arg-type]

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
            s.closed = True
            s.writer.transport.abort()

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
