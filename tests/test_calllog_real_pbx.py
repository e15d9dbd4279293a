"""From AMI events to call-log rows: the scenarios a real Asterisk 22 showed under load, through
the call tracker, the ACD's own events as the IVR and the distributor publish them, and the
CallLogWriter into the real store (SQLite file, then PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from acd.calllog import CallLogWriter
from crm_core.dto import CallDTO
from crm_core.store import Store
from cti.bus import Bus
from cti.domain import (
    RESYNC_GONE,
    AmiOutage,
    CallAbandoned,
    CallAnswered,
    CallAtAgent,
    CallBridged,
    CallEnded,
    CallHeld,
    CallOffered,
    CallQueued,
    DialResult,
    DomainEvent,
    IvrStep,
    OfferCancelled,
)
from tests.ami_shapes import T0, Chan, Feed, soft_hangup_request, timed_events
from tests.pbx_scenarios import (
    CALL_ID,
    DESK,
    V301,
    abandon_after_no_answer,
    abandon_while_ringing,
    bridged_by_another_client,
    internal_call,
    redirected_to_voicemail,
    restart_while_bridged,
    restart_while_queued,
    v301_bridged,
)


def with_acd(evs: Iterable[DomainEvent]) -> list[DomainEvent]:
    """The tracker's events with those the IVR and the distributor publish around them: the call
    queued before it reaches hold, an offer per CallAtAgent, its cancel per DialResult, the answer
    of our bridges, and the abandon after the end of a call never answered."""
    out: list[DomainEvent] = []
    queued = answered = False
    offers, offer_agent = 0, ""
    for e in evs:
        if isinstance(e, CallHeld) and not queued:
            queued = True
            out.append(CallQueued(e.call_id, CALL_ID, e.channel, "sales", ("sales",), 0, "5552345", "Heidi", None,
                                  ("main",), "1", e.at - 0.001))
        out.append(e)
        if isinstance(e, CallAtAgent):
            offers += 1
            offer_agent = e.agent_id
            out.append(CallOffered(e.call_id, CALL_ID, e.agent_id, offers, "sales", "5552345", "Heidi", None, "1",
                                   f"cti-{CALL_ID}-{offers}.wav", e.at + 0.004))
        elif isinstance(e, DialResult):
            offer_agent = ""
            out.append(OfferCancelled(e.call_id, e.agent_id, e.dial_status, e.at))
        elif isinstance(e, CallBridged) and e.agent_id:
            answered = True
            out.append(CallAnswered(e.call_id, e.agent_id, 1.0, e.at))
        elif isinstance(e, CallEnded) and not answered:
            if offer_agent:
                out.append(OfferCancelled(e.call_id, offer_agent, "hangup", e.at))
            if queued:
                out.append(CallAbandoned(e.call_id, "sales", 1.0, "queue", e.at))
    return out


async def write(store: Store, evs: Iterable[DomainEvent]) -> None:
    bus = Bus()
    async with CallLogWriter(bus, store) as w:
        for ev in evs:
            bus.publish(ev)
        await w.drain()
        assert not w._calls and w.failures == 0


async def only_row(store: Store) -> CallDTO:
    (row,) = await store.list_calls()
    return row


# -- 1. who hung up -----------------------------------------------------------------------


async def test_a_caller_leaving_while_the_agent_rings_is_an_abandon_of_the_caller(store: Store) -> None:
    await write(store, with_acd(Feed()(abandon_while_ringing())))
    row = await only_row(store)
    assert (row.outcome, row.hangup_side, row.hangup_cause, row.end_reason) == ("abandoned", "caller", "16", "hangup")
    assert (row.offers, row.agent_id, row.answered_at, row.talk_s, row.answered_by) == (1, None, None, None, None)
    assert row.offered_at is not None and row.ended_at == pytest.approx(T0 + 4.120)


async def test_an_abandon_after_a_ring_no_answer_keeps_no_agent(store: Store) -> None:
    """5. The agent it rang without answer is not the call's agent."""
    await write(store, with_acd(Feed()(abandon_after_no_answer())))
    row = await only_row(store)
    assert (row.outcome, row.hangup_side, row.agent_id, row.offers) == ("abandoned", "caller", None, 1)
    assert row.wait_s == pytest.approx(12.5 - 0.009 + 0.001, abs=0.002)  # queued (hold at 0.009) to the end


# -- 2. calls that are not ours ------------------------------------------------------------


async def test_calls_that_are_not_ours_write_no_row(store: Store) -> None:
    foreign = sorted(timed_events("09-originate-agent-first.ami.txt") + internal_call(), key=lambda tm: tm[0])
    feed = Feed()
    await write(store, with_acd(feed(foreign)))
    assert await store.count_calls() == 0 and feed.tracker.foreign_calls == 6
    await write(store, with_acd(Feed()(sorted(V301 + foreign, key=lambda tm: tm[0]))))
    row = await only_row(store)
    assert (row.linkedid, row.outcome, row.agent_id) == ("1795461450.0", "answered", "1004")


# -- 3. a shutdown or restart --------------------------------------------------------------


async def test_a_restart_is_the_systems_not_an_abandon(store: Store) -> None:
    await write(store, with_acd(Feed()(restart_while_queued())))
    row = await only_row(store)
    assert (row.outcome, row.hangup_side, row.end_reason, row.hangup_cause) == ("system", "system", "shutdown", "0")
    assert row.agent_id is None


async def test_an_answered_call_cut_by_a_restart_stays_answered(store: Store) -> None:
    await write(store, with_acd(Feed()(restart_while_bridged())))
    row = await only_row(store)
    assert (row.outcome, row.hangup_side, row.end_reason, row.agent_id) == ("answered", "system", "shutdown", "1004")
    assert row.talk_s == pytest.approx(12.0 - 8.285)


# -- 4. an AMI outage ----------------------------------------------------------------------


async def test_a_call_gone_during_an_outage_keeps_its_last_sight_and_the_window(store: Store) -> None:
    """v3-01 bridged at 8.285; the link is down from 10.0 to 23.4 (Asterisk hung the call up at
    17.305). Before: ended at the reconnect, talk 15.2 s. Now: ended at 10.0, in (10.0, 23.4)."""
    feed = Feed()
    evs = feed(v301_bridged())
    feed.now = T0 + 10.0
    feed.tracker.link_lost()
    feed.now = T0 + 23.4
    known = feed.tracker.resync_begin()
    feed.now = T0 + 23.45
    evs += feed.tracker.resync([], known)
    await write(store, with_acd(evs))
    row = await only_row(store)
    assert (row.outcome, row.end_reason, row.hangup_side, row.agent_id) == ("answered", RESYNC_GONE, "unknown", "1004")
    assert (row.ended_at, row.outage_from, row.outage_to) == pytest.approx((T0 + 10.0, T0 + 10.0, T0 + 23.4))
    assert row.talk_s == pytest.approx(1.715)


async def test_a_call_the_tracker_never_saw_ends_at_its_last_fastagi_sight(store: Store) -> None:
    """A call that came and went while the link was down: the IVR (FastAGI) wrote its row; the
    app closes it at the reconnect (callcenter/app.py: CallEnded(..., RESYNC_GONE, time.time()))."""
    feed = Feed(server="pbx1")
    feed.now = T0 + 10.0
    feed.tracker.link_lost()
    feed.now = T0 + 23.4
    known = feed.tracker.resync_begin()
    outage = feed.tracker.resync([], known)  # the tracker knew no call: only the window
    unseen = "unseen.1"
    evs: list[DomainEvent] = [
        IvrStep(unseen, "menu", "1", T0 + 12.0),
        CallQueued(unseen, "u-1", "PJSIP/t-1", "sales", ("sales",), 0, "5550001", "Ivy", None, ("main",), "1",
                   T0 + 15.0),
        *outage,
        CallEnded(unseen, 0, "", "unknown", RESYNC_GONE, T0 + 23.6),
    ]
    bus = Bus()
    async with CallLogWriter(bus, store, server="pbx1") as w:
        for ev in evs:
            bus.publish(ev)
        await w.drain()
    row = await store.get_call(unseen)
    assert row is not None and (row.outcome, row.end_reason) == ("abandoned", RESYNC_GONE)
    assert (row.ended_at, row.outage_from, row.outage_to) == pytest.approx((T0 + 15.0, T0 + 15.0, T0 + 23.4))
    assert row.wait_s == pytest.approx(0.0)


async def test_a_call_log_closed_after_a_restart_is_the_systems(store: Store) -> None:
    """The restart (SoftHangupRequest Cause 4) took the link down; a call the tracker never saw,
    whose row the app closes at the reconnect, ended with Asterisk too."""
    feed = Feed()
    feed(internal_call(1.0)[:1])
    feed.at(2.0, [soft_hangup_request(Chan("PJSIP/2001-00000031", "1795462000.90", "1795462000.90"), 4)])
    feed.now = T0 + 2.5
    feed.tracker.link_lost()
    feed.now = T0 + 30.0
    outage = feed.tracker.resync([], feed.tracker.resync_begin())
    assert [o.restart for o in outage if isinstance(o, AmiOutage)] == [True]
    evs: list[DomainEvent] = [IvrStep("gone.2", "menu", "", T0 + 1.5), *outage,
                              CallEnded("gone.2", 0, "", "unknown", RESYNC_GONE, T0 + 30.2)]
    await write(store, evs)
    row = await store.get_call("gone.2")
    assert row is not None
    assert (row.outcome, row.hangup_side, row.end_reason) == ("system", "system", "shutdown")
    assert (row.ended_at, row.outage_from, row.outage_to) == pytest.approx((T0 + 1.5, T0 + 1.5, T0 + 30.0))


async def test_an_open_row_nothing_here_saw_ends_at_its_last_milestone(store: Store) -> None:
    """A row left open by an earlier run of the backend, closed at the first connect."""
    await store.call_arrived("old.1", uniqueid="old.1", linkedid="old.1", channel="PJSIP/t-9", caller_num="555",
                             caller_name="", dnis="5551000", at=T0 - 100.0)
    await store.call_update("old.1", queued_at=T0 - 90.0, queue="sales")
    await write(store, [CallEnded("old.1", 0, "", "unknown", RESYNC_GONE, T0 + 5.0)])
    row = await store.get_call("old.1")
    assert row is not None and row.end_reason == RESYNC_GONE
    assert (row.ended_at, row.outage_from, row.outage_to) == pytest.approx((T0 - 90.0, T0 - 90.0, T0 + 5.0))
    assert row.wait_s == pytest.approx(0.0)


# -- 5. answered by whom -------------------------------------------------------------------


async def test_a_call_bridged_by_another_client_is_answered_with_its_times(store: Store) -> None:
    await write(store, with_acd(Feed()(bridged_by_another_client())))
    row = await only_row(store)
    assert (row.outcome, row.agent_id, row.answered_by, row.hangup_side) == ("answered", None, DESK.name, "agent")
    assert (row.answered_at, row.talk_s) == pytest.approx((T0 + 5.0, 3.0))


async def test_our_answered_call_names_agent_and_leg(store: Store) -> None:
    await write(store, with_acd(Feed()(V301)))
    row = await only_row(store)
    assert (row.outcome, row.agent_id, row.answered_by) == ("answered", "1004", "Local/1004@agent-phones-00000001;1")
    assert (row.answered_at, row.talk_s, row.hangup_side) == pytest.approx((T0 + 8.285, 17.305 - 8.285, "caller"))


async def test_a_caller_sent_elsewhere_by_another_client_and_ending_there_is_redirected(store: Store) -> None:
    evs = Feed()(redirected_to_voicemail())
    assert "CallLeftContract" in [type(e).__name__ for e in evs]
    await write(store, with_acd(evs))
    row = await only_row(store)
    assert (row.outcome, row.agent_id, row.hangup_side) == ("redirected", None, "caller")
    assert row.ended_at == pytest.approx(T0 + 9.0)


async def test_a_caller_sent_back_to_hold_is_ours_again(store: Store) -> None:
    await write(store, with_acd(Feed()(redirected_to_voicemail(back_at=5.0))))
    row = await only_row(store)
    assert (row.outcome, row.agent_id) == ("abandoned", None)
