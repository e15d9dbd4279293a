"""Drive the simulator through the v3 scenarios as their transcripts' ``# setup:`` lines describe,
recording AMI (as ``ctilp``) and FastAGI in the transcript format."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .actors import Caller
from .core import AsteriskSim, SimConfig
from .record import AgiConn, AmiRecorder, ScriptedAgi, Transcript


@dataclass(frozen=True)
class Offer:
    agent: str
    ring: int | None = None  # None: stale offer (set nothing)
    record: bool = False


@dataclass(frozen=True)
class Plan:
    caller: Caller
    ivr: tuple[str, ...]  # commands after ANSWER + SET VARIABLE CTI_CALL_ID
    offers: tuple[Offer, ...] = ()
    moh_wait: float = 3.0
    redirect_in_ivr_after: float | None = None
    mute: bool = False
    caller_hangs_up_after: float | None = None  # after the last bridge / MOH
    agent_hangs_up: bool = False


SHORT = ("SET VARIABLE CTI_NEXT queue",)
PLANS: dict[str, Plan] = {
    "v3-01-answered-recorded": Plan(
        Caller("5551234", "Grace", playback=True),
        ('STREAM FILE hello-world ""', "GET DATA beep 3000 1", "SET VARIABLE CTI_NEXT queue"),
        (Offer("1004", 20, True),), mute=True, caller_hangs_up_after=3.0),
    "v3-02-ring-no-answer-then-answered": Plan(
        Caller("5552345", "Heidi", playback=True), SHORT,
        (Offer("1002", 5, True), Offer("1001", 15, True)), moh_wait=2.0, agent_hangs_up=True),
    "v3-03-stale-offer": Plan(
        Caller("5553456", "Ivan"), SHORT, (Offer("1003"),), moh_wait=2.0, caller_hangs_up_after=2.0),
    "v3-04-caller-hangs-up-in-ivr": Plan(
        Caller("5554567", "Judy", patience_s=6), ('STREAM FILE demo-congrats ""', "GET DATA beep 5000 1",
                                                  "SET VARIABLE CTI_NEXT hangup")),
    "v3-05-privileges": Plan(Caller("5555678", "Mallory"), SHORT, (Offer("1004", 15, True),)),
    "v3-06-redirect-during-ivr": Plan(
        Caller("5556789", "Niaj"), ("GET DATA beep 10000 1", "SET VARIABLE CTI_NEXT queue"),
        (Offer("1004", 15, False),), redirect_in_ivr_after=1.5, caller_hangs_up_after=2.0),
}


class Flow:
    """What the scenario driver needs while it runs: the recorder, the caller's channels, timing."""

    def __init__(self, ami: AmiRecorder, t: Transcript, chan: str, time_factor: float) -> None:
        self.ami, self.t, self.chan, self.far = ami, t, chan, chan[:-1] + "2"
        self.time_factor = time_factor
        self.n = 2

    async def sleep(self, s: float) -> None:
        await asyncio.sleep(s * self.time_factor)

    def aid(self) -> str:
        self.n += 1
        return f"s-{self.n - 1}"

    async def act(self, action: str, *h: tuple[str, str]) -> dict[str, str]:
        return await self.ami.act([("Action", action), ("ActionID", self.aid()), *h])

    async def send(self, action: str, *h: tuple[str, str]) -> None:
        await self.ami.action([("Action", action), ("ActionID", self.aid()), *h])

    async def until(self, pred: Callable[[dict[str, str]], bool], after: int, timeout: float = 30) -> dict[str, str]:
        return await self.ami.wait_for(pred, timeout, after)

    def note(self, text: str) -> None:
        self.t.comment(f"(scenario) {text}")


async def plan_flow(f: Flow, plan: Plan) -> None:
    """Redirects to the plan's offers, mutes, and the caller's hangup, as the v3 set-ups say."""
    mark = 0  # the first MusicOnHoldStart may already be there
    for i, o in enumerate(plan.offers):
        if i == 0 and plan.redirect_in_ivr_after is not None:
            await f.sleep(plan.redirect_in_ivr_after)
        else:
            await f.until(lambda m: m.get("Event") == "MusicOnHoldStart", mark)
            await f.sleep(plan.moh_wait)
        mark = f.ami.mark()
        await f.send("Redirect", ("Channel", f.chan), ("Context", "cti-agent"), ("Exten", o.agent), ("Priority", "1"))
        await f.until(lambda m: m.get("Event") in ("BridgeEnter", "UserEvent"), mark)
        mark = f.ami.mark() if plan.offers[-1] is not o else mark
    if plan.mute:
        for st in ("1", "0"):
            await f.sleep(3)
            await f.send("MixMonitorMute", ("Channel", f.chan), ("Direction", "both"), ("State", st))
    if plan.caller_hangs_up_after is not None:
        if not plan.offers or plan.offers[-1].ring is None:
            await f.until(lambda m: m.get("Event") == "MusicOnHoldStart", mark)
        await f.sleep(plan.caller_hangs_up_after)
        await f.send("Hangup", ("Channel", f.far), ("Cause", "16"))


def list_complete(action_id: str) -> Callable[[dict[str, str]], bool]:
    """The message that ends the event list of action ``action_id``."""
    return lambda m: m.get("EventList") == "Complete" and m.get("ActionID") == action_id


async def privileges_flow(f: Flow, plan: Plan) -> None:
    """v3-05: every action of interest as ctilp, on a live caller (see the trace's # setup line)."""
    await f.until(lambda m: m.get("Event") == "MusicOnHoldStart", 0)
    await f.sleep(1.0)
    f.note("actions that need 'system' or 'command' (expected: refused)")
    await f.act("MixMonitor", ("Channel", f.chan), ("File", "cti-priv-test.wav"))
    await f.act("DBPut", ("Family", "cti_agent"), ("Key", "1004"), ("Val", "Local/1004@agent-phones"))
    await f.act("Filter", ("Operation", "Add"), ("Filter", "Event: UserEvent"))
    await f.act("Command", ("Command", "core show channels"))
    await f.act("Originate", ("Channel", "Local/1004@agent-phones"), ("Application", "System"), ("Data", "true"),
                ("Async", "true"))
    f.note("dialplan functions from AMI: DB() is an 'escalating' function, SHELL() needs 'system'")
    await f.act("Getvar", ("Channel", f.chan), ("Variable", "DB(cti_probe/x)"))
    await f.act("Setvar", ("Channel", f.chan), ("Variable", "DB(cti_probe/x)"), ("Value", "2"))
    await f.act("Getvar", ("Channel", f.chan), ("Variable", "SHELL(echo hi)"))
    await f.sleep(0.5)
    f.note("call/reporting actions on the caller in MOH (expected: allowed)")
    await f.act("Setvar", ("Channel", f.chan), ("Variable", "CTI_RING_TIMEOUT"), ("Value", "15"))
    await f.act("Getvar", ("Channel", f.chan), ("Variable", "CTI_CALL_ID"))
    for action in ("Status", "CoreShowChannels", "QueueStatus"):
        aid = f"s-{f.n}"
        mark = f.ami.mark()
        await f.act(action, *((("Channel", f.chan),) if action == "Status" else ()))
        await f.until(list_complete(aid), mark)
    await f.act("PlayDTMF", ("Channel", f.chan), ("Digit", "5"), ("Duration", "100"))
    await f.sleep(1.0)
    f.note(f"ACD: Redirect {f.chan} -> cti-agent,1004,1 (offer with recording)")
    mark = f.ami.mark()
    await f.act("Redirect", ("Channel", f.chan), ("Context", "cti-agent"), ("Exten", "1004"), ("Priority", "1"))
    await f.until(lambda m: m.get("Event") == "BridgeEnter" and m.get("Channel") == f.chan, mark)
    await f.sleep(1.0)
    f.note("recording control on the bridged caller")
    for st in ("1", "0"):
        await f.act("MixMonitorMute", ("Channel", f.chan), ("Direction", "both"), ("State", st))
        await f.sleep(1.0)
    await f.act("StopMixMonitor", ("Channel", f.chan))
    await f.sleep(0.5)
    f.note("StopMixMonitor again (no recording left on the channel)")
    await f.act("StopMixMonitor", ("Channel", f.chan))
    await f.sleep(0.5)
    f.note("click-to-dial: Originate Local/1004@agent-phones Application=Dial Data=Local/wait@callers,30")
    mark = f.ami.mark()
    await f.act("Originate", ("Channel", "Local/1004@agent-phones"), ("Application", "Dial"),
                ("Data", "Local/wait@callers,30"), ("CallerID", "CTI <5551000>"), ("Async", "true"))
    c2d = (await f.until(lambda m: m.get("Event") == "OriginateResponse", mark))["Channel"]
    await f.until(lambda m: m.get("Event") == "BridgeEnter" and m.get("Channel") == c2d, mark)
    await f.sleep(2.0)
    f.note(f"hang up the click-to-dial call: AMI Hangup {c2d} Cause 16")
    mark = f.ami.mark()
    await f.act("Hangup", ("Channel", c2d), ("Cause", "16"))
    await f.until(lambda m: m.get("Event") == "Hangup" and m.get("Channel") == c2d, mark)
    await f.sleep(1.0)
    f.note(f"AMI Hangup {f.chan} Cause 16")
    await f.act("Hangup", ("Channel", f.chan), ("Cause", "16"))
    await f.sleep(1.4)


FLOWS: dict[str, Callable[[Flow, Plan], Awaitable[None]]] = {"v3-05-privileges": privileges_flow}


async def run(name: str, time_factor: float = 1.0, agi_port: int = 0,
              record_dir: str | None = None) -> tuple[str, str]:
    """-> (ami transcript, agi transcript) of scenario ``name``; with ``record_dir`` the
    MixMonitor files are written there."""
    plan = PLANS[name]
    t_ami, t_agi = Transcript(), Transcript()
    t_agi.t0 = t_ami.t0
    call_id = str(uuid.uuid4())
    offers = list(plan.offers)
    state = {"offer": 0}

    async def script(c: AgiConn) -> None:
        s = c.env.get("agi_network_script", "")
        if s == "ivr/main":
            for line in ("ANSWER", f"SET VARIABLE CTI_CALL_ID {call_id}", *plan.ivr):
                await c.cmd(line)  # once Asterisk has closed, the rest are noted as not sent
        elif s == "hold":
            await c.cmd('STREAM FILE beep ""')
        elif s.startswith("offer/"):
            o = offers[state["offer"]]
            state["offer"] += 1
            await c.cmd("GET VARIABLE CTI_CALL_ID")
            if o.ring is not None:
                await c.cmd(f"SET VARIABLE CTI_AGENT_DEVICE Local/{o.agent}@agent-phones")
                await c.cmd(f"SET VARIABLE CTI_RING_TIMEOUT {o.ring}")
                if o.record:
                    await c.cmd(f"SET VARIABLE CTI_RECORD_FILE cti-{call_id}.wav")

    agi = ScriptedAgi(t_agi, script)
    port = await agi.start(port=agi_port)
    cfg = SimConfig(agi_port=port, time_factor=time_factor, record_dir=record_dir)
    async with AsteriskSim(cfg) as sim:
        ami = AmiRecorder(t_ami)
        await ami.connect("127.0.0.1", sim.ami_port)
        await ami.act([("Action", "Login"), ("ActionID", "s-1"), ("Username", "ctilp"), ("Secret", "secret")])
        c = plan.caller
        mark = ami.mark()
        await ami.action([("Action", "Originate"), ("ActionID", "orig-1"),
                          ("Channel", f"Local/{c.local_exten}@callers"), ("Context", "cti-inbound"),
                          ("Exten", "5551000"), ("Priority", "1"), ("CallerID", c.callerid), ("Async", "true")])
        resp = await ami.wait_for(lambda m: m.get("Event") == "OriginateResponse", 10, mark)
        f = Flow(ami, t_ami, resp["Channel"], time_factor)
        await FLOWS.get(name, plan_flow)(f, plan)
        await f.until(lambda m: m.get("Event") == "Hangup" and m.get("Channel") == f.chan, mark, 60)
        await asyncio.sleep(0.05)
        await f.act("Logoff")
        await asyncio.sleep(0.02)
        await ami.close()
    await agi.stop()
    head = [f"# scenario: {name}   asterisk 22.10.1   captured sim", "# transport: AMI; default line terminator CRLF"]
    return "\n".join(head) + "\n" + t_ami.text(), \
        "\n".join([head[0], "# transport: FastAGI; default line terminator LF"]) + "\n" + t_agi.text()


def main() -> None:
    import sys

    name, out = sys.argv[1], sys.argv[2]
    tf = float(sys.argv[3]) if len(sys.argv) > 3 else 1.0
    ami, agi = asyncio.run(run(name, tf, 4573))
    with open(out + ".ami.txt", "w") as f:
        f.write(ami)
    with open(out + ".agi.txt", "w") as f:
        f.write(agi)


if __name__ == "__main__":
    main()
