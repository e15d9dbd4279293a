"""Interpreter for exactly the v3 dialplan contract; emits Newexten / VarSet / ... in Asterisk 22's
order.

``Dialplan`` (one per simulator) holds the contract's contexts and what their applications need:
the channel core, the far halves that ``Dial`` reaches, and an ``AgiClient`` for ``AGI()`` (the
FastAGI client, which sits beside this module and is handed in by the assembly). ``Runner`` is the
execution of the dialplan on one ``;1`` channel.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from . import events as ev
from . import site
from .far import FarEnds
from .model import Bridge, Channel, Headers
from .switch import Switch

DataFn = Callable[[Channel], str]
DIAL_RESET = ("DIALSTATUS", "DIALEDPEERNUMBER", "DIALEDPEERNAME", "ANSWEREDTIME", "ANSWEREDTIME_MS",
              "DIALEDTIME", "DIALEDTIME_MS", "RINGTIME", "RINGTIME_MS", "PROGRESSTIME", "PROGRESSTIME_MS")


def _rec(ch: Channel) -> str:
    return ch.var("CTI_RECORD_FILE")


def contexts(agi: str) -> dict[str, list[tuple[str, DataFn]]]:
    """(application, AppData(channel)) per priority, 1-based; ``agi`` is ``host:port``."""
    return {
        "cti-inbound": [
            ("NoOp", lambda c: f"CTI inbound {c.exten}"),
            ("Set", lambda c: "AGIEXITONHANGUP=yes"),
            ("Set", lambda c: "CHANNEL(hangup_handler_push)=cti-end,s,1"),
            ("Answer", lambda c: ""),
            ("AGI", lambda c: f"agi://{agi}/ivr/main"),
            ("GotoIf", lambda c: f"{int(c.var('CTI_NEXT') == 'queue')}?cti-hold,s,1"),
            ("Hangup", lambda c: ""),
        ],
        "cti-hold": [
            ("AGI", lambda c: f"agi://{agi}/hold"),
            ("MusicOnHold", lambda c: "default,20"),
            ("Goto", lambda c: "s,1"),
        ],
        "cti-agent": [
            ("NoOp", lambda c: f"CTI offer to agent {c.exten}"),
            ("Set", lambda c: "CTI_AGENT_DEVICE="),
            ("Set", lambda c: "CTI_RECORD_FILE="),
            ("AGI", lambda c: f"agi://{agi}/offer/{c.exten}"),
            ("GotoIf", lambda c: f"{int(c.var('CTI_AGENT_DEVICE') == '')}?nodev"),
            ("ExecIf", lambda c: f"{int(_rec(c) != '')}?MixMonitor({_rec(c)},b)"),
            ("Dial", lambda c: f"{c.var('CTI_AGENT_DEVICE')},{c.var('CTI_RING_TIMEOUT') or '15'}"),
            ("ExecIf", lambda c: f"{int(_rec(c) != '')}?StopMixMonitor()"),
            ("UserEvent", lambda c: f"CtiDialResult,Agent: {c.exten},DialStatus: {c.var('DIALSTATUS')},"
                                    f"CallId: {c.var('CTI_CALL_ID')}"),
            ("Goto", lambda c: "cti-hold,s,1"),
            ("UserEvent", lambda c: f"CtiDialResult,Agent: {c.exten},DialStatus: NODEVICE,"
                                    f"CallId: {c.var('CTI_CALL_ID')}"),
            ("Goto", lambda c: "cti-hold,s,1"),
        ],
    }


def user_event_fields(data: str) -> tuple[str, list[tuple[str, str]]]:
    name, *rest = data.split(",")
    fields = []
    for part in rest:
        k, _, v = part.partition(":")
        fields.append((k.strip(), v[1:] if v.startswith(" ") else v))
    return name, fields


class AgiClient(Protocol):
    """Runs one ``AGI()`` of a channel (the FastAGI session); -> the AGISTATUS value."""

    async def run(self, ch: Channel, script: str, request: str) -> str: ...


class Dialplan:
    """The contract's contexts, run on ``;1`` channels (one per simulator)."""

    def __init__(self, switch: Switch, far: FarEnds, agi: AgiClient) -> None:
        self.switch, self.far, self.agi = switch, far, agi
        self.plan = {**contexts(f"{switch.config.agi_host}:{switch.config.agi_port}"), **site.contexts()}

    async def run(self, ch: Channel) -> None:
        """Run the dialplan from the channel's context, exten and priority until it ends."""
        await Runner(self, ch).run()

    async def run_app(self, ch: Channel, app: str, data: str) -> None:
        """An Originate with ``Application``: the ``;1`` runs that one application, no dialplan."""
        runner = Runner(self, ch)
        ch.app, ch.appdata = app, data
        try:
            if app == "Dial":
                device, _, timeout = data.partition(",")
                await runner.dial(device, float(timeout.split(",")[0] or 30))
                while not ch.interrupted:
                    await ch.block(None)
            else:
                while not ch.interrupted:
                    await ch.block(None)
        finally:
            if not ch.hungup:
                runner.finish(ch.soft_hangup if ch.soft_hangup is not None else 16, pbx=False)


class Runner:
    """Runs the contract's contexts on a caller's ``;1`` channel."""

    def __init__(self, dialplan: Dialplan, ch: Channel) -> None:
        self.ch = ch
        self.switch, self.far, self.agi_client = dialplan.switch, dialplan.far, dialplan.agi
        self.plan = dialplan.plan
        self.teardown1: list[Callable[[], None]] = []
        self.teardown2: list[Callable[[], None]] = []

    def emit(self, h: Headers) -> None:
        self.switch.emit(h)

    async def run(self) -> None:
        ch = self.ch
        try:
            while not ch.hungup:
                if ch.soft_hangup is not None:
                    break
                if ch.pending_redirect is not None:
                    ch.context, ch.exten, ch.priority = ch.pending_redirect
                    ch.pending_redirect = None
                steps = self.plan.get(ch.context)
                if steps is None or not 1 <= ch.priority <= len(steps):
                    ch.soft_hangup = 16
                    break
                app, data_fn = steps[ch.priority - 1]
                data = data_fn(ch)
                ch.app, ch.appdata = app, data
                self.emit(ev.newexten(ch, app, data))
                nxt = await self.execute(app, data)
                if ch.pending_redirect is not None or ch.soft_hangup is not None:
                    continue
                if nxt is None:
                    ch.priority += 1
                else:
                    ch.context, ch.exten, ch.priority = nxt
        finally:
            if not ch.hungup:
                self.finish(ch.soft_hangup if ch.soft_hangup is not None else 16)

    async def execute(self, app: str, data: str) -> tuple[str, str, int] | None:
        ch, sw = self.ch, self.switch
        if app == "Set":
            name, _, value = data.partition("=")
            if name == "CHANNEL(hangup_handler_push)":
                ch.handlers.append(value)
                self.emit(ev.hangup_handler_push(ch, value))
            else:
                sw.set_var(ch, name, value)
        elif app == "Answer":
            sw.answer(ch)
        elif app == "AGI":
            await self.agi(data)
        elif app == "GotoIf":
            cond, _, target = data.partition("?")
            if cond == "1":
                return self.goto(target)
        elif app == "Goto":
            return self.goto(data)
        elif app == "Hangup":
            ch.meta["hangupsource"] = "dialplan/builtin"
            ch.soft_hangup = 16
        elif app == "MusicOnHold":
            klass, _, duration = data.partition(",")
            self.emit(ev.moh_start(ch, klass or "default"))
            sw.cel(ch, "STREAM_BEGIN", ev.cel_extra(**{"class": klass or "default"}))
            await ch.block(sw.scale(float(duration)) if duration else None)
            sw.cel(ch, "STREAM_END")
            self.emit(ev.moh_stop(ch))
        elif app == "Wait":
            await ch.block(sw.scale(float(data)))
        elif app == "Playback":
            sw.stream_begin(ch, data)
            await ch.block(sw.scale(sw.sound_samples(data) / 8000))
            sw.cel(ch, "STREAM_END")
            sw.set_var(ch, "PLAYBACKSTATUS", "SUCCESS")  # also when cut short (app_playback)
        elif app == "ExecIf":
            cond, _, inner = data.partition("?")
            if cond == "1" and inner.startswith("MixMonitor("):
                file, _, opts = inner[len("MixMonitor("):].rstrip(")").partition(",")
                sw.start_mixmonitor(ch, file, opts)
            elif cond == "1" and inner.startswith("StopMixMonitor"):
                await asyncio.sleep(0)  # StopMixMonitor waits for the recording thread (v3-02: 2 ms)
                sw.stop_mixmonitor(ch)
        elif app == "Dial":
            device, _, timeout = data.rpartition(",")
            await self.dial(device, float(timeout or 15))
        elif app == "UserEvent":
            name, fields = user_event_fields(data)
            self.emit(ev.user_event(ch, name, fields))
            if name == "CtiDialResult":
                sw.ledger.offered(ch, ch.exten, dict(fields).get("DialStatus", ""))
        return None

    def goto(self, target: str) -> tuple[str, str, int]:
        ch = self.ch
        parts = target.split(",")
        if len(parts) == 1:  # a label: only 'nodev' exists
            return ch.context, ch.exten, 11
        if len(parts) == 2:
            return ch.context, parts[0], int(parts[1])
        return parts[0], parts[1], int(parts[2])

    async def agi(self, url: str) -> None:
        ch = self.ch
        script = url.split("/", 3)[3] if url.count("/") >= 3 else ""
        ch.in_agi = True
        try:
            status = await self.agi_client.run(ch, script, url)
        finally:
            ch.in_agi = False
        self.switch.set_var(ch, "AGISTATUS", status)

    # ------------------------------------------------------------------ Dial

    async def dial(self, device: str, timeout: float) -> None:
        ch, sw = self.ch, self.switch
        for name in DIAL_RESET:
            sw.set_var(ch, name, "")
        target = self.far.target(device) if sw.accepting else None  # no new channels in a shutdown
        if target is None:
            sw.set_var(ch, "DIALSTATUS", "CHANUNAVAIL")
            return
        exten, ctx, program = target
        started = time.monotonic()
        a1, a2 = sw.new_local_pair(exten, ctx, ch.linkedid)
        sw.announce(a1)
        sw.announce(a2)
        peer = f"{exten}@{ctx}"
        sw.set_var(a1, "DIALEDPEERNUMBER", peer)
        a1.exten = ch.exten  # app_dial gives the outgoing channel the caller's exten
        a1.cid_num, a1.cid_name, a1.con_num, a1.con_name = ch.exten, ch.cid_name, ch.cid_num, ch.cid_name
        a2.meta["ani"] = "" if ch.cid_num == "<unknown>" else ch.cid_num
        a1.app, a1.appdata = "AppDial", "(Outgoing Line)"
        a1.meta["cel_base"] = ("AppDial", "(Outgoing Line)")
        self.emit(ev.newexten(a1, "AppDial", "(Outgoing Line)"))
        self.emit(ev.newcallerid(a1))
        self.emit(ev.newconnectedline(a1))
        sw.set_var(a2, "DIALEDPEERNUMBER", peer)
        a2.cid_num, a2.cid_name, a2.con_num, a2.con_name = ch.cid_num, ch.cid_name, ch.exten, ch.cid_name
        self.emit(ev.newcallerid(a2))
        self.emit(ev.newconnectedline(a2))
        self.emit(ev.localbridge(a1, a2))
        self.emit(ev.dialbegin(ch, a1, peer))
        a2.meta["role"] = "dialled"
        a1.meta["dialer"] = ch
        outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        a2.meta["outcome"] = outcome
        self.far.start(a2, program)
        ch.wake.clear()
        waiter = asyncio.ensure_future(ch.wake.wait())
        aws: set[asyncio.Future[Any]] = {outcome, waiter}
        try:
            await asyncio.wait(aws, timeout=sw.scale(timeout),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        result = outcome.result() if outcome.done() else None
        if result == "answer" and not ch.interrupted:
            await self.bridged(a1, a2, started)
            return
        status = {"busy": "BUSY"}.get(result or "", "NOANSWER")
        if ch.interrupted:
            status = "CANCEL"
        self.emit(ev.dialend(ch, a1, status))
        self.emit(ev.hangup_request(a2, 0))
        sw.destroy(a1, 0)
        sw.set_var(ch, "DIALSTATUS", status)
        self.emit(ev.soft_hangup_request(a2))
        # the phone's half ends on its own thread: its Hangup comes once the caller, who goes on
        # in the dialplan at once, next waits (04, v2-03, v2-06, v3-02)
        asyncio.get_running_loop().call_soon(sw.destroy, a2, 17 if status == "BUSY" else 0)

    async def bridged(self, a1: Channel, a2: Channel, started: float) -> None:
        ch, sw = self.ch, self.switch
        peer = f"{a2.exten}@{a2.context}"
        sw.answer(a1)
        sw.set_var(ch, "DIALSTATUS", "ANSWER")
        sw.set_var(ch, "DIALEDPEERNAME", a1.name)
        sw.set_var(ch, "DIALEDPEERNUMBER", peer)
        a1.exten = ""  # app_dial clears the answered peer's exten: DialEnd already shows it empty
        self.emit(ev.dialend(ch, a1, "ANSWER"))
        bridge = Bridge(sw.ids.bridge_id())
        self.emit(ev.bridge_create(bridge))
        self.emit(ev.device_state(f"Local/{peer}", "INUSE"))
        self.emit(ev.newexten(a1, "AppDial", "(Outgoing Line)"))
        for c in (a1, ch):
            sw.media_tick(c)
            bridge.channels.append(c)
            c.bridge = bridge
            sw.cel_bridge("BRIDGE_ENTER", bridge, c)
            self.emit(ev.bridge_enter(bridge, c))
        sw.set_var(a1, "BRIDGEPEER", ch.name)
        sw.set_var(ch, "BRIDGEPEER", a1.name)
        answered = time.monotonic()
        ch.settled.set()  # lets the far halves' next steps (Wait) show: the caller's side first
        a1.settled.set()
        self.far.answered(ch, a2.exten)
        while not ch.interrupted:
            await ch.block(None)
        if not ch.hangup_by_peer:  # the caller side ended (or was redirected/hung up by AMI)
            sw.set_var(ch, "BRIDGEPEER", "")
            sw.set_var(a1, "BRIDGEPEER", "")
            sw.bridge_leave(bridge, ch)

            def agent_side() -> None:
                if a1.hungup:
                    return
                sw.bridge_leave(bridge, a1)
                self.emit(ev.hangup_request(a2, 16))
                sw.destroy(a1, 16)
                self.emit(ev.bridge_destroy(bridge))

            def agent_far() -> None:
                if a2.hungup:
                    return
                self.emit(ev.soft_hangup_request(a2))
                sw.destroy(a2, 16)

            def agent_shutdown() -> None:  # the agent's far half ends on its own thread (cause 0)
                if a2.hungup:
                    return
                self.emit(ev.soft_hangup_request(a2))
                self.emit(ev.hangup_request(a1, 0))
                sw.destroy(a2, 0)
                if not a1.hungup:
                    sw.bridge_leave(bridge, a1)
                    self.emit(ev.bridge_destroy(bridge))
                    sw.destroy(a1, 16)

            if ch.meta.get("shutdown"):
                self.teardown2.append(agent_shutdown)
            else:
                self.teardown1.append(agent_side)
                self.teardown2.append(agent_far)
            if ch.pending_redirect is not None and ch.soft_hangup is None:
                agent_side()
                agent_far()
        now = time.monotonic()
        t_ans, t_dial = now - answered, now - started
        for name, val in (("ANSWEREDTIME", str(int(t_ans))), ("ANSWEREDTIME_MS", str(int(t_ans * 1000))),
                          ("DIALEDTIME", str(int(t_dial))), ("DIALEDTIME_MS", str(int(t_dial * 1000))),
                          ("DIALSTATUS", "ANSWER")):
            sw.set_var(ch, name, val)

    # ------------------------------------------------------------------ the end of the call

    def finish(self, cause: int, pbx: bool = True) -> None:
        """The end of the ``;1``: ``pbx`` when it ran dialplan (SoftHangupRequest, hangup handlers);
        False when an Originate ran one application on it (09-B/v3-05 click-to-dial)."""
        ch, sw = self.ch, self.switch
        if pbx:
            self.emit(ev.soft_hangup_request(ch))
        loc = (ch.context, ch.exten, ch.priority)
        for handler in ch.handlers:
            self.emit(ev.hangup_handler_run(ch, handler))
            sw.set_var(ch, "LOCAL(ARGC)", "0")
            self.run_teardown(self.teardown1)
            ch.context, ch.exten, ch.priority = "cti-end", "s", 1
            data = (f"CtiCallEnd,CallId: {ch.var('CTI_CALL_ID')},DialStatus: {ch.var('DIALSTATUS')},"
                    f"Cause: {cause}")
            self.emit(ev.newexten(ch, "UserEvent", data))
            name, fields = user_event_fields(data)
            self.emit(ev.user_event(ch, name, fields))
            ch.priority = 2
            self.emit(ev.newexten(ch, "Return", ""))
            sw.set_var(ch, "ARGC", "")
            sw.set_var(ch, "GOSUB_RETVAL", "")
            ch.context, ch.exten, ch.priority = loc
        if pbx:
            self.run_teardown(self.teardown1)
        far = ch.peer
        if far is not None and not far.hungup:
            self.emit(ev.hangup_request(far, cause))
            if far.meta.get("playback"):
                sw.set_var(far, "PLAYBACKSTATUS", "SUCCESS")
        sw.destroy(ch, cause, cel_after=True)  # the pbx thread's channel: its CEL most often trails
        self.run_teardown(self.teardown1)
        if pbx:
            self.run_teardown(self.teardown2)

        if far is not None and not far.hungup:
            self.emit(ev.soft_hangup_request(far))
            if far.meta.get("playback"):
                sw.cel(far, "STREAM_END")
            sw.destroy(far, cause)
        self.run_teardown(self.teardown2)
        sw.ledger.ended(ch, cause)

    @staticmethod
    def run_teardown(fs: list[Callable[[], None]]) -> None:
        for f in fs:
            f()
        fs.clear()
