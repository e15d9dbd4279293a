"""Originate (AMI action and ``AsteriskSim.place_call``): a Local pair whose ``;2`` runs its stand-in
context and whose ``;1`` goes to the target context (or runs ``Application=Dial``)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from . import events as ev
from .actors import Caller, Step
from .dialplan import Dialplan


def parse_callerid(cid: str | None) -> tuple[str, str]:
    """-> (number, name); ``Grace <5551234>`` -> ("5551234", "Grace")."""
    if not cid:
        return "<unknown>", "<unknown>"
    m = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>\s*', cid)
    if m:
        return m.group(2) or "<unknown>", m.group(1) or "<unknown>"
    return cid.strip(), "<unknown>"


class Originator:
    """Places Originates: a simulator's own callers (with a ``Caller``) and AMI clients' ones."""

    def __init__(self, dialplan: Dialplan) -> None:
        self.dialplan = dialplan
        self.switch, self.far = dialplan.switch, dialplan.far

    def originate(self, *, channel: str, context: str | None = None, exten: str | None = None,
                  priority: int = 1, application: str | None = None, data: str | None = None,
                  callerid: str | None = None, variables: dict[str, str] | None = None,
                  timeout_ms: int = 30000, action_id: str | None = None, caller: Caller | None = None,
                  on_created: Callable[[str], object] | None = None,
                  on_response: Callable[[bool], object] | None = None, program: list[Step] | None = None) -> None:
        """Start the Originate in the background; ``on_created(linkedid)`` once the channels
        exist, ``on_response(ok)`` when the OriginateResponse goes out. ``program``: what the far
        half runs (a background caller or phone), instead of its context's stand-in."""
        self.switch.spawn(self._originate(channel, context, exten, priority, application, data, callerid,
                                          variables or {}, timeout_ms, action_id, caller, on_created,
                                          on_response, program))

    async def _originate(self, channel: str, context: str | None, exten: str | None,
                         priority: int, application: str | None, data: str | None, callerid: str | None,
                         variables: dict[str, str], timeout_ms: int, action_id: str | None,
                         caller: Caller | None, on_created: Callable[[str], object] | None,
                         on_response: Callable[[bool], object] | None, program: list[Step] | None) -> None:
        sw = self.switch
        target = [("Context", context or ""), ("Exten", exten or "")] if application is None else \
            [("Application", application), ("Data", data or "")]
        num, name = parse_callerid(callerid)
        m = re.fullmatch(r"Local/([^@]+)@([^/]+)(?:/n)?", channel)
        far = None
        if m is not None and sw.accepting:  # a shutdown refuses new channels
            ex2, ctx2 = m.groups()
            if program is None and caller is not None and ctx2 == "callers":
                program = caller.program()
            far = (ex2, ctx2, program) if program is not None else self.far.target(channel)
        if far is None:
            sw.emit(ev.originate_response(action_id, False, channel, target, 0, "<unknown>", num, name))
            if on_response:
                on_response(False)
            return
        ex2, ctx2, program = far
        o1, o2 = sw.new_local_pair(ex2, ctx2, None)
        o1.vars.update(variables)
        if caller is not None:
            sw.ledger.open(o1.uniqueid, caller, o1.name)
        if on_created:
            on_created(o1.uniqueid)
        o2.meta["role"] = "caller" if context == "cti-inbound" else "originated"
        sw.announce(o1)
        sw.emit(ev.newchannel(o2))
        sw.cel(o2, "CHAN_START")  # most often just after o2's Newchannel in the traces
        o1.app, o1.appdata = "AppDial2", "(Outgoing Line)"
        o1.meta["cel_base"] = ("AppDial2", "(Outgoing Line)")
        sw.emit(ev.newexten(o1, "AppDial2", "(Outgoing Line)"))
        o1.cid_num, o1.cid_name = num, name
        o1.meta["ani"] = "" if num == "<unknown>" else num
        sw.emit(ev.newcallerid(o1))
        o1.con_num, o1.con_name = num, name
        sw.emit(ev.newconnectedline(o1))
        o2.cid_num, o2.cid_name, o2.con_num, o2.con_name = num, name, num, name
        sw.emit(ev.newcallerid(o2))
        sw.emit(ev.newconnectedline(o2))
        sw.emit(ev.localbridge(o1, o2))
        sw.emit(ev.dialbegin(None, o1, f"{ex2}@{ctx2}"))
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[str] = loop.create_future()
        o2.meta["outcome"] = outcome
        self.far.start(o2, program)
        try:
            result = await asyncio.wait_for(asyncio.shield(outcome), sw.scale(timeout_ms / 1000))
        except TimeoutError:
            result = "timeout"
        if result != "answer":
            reason = {"busy": 5, "timeout": 3}.get(result, 1)
            if result == "busy":
                sw.emit(ev.dialend(None, o1, "BUSY"))
            c1, c2 = (17, 0) if result == "busy" else (19, 19)
            sw.emit(ev.hangup_request(o2, c1 if result != "busy" else 0))
            sw.destroy(o2, c1)
            sw.destroy(o1, c2)
            sw.emit(ev.originate_response(action_id, False, channel, target, reason, "<unknown>", num, name))
            if on_response:
                on_response(False)
            sw.ledger.ended(o1, c2)
            return
        sw.answer(o1)
        sw.emit(ev.dialend(None, o1, "ANSWER"))
        if application is None:
            o1.context, o1.exten, o1.priority = context or "default", exten or "s", priority
            sw.spawn(self.dialplan.run(o1))
        else:
            sw.spawn(self.dialplan.run_app(o1, application, data or ""))
        await asyncio.sleep(0)
        if application is not None:  # 09-B / v3-05: the device goes in use before the response
            sw.emit(ev.device_state(o1.meta["device"], "INUSE"))
            sw.emit(ev.device_state(o1.meta["device"], "INUSE"))
        sw.emit(ev.originate_response(action_id, True, o1.name, target, 4, o1.uniqueid, num, name))
        if on_response:
            on_response(True)
        if application is None:
            sw.emit(ev.device_state(o1.meta["device"], "INUSE"))
            sw.emit(ev.device_state(o1.meta["device"], "INUSE"))
