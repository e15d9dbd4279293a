"""Background traffic: the other calls a real PBX carries (internal calls, another queue, other
clients' Redirects of our waiting callers) beside the contract's, and what a tracker makes of them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from cti.ami.protocol import Message
from cti.calls import CallTracker
from cti.domain import CallArrived, CallEnded
from simulator import AsteriskSim, BackgroundMix, Caller, SimConfig
from simulator.record import AmiRecorder, ScriptedAgi, Transcript, contract_script

TF = 0.02
Msg = dict[str, str]


@pytest.fixture
async def agi_port() -> AsyncIterator[int]:
    agi = ScriptedAgi(Transcript(), contract_script())
    yield await agi.start()
    await agi.stop()


async def ctilp(sim: AsteriskSim) -> AmiRecorder:
    r = AmiRecorder(Transcript())
    await r.connect("127.0.0.1", sim.ami_port)
    await r.act([("Action", "Login"), ("ActionID", "l"), ("Username", "ctilp"), ("Secret", "secret")])
    return r


def by_call(msgs: list[Msg]) -> dict[str, list[Msg]]:
    out: dict[str, list[Msg]] = {}
    for m in msgs:
        if "Linkedid" in m and m.get("Event") not in ("CEL", None):
            out.setdefault(m["Linkedid"], []).append(m)
    return out


def track(msgs: list[Msg]) -> tuple[CallTracker, list[object]]:
    tracker = CallTracker(clock=time.time)
    out: list[object] = []
    for m in msgs:
        out += tracker.feed(Message(list(m.items())))
    return tracker, out


async def until(cond: object, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.005)


async def test_internal_and_queue_calls_never_touch_the_contract(agi_port: int) -> None:
    mix = BackgroundMix(internal=1, queue=1, redirect=0, seed=3)
    async with AsteriskSim(SimConfig(agi_port=agi_port, time_factor=TF)) as sim:
        ami = await ctilp(sim)
        stats = await sim.run_background(200, count=20, mix=mix)
        assert not sim.channels  # wait=True: every background call has ended
        await asyncio.sleep(0.05)
        await ami.close()
    assert stats.internal + stats.queue == 20 and stats.internal and stats.queue and not stats.skipped
    calls = by_call(ami.messages)
    assert set(calls) == set(stats.linkedids)
    for lid, ms in calls.items():
        contexts = {m["Context"] for m in ms if m["Event"] == "Newexten"}
        assert contexts <= {"internal", "queue-test", "internal-phones", "callers"}, lid
        started = {m["Channel"] for m in ms if m["Event"] == "Newchannel"}
        assert started == {m["Channel"] for m in ms if m["Event"] == "Hangup"}  # every channel ends
        first = ms[0]["Channel"]
        if first.startswith(("Local/wait@", "Local/abandon@")):  # a queue-test caller
            assert any(m["Event"] == "MusicOnHoldStart" and m["Context"] == "queue-test" for m in ms)
        else:
            assert any(m["Event"] == "DialBegin" and m.get("DialString", "").endswith("@internal-phones")
                       for m in ms)
    tracker, out = track(ami.messages)
    assert out == [] and tracker.foreign_calls == 20  # the backend's tracker: not ours, only counted


async def test_foreign_redirect_to_voicemail_and_back_to_hold(agi_port: int) -> None:
    mix = BackgroundMix(internal=0, queue=0, redirect=1, to_extension=0, back_to_hold=1, seed=1)
    async with AsteriskSim(SimConfig(agi_port=agi_port, time_factor=TF)) as sim:
        ami = await ctilp(sim)
        lid = await sim.place_call(Caller("5557001", "Olivia"))
        ch = await sim.wait_in_app(lid)
        stats = await sim.run_background(10, count=1, mix=mix)
        assert (stats.redirects, stats.skipped) == (1, 0)
        rec = sim.record[lid]
        await until(lambda: "cti-hold,s" in rec.foreign)
        await until(lambda: ch.context == "cti-hold" and ch.app == "MusicOnHold")
        assert stats.back_to_hold == 1 and rec.foreign == ["voicemail,2005", "cti-hold,s"]
        sim.request_hangup(sim.find(ch.name[:-1] + "2") or ch, 16)
        await sim.wait_ended(lid, 5)
        await asyncio.sleep(0.05)
        await ami.close()
    path = [(m["Context"], m["Application"]) for m in ami.messages
            if m.get("Event") == "Newexten" and m.get("Channel") == ch.name]
    vm = path.index(("voicemail", "Answer"))
    assert path[vm - 2:vm] == [("cti-hold", "AGI"), ("cti-hold", "MusicOnHold")]
    assert ("voicemail", "Playback") in path[vm:]
    back = path.index(("cti-hold", "AGI"), vm)
    assert path[back:back + 2] == [("cti-hold", "AGI"), ("cti-hold", "MusicOnHold")]
    ends = [m for m in ami.messages if m.get("UserEvent") == "CtiCallEnd"]
    assert len(ends) == 1 and ends[0]["Cause"] == "16"
    assert rec.abandoned and rec.answered_by is None  # it left from hold, after the foreign detour
    _, out = track(ami.messages)
    assert [type(e) for e in out if isinstance(e, CallArrived | CallEnded)] == [CallArrived, CallEnded]


async def test_foreign_redirect_to_an_extension(agi_port: int) -> None:
    mix = BackgroundMix(internal=0, queue=0, redirect=1, to_extension=1, no_answer=0, ring_s=(0.5, 0.5),
                        talk_s=(1, 1), seed=2)
    async with AsteriskSim(SimConfig(agi_port=agi_port, time_factor=TF)) as sim:
        ami = await ctilp(sim)
        lid = await sim.place_call(Caller("5557002", "Peggy"))
        ch = await sim.wait_in_app(lid)
        await sim.run_background(10, count=1, mix=mix)
        rec = await sim.wait_ended(lid, 5)
        await asyncio.sleep(0.05)
        await ami.close()
    assert len(rec.foreign) == 1 and rec.foreign[0].startswith("internal,")
    assert rec.answered_by is None and not rec.abandoned and rec.cause == 16  # the site phone hung up
    ext = rec.foreign[0].split(",")[1]
    dial = [m for m in ami.messages if m.get("Event") == "Newexten" and m.get("Channel") == ch.name
            and m.get("Application") == "Dial"]
    assert [(m["Context"], m["AppData"]) for m in dial] == [("internal", f"Local/{ext}@internal-phones,20")]
    end = next(m for m in ami.messages if m.get("UserEvent") == "CtiCallEnd")
    assert (end["DialStatus"], end["Cause"]) == ("ANSWER", "16")


async def test_a_redirect_with_nobody_waiting_is_skipped(agi_port: int) -> None:
    async with AsteriskSim(SimConfig(agi_port=agi_port, time_factor=TF)) as sim:
        stats = await sim.run_background(500, count=3, mix=BackgroundMix(internal=0, queue=0, redirect=1))
    assert (stats.redirects, stats.skipped, stats.linkedids) == (0, 3, [])


async def test_the_configured_rate_runs_beside_our_traffic(agi_port: int) -> None:
    cfg = SimConfig(agi_port=agi_port, time_factor=TF, background_calls_per_s=100,
                    background=BackgroundMix(redirect=0, seed=5))
    async with AsteriskSim(cfg) as sim:
        ami = await ctilp(sim)
        recs = await sim.run_traffic(3, 30, lambda i: Caller(f"55570{i}", f"C{i}", patience_s=2))
        await asyncio.sleep(0.1)
        await ami.close()
    assert all(r.ended is not None and r.abandoned for r in recs)
    ours = {r.linkedid for r in recs}
    foreign = set(by_call(ami.messages)) - ours
    assert len(foreign) >= 5  # ~100/s while our three calls ran
    tracker, out = track(ami.messages)
    assert {e.call_id for e in out if isinstance(e, CallArrived)} == ours
    assert tracker.foreign_calls >= 1
