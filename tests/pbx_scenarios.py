"""What a real Asterisk 22 under load sent for our calls (706 calls on 22.10.1 with our dialplan),
as timed AMI events: a real transcript up to a point, then the events that trace did not show,
in the order the loaded PBX delivered them (shared by the tracker and the call-log tests)."""

from __future__ import annotations

from cti.ami.protocol import Message
from tests.ami_shapes import (
    Chan,
    bridge_enter,
    bridge_leave,
    caller_halves,
    dial_begin,
    dial_end,
    hangup,
    hangup_handler_run,
    hangup_request,
    newchannel,
    newexten,
    soft_hangup_request,
    timed_events,
    upto,
    user_event,
)

Timed = list[tuple[float, Message]]

V301 = timed_events("v3-01-answered-recorded.ami.txt")
V302 = timed_events("v3-02-ring-no-answer-then-answered.ami.txt")
CALL_ID = "5ef1cdde-9b57-4079-a869-5baece5296f7"  # v3-02's CTI_CALL_ID

C1, C2 = caller_halves(V302)  # Local/talk@callers-00000002;1 and ;2, Heidi 5552345
A1 = Chan("Local/1002@agent-phones-00000003;1", "1795461473.6", C1.linkedid, "agent-phones", "1002", 1,
          "5552345", "Heidi", state=5)
A2 = Chan("Local/1002@agent-phones-00000003;2", "1795461473.7", C1.linkedid, "agent-phones", "1002", 1,
          "5552345", "Heidi", state=5)
FAR = C2.at("callers", "talk", 2)  # the ;2 half plays the caller: its Hangup() is the caller leaving
DESK = Chan("PJSIP/2001-00000009", "1795461470.20", C1.linkedid, "support-desk", "2001", 1, "2001", "Desk")


def at(t: float, *msgs: Message) -> Timed:
    return [(t, m) for m in msgs]


def call_end(ch: Chan, status: str, cause: int) -> Message:
    return user_event(ch.at("cti-end", "s", 1), "CtiCallEnd", CallId=CALL_ID, DialStatus=status, Cause=str(cause))


def ringing_1002() -> Timed:
    """v3-02 until the caller's Dial rings agent 1002 (2.447 s)."""
    return upto(V302, lambda m: m.name == "DialBegin" and m.get("Channel"))


def back_in_hold() -> Timed:
    """v3-02 until the caller is back in MusicOnHold after 1002 did not answer (7.876 s)."""
    return upto(V302, lambda m: m.name == "Newexten" and m.get("Application") == "MusicOnHold", nth=2)


def first_hold() -> Timed:
    """v3-02 until the caller first waits in MusicOnHold (0.436 s)."""
    return upto(V302, lambda m: m.name == "Newexten" and m.get("Application") == "MusicOnHold")


def v301_bridged() -> Timed:
    """v3-01 until the caller is bridged with agent 1004 (8.285 s)."""
    return upto(V301, lambda m: m.name == "BridgeEnter", nth=2)


def abandon_while_ringing(t: float = 4.120) -> Timed:
    """The caller leaves while 1002 rings. Asterisk sends the agent leg's teardown first (DialEnd
    CANCEL, the agent's Local Hangup), then the caller's halves, all in one millisecond."""
    c1 = C1.at("cti-agent", "1002", 7)
    return ringing_1002() + at(
        t, soft_hangup_request(FAR, 16), hangup_request(c1, 16),  # the caller's ;2 hangs up: ;1 is told
        dial_end(c1, A1, "CANCEL"), hangup_request(A2, 0), hangup(A1, 0),  # the agent leg goes first
        soft_hangup_request(A2, 16), hangup(A2, 0),
        soft_hangup_request(c1, 16), hangup_handler_run(c1), call_end(c1, "CANCEL", 16),
        hangup(c1, 16), hangup(FAR, 16))  # the caller's ;1 before its ;2 (this order gave 'system')


def abandon_after_no_answer(t: float = 12.5) -> Timed:
    """1002 did not answer; back in MOH the caller leaves."""
    c1 = C1.at("cti-hold", "s", 2)
    return back_in_hold() + at(
        t, soft_hangup_request(FAR, 16), hangup_request(c1, 16), soft_hangup_request(c1, 16),
        hangup_handler_run(c1), call_end(c1, "NOANSWER", 16), hangup(c1, 16), hangup(FAR, 16))


def hung_up_by_us_while_ringing(t: float = 5.0) -> Timed:
    """An AMI Hangup of the caller's ;1 while 1002 rings: no HangupRequest on it, its ;2 is told."""
    c1 = C1.at("cti-agent", "1002", 7)
    return ringing_1002() + at(
        t, dial_end(c1, A1, "CANCEL"), hangup_request(A2, 0), hangup(A1, 0), soft_hangup_request(A2, 16),
        hangup(A2, 0), soft_hangup_request(c1, 16), hangup_handler_run(c1), call_end(c1, "CANCEL", 0),
        hangup_request(FAR, 0), hangup(c1, 0), soft_hangup_request(FAR, 16), hangup(FAR, 0))


def restart_while_queued(t: float = 9.0) -> Timed:
    """`core restart now` with the caller in MOH: every channel gets SoftHangupRequest Cause 4
    (AST_SOFTHANGUP_SHUTDOWN); the caller's ;2 dies first and its ;1 is told, as if it had left."""
    c1 = C1.at("cti-hold", "s", 2)
    return back_in_hold() + at(
        t, soft_hangup_request(FAR, 4), hangup_request(c1, 0), soft_hangup_request(c1, 4),
        soft_hangup_request(c1, 16), hangup_handler_run(c1), call_end(c1, "NOANSWER", 0), hangup(c1, 0),
        hangup(FAR, 0))


def restart_while_bridged(t: float = 12.0) -> Timed:
    """The restart reaches v3-01's agent leg first, then the bridged caller."""
    c1, c2 = caller_halves(V301)
    a1 = Chan("Local/1004@agent-phones-00000001;1", "1795461458.2", c1.linkedid, "agent-phones", "", 1)
    a2 = Chan("Local/1004@agent-phones-00000001;2", "1795461458.3", c1.linkedid, "agent-phones", "1004", 2)
    bridge = "6faa9039-21a6-4a43-9d14-2e61045b555f"
    return v301_bridged() + at(
        t, soft_hangup_request(a2, 4), hangup_request(a1, 0), soft_hangup_request(a1, 4),
        soft_hangup_request(c1, 4), soft_hangup_request(c2, 4), hangup(a2, 0), bridge_leave(bridge, 1, a1),
        hangup(a1, 0), bridge_leave(bridge, 0, c1), soft_hangup_request(c1, 16), hangup(c1, 0), hangup(c2, 0))


def bridged_by_another_client() -> Timed:
    """Another AMI client redirects our caller from MOH to [support-desk],2001, which Dials a desk
    phone; the desk answers at 5.0 and hangs up at 8.0."""
    c1 = C1.at("support-desk", "2001", 1)
    return first_hold() + at(
        3.0, newexten(c1, "Dial", "PJSIP/2001,30"), newchannel(DESK), dial_begin(c1, DESK, "PJSIP/2001"),
    ) + at(
        5.0, dial_end(c1, DESK, "ANSWER"), bridge_enter("br-desk", 1, DESK), bridge_enter("br-desk", 2, c1),
    ) + at(
        8.0, hangup_request(DESK, 16), bridge_leave("br-desk", 1, DESK), hangup(DESK, 16),
        bridge_leave("br-desk", 0, c1), soft_hangup_request(c1, 16), hangup_handler_run(c1),
        call_end(c1, "ANSWER", 16), hangup_request(FAR, 16), hangup(c1, 16), soft_hangup_request(FAR, 16),
        hangup(FAR, 16))


def internal_call(t: float = 1.0) -> Timed:
    """An internal call to a queue of the site's own (not ours)."""
    ch = Chan("PJSIP/2001-00000031", "1795462000.90", "1795462000.90", "queue-test", "600", 1, "2001", "Desk")
    return at(t, newchannel(ch), newexten(ch, "Answer"), newexten(ch.at("queue-test", "600", 2), "Queue"),
              hangup(ch.at("queue-test", "600", 2), 16))


def redirected_to_voicemail(back_at: float | None = None) -> Timed:
    """Another AMI client redirects our waiting caller from MOH to [voicemail],s at 3.0; the caller
    hangs up there at 9.0, or (``back_at``) is redirected back to [cti-hold] first."""
    c1 = C1.at("voicemail", "s", 1)
    out = first_hold() + at(3.0, newexten(c1, "VoiceMail", "100@default"))
    if back_at is not None:
        out += at(back_at, newexten(C1.at("cti-hold", "s", 1), "AGI", "agi://127.0.0.1:4573/hold"))
        c1 = C1.at("cti-hold", "s", 2)
    return out + at(
        9.0, soft_hangup_request(FAR, 16), hangup_request(c1, 16), soft_hangup_request(c1, 16),
        hangup_handler_run(c1), call_end(c1, "", 16), hangup(c1, 16), hangup(FAR, 16))
