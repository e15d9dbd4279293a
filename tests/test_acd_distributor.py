"""Distributor end to end: the real Bus, a fake CallControl, domain events as the tracker sends them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from acd.distributor import Distributor
from acd.errors import InvalidTransition, UnknownAgent
from acd.model import Agent, AgentState, QueueConfig
from cti.bus import Bus
from cti.domain import (
    SHUTDOWN,
    AgentStateChanged,
    CallAbandoned,
    CallAnswered,
    CallBridged,
    CallEnded,
    CallHeld,
    CallLeftContract,
    CallOffered,
    CallQueued,
    DialResult,
    DomainEvent,
    OfferCancelled,
)


class FakeCallControl:
    def __init__(self) -> None:
        self.redirects: list[tuple[str, str, str, int]] = []
        self.fail_next = False
        self.fail_always = False
        self.attempts = 0

    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1, *,
                       call_id: str = "") -> None:
        self.attempts += 1
        if self.fail_next or self.fail_always:
            self.fail_next = False
            raise RuntimeError("No such channel")
        self.redirects.append((channel, context, exten, priority))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Env:
    def __init__(self, bus: Bus, cc: FakeCallControl, clock: Clock, acd: Distributor) -> None:
        self.bus, self.cc, self.clock, self.acd = bus, cc, clock, acd
        self.events: list[DomainEvent] = []

    def of(self, t: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, t)]

    async def publish(self, ev: DomainEvent) -> None:
        self.bus.publish(ev)
        await self.acd.settle()

    async def queue_call(self, cid: str, queue: str = "sales", prio: int = 0, held: bool = True) -> None:
        self.bus.publish(CallQueued(cid, "u-" + cid, "ch-" + cid, queue, (queue,), prio, "555", "Grace",
                                    7, ("greeting", "menu", queue), "1", self.clock.t))
        if held:
            await self.publish(CallHeld(cid, "ch-" + cid, self.clock.t))
        await self.acd.settle()


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    bus, cc, clock = Bus(), FakeCallControl(), Clock()
    agents = [Agent("1001", "Ann", "1001", {"sales": 2}), Agent("1002", "Bob", "1002", {"sales": 1, "support": 1})]
    queues = {"sales": QueueConfig("sales", ("sales",), ring_timeout_s=12, wrap_up_s=0.05, record=True),
              "support": QueueConfig("support", ("support",), wrap_up_s=30)}
    acd = Distributor(bus, cc, queues, agents, clock=clock, redirect_retry_s=0.02)
    e = Env(bus, cc, clock, acd)
    for t in (AgentStateChanged, CallOffered, OfferCancelled, CallAnswered, CallAbandoned):
        bus.on(t, e.events.append)
    async with acd:
        yield e


def state(e: Env, aid: str) -> AgentState:
    return e.acd.agent(aid).state


async def ready(e: Env, *aids: str) -> None:
    for aid in aids:
        e.clock.t += 1
        e.acd.login(aid)
        e.acd.set_ready(aid)
    await e.acd.settle()


async def test_full_call_queue_held_offer_bridge_end_wrapup_ready(env: Env) -> None:
    e = env
    await ready(e, "1001")
    await e.queue_call("c1")
    assert e.cc.redirects == [("ch-c1", "cti-agent", "1001", 1)]
    assert state(e, "1001") is AgentState.RESERVED
    d = e.acd.decide_offer("1001", "u-c1", "ch-c1")
    assert d is not None
    assert (d.device, d.ring_timeout_s, d.record_file, d.offer_no) == (
        "Local/1001@agent-phones", 12, "cti-u-c1-1.wav", 1)
    assert state(e, "1001") is AgentState.RINGING
    (offered,) = e.of(CallOffered)
    assert offered.agent_id == "1001" and offered.customer_id == 7 and offered.record_file == d.record_file
    e.clock.t += 4
    await e.publish(CallBridged("c1", "1001", "b1", e.clock.t))
    assert state(e, "1001") is AgentState.ON_CALL
    assert e.of(CallAnswered)[0].wait_s == pytest.approx(4.0)
    await e.publish(CallEnded("c1", 16, "Normal Clearing", "caller", "hangup", e.clock.t))
    assert state(e, "1001") is AgentState.WRAP_UP and e.acd.agent("1001").current_call == "c1"
    await asyncio.sleep(0.1)
    assert state(e, "1001") is AgentState.READY
    states = [(s.state, s.call_id) for s in e.of(AgentStateChanged) if s.agent_id == "1001"]
    assert states == [("not_ready", None), ("ready", None), ("reserved", "c1"), ("ringing", "c1"),
                      ("on_call", "c1"), ("wrap_up", "c1"), ("ready", None)]
    assert not e.of(CallAbandoned)


async def test_no_offer_before_held_and_disposition_ends_wrapup(env: Env) -> None:
    e = env
    await ready(e, "1002")
    await e.queue_call("c1", queue="support", held=False)
    assert e.cc.redirects == [] and state(e, "1002") is AgentState.READY
    await e.publish(CallHeld("c1", "ch-c1", e.clock.t))
    assert [r[2] for r in e.cc.redirects] == ["1002"]
    d = e.acd.decide_offer("1002", "u-c1", "ch-c1")
    assert d is not None and d.record_file == ""
    await e.publish(CallBridged("c1", "1002", "b", e.clock.t))
    await e.publish(CallEnded("c1", 16, "", "agent", "hangup", e.clock.t))
    assert state(e, "1002") is AgentState.WRAP_UP  # 30 s wrap-up
    e.acd.disposition("1002", "c1", "sold", "nice")
    await e.acd.settle()
    assert state(e, "1002") is AgentState.READY


async def test_rona_agent_not_ready_call_keeps_its_place(env: Env) -> None:
    e = env
    await ready(e, "1001")
    await e.queue_call("c1")
    e.clock.t += 1
    await e.queue_call("c2")
    assert [r[0] for r in e.cc.redirects] == ["ch-c1"]
    assert e.acd.decide_offer("1001", "u-c1", "ch-c1") is not None
    await e.publish(DialResult("c1", "1001", "NOANSWER", "u-c1", e.clock.t))
    assert state(e, "1001") is AgentState.NOT_READY and e.acd.agent("1001").reason == "rona"
    assert e.of(OfferCancelled)[0].reason == "NOANSWER"
    await e.publish(CallHeld("c1", "ch-c1", e.clock.t))
    await ready(e, "1002")  # a new agent: c1 (older) goes first even though it was offered already
    assert [r[0] for r in e.cc.redirects] == ["ch-c1", "ch-c1"]
    assert e.cc.redirects[-1][2] == "1002"
    d = e.acd.decide_offer("1002", "u-c1", "ch-c1")
    assert d is not None and d.offer_no == 2 and d.record_file == "cti-u-c1-2.wav"


async def test_busy_sets_not_ready_with_reason(env: Env) -> None:
    e = env
    await ready(e, "1001")
    await e.queue_call("c1")
    e.acd.decide_offer("1001", "u-c1", "ch-c1")
    await e.publish(DialResult("c1", "1001", "BUSY", "u-c1", e.clock.t))
    assert state(e, "1001") is AgentState.NOT_READY and e.acd.agent("1001").reason == "busy"


async def test_stale_offer_returns_none_and_nodevice_leaves_agent_alone(env: Env) -> None:
    e = env
    await ready(e, "1001")
    await e.queue_call("c1")
    e.acd.set_not_ready("1001", "break")  # agent leaves while reserved: the offer is stale
    assert e.acd.decide_offer("1001", "u-c1", "ch-c1") is None
    assert e.acd.decide_offer("9999", "u-c1", "ch-c1") is None
    await e.publish(DialResult("c1", "1001", "NODEVICE", "u-c1", e.clock.t))
    assert state(e, "1001") is AgentState.NOT_READY and e.acd.agent("1001").reason == "break"
    # the call comes back to hold and is offered to the next agent
    await e.publish(CallHeld("c1", "ch-c1", e.clock.t))
    await ready(e, "1002")
    assert e.cc.redirects[-1] == ("ch-c1", "cti-agent", "1002", 1)
    assert e.acd.decide_offer("1002", "wrong-uuid", "ch-c1") is None
    assert e.acd.decide_offer("1002", "u-c1", "ch-c1") is not None


async def test_abandon_in_queue_and_while_ringing(env: Env) -> None:
    e = env
    await e.queue_call("c1")
    e.clock.t += 9
    await e.publish(CallEnded("c1", 16, "", "caller", "hangup", e.clock.t))
    (ab,) = e.of(CallAbandoned)
    assert (ab.where, ab.wait_s, ab.queue) == ("queue", 9.0, "sales")
    await ready(e, "1001")
    await e.queue_call("c2")
    e.acd.decide_offer("1001", "u-c2", "ch-c2")
    await e.publish(CallEnded("c2", 16, "", "caller", "hangup", e.clock.t))
    assert state(e, "1001") is AgentState.READY
    assert len(e.of(CallAbandoned)) == 2
    assert e.acd.snapshot()["calls"] == []


async def test_ivr_hangup_is_nothing_for_acd(env: Env) -> None:
    e = env
    await e.publish(CallEnded("zz", 16, "", "caller", "hangup", e.clock.t))
    assert e.events == []


async def test_redirect_failure_releases_agent(env: Env) -> None:
    e = env
    await ready(e, "1001")
    e.cc.fail_next = True
    await e.queue_call("c1")
    assert state(e, "1001") is AgentState.READY
    assert e.of(OfferCancelled)[0].reason == "redirect-failed"
    # the hold loop brings no new event: the call is offered again after the retry delay,
    # not at once (a link that is down would fail every try)
    assert e.cc.redirects == [] and e.acd.snapshot()["calls"][0]["held"]
    e.clock.t += 1.0
    await asyncio.sleep(0.06)  # the retry timer (redirect_retry_s=0.02 here) kicks the router
    await e.acd.settle()
    assert e.cc.redirects == [("ch-c1", "cti-agent", "1001", 1)]
    assert state(e, "1001") is AgentState.RESERVED


async def test_failed_redirects_back_off_and_a_reconnect_retries_at_once(env: Env) -> None:
    e = env
    await ready(e, "1001")
    e.acd._retry_s = 10.0  # the real timers stay out of the way; the test moves the clock
    e.cc.fail_always = True  # the AMI link is down
    await e.queue_call("c1")
    call = e.acd._calls["c1"]
    delays = []
    for _ in range(3):
        delays.append(round(call.retry_at - e.clock.t, 3))
        e.clock.t = call.retry_at - 0.001
        e.acd._kick()
        await e.acd.settle()
        assert e.cc.attempts == len(delays)  # not before its time
        e.clock.t += 0.001
        e.acd._kick()  # what the retry timer does
        await e.acd.settle()
    assert delays == [10.0, 20.0, 30.0]  # doubling, capped at 30 s
    assert e.cc.attempts == 4 and state(e, "1001") is AgentState.READY
    e.cc.fail_always = False
    e.acd.retry_waiting()  # the link is back (after its resync)
    await e.acd.settle()
    assert e.cc.redirects == [("ch-c1", "cti-agent", "1001", 1)] and call.redirect_failures == 0


async def test_snapshot_and_errors(env: Env) -> None:
    e = env
    await ready(e, "1001")
    await e.queue_call("c1", queue="support")
    snap = e.acd.snapshot()
    assert snap["queues"]["support"]["waiting"] == 1
    assert snap["queues"]["sales"]["ready_agents"] == 1
    assert {a["id"]: a["state"] for a in snap["agents"]} == {"1001": "ready", "1002": "logged_out"}
    with pytest.raises(UnknownAgent):
        e.acd.login("nobody")
    with pytest.raises(InvalidTransition):
        e.acd.set_ready("1002")


async def test_a_foreign_redirect_frees_the_offered_agent_and_a_return_keeps_the_place(env: Env) -> None:
    e = env
    await e.queue_call("c1")  # no agent yet: waits
    e.clock.t += 5
    await e.queue_call("c2")
    await ready(e, "1001")
    assert e.cc.redirects[-1][2] == "1001" and e.acd.agent("1001").current_call == "c1"  # the older call
    # another AMI client sends c1 to voicemail before it reaches [cti-agent]
    await e.publish(CallLeftContract("c1", "voicemail", "s", e.clock.t))
    assert e.acd.waiting_call("c1") is None
    (cancel,) = e.of(OfferCancelled)
    assert (cancel.call_id, cancel.agent_id, cancel.reason) == ("c1", "1001", "left-contract")
    assert e.acd.agent("1001").current_call == "c2"  # the freed agent goes to the next caller
    e.acd.decide_offer("1001", "u-c2", "ch-c2")
    await e.publish(CallBridged("c2", "1001", "b2", e.clock.t))
    # c1 comes back to hold: routed again, still older than any newer caller
    await e.queue_call("c3")
    await e.publish(CallHeld("c1", "ch-c1", e.clock.t))
    waiting = e.acd.waiting_call("c1")
    assert waiting is not None and waiting.enqueued_at == 1000.0
    await ready(e, "1002")
    assert e.acd.agent("1002").current_call == "c1"
    assert not e.of(CallAbandoned)


async def test_a_caller_ending_where_someone_else_sent_it_is_no_abandon(env: Env) -> None:
    e = env
    await e.queue_call("c1")
    await e.publish(CallLeftContract("c1", "voicemail", "s", e.clock.t))
    await e.publish(CallEnded("c1", 16, "", "caller", "hangup", e.clock.t + 3))
    assert not e.of(CallAbandoned)


async def test_a_waiting_caller_bridged_by_someone_else_leaves_the_queue(env: Env) -> None:
    e = env
    await ready(e, "1001")
    await e.queue_call("c1")
    assert state(e, "1001") is AgentState.RESERVED
    await e.publish(CallBridged("c1", "", "br-x", e.clock.t, answered_by="SIP/desk-0001"))
    assert e.acd.waiting_call("c1") is None and state(e, "1001") is AgentState.READY
    assert [c.reason for c in e.of(OfferCancelled)] == ["answered-elsewhere"]
    await e.publish(CallEnded("c1", 16, "", "agent", "hangup", e.clock.t + 30))
    assert not e.of(CallAbandoned) and not e.of(CallAnswered)


async def test_a_shutdown_is_no_abandon_and_frees_the_ringing_agent(env: Env) -> None:
    e = env
    await ready(e, "1001")
    await e.queue_call("c1")
    e.acd.decide_offer("1001", "u-c1", "ch-c1")
    await e.queue_call("c2")
    await e.publish(CallEnded("c1", 0, "", "system", SHUTDOWN, e.clock.t))
    await e.publish(CallEnded("c2", 0, "", "system", SHUTDOWN, e.clock.t))
    assert not e.of(CallAbandoned)
    # c1 rang 1001; freed, 1001 was reserved for c2, which the shutdown ended too
    assert [(c.call_id, c.reason) for c in e.of(OfferCancelled)] == [("c1", "shutdown"), ("c2", "shutdown")]
    assert state(e, "1001") is AgentState.READY
