"""Drive the simulator through the v3 scenarios as their transcripts' ``# setup:`` lines describe,
recording AMI (as ``ctilp``) and FastAGI in the transcript format."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, replace

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
    "v3-06-redirect-during-ivr": Plan(
        Caller("5556789", "Niaj"), ("GET DATA beep 10000 1", "SET VARIABLE CTI_NEXT queue"),
        (Offer("1004", 15, False),), redirect_in_ivr_after=1.5, caller_hangs_up_after=2.0),
}


async def run(name: str, time_factor: float = 1.0, agi_port: int = 0) -> tuple[str, str]:
    """-> (ami transcript, agi transcript) of scenario ``name``."""
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
    cfg = SimConfig(agi_port=port, time_factor=time_factor)
    sleep = lambda s: asyncio.sleep(s * time_factor)  # noqa: E731
    async with AsteriskSim(cfg) as sim:
        ami = AmiRecorder(t_ami)
        await ami.connect("127.0.0.1", sim.ami_port)
        await ami.action([("Action", "Login"), ("ActionID", "s-1"), ("Username", "ctilp"), ("Secret", "secret")])
        await ami.wait_for(lambda m: m.get("Response") == "Success")
        c = plan.caller
        await ami.action([("Action", "Originate"), ("ActionID", "orig-1"),
                          ("Channel", f"Local/{c.local_exten}@callers"), ("Context", "cti-inbound"),
                          ("Exten", "5551000"), ("Priority", "1"), ("CallerID", c.callerid), ("Async", "true")])
        resp = await ami.wait_for(lambda m: m.get("Event") == "OriginateResponse")
        chan = resp["Channel"]
        far = chan[:-1] + "2"
        n = 2
        for i, o in enumerate(plan.offers):
            if i == 0 and plan.redirect_in_ivr_after is not None:
                await sleep(plan.redirect_in_ivr_after)
            else:
                await ami.wait_for(lambda m: m.get("Event") == "MusicOnHoldStart", 30)
                await sleep(plan.moh_wait)
            await ami.action([("Action", "Redirect"), ("ActionID", f"s-{n}"), ("Channel", chan),
                              ("Context", "cti-agent"), ("Exten", o.agent), ("Priority", "1")])
            n += 1
            await ami.wait_for(lambda m: m.get("Event") in ("BridgeEnter", "UserEvent"), 30)
        if plan.mute:
            for st in ("1", "0"):
                await sleep(3)
                await ami.action([("Action", "MixMonitorMute"), ("ActionID", f"s-{n}"), ("Channel", chan),
                                  ("Direction", "both"), ("State", st)])
                n += 1
        if plan.caller_hangs_up_after is not None:
            if not plan.offers or plan.offers[-1].ring is None:
                await ami.wait_for(lambda m: m.get("Event") == "MusicOnHoldStart", 30)
            await sleep(plan.caller_hangs_up_after)
            await ami.action([("Action", "Hangup"), ("ActionID", f"s-{n}"), ("Channel", far), ("Cause", "16")])
            n += 1
        await ami.wait_for(lambda m: m.get("Event") == "Hangup" and m.get("Channel") == chan, 60)
        await asyncio.sleep(0.05)
        await ami.action([("Action", "Logoff"), ("ActionID", f"s-{n}")])
        await ami.wait_for(lambda m: m.get("Response") == "Goodbye")
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
