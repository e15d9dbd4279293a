"""CallLogWriter against an in-memory store implementing the CallLogStore Protocol."""

from __future__ import annotations

import asyncio
from typing import Any

from acd.calllog import CallLogWriter
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
)


class MemStore:
    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.keys: set[str] = set()
        self.fail: dict[str, int] = {}  # method -> failures to inject

    def _maybe_fail(self, name: str) -> None:
        if self.fail.get(name, 0) > 0:
            self.fail[name] -= 1
            raise ConnectionError(f"{name}: database is locked")

    async def call_arrived(self, call_id: str, *, uniqueid: str, linkedid: str, channel: str, caller_num: str,
                           caller_name: str, dnis: str, at: float, server: str = "default") -> None:
        self._maybe_fail("call_arrived")
        self.rows[call_id] = {"uniqueid": uniqueid, "linkedid": linkedid, "server": server, "caller_num": caller_num}

    async def call_update(self, call_id: str, **fields: Any) -> None:
        self._maybe_fail("call_update")
        self.rows[call_id].update(fields)

    async def call_event(self, call_id: str, kind: str, at: float, data: dict[str, Any],
                         dedup_key: str | None = None) -> bool:
        self._maybe_fail("call_event")
        await asyncio.sleep(0)
        if dedup_key in self.keys:
            return False
        if dedup_key:
            self.keys.add(dedup_key)
        self.events.append((call_id, kind, data))
        return True

    async def call_end(self, call_id: str, *, at: float, outcome: str, hangup_cause: int, hangup_side: str,
                       end_reason: str, **fields: Any) -> None:
        self._maybe_fail("call_end")
        self.rows[call_id].update(outcome=outcome, hangup_cause=hangup_cause, hangup_side=hangup_side,
                                  end_reason=end_reason, ended_at=at)


def arrived(cid: str) -> CallArrived:
    return CallArrived(cid, "ch", cid.split("/")[-1], "5551234", "Grace", "5551000", 1.0)


def queued(cid: str) -> CallQueued:
    return CallQueued(cid, "uuid-" + cid, "ch", "sales", ("sales", "fr"), 0, "5551234", "Grace", 42,
                      ("greeting", "menu", "sales"), "1", 2.0)


def ended(cid: str, side: str = "caller") -> CallEnded:
    return CallEnded(cid, 16, "Normal Clearing", side, "hangup", 9.0)


async def test_outcomes_and_milestones() -> None:
    bus, store = Bus(), MemStore()
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
    a = store.rows["pbx1/a"]
    assert (a["server"], a["linkedid"], a["outcome"], a["hangup_side"]) == ("pbx1", "a", "answered", "agent")
    assert (a["offers"], a["agent_id"], a["answered_at"], a["disposition"]) == (2, "1002", 5.0, "sold")
    assert (a["ivr_path"], a["skills"], a["cti_call_id"], a["customer_id"]) == ("greeting/menu/sales", "sales,fr", "uuid-pbx1/a", 42)
    assert store.rows["b"]["outcome"] == "abandoned" and store.rows["b"]["server"] == "default"
    assert store.rows["c"]["outcome"] == "ivr_hangup"
    kinds = [k for cid, k, _ in store.events if cid == "pbx1/a"]
    assert kinds[:3] == ["call_arrived", "ivr_step", "call_queued"]
    assert "agent_state_changed" in kinds and "disposition" in kinds and kinds.count("call_offered") == 2
    assert len(store.events) == 18 - 1  # every event with a call id


async def test_no_event_lost_under_load() -> None:
    bus, store = Bus(), MemStore()
    w = CallLogWriter(bus, store)
    await w.start()
    n = 0
    for i in range(250):
        cid = f"c{i}"
        for ev in (arrived(cid), IvrStep(cid, "menu", "", 1.0), queued(cid), ended(cid)):
            bus.publish(ev)
            n += 1
        if i % 50 == 0:
            await asyncio.sleep(0)
    assert n == 1000
    await w.drain()
    assert len(store.events) == 1000
    assert all(r["outcome"] == "abandoned" for r in store.rows.values()) and len(store.rows) == 250
    await w.stop()


async def test_store_error_is_retried_without_duplicates() -> None:
    bus, store = Bus(), MemStore()
    store.fail = {"call_update": 2, "call_end": 1}
    w = CallLogWriter(bus, store, backoff_s=0.001)
    await w.start()
    for ev in (arrived("x"), queued("x"), ended("x")):
        bus.publish(ev)
    await w.stop()  # drains
    assert store.rows["x"]["queue"] == "sales" and store.rows["x"]["outcome"] == "abandoned"
    assert [k for _, k, _ in store.events] == ["call_arrived", "call_queued", "call_ended"]
    assert w.failures == 0


async def test_persistent_error_is_logged_and_writer_carries_on(caplog: Any) -> None:
    bus, store = Bus(), MemStore()
    store.fail = {"call_update": 100}
    w = CallLogWriter(bus, store, attempts=3, backoff_s=0.001)
    await w.start()
    for ev in (arrived("y"), queued("y"), ended("y")):
        bus.publish(ev)
    await w.drain()
    assert w.failures == 1
    assert store.rows["y"]["outcome"] == "abandoned"
    assert any("y" in r.getMessage() and "giving up" in r.getMessage() for r in caplog.records)
    await w.stop()
