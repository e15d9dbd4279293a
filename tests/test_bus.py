"""The in-process bus: ordering, overflow policies, failing handlers."""

from __future__ import annotations

import logging

import pytest

from cti.bus import Bus
from cti.domain import CallEnded, CallHeld, OfferCancelled


def ended(cid: str) -> CallEnded:
    return CallEnded(cid, 16, "", "caller", "hangup", 1.0)


def test_queues_see_the_cause_before_what_handlers_publish_in_response() -> None:
    bus = Bus()
    q = bus.queue()
    bus.on(CallEnded, lambda ev: bus.publish(OfferCancelled(ev.call_id, "1001", "hangup", ev.at)))
    bus.publish(ended("a"))
    got = [q.get_nowait(), q.get_nowait()]
    assert [type(e) for e in got] == [CallEnded, OfferCancelled]


def test_drop_oldest_counts_and_block_never_drops() -> None:
    bus = Bus()
    lossy = bus.queue(maxsize=3)
    keep = bus.queue(CallEnded, maxsize=3, overflow="block")
    for i in range(5):
        bus.publish(ended(str(i)))
    bus.publish(CallHeld("x", "ch", 1.0))
    assert lossy.dropped == 3 and [lossy.get_nowait() for _ in range(3)][-1] == CallHeld("x", "ch", 1.0)
    assert keep.qsize() == 5 and keep.overflowed == 2 and keep.dropped == 0
    with pytest.raises(ValueError):
        bus.queue(overflow="spill")


def test_a_failing_handler_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    bus = Bus()
    seen: list[str] = []
    bus.on(CallEnded, lambda ev: 1 / 0)  # type: ignore[arg-type,return-value]
    bus.on(CallEnded, lambda ev: seen.append(ev.call_id))
    with caplog.at_level(logging.ERROR):
        bus.publish(ended("b"))
    assert seen == ["b"] and bus.handler_errors == 1
