"""The call tracker on what a real Asterisk 22 showed under load (706 calls with our dialplan):
who hung up, calls that are not ours, a PBX restart, an AMI outage, bridges not of our making.

Each scenario starts from a real transcript and goes on with events shaped as Asterisk 22 sends
them (tests/ami_shapes.py), in the order a loaded PBX delivered them.
"""

from __future__ import annotations

import pytest

from cti.ami.protocol import Message
from cti.calls import CallTracker
from cti.domain import AmiOutage, CallArrived, CallBridged, CallEnded, CallLeftContract
from tests.ami_shapes import (
    T0,
    Chan,
    Feed,
    bridge_enter,
    bridge_leave,
    event,
    hangup,
    kinds,
    newchannel,
    newexten,
    soft_hangup_request,
    timed_events,
)
from tests.pbx_scenarios import (
    C1,
    DESK,
    V301,
    abandon_after_no_answer,
    abandon_while_ringing,
    bridged_by_another_client,
    first_hold,
    hung_up_by_us_while_ringing,
    internal_call,
    restart_while_bridged,
    restart_while_queued,
    ringing_1002,
    v301_bridged,
)


def ended(evs: list[object]) -> CallEnded:
    (end,) = [e for e in evs if isinstance(e, CallEnded)]
    return end


# -- 1. who hung up: the caller's channel says, not the order of teardown ------------------


def test_a_caller_leaving_while_the_agent_rings_is_the_callers_hangup() -> None:
    """At 30 calls/s Asterisk sent the agent leg's teardown first (DialEnd CANCEL, the agent's Local
    Hangup), then the caller's halves, all in one millisecond: 37 of 258 abandons came out 'agent'."""
    feed = Feed()
    assert kinds(feed(ringing_1002())) == ["CallArrived", "CallHeld", "CallAtAgent"]
    end = ended(feed(abandon_while_ringing()[len(ringing_1002()):]))
    assert (end.hangup_side, end.cause, end.cause_txt, end.reason) == ("caller", 16, "Normal Clearing", "hangup")
    assert end.at == pytest.approx(T0 + 4.120)


def test_an_earlier_ring_no_answer_does_not_make_an_abandon_the_agents() -> None:
    evs = Feed()(abandon_after_no_answer())
    assert "DialResult" in kinds(evs)
    assert ended(evs).hangup_side == "caller"


def test_our_side_hanging_up_a_ringing_caller_is_the_systems() -> None:
    """An AMI Hangup of the caller's ;1 (the ACD, another client) raises no HangupRequest on it;
    its ;2 is told instead: 'system', not the agent whose leg Dial tore down first."""
    end = ended(Feed()(hung_up_by_us_while_ringing()))
    assert (end.hangup_side, end.cause, end.reason) == ("system", 0, "hangup")


@pytest.mark.parametrize(("trace", "side"), [
    ("v3-01-answered-recorded.ami.txt", "caller"),  # the caller hangs up, bridged
    ("v3-02-ring-no-answer-then-answered.ami.txt", "agent"),  # NOANSWER, then answered; the agent hangs up
    ("v3-03-stale-offer.ami.txt", "caller"),  # NODEVICE, then the caller abandons in MOH
    ("v3-04-caller-hangs-up-in-ivr.ami.txt", "caller"),
    ("v3-05-privileges.ami.txt", "system"),  # AMI Hangup of the bridged caller
    ("v3-06-redirect-during-ivr.ami.txt", "caller"),
    ("02-inbound-ivr-to-queue.ami.txt", "agent"),
    ("03-redirect-during-agi.ami.txt", "system"),  # the ACD hangs the bridged caller up
    ("04-ring-no-answer.ami.txt", "system"),  # NOANSWER, then an AMI Hangup in MOH (was 'agent')
    ("05-agent-busy.ami.txt", "system"),  # BUSY, then an AMI Hangup during an AGI (was 'agent')
    ("06-caller-abandons-in-hold.ami.txt", "caller"),
    ("07-caller-hangs-up-in-ivr.ami.txt", "caller"),
    ("v2-03-ring-no-answer-then-answered.ami.txt", "caller"),  # (was 'agent': the earlier NOANSWER)
    ("v2-04-nodevice.ami.txt", "caller"),  # abandons in MOH (was 'system': the halves' order)
    ("v2-07-recording.ami.txt", "caller"),  # the agent's ;1 hung up 3 ms before the caller's ;1
])
def test_hangup_side_of_every_real_trace(trace: str, side: str) -> None:
    assert ended(Feed()(timed_events(trace))).hangup_side == side


def test_without_hangup_requests_the_local_halves_order_is_the_fallback() -> None:
    """A manager.conf that still filters HangupRequest out: the caller's ;2 ending before its ;1
    is all there is (no agent leg's Hangup counts any more)."""
    msgs = [(t, m) for t, m in timed_events("v3-03-stale-offer.ami.txt") if m.name != "HangupRequest"]
    assert ended(Feed()(msgs)).hangup_side == "caller"


# -- 2. calls that are not ours give no domain event ---------------------------------------


def test_an_internal_call_in_another_context_is_not_ours() -> None:
    feed = Feed()
    assert feed(internal_call()) == []
    assert feed.tracker.foreign_calls == 1 and not feed.tracker.calls


def test_other_clients_originates_are_not_ours() -> None:
    """09: five click-to-dial Originates (one answered and bridged, one failed with cause 19, one
    busy ...) by another AMI client, in contexts outside the contract: no call, no row."""
    feed = Feed()
    assert feed(timed_events("09-originate-agent-first.ami.txt")) == []
    assert feed.tracker.foreign_calls == 5 and not feed.tracker.calls and not feed.tracker._peer_call


def test_our_call_amid_foreign_calls_is_tracked_as_alone() -> None:
    alone = Feed()(V301)
    mixed = sorted(V301 + timed_events("09-originate-agent-first.ami.txt"), key=lambda tm: tm[0])
    feed = Feed()
    assert feed(mixed) == alone
    assert feed.tracker.foreign_calls == 5


def test_an_originate_of_ours_is_ours_from_its_first_event() -> None:
    feed = Feed()
    ch = Chan("Local/1004@agent-phones-00000040;1", "c2d-0001", "c2d-0001", "callers", "wait", 1, "5551234", "Grace")
    feed.tracker.expect_originate("c2d-0001")
    evs = feed.at(1.0, [newchannel(ch), newexten(ch, "Wait", "30"), hangup(ch, 16)])
    assert kinds(evs) == ["CallArrived", "CallEnded"]
    arrived = evs[0]
    assert isinstance(arrived, CallArrived) and arrived.call_id == "c2d-0001" and arrived.dnis == "wait"
    assert feed.tracker.foreign_calls == 0


# -- 3. a shutdown or restart is the system's doing ----------------------------------------


def test_a_restart_ends_a_queued_call_as_the_systems_not_an_abandon() -> None:
    """`core restart now`: SoftHangupRequest Cause 4 on every channel; the caller's ;1 is even told
    its ;2 went away (a HangupRequest, as when a caller leaves): still the system's doing."""
    end = ended(Feed()(restart_while_queued()))
    assert (end.hangup_side, end.reason, end.cause) == ("system", "shutdown", 0)


def test_a_restart_cuts_a_bridged_call() -> None:
    evs = Feed()(restart_while_bridged())
    assert "CallBridged" in kinds(evs)
    assert (ended(evs).hangup_side, ended(evs).reason) == ("system", "shutdown")


def test_an_ami_hangup_with_cause_0_is_not_a_shutdown() -> None:
    end = ended(Feed()(timed_events("04-ring-no-answer.ami.txt")))
    assert (end.cause, end.hangup_side, end.reason) == (0, "system", "hangup")


def test_calls_gone_after_a_restart_are_the_systems() -> None:
    """The Hangup of a call is lost when Asterisk exits first: the listing after the reconnect
    no longer has it, and the shutdown seen before the link dropped says why."""
    feed = Feed()
    feed(first_hold())
    other = Chan("PJSIP/trunk-00000050", "1795461470.70", "1795461470.70", "from-trunk", "100", 1)
    feed.at(3.0, [soft_hangup_request(other, 4)])  # the restart reaches another channel first
    feed.now = T0 + 3.2
    feed.tracker.link_lost()  # EOF: Asterisk exits
    feed.now = T0 + 40.0
    known = feed.tracker.resync_begin()
    feed.now = T0 + 40.1
    evs = feed.tracker.resync([], known)
    assert kinds(evs) == ["AmiOutage", "CallEnded"]
    assert isinstance(evs[0], AmiOutage) and evs[0].restart
    end = ended(evs)
    assert (end.hangup_side, end.reason) == ("system", "shutdown")
    assert (end.at, end.outage_from, end.outage_to) == (T0 + 3.2, T0 + 3.2, T0 + 40.0)


@pytest.mark.parametrize(("uptime", "reason"), [("12", "shutdown"), ("509", "resync-gone")])
def test_fully_booted_after_an_outage_tells_a_restart(uptime: str, reason: str) -> None:
    """Where the AMI user also reads `system`: FullyBooted's Uptime shorter than the outage means
    Asterisk started while the link was down, and took its calls with it."""
    feed = Feed()
    feed(first_hold())
    feed.now = T0 + 3.0
    feed.tracker.link_lost()
    feed.at(30.0, [Message((("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", uptime),
                            ("LastReload", uptime), ("Status", "Fully Booted")))])
    end = ended(feed.tracker.resync([], feed.tracker.resync_begin()))
    assert end.reason == reason and end.hangup_side == ("system" if reason == "shutdown" else "unknown")


# -- 4. a call that ended during an AMI outage keeps the time it was last seen alive --------


def test_a_call_gone_during_an_outage_ends_when_it_was_last_seen_alive() -> None:
    """v3-01: bridged at 8.285, Asterisk hung it up at 17.305; the link was down from 10.0 to
    23.4: it ends at 10.0, inside the window (10.0, 23.4), never at the reconnect."""
    feed = Feed()
    bridged = [e for e in feed(v301_bridged()) if isinstance(e, CallBridged)]
    assert bridged and bridged[0].at == pytest.approx(T0 + 8.285)
    feed.now = T0 + 10.0
    feed.tracker.link_lost()
    feed.now = T0 + 23.4
    known = feed.tracker.resync_begin()
    feed.now = T0 + 23.45
    evs = feed.tracker.resync([], known)
    outage, end = evs
    assert isinstance(outage, AmiOutage) and (outage.down_at, outage.up_at) == (T0 + 10.0, T0 + 23.4)
    assert isinstance(end, CallEnded)
    assert (end.reason, end.hangup_side, end.cause) == ("resync-gone", "unknown", 0)
    assert (end.at, end.outage_from, end.outage_to) == (T0 + 10.0, T0 + 10.0, T0 + 23.4)
    assert end.at - bridged[0].at == pytest.approx(1.715)  # talk up to the last sight, not 15.2 s


def test_link_lost_can_be_told_when_the_link_was_last_known_up() -> None:
    feed = Feed()
    feed(first_hold())
    feed.now = T0 + 20.0
    feed.tracker.link_lost(at=T0 + 5.0)  # the silence check found it dead 15 s late
    feed.tracker.link_lost()  # a second drop before any resync keeps the first
    end = ended(feed.tracker.resync([], feed.tracker.resync_begin()))
    assert (end.at, end.outage_from, end.outage_to) == (T0 + 5.0, T0 + 5.0, T0 + 20.0)


# -- 5. bridges not of our making: answered, by whom ----------------------------------------


def test_a_caller_bridged_by_another_client_is_answered_by_that_peer() -> None:
    feed = Feed()
    evs = feed(bridged_by_another_client())
    assert kinds(evs) == ["CallArrived", "CallHeld", "CallLeftContract", "CallBridged", "CallEnded"]
    left = evs[2]
    assert isinstance(left, CallLeftContract) and left.context != "cti-hold"
    bridged = evs[3]
    assert isinstance(bridged, CallBridged)
    assert (bridged.agent_id, bridged.answered_by, bridged.bridge_id) == ("", DESK.name, "br-desk")
    assert bridged.at == T0 + 5.0
    assert ended(evs).hangup_side == "agent"  # the party that answered hung up first
    assert not feed.tracker._bridges and not feed.tracker._peer_call and not feed.tracker._bridge_call


def test_our_answer_names_the_agent_and_its_leg() -> None:
    bridged = [e for e in Feed()(V301) if isinstance(e, CallBridged)]
    assert [(b.agent_id, b.answered_by) for b in bridged] == [("1004", "Local/1004@agent-phones-00000001;1")]


def test_a_peer_entering_after_the_caller_answers_it_and_parking_does_not() -> None:
    feed = Feed()
    feed(first_hold())
    c1 = C1.at("other", "park", 1)
    lot = feed.at(3.0, [newexten(c1, "Park"), bridge_enter("lot", 1, c1, technology="holding_bridge")])
    # the caller left the contract (the ACD stops routing it); a holding bridge (parking) answers nothing
    assert kinds(lot) == ["CallLeftContract"]
    feed.at(4.0, [bridge_leave("lot", 0, c1)])
    evs = feed.at(5.0, [bridge_enter("conf", 1, c1.at("other", "conf", 2)),
                        bridge_enter("conf", 2, DESK)])
    assert kinds(evs) == ["CallBridged"] and isinstance(evs[0], CallBridged)
    assert evs[0].answered_by == DESK.name and evs[0].agent_id == ""


def test_resync_finds_a_caller_bridged_with_another_party() -> None:
    feed = Feed()
    feed(first_hold())
    feed.tracker.link_lost()
    listing = [Message((("Event", "CoreShowChannel"), ("Channel", C1.name), ("Uniqueid", C1.uniqueid),
                        ("Linkedid", C1.linkedid), ("Context", "support-desk"), ("Exten", "2001"),
                        ("BridgeId", "br-x"))),
               Message((("Event", "CoreShowChannel"), ("Channel", DESK.name), ("Uniqueid", DESK.uniqueid),
                        ("Linkedid", C1.linkedid), ("Context", "support-desk"), ("Exten", ""),
                        ("BridgeId", "br-x")))]
    evs = feed.tracker.resync(listing, feed.tracker.resync_begin())
    assert kinds(evs) == ["AmiOutage", "CallBridged"]
    assert isinstance(evs[1], CallBridged) and (evs[1].agent_id, evs[1].answered_by) == ("", DESK.name)


def test_event_names_the_tracker_reads_are_in_the_managers_filter() -> None:
    """asterisk/manager.conf includes every event kind of class call/dialplan/user the tracker reads."""
    from pathlib import Path

    conf = (Path(__file__).resolve().parent.parent / "asterisk" / "manager.conf").read_text()
    t = CallTracker()
    for name in ("Newchannel", "Newexten", "Hangup", "HangupRequest", "SoftHangupRequest", "UserEvent",
                 "BridgeEnter", "BridgeLeave"):
        assert t.wants(name) and f"name({name})" in conf, name
    assert event("Shutdown").name == "Shutdown" and t.wants("Shutdown") and t.wants("FullyBooted")
