"""The call tracker on real Asterisk transcripts: AMI events -> domain events."""

from __future__ import annotations

from pathlib import Path

from cti.ami.protocol import AmiParser, Message
from cti.calls import CallTracker
from cti.domain import CallArrived, CallAtAgent, CallBridged, CallEnded, CallHeld, DialResult
from tests.test_ami_protocol import rx_stream

TRACES = Path(__file__).parent / "fixtures" / "traces"


def events_of(name: str) -> list[Message]:
    data = rx_stream(TRACES / name)["1"]
    return [m for m in AmiParser().feed(data) if isinstance(m, Message) and m.is_event]


def run(msgs: list[Message], tracker: CallTracker | None = None) -> list[object]:
    t = tracker or CallTracker(clock=lambda: 0.0)
    out: list[object] = []
    for m in msgs:
        out += t.feed(m)
    return out


def kinds(evs: list[object]) -> list[str]:
    return [type(e).__name__ for e in evs]


def test_answered_call() -> None:
    evs = run(events_of("v3-01-answered-recorded.ami.txt"))
    assert kinds(evs) == ["CallArrived", "CallHeld", "CallAtAgent", "CallBridged", "CallEnded"]
    arrived = evs[0]
    assert isinstance(arrived, CallArrived)
    assert arrived.caller_num == "5551234" and arrived.caller_name == "Grace" and arrived.dnis == "5551000"
    assert arrived.call_id == "1795461450.0" and arrived.channel.endswith(";1")
    assert isinstance(evs[2], CallAtAgent) and evs[2].agent_id == "1004"
    assert isinstance(evs[3], CallBridged) and evs[3].agent_id == "1004"
    end = evs[4]
    assert isinstance(end, CallEnded) and end.cause == 16 and end.hangup_side == "caller"


def test_ring_no_answer_then_answered() -> None:
    evs = run(events_of("v3-02-ring-no-answer-then-answered.ami.txt"))
    assert kinds(evs) == ["CallArrived", "CallHeld", "CallAtAgent", "DialResult", "CallHeld",
                          "CallAtAgent", "CallBridged", "CallEnded"]
    dr = evs[3]
    assert isinstance(dr, DialResult) and dr.agent_id == "1002" and dr.dial_status == "NOANSWER"
    assert dr.cti_call_id
    end = evs[-1]
    assert isinstance(end, CallEnded) and end.hangup_side == "agent"


def test_stale_offer_then_abandon() -> None:
    evs = run(events_of("v3-03-stale-offer.ami.txt"))
    assert kinds(evs) == ["CallArrived", "CallHeld", "CallAtAgent", "DialResult", "CallHeld", "CallEnded"]
    assert isinstance(evs[3], DialResult) and evs[3].dial_status == "NODEVICE"


def test_hangup_in_ivr_and_redirect_during_ivr() -> None:
    assert kinds(run(events_of("v3-04-caller-hangs-up-in-ivr.ami.txt"))) == ["CallArrived", "CallEnded"]
    evs = run(events_of("v3-06-redirect-during-ivr.ami.txt"))
    assert kinds(evs) == ["CallArrived", "CallAtAgent", "CallBridged", "CallEnded"]


def test_idempotent_and_out_of_order() -> None:
    msgs = events_of("v3-01-answered-recorded.ami.txt")
    t = CallTracker(clock=lambda: 0.0)
    first = run(msgs, t)
    assert run(msgs, t) == []  # the same events again change nothing
    assert len(first) == 5
    # Hangup before anything else: the call is still closed, once
    hangup = [m for m in msgs if m.name == "Hangup" and m.get("Uniqueid") == m.get("Linkedid")]
    t2 = CallTracker(clock=lambda: 0.0)
    assert kinds(run(hangup + hangup, t2)) == ["CallEnded"]
    assert run(msgs, t2) == []


def test_resync_closes_gone_calls_and_adopts_unknown() -> None:
    msgs = events_of("v3-01-answered-recorded.ami.txt")
    until_bridge = msgs[: next(i for i, m in enumerate(msgs) if m.name == "BridgeEnter") + 2]
    t = CallTracker(clock=lambda: 0.0)
    run(until_bridge, t)
    known = t.resync_begin()
    gone = t.resync([], known)
    assert kinds(gone) == ["CallEnded"] and isinstance(gone[0], CallEnded)
    assert gone[0].reason == "resync-gone"
    # a caller we never saw, found holding in the listing, is adopted and held
    live = Message((("Event", "CoreShowChannel"), ("Channel", "Local/x@callers-00000009;1"),
                    ("Uniqueid", "9.1"), ("Linkedid", "9.1"), ("Context", "cti-hold"),
                    ("CallerIDNum", "5550000"), ("CallerIDName", "Zed"), ("BridgeId", "")))
    adopted = t.resync([live], t.resync_begin())
    assert kinds(adopted) == ["CallArrived", "CallHeld"]
    assert isinstance(adopted[1], CallHeld) and adopted[1].call_id == "9.1"


def test_resync_sees_a_call_answered_while_the_link_was_down() -> None:
    """Offered before the drop, answered during it: the listing shows the caller bridged."""
    msgs = events_of("v3-01-answered-recorded.ami.txt")
    bridge_at = next(i for i, m in enumerate(msgs) if m.name == "BridgeEnter")
    t = CallTracker(clock=lambda: 0.0)
    before = run(msgs[:bridge_at], t)  # the link drops just before the BridgeEnter
    assert "CallAtAgent" in kinds(before) and "CallBridged" not in kinds(before)
    (call,) = t.calls.values()
    live = Message((("Event", "CoreShowChannel"), ("Channel", call.channel), ("Uniqueid", call.linkedid),
                    ("Linkedid", call.linkedid), ("Context", "cti-agent"), ("Exten", call.agent or ""),
                    ("Application", "Dial"), ("BridgeId", "b-1")))
    got = t.resync([live], t.resync_begin())
    assert kinds(got) == ["CallBridged"]
    assert isinstance(got[0], CallBridged) and got[0].agent_id == call.agent and got[0].agent_id
    assert t.resync([live], t.resync_begin()) == []  # a second resync changes nothing
    # and the BridgeEnter that finally arrives (replayed) does not bridge it twice
    assert "CallBridged" not in kinds(run(msgs[bridge_at:bridge_at + 3], t))


def test_a_hangup_after_an_outage_tells_the_bridge_may_have_been_missed() -> None:
    """Ringing when the link drops; the BridgeEnter is lost; the Hangup arrives after login,
    before the listing: the end is flagged ``gap`` (answered or not cannot be known)."""
    msgs = events_of("v3-01-answered-recorded.ami.txt")
    bridge_at = next(i for i, m in enumerate(msgs) if m.name == "BridgeEnter")
    hangup_at = max(i for i, m in enumerate(msgs) if m.name == "Hangup" and m.get("Uniqueid") == m.get("Linkedid"))
    t = CallTracker(clock=lambda: 0.0)
    run(msgs[:bridge_at], t)
    t.link_lost()
    (end,) = [e for e in run([msgs[hangup_at]], t) if isinstance(e, CallEnded)]
    assert end.gap and end.reason == "hangup"
    # the same call watched throughout: no gap
    t2 = CallTracker(clock=lambda: 0.0)
    assert not any(isinstance(e, CallEnded) and e.gap for e in run(msgs, t2))
    # an outage, then a listing that shows the caller still ringing: watched again from there
    t3 = CallTracker(clock=lambda: 0.0)
    run(msgs[:bridge_at], t3)
    t3.link_lost()
    (call,) = t3.calls.values()
    ringing = Message((("Event", "CoreShowChannel"), ("Channel", call.channel), ("Uniqueid", call.linkedid),
                       ("Linkedid", call.linkedid), ("Context", "cti-agent"), ("Application", "Dial"),
                       ("BridgeId", "")))
    got = t3.resync([ringing], t3.resync_begin())
    assert kinds(got) == ["AmiOutage"]  # the outage is reported; the call lives on
    (end3,) = [e for e in run([msgs[hangup_at]], t3) if isinstance(e, CallEnded)]
    assert not end3.gap


def test_call_ids_namespaced_by_server() -> None:
    msgs = events_of("v3-01-answered-recorded.ami.txt")
    a = run(msgs, CallTracker("ast-a", namespaced=True, clock=lambda: 0.0))
    b = run(msgs, CallTracker("ast-b", namespaced=True, clock=lambda: 0.0))
    ids_a = {e.call_id for e in a}  # type: ignore[attr-defined]
    ids_b = {e.call_id for e in b}  # type: ignore[attr-defined]
    assert len(ids_a) == 1 and next(iter(ids_a)).startswith("ast-a/")
    assert ids_a.isdisjoint(ids_b)
