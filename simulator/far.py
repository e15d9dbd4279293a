"""The far (``;2``) halves of Local channels: the ``[callers]`` and ``[agent-phones]`` stand-ins.

A caller's or a phone's program (``actors.Step`` list) runs on its ``;2`` as a task bound to that
channel; ``Answer``/``Busy`` resolve the outcome its dialler waits for. ``FarEnds`` owns the
agent phones by extension.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

from . import events as ev
from . import site
from .actors import AgentPhone, Caller, Step
from .model import Channel
from .switch import Switch, resolve_outcome


class FarEnds:
    def __init__(self, switch: Switch, phones: tuple[AgentPhone, ...]) -> None:
        self.switch = switch
        self.phones = {p.ext: p for p in phones}
        self.expected: dict[str, list[Step]] = {}  # device -> the program of its next call (site phones)

    def expect(self, device: str, program: list[Step]) -> None:
        """The next call to ``device`` (``Local/<ext>@<context>``: a Dial, an Originate) reaches
        ``program`` (a site phone's or a background caller's)."""
        self.expected[device] = program

    def target(self, device: str) -> tuple[str, str, list[Step]] | None:
        """What a dial string reaches: (exten, context, program), or None (CHANUNAVAIL)."""
        m = re.fullmatch(r"Local/([^@]+)@([^/,]+)(?:/n)?", device)
        if m is None:
            return None
        exten, ctx = m.groups()
        expected = self.expected.pop(f"Local/{exten}@{ctx}", None)
        if expected is not None:
            return exten, ctx, expected
        if ctx == "agent-phones":
            phone = self.phones.get(exten)
            prog = phone.program() if phone else None
            return (exten, ctx, prog) if prog else None
        if ctx == site.PHONES:
            return exten, ctx, site.phone()
        if ctx == "callers":
            stand_in = {"talk": Caller("", playback=True), "abandon": Caller("", patience_s=6),
                        "digits": Caller("", digits_plan=((2, "2"),))}.get(exten, Caller(""))
            return exten, ctx, stand_in.program()
        return None

    def start(self, ch2: Channel, program: list[Step]) -> None:
        self.switch.bind(ch2, self._run(ch2, program))

    async def _run(self, ch2: Channel, program: list[Step]) -> None:
        sw = self.switch
        for prio, (app, data) in enumerate(program, 1):
            if ch2.hungup:
                return
            ch2.priority, ch2.app, ch2.appdata = prio, app, data
            sw.emit(ev.newexten(ch2, app, data))
            if app == "Answer":
                sw.answer(ch2)
                if ch2.meta.get("role") == "dialled":
                    sw.emit(ev.device_state(ch2.meta["device"], "INUSE"))
                resolve_outcome(ch2, "answer")
                # the far half's next step shows once the near half has moved on and waits for
                # media (the traces: after the IVR's first long command, or the hold AGI's start)
                if ch2.peer is not None:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(ch2.peer.settled.wait(), 0.1)
            elif app == "Wait":
                if ch2.meta.get("role") == "dialled" and ch2.state != 6 and prio == len(program):
                    await asyncio.Event().wait()  # rings until Dial gives up
                await asyncio.sleep(sw.scale(float(data)))
            elif app == "Busy":
                ch2.state = 7
                sw.emit(ev.newstate(ch2))
                resolve_outcome(ch2, "busy")
                await asyncio.Event().wait()
            elif app == "Playback":
                sw.media_tick(ch2)
                ch2.meta["playback"] = True
                sw.stream_begin(ch2, data)
                await asyncio.sleep(sw.scale(sw.sound_samples(data) / 8000))
                sw.media_tick(ch2)
                ch2.meta["playback"] = False
                sw.cel(ch2, "STREAM_END")
                sw.set_var(ch2, "PLAYBACKSTATUS", "SUCCESS")
            elif app == "SendDTMF":
                if ch2.peer is not None:
                    for d in data:
                        await sw.send_dtmf(ch2.peer, d)
            elif app == "Hangup":
                ch2.meta["hangupsource"] = "dialplan/builtin"
                if ch2.meta.get("role") != "dialled":
                    sw.cel_hangup(ch2, 16)  # the traces: CEL sees it before SoftHangupRequest
                sw.far_hangup(ch2, 16)
                return
        sw.far_hangup(ch2, 16)

    def answered(self, ch: Channel, agent: str) -> None:
        """An agent answered the caller ``ch``: noted in the ledger; a caller with ``talk_s``
        stops its program and hangs up after that long. A Dial outside ``cti-agent`` (a call of
        the site's, or our caller redirected there by another client) reached no agent."""
        if ch.context != "cti-agent":
            return
        rec = self.switch.ledger.answered(ch, agent)
        far = ch.peer
        caller = rec.caller if rec else None
        if far is not None and caller is not None and caller.talk_s is not None:
            self.switch.unbind(far)
            self.switch.spawn(self._talk(far, caller.talk_s))

    async def _talk(self, far: Channel, talk_s: float) -> None:
        await asyncio.sleep(self.switch.scale(talk_s))
        self.switch.far_hangup(far, 16)
