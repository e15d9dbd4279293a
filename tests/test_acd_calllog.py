"""CallLogWriter on the real store (SQLite file and PostgreSQL), with faults injected at its door."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from acd.calllog import CallLogWriter
from crm_core.store import Store
from crm_core.store_calls import CallLogOp
from cti.bus import Bus
from cti.domain import (
    AgentStateChanged,
    CallAnswered,
    CallArrived,
    CallBridged,
    CallEnded,
    CallHeld,
    CallOffered,
    CallQueued,
    Disposition,
    IvrStep,
    OfferCancelled,
)


class Flaky:
    """The real store behind a door that fails the first ``fail`` batches (a locked database)."""

    def __init__(self, store: Store, fail: int = 0, poison: str | None = None) -> None:
        self.store, self.fail, self.poison = store, fail, poison
        self.calls = 0

    async def call_log_batch(self, ops: Sequence[CallLogOp]) -> None:
        self.calls += 1
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("database is locked")
        if self.poison and any(op.op == self.poison for op in ops):
            raise ValueError(f"{self.poison}: refused")
        await self.store.call_log_batch(ops)


def arrived(cid: str) -> CallArrived:
    return CallArrived(cid, "ch", cid.split("/")[-1], "5551234", "Grace", "5551000", 1.0)


def queued(cid: str) -> CallQueued:
    return CallQueued(cid, "uuid-" + cid, "ch", "sales", ("sales", "fr"), 0, "5551234", "Grace", 42,
                      ("greeting", "menu", "sales"), "1", 2.0)


def ended(cid: str, side: str = "caller") -> CallEnded:
    return CallEnded(cid, 16, "Normal Clearing", side, "hangup", 9.0)


async def test_outcomes_and_milestones(store: Store) -> None:
    bus = Bus()
    async with CallLogWriter(bus, store) as w:
        for ev in [
            arrived("pbx1/a"), IvrStep("pbx1/a", "menu", "1", 1.5), queued("pbx1/a"),
            CallOffered("pbx1/a", "uuid", "1001", 1, "sales", "", "", 42, "1", "f.wav", 3.0),
            CallOffered("pbx1/a", "uuid", "1002", 2, "sales", "", "", 42, "1", "f.wav", 4.0),
            CallBridged("pbx1/a", "1002", "b", 5.0), CallAnswered("pbx1/a", "1002", 3.0, 5.0),
            AgentStateChanged("1002", "on_call", "", "pbx1/a", 5.0), AgentStateChanged("1002", "ready", "", None, 5.0),
            ended("pbx1/a", "agent"), Disposition("pbx1/a", "1002", "sold", "n", 10.0),
            arrived("b"), queued("b"), CallHeld("b", "ch", 3.0), ended("b"),
            arrived("c"), IvrStep("c", "hangup", "", 2.0), ended("c"),
        ]:
            bus.publish(ev)
        await w.drain()
    a = await store.get_call("pbx1/a")
    assert a is not None
    assert (a.server, a.linkedid, a.outcome, a.hangup_side) == ("pbx1", "a", "answered", "agent")
    assert (a.offers, a.agent_id, a.answered_at, a.disposition) == (2, "1002", 5.0, "sold")
    assert (a.ivr_path, a.skills, a.cti_call_id, a.customer_id) == (
        "greeting/menu/sales", "sales,fr", "uuid-pbx1/a", 42)
    assert (a.talk_s, a.wait_s) == (4.0, 3.0)
    b, c = await store.get_call("b"), await store.get_call("c")
    assert b is not None and c is not None
    assert (b.outcome, b.server) == ("abandoned", "default") and c.outcome == "ivr_hangup"
    kinds = [k for k, _, _ in await store.call_events("pbx1/a")]
    assert kinds[:3] == ["call_arrived", "ivr_step", "call_queued"]
    assert "agent_state_changed" in kinds and "disposition" in kinds and kinds.count("call_offered") == 2
    n = sum([len(await store.call_events(cid)) for cid in ("pbx1/a", "b", "c")])
    assert n == 18 - 1  # every event with a call id


async def test_a_single_servers_name_is_logged_with_its_bare_call_ids(store: Store) -> None:
    bus = Bus()
    async with CallLogWriter(bus, store, server="pbx9") as w:
        for ev in (arrived("z"), ended("z")):
            bus.publish(ev)
        await w.drain()
    z = await store.get_call("z")
    assert z is not None and (z.server, z.linkedid) == ("pbx9", "z")


async def test_ringing_an_agent_when_the_link_was_lost_is_unknown_not_abandoned(store: Store) -> None:
    bus = Bus()
    async with CallLogWriter(bus, store) as w:
        for cid in ("r", "g", "h"):
            bus.publish(arrived(cid))
            bus.publish(queued(cid))
        for cid in ("r", "g"):
            bus.publish(CallOffered(cid, "uuid", "1001", 1, "sales", "", "", 42, "1", "f.wav", 3.0))
        bus.publish(CallEnded("r", 0, "", "unknown", "resync-gone", 9.0))
        bus.publish(OfferCancelled("r", "1001", "ended-during-outage", 9.0))
        bus.publish(CallEnded("g", 16, "", "caller", "hangup", 9.0, gap=True))  # its bridge may be lost
        bus.publish(CallEnded("h", 0, "", "unknown", "resync-gone", 9.0))  # waiting in hold: an abandon
        await w.drain()
        assert not w._calls  # nothing after the end starts a new track
    r, h = await store.get_call("r"), await store.get_call("h")
    assert r is not None and h is not None
    assert (r.outcome, r.end_reason, r.agent_id) == ("unknown", "resync-gone", "1001")
    g = await store.get_call("g")
    assert g is not None and (g.outcome, g.end_reason) == ("unknown", "hangup")
    assert h.outcome == "abandoned"


async def test_batches_under_load_lose_and_duplicate_nothing(store: Store) -> None:
    bus = Bus()
    w = CallLogWriter(bus, store, max_batch=200)
    await w.start()
    for i in range(500):
        cid = f"c{i}"
        for ev in (arrived(cid), IvrStep(cid, "menu", "", 1.0), queued(cid), ended(cid)):
            bus.publish(ev)
        if i % 50 == 0:
            await asyncio.sleep(0)
    await w.drain()
    assert await store.count_calls() == 500
    rows = await store.list_calls(limit=1000)
    assert {r.outcome for r in rows} == {"abandoned"} and len({r.call_id for r in rows}) == 500
    assert [len(await store.call_events(f"c{i}")) for i in range(0, 500, 25)] == [4] * 20
    assert w.batches < 2000 / 10, f"{w.batches} transactions for 2000 events: not batched"
    await w.stop()


async def test_store_error_is_retried_without_duplicates(store: Store) -> None:
    bus, door = Bus(), Flaky(store, fail=3)
    w = CallLogWriter(bus, door, backoff_s=0.001)
    await w.start()
    for ev in (arrived("x"), queued("x"), ended("x")):
        bus.publish(ev)
    await w.stop()  # drains
    x = await store.get_call("x")
    assert x is not None and (x.queue, x.outcome) == ("sales", "abandoned")
    assert [k for k, _, _ in await store.call_events("x")] == ["call_arrived", "call_queued", "call_ended"]
    assert w.failures == 0 and door.calls >= 4


async def test_a_bad_operation_costs_only_itself(store: Store, caplog: Any) -> None:
    bus, door = Bus(), Flaky(store, poison="update")
    w = CallLogWriter(bus, door, attempts=2, backoff_s=0.001)
    await w.start()
    for ev in (arrived("y"), queued("y"), ended("y")):
        bus.publish(ev)
    await w.drain()
    assert w.failures == 1  # the update of CallQueued, alone
    y = await store.get_call("y")
    assert y is not None and y.outcome == "abandoned" and y.queue is None
    assert len(await store.call_events("y")) == 3
    assert any("y" in r.getMessage() and "giving up" in r.getMessage() for r in caplog.records)
    await w.stop()
