"""Real-shaped AMI events for the call tracker tests: timed events cut from the real Asterisk 22
transcripts, and builders for what those transcripts do not show, in Asterisk 22's header order
(channel snapshot: Channel … Linkedid; bridge snapshot: BridgeUniqueid … BridgeVideoSourceMode).

A :class:`Feed` drives a :class:`~cti.calls.CallTracker` with a clock that follows the events'
times, so the domain events carry the times Asterisk sent the AMI events at.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from cti.ami.protocol import Message
from cti.calls import CallTracker
from cti.domain import DomainEvent

TRACES = Path(__file__).parent / "fixtures" / "traces"
T0 = 1_795_461_000.0  # epoch of the scenarios (their seconds are offsets from it)

_STATE = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
CAUSE_TXT = {0: "Unknown", 16: "Normal Clearing", 17: "User busy", 19: "No user responding"}
_PRIVILEGE = {"Newexten": "dialplan,all", "HangupHandlerRun": "dialplan,all", "UserEvent": "user,all",
              "Shutdown": "system,all", "FullyBooted": "system,all"}


def timed_events(name: str) -> list[tuple[float, Message]]:
    """The events Asterisk sent on the trace's first AMI connection, each with its time (s)."""
    out: list[tuple[float, Message]] = []
    headers: list[tuple[str, str]] = []
    when = 0.0
    conn = "1"
    for line in (TRACES / name).read_text("ascii").split("\n"):
        if line.startswith("# conn "):
            conn = line.split()[2].rstrip(":")
            continue
        if conn != "1" or not line.startswith("<< "):
            continue
        _, t, *rest = line.split(" ", 2)
        text = rest[0] if rest else ""
        if not text:
            if headers and headers[0][0] == "Event":
                out.append((when, Message(headers)))
            headers = []
            continue
        if not headers:
            when = float(t)
        key, sep, value = text.partition(": ")
        headers.append((key, value) if sep else (text.removesuffix(":"), ""))
    return out


def upto(events: list[tuple[float, Message]], pred: object, nth: int = 1) -> list[tuple[float, Message]]:
    """The events up to and including the ``nth`` one for which ``pred(msg)`` holds."""
    seen = 0
    for i, (_, m) in enumerate(events):
        if callable(pred) and pred(m):
            seen += 1
            if seen == nth:
                return events[: i + 1]
    raise AssertionError("no such event")


@dataclass(frozen=True, slots=True)
class Chan:
    """A channel as its snapshot shows it."""

    name: str
    uniqueid: str
    linkedid: str
    context: str = ""
    exten: str = ""
    priority: int = 1
    num: str = "5552345"
    cid_name: str = "Heidi"
    state: int = 6

    def at(self, context: str, exten: str, priority: int = 1) -> Chan:
        return replace(self, context=context, exten=exten, priority=priority)

    def snapshot(self, prefix: str = "") -> list[tuple[str, str]]:
        p = prefix
        return [(p + "Channel", self.name), (p + "ChannelState", str(self.state)),
                (p + "ChannelStateDesc", _STATE.get(self.state, "Up")), (p + "CallerIDNum", self.num),
                (p + "CallerIDName", self.cid_name), (p + "ConnectedLineNum", self.num),
                (p + "ConnectedLineName", self.cid_name), (p + "Language", "en"), (p + "AccountCode", ""),
                (p + "Context", self.context), (p + "Exten", self.exten), (p + "Priority", str(self.priority)),
                (p + "Uniqueid", self.uniqueid), (p + "Linkedid", self.linkedid)]


def event(name: str, ch: Chan | None = None, *, dest: Chan | None = None, bridge: tuple[str, int] | None = None,
          technology: str = "simple_bridge", fields: Iterable[tuple[str, str]] = ()) -> Message:
    h = [("Event", name), ("Privilege", _PRIVILEGE.get(name, "call,all"))]
    if bridge is not None:
        bid, n = bridge
        h += [("BridgeUniqueid", bid), ("BridgeType", "basic"), ("BridgeTechnology", technology),
              ("BridgeCreator", "<unknown>"), ("BridgeName", "<unknown>"), ("BridgeNumChannels", str(n)),
              ("BridgeVideoSourceMode", "none")]
    if ch is not None:
        h += ch.snapshot()
    if dest is not None:
        h += dest.snapshot("Dest")
    return Message(h + list(fields))


def newchannel(ch: Chan) -> Message:
    return event("Newchannel", replace(ch, state=0))


def newexten(ch: Chan, app: str, data: str = "") -> Message:
    return event("Newexten", ch, fields=[("Extension", ch.exten), ("Application", app), ("AppData", data)])


def hangup(ch: Chan, cause: int) -> Message:
    return event("Hangup", ch, fields=[("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, "Unknown"))])


def hangup_request(ch: Chan, cause: int) -> Message:
    return event("HangupRequest", ch, fields=[("Cause", str(cause))])


def soft_hangup_request(ch: Chan, flag: int) -> Message:
    """``flag``: the AST_SOFTHANGUP_* reason (16 APPUNLOAD at every pbx end, 4 SHUTDOWN)."""
    return event("SoftHangupRequest", ch, fields=[("Cause", str(flag))])


def dial_begin(ch: Chan, dest: Chan, dialstring: str) -> Message:
    return event("DialBegin", ch, dest=dest, fields=[("DialString", dialstring)])


def dial_end(ch: Chan, dest: Chan, status: str) -> Message:
    return event("DialEnd", ch, dest=dest, fields=[("DialStatus", status)])


def bridge_enter(bid: str, n: int, ch: Chan, technology: str = "simple_bridge") -> Message:
    return event("BridgeEnter", ch, bridge=(bid, n), technology=technology)


def bridge_leave(bid: str, n: int, ch: Chan) -> Message:
    return event("BridgeLeave", ch, bridge=(bid, n))


def user_event(ch: Chan, name: str, **fields: str) -> Message:
    return event("UserEvent", ch, fields=[("UserEvent", name), *fields.items()])


def hangup_handler_run(ch: Chan) -> Message:
    return event("HangupHandlerRun", ch, fields=[("Handler", "cti-end,s,1")])


def caller_halves(msgs: Iterable[tuple[float, Message]]) -> tuple[Chan, Chan]:
    """The caller's ``;1`` and ``;2`` as the last events of a trace show them."""
    one: Chan | None = None
    two: Chan | None = None
    for _, m in msgs:
        name, uid, lid = m.get("Channel") or "", m.get("Uniqueid") or "", m.get("Linkedid") or ""
        if not (uid and lid) or m.name not in ("Newexten", "Newchannel", "HangupRequest", "Hangup", "DialBegin"):
            continue
        if name.endswith(";1") and uid == lid:
            one = Chan(name, uid, lid, m.get("Context") or "", m.get("Exten") or "", int(m.get("Priority") or 1),
                       m.get("CallerIDNum") or "", m.get("CallerIDName") or "")
        elif one is not None and name == one.name[:-1] + "2":
            two = Chan(name, uid, lid, m.get("Context") or "", m.get("Exten") or "", int(m.get("Priority") or 1),
                       m.get("CallerIDNum") or "", m.get("CallerIDName") or "")
    assert one is not None and two is not None
    return one, two


class Feed:
    """A tracker whose clock is the time of the event being fed (T0 + the trace's seconds)."""

    def __init__(self, tracker: CallTracker | None = None, server: str = "default") -> None:
        self.now = T0
        self.tracker = tracker or CallTracker(server, clock=lambda: self.now)

    def __call__(self, msgs: Iterable[tuple[float, Message]]) -> list[DomainEvent]:
        out: list[DomainEvent] = []
        for t, m in msgs:
            self.now = T0 + t
            out += self.tracker.feed(m)
        return out

    def at(self, t: float, msgs: Iterable[Message]) -> list[DomainEvent]:
        """These events, all at time ``t`` (the same millisecond, as Asterisk sends a teardown)."""
        return self([(t, m) for m in msgs])


def kinds(evs: Iterable[object]) -> list[str]:
    return [type(e).__name__ for e in evs]
