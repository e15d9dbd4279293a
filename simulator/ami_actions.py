"""What each AMI action does in the simulated Asterisk 22, as a least-privilege client sees it.

``AmiActions.dispatch`` checks the login and the write classes an action needs (Asterisk's
registration authority, ``AUTHORITY``), then runs the action on the channel core (``Switch``) or
places an Originate (``Originator``); replies go out through the ``AmiSession``, written before the
events behind them.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
import time

from cti.ami.protocol import Message

from . import events as ev
from .ami_session import AmiSession
from .manager_conf import EventFilter, FilterError, as_user
from .model import Headers, resolve
from .originate import Originator
from .switch import Switch

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


class AmiActions:
    def __init__(self, switch: Switch, originator: Originator) -> None:
        self.switch, self.originator = switch, originator

    async def dispatch(self, s: AmiSession, msg: Message) -> None:
        action = (msg.get("Action") or "").strip()
        key = action.lower()
        if key not in ("login", "challenge", "logoff", "ping") and s.user is None:
            s.error(msg, "Authentication Required")
            return
        handler = getattr(self, f"a_{key}", None)
        if handler is None or key not in AUTHORITY:
            s.error(msg, f"Invalid/unknown command: {action}. Use Action: ListCommands to show "
                         "available commands.")
            return
        need = AUTHORITY[key]
        if need is not None and not (need & s.write):
            s.error(msg, "Permission denied")
            return
        await handler(s, msg)

    # ------------------------------------------------------------------ the actions

    async def a_challenge(self, s: AmiSession, msg: Message) -> None:
        if (msg.get("AuthType") or "").lower() != "md5":
            s.error(msg, "Must specify AuthType")
            return
        s.challenge = str(random.randint(100000000, 999999999))
        s.respond(msg, ("Response", "Success"), ("Challenge", s.challenge))

    async def a_login(self, s: AmiSession, msg: Message) -> None:
        name = msg.get("Username") or ""
        raw = self.switch.config.users.get(name)
        spec = as_user(raw) if raw is not None else None
        ok = False
        if spec is not None:
            secret = spec.secret
            key = msg.get("Key")
            if (msg.get("AuthType") or "").lower() == "md5" and key is not None and s.challenge:
                ok = hashlib.md5((s.challenge + secret).encode()).hexdigest() == key.lower()
            else:
                ok = msg.get("Secret") == secret
        if not ok:
            await asyncio.sleep(self.switch.config.auth_fail_delay_s)
            s.error(msg, "Authentication failed")
            s.close()
            return
        assert spec is not None
        s.log_in(name, spec, (msg.get("Events") or "on").lower())
        s.respond(msg, ("Response", "Success"), ("Message", "Authentication accepted"))
        if s.events_on and "system" in s.read:
            up = int(time.time() - self.switch.started)
            s.send(ev.fully_booted(up, up))

    async def a_events(self, s: AmiSession, msg: Message) -> None:
        s.set_mask((msg.get("EventMask") or "off").lower())
        s.respond(msg, ("Response", "Success"), ("Events", "On" if s.events_on else "Off"))

    async def a_ping(self, s: AmiSession, msg: Message) -> None:
        s.respond(msg, ("Response", "Success"), ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))

    async def a_logoff(self, s: AmiSession, msg: Message) -> None:
        s.respond(msg, ("Response", "Goodbye"), ("Message", "Thanks for all the fish."))
        s.close()

    async def a_listcommands(self, s: AmiSession, msg: Message) -> None:
        s.respond(msg, ("Response", "Success"), *((k, k) for k in sorted(AUTHORITY)))

    async def a_coresettings(self, s: AmiSession, msg: Message) -> None:
        s.respond(msg, ("Response", "Success"), ("AMIversion", "11.0.0"), ("AsteriskVersion", "22.10.1"))

    async def a_corestatus(self, s: AmiSession, msg: Message) -> None:
        s.respond(msg, ("Response", "Success"), ("CoreCurrentCalls", str(len(self.switch.channels))))

    async def a_dbput(self, s: AmiSession, msg: Message) -> None:
        s.respond(msg, ("Response", "Success"), ("Message", "Updated database successfully"))

    a_dbget = a_dbdel = a_dbput

    async def a_filter(self, s: AmiSession, msg: Message) -> None:
        """``Operation: Add``, ``Filter: <pattern>``, optional ``MatchCriteria: name(X),header(Y),...``
        (the eventfilter syntax of manager.conf); for this session only."""
        if (msg.get("Operation") or "").lower() != "add":
            s.error(msg, "Unknown operation")
            return
        crit = msg.get("MatchCriteria") or ""
        try:
            flt = EventFilter.parse(f"eventfilter({crit})" if crit else "eventfilter", msg.get("Filter") or "")
        except FilterError as e:
            s.error(msg, "Filter did not compile.  Check the syntax of the filter given." if e.kind == "compile"
                    else "Filter was formatted incorrectly.  Check the syntax of the filter given.")
            return
        s.filters.add(flt)
        s.respond(msg, ("Response", "Success"), ("Message", "Success"))

    async def a_command(self, s: AmiSession, msg: Message) -> None:
        s.respond(msg, ("Response", "Success"), ("Message", "Command output follows"))

    async def a_queuestatus(self, s: AmiSession, msg: Message) -> None:
        s.respond(msg, ("Response", "Success"), ("EventList", "start"), ("Message", "Queue status will follow"))
        want, aid, n = msg.get("Queue"), msg.get("ActionID"), 0
        for queue, strategy, members in self.switch.config.queues:
            if want and want != queue:
                continue
            s.send(ev.queue_params(queue, strategy, aid))
            n += 1
            for name, location in members:
                s.send(ev.queue_member(queue, name, location, int(self.switch.started), aid))
                n += 1
        s.list_end(msg, "QueueStatusComplete", n)

    async def a_originate(self, s: AmiSession, msg: Message) -> None:
        app = msg.get("Application")
        if app is not None and "system" not in s.write and (
                app.lower() in BLACKLISTED_APPS or "(" in (msg.get("Data") or "")):
            s.error(msg, "Originate Access Forbidden: app or data blacklisted")
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
            s.hold_events()

        def on_response(ok: bool) -> None:
            if not done.done():
                done.set_result(ok)

        self.originator.originate(
            channel=channel, context=msg.get("Context"), exten=msg.get("Exten"),
            priority=int(msg.get("Priority") or 1), application=app, data=msg.get("Data"),
            callerid=msg.get("CallerID"), variables=variables,
            timeout_ms=int(timeout) if timeout.isdigit() else 30000,
            action_id=msg.get("ActionID"), on_response=on_response)
        if is_async:
            s.respond(msg, ("Response", "Success"), ("Message", "Originate successfully queued"))
            return
        ok = await done
        if ok:
            s.respond(msg, ("Response", "Success"), ("Message", "Originate successfully queued"))
        else:
            s.error(msg, "Originate failed")
        s.release_events()

    async def a_redirect(self, s: AmiSession, msg: Message) -> None:
        name = msg.get("Channel") or ""
        ch = self.switch.find(name)
        if ch is None:
            s.error(msg, f"Channel does not exist: {name}")
            return
        s.respond(msg, ("Response", "Success"), ("Message", "Redirect successful"))
        self.switch.redirect(ch, msg.get("Context") or ch.context, msg.get("Exten") or ch.exten,
                             int(msg.get("Priority") or 1))

    async def a_hangup(self, s: AmiSession, msg: Message) -> None:
        name = msg.get("Channel") or ""
        cause_s = msg.get("Cause")
        cause = int(cause_s) if cause_s and cause_s.isdigit() else None
        if len(name) > 2 and name.startswith("/") and name.endswith("/"):
            try:
                rx = re.compile(name[1:-1])
            except re.error:
                s.error(msg, "Invalid regex")
                return
            hits = [c for n, c in list(self.switch.channels.items()) if rx.search(n)]
            s.respond(msg, ("Response", "Success"), ("EventList", "start"),
                      ("Message", "Channels hung up will follow"))
            for c in hits:
                h: Headers = [("Event", "ChannelHungup"), ("Channel", c.name)]
                if msg.get("ActionID") is not None:
                    h.append(("ActionID", msg.get("ActionID") or ""))
                s.send(h)
            s.list_end(msg, "ChannelsHungupListComplete", len(hits))
            for c in hits:
                self.switch.request_hangup(c, cause)
            return
        ch = self.switch.find(name)
        if ch is None:
            s.error(msg, "No such channel")
            return
        s.respond(msg, ("Response", "Success"), ("Message", "Channel Hungup"))
        self.switch.request_hangup(ch, cause)

    async def a_setvar(self, s: AmiSession, msg: Message) -> None:
        var, value = msg.get("Variable") or "", msg.get("Value") or ""
        if not var:
            s.error(msg, "No variable specified")
            return
        if var.upper().startswith(("DB(", "SHELL(", "FILE(")) and "system" not in s.write:
            s.error(msg, "Variable not set")
            return
        name = msg.get("Channel")
        if name:
            ch = self.switch.find(name)
            if ch is None:
                s.error(msg, "No such channel")
                return
            s.respond(msg, ("Response", "Success"), ("Message", "Variable Set"))
            self.switch.set_var(ch, var, value)  # the VarSet event trails the response, as in v3-05
            return
        self.switch.globals[var] = value
        s.respond(msg, ("Response", "Success"), ("Message", "Variable Set"))

    async def a_getvar(self, s: AmiSession, msg: Message) -> None:
        var = msg.get("Variable") or ""
        if var.upper().startswith(("SHELL(", "FILE(")) and "system" not in s.write:
            s.error(msg, "GetVar Access Forbidden: Variable")
            return
        name = msg.get("Channel")
        value = ""
        if name:
            ch = self.switch.find(name)
            if ch is None:
                s.error(msg, "No such channel")
                return
            if not var.upper().startswith("DB("):
                value = resolve(ch, var) or ""
        else:
            value = self.switch.globals.get(var, "")
        s.respond(msg, ("Response", "Success"), ("Variable", var), ("Value", value))

    async def a_status(self, s: AmiSession, msg: Message) -> None:
        name = msg.get("Channel")
        chans = list(self.switch.channels.values())
        if name:
            one = self.switch.find(name)
            if one is None:
                s.error(msg, "No such channel")
                return
            chans = [one]
        s.respond(msg, ("Response", "Success"), ("EventList", "start"),
                  ("Message", "Channel status will follow"))
        wanted = [v.strip() for v in (msg.get("Variables") or "").split(",") if v.strip()]
        now = time.monotonic()
        for c in chans:
            vs = [f"{v}={resolve(c, v) or ''}" for v in wanted]
            s.send(ev.status_item(c, int(now - c.created), vs, msg.get("ActionID")))
        s.list_end(msg, "StatusComplete", len(chans), items=True)

    async def a_coreshowchannels(self, s: AmiSession, msg: Message) -> None:
        s.respond(msg, ("Response", "Success"), ("EventList", "start"), ("Message", "Channels will follow"))
        now = time.monotonic()
        chans = list(self.switch.channels.values())
        for c in chans:
            s.send(ev.core_show_channel(c, int(now - c.created), msg.get("ActionID")))
        s.list_end(msg, "CoreShowChannelsComplete", len(chans))

    async def a_mixmonitor(self, s: AmiSession, msg: Message) -> None:
        ch = self.switch.find(msg.get("Channel") or "")
        if ch is None:
            s.error(msg, "No such channel")
            return
        s.respond(msg, ("Response", "Success"))
        self.switch.start_mixmonitor(ch, msg.get("File") or f"{ch.uniqueid}.wav", msg.get("Options") or "")

    async def a_mixmonitormute(self, s: AmiSession, msg: Message) -> None:
        ch = self.switch.find(msg.get("Channel") or "")
        if ch is None:
            s.error(msg, "No such channel")
            return
        if ch.mixmonitor is None:
            s.error(msg, "Cannot set mute flag")
            return
        s.respond(msg, ("Response", "Success"))
        direction, state = msg.get("Direction") or "both", msg.get("State") or "0"
        self.switch.mute_mixmonitor(ch, direction, state.lower() in ("1", "yes", "true", "on"))
        self.switch.emit(ev.mixmonitor_mute(ch, direction, state))

    async def a_stopmixmonitor(self, s: AmiSession, msg: Message) -> None:
        ch = self.switch.find(msg.get("Channel") or "")
        if ch is None:
            s.error(msg, "No such channel")
            return
        if ch.mixmonitor is None:
            s.error(msg, "Could not stop monitoring channel")
            return
        s.respond(msg, ("Response", "Success"))
        self.switch.stop_mixmonitor(ch)

    async def a_playdtmf(self, s: AmiSession, msg: Message) -> None:
        ch = self.switch.find(msg.get("Channel") or "")
        digit = (msg.get("Digit") or "")[:1]
        if ch is None:
            s.error(msg, "No such channel")
            return
        if not digit:
            s.error(msg, "No digit specified")
            return
        dur = int(msg.get("Duration") or 100)
        if (msg.get("Receive") or "").lower() in ("true", "yes", "1"):
            s.respond(msg, ("Response", "Success"), ("Message", "DTMF successfully queued"))
            await self.switch.send_dtmf(ch, digit, dur, begin=False)
            return
        await asyncio.sleep(self.switch.scale(dur / 1000))
        s.respond(msg, ("Response", "Success"), ("Message", "DTMF successfully queued"))
        if ch.peer is not None:  # played out of one Local half, the digit arrives on the other
            self.switch.spawn(self.switch.send_dtmf(ch.peer, digit, dur, wait=False))

    async def a_userevent(self, s: AmiSession, msg: Message) -> None:
        name = msg.get("UserEvent") or ""
        s.respond(msg, ("Response", "Success"))
        extra = [(k, v) for k, v in msg.headers if k.lower() not in ("action", "actionid", "userevent")]
        self.switch.emit([("Event", "UserEvent"), ("Privilege", "user,all"), ("UserEvent", name), *extra])
