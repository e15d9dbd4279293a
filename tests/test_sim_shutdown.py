"""``core stop now`` / ``core restart now`` (``AsteriskSim.shutdown``) as Asterisk 22 does them
(main/asterisk.c, main/channel.c ast_softhangup_all; real capture: fixtures/site-traces/sh-restart),
and the soft-hangup flags in ``SoftHangupRequest``."""

from __future__ import annotations

import asyncio
import time

import pytest

from cti.ami.protocol import Message
from cti.calls import CallTracker
from cti.domain import SHUTDOWN, CallEnded
from simulator import AsteriskSim, BackgroundMix, Caller, SimConfig
from simulator.record import AgiConn, AmiRecorder, ScriptedAgi, Transcript, contract_script

TF = 0.02
ADMIN = ("secret", frozenset({"system", "call", "dialplan", "user", "agent", "reporting"}),
         frozenset({"system", "call", "originate", "reporting"}))
Msg = dict[str, str]


async def login(sim: AsteriskSim, user: str) -> AmiRecorder:
    r = AmiRecorder(Transcript())
    await r.connect("127.0.0.1", sim.ami_port)
    await r.act([("Action", "Login"), ("ActionID", "l"), ("Username", user), ("Secret", "secret")])
    return r


def ivr(c_ivr: tuple[str, ...]) -> ScriptedAgi:
    return ScriptedAgi(Transcript(), contract_script(ivr=c_ivr))


def stay_in_ivr(number: str) -> ScriptedAgi:
    """The contract's FastAGI side; the caller ``number`` stays in the IVR (a long GET DATA)."""
    plain = contract_script(device="Local/1004@agent-phones", ring=15)

    async def script(c: AgiConn) -> None:
        if c.env.get("agi_network_script") == "ivr/main" and c.env.get("agi_callerid") == number:
            for line in ("ANSWER", "SET VARIABLE CTI_CALL_ID cid-ivr", "GET DATA beep 60000 1"):
                await c.cmd(line)
            return
        await plain(c)

    return ScriptedAgi(Transcript(), script)


async def busy_pbx(sim: AsteriskSim) -> dict[str, str]:
    """A caller in MOH, one bridged with agent 1004, one in the IVR (GET DATA), an internal call
    bridged: -> {role: linkedid}."""
    moh = await sim.place_call(Caller("5557001", "Olivia"))
    await sim.wait_in_app(moh)
    talk = await sim.place_call(Caller("5557002", "Peggy"))
    sim.redirect(await sim.wait_in_app(talk), "cti-agent", "1004", 1)
    await sim.wait_in_app(talk, "Dial")
    mix = BackgroundMix(internal=1, queue=0, redirect=0, no_answer=0, ring_s=(0, 0), talk_s=(500, 500), seed=1)
    stats = await sim.run_background(10, count=1, mix=mix, wait=False)
    in_ivr = await sim.place_call(Caller("5557003", "Quentin", exten="ivr"))
    await sim.wait_in_app(in_ivr, "AGI")
    for _ in range(200):  # both bridges made
        if sum(c.bridge is not None for c in sim.channels.values()) == 4:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    return {"moh": moh, "talk": talk, "ivr": in_ivr, "internal": stats.linkedids[0]}


def after(msgs: list[Msg], pred: object) -> list[Msg]:
    i = next(i for i, m in enumerate(msgs) if pred(m))  # type: ignore[operator]
    return msgs[i:]


async def test_core_stop_now() -> None:
    agi = stay_in_ivr("5557003")
    port = await agi.start()
    users = {**SimConfig().users, "admin": ADMIN}
    async with AsteriskSim(SimConfig(agi_port=port, time_factor=TF, users=users)) as sim:
        ami, adm = await login(sim, "ctilp"), await login(sim, "admin")
        calls = await busy_pbx(sim)
        live = set(sim.channels)
        assert len(live) == 12
        t0 = time.monotonic()
        await sim.shutdown(restart=False)
        assert time.monotonic() - t0 >= 1.0 * TF  # Asterisk gives the channels 1 s more
        await asyncio.wait_for(asyncio.gather(ami.task, adm.task), 2)  # both connections: EOF
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", sim.ami_port)
        with pytest.raises(RuntimeError):
            await sim.place_call(Caller("5557009", "Late"))
        records = {role: sim.record.get(lid) for role, lid in calls.items()}
    await agi.stop()
    msgs = after(ami.messages, lambda m: m.get("Event") == "SoftHangupRequest" and m.get("Cause") == "4")
    soft4 = [m for m in msgs if m.get("Event") == "SoftHangupRequest" and m.get("Cause") == "4"]
    assert {m["Channel"] for m in soft4} == live and len(soft4) == len(live)  # every channel, once
    assert msgs[:len(live)] == soft4  # all of them first
    hangups = {m["Channel"]: m["Cause"] for m in msgs if m.get("Event") == "Hangup"}
    assert set(hangups) == live
    cause = {role: hangups[rec.channel] for role, rec in records.items() if rec is not None}
    assert cause == {"moh": "0", "ivr": "0", "talk": "16"}  # as the real restart gave (sh-restart)
    agent = {c: v for c, v in hangups.items() if c.startswith("Local/1004@agent-phones")}
    assert sorted(agent.items()) == sorted({c: "16" if c.endswith(";1") else "0" for c in agent}.items())
    ends = {m["Linkedid"]: m for m in msgs if m.get("UserEvent") == "CtiCallEnd"}
    assert set(ends) == {calls["moh"], calls["talk"], calls["ivr"]}  # hangup handlers ran; not the site's call
    assert (ends[calls["talk"]]["DialStatus"], ends[calls["talk"]]["Cause"]) == ("ANSWER", "16")
    assert ends[calls["moh"]]["Cause"] == "0"
    assert not any(m.get("Event") == "Shutdown" for m in ami.messages)  # ctilp has no 'system'
    shut = [m for m in adm.messages if m.get("Event") == "Shutdown"]
    assert shut == [{"Event": "Shutdown", "Privilege": "system,all", "Shutdown": "Cleanly", "Restart": "False"}]
    assert adm.messages[-1] == shut[0]  # the last thing before the close
    for role in ("moh", "talk", "ivr"):
        rec = records[role]
        assert rec is not None and rec.shutdown and not rec.abandoned and rec.ended is not None, role
    tracker = CallTracker(clock=time.time)
    out = [e for m in ami.messages for e in tracker.feed(Message(list(m.items())))]
    ended = [e for e in out if isinstance(e, CallEnded)]
    assert sorted(e.call_id for e in ended) == sorted((calls["moh"], calls["talk"], calls["ivr"]))
    assert all((e.reason, e.hangup_side) == (SHUTDOWN, "system") for e in ended)


async def test_core_restart_now() -> None:
    agi = ivr(("SET VARIABLE CTI_NEXT queue",))
    port = await agi.start()
    users = {**SimConfig().users, "admin": ADMIN}
    async with AsteriskSim(SimConfig(agi_port=port, time_factor=TF, users=users, restart_s=3.0)) as sim:
        ami_port = sim.ami_port
        old = await login(sim, "ctilp")
        lid = await sim.place_call(Caller("5557001", "Olivia"))
        await sim.wait_in_app(lid)
        await sim.shutdown(restart=True)
        await asyncio.wait_for(old.task, 2)
        assert sim.ami_port == ami_port
        adm, lp = await login(sim, "admin"), await login(sim, "ctilp")
        booted = [m for m in adm.messages if m.get("Event") == "FullyBooted"]
        assert len(booted) == 1 and int(booted[0]["Uptime"]) <= 1 and booted[0]["Status"] == "Fully Booted"
        assert not any(m.get("Event") == "FullyBooted" for m in lp.messages)  # no 'system' class
        lid2 = await sim.place_call(Caller("5557002", "Peggy"))  # a fresh Asterisk: counters from zero
        assert lid2.endswith(".0") and lid2 != lid  # a fresh Asterisk: counters from zero, a later second
        assert sim.record[lid2].channel == "Local/wait@callers-00000000;1"
        await sim.wait_in_app(lid2)
        for r in (adm, lp):
            await r.close()
    await agi.stop()
    shut = [m for m in old.messages if m.get("Event") == "SoftHangupRequest" and m.get("Cause") == "4"]
    assert len(shut) == 2 and sim.record[lid].shutdown


async def test_soft_hangup_request_carries_the_flag_not_the_cause() -> None:
    """An AMI Hangup with Cause 17 of a caller in MOH: the pbx's end is SoftHangupRequest 16
    (AST_SOFTHANGUP_APPUNLOAD); the cause is in the Hangup (17) and CtiCallEnd."""
    agi = ivr(("SET VARIABLE CTI_NEXT queue",))
    port = await agi.start()
    async with AsteriskSim(SimConfig(agi_port=port, time_factor=TF)) as sim:
        ami = await login(sim, "ctilp")
        lid = await sim.place_call(Caller("5557001", "Olivia"))
        ch = await sim.wait_in_app(lid)
        await ami.act([("Action", "Hangup"), ("ActionID", "h"), ("Channel", ch.name), ("Cause", "17")])
        await sim.wait_ended(lid, 5)
        await asyncio.sleep(0.05)
        await ami.close()
    await agi.stop()
    mine = [m for m in ami.messages if m.get("Channel") == ch.name]
    assert [m["Cause"] for m in mine if m.get("Event") == "SoftHangupRequest"] == ["16"]
    assert [m["Cause"] for m in mine if m.get("Event") == "Hangup"] == ["17"]
    assert next(m for m in mine if m.get("UserEvent") == "CtiCallEnd")["Cause"] == "17"
