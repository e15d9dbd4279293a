"""Call tracker: AMI events -> domain events, keyed by Linkedid (the call), pure.

A call is every channel whose ``Linkedid`` is the caller's uniqueid (the caller's ``;1``
Local half runs the contract; its ``;2`` half plays the caller; agent legs created by
Dial share the Linkedid, F6).  ``feed(msg)`` returns the domain events the message
causes.  It is idempotent (the same event twice changes nothing) and tolerates events
out of order (a ``Hangup`` for a call never seen still closes it once).

``resync(channels)`` takes the ``CoreShowChannel`` list after a reconnect: tracked calls
that are gone are closed with reason ``resync-gone`` (their logs completed, not lost);
live calls we did not know are adopted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cti import dialplan as dp
from cti.ami.protocol import Message
from cti.callerid import clean_caller
from cti.domain import (
    RESYNC_GONE,
    CallArrived,
    CallAtAgent,
    CallBridged,
    CallEnded,
    CallHeld,
    DialResult,
    DomainEvent,
)

MAX_ENDED_REMEMBERED = 100_000


@dataclass(slots=True)
class TrackedCall:
    linkedid: str
    call_id: str
    channel: str = ""
    context: str = ""
    exten: str = ""
    arrived: bool = False
    agent: str | None = None
    bridged: bool = False
    first_hangup: str | None = None  # "caller" | "agent"
    cti_call_id: str = ""
    legs: set[str] = field(default_factory=set)
    gap: bool = False  # an AMI outage since the caller last entered cti-agent


class CallTracker:
    def __init__(self, server: str = "default", *, namespaced: bool = False,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self.server = server
        self.namespaced = namespaced
        self.clock = clock or time.time
        self.calls: dict[str, TrackedCall] = {}
        self._ended: dict[str, None] = {}  # insertion-ordered set, bounded
        self._handlers: dict[str, Callable[[Message], list[DomainEvent]]] = {
            "Newexten": self._newexten,
            "Newchannel": self._newchannel,
            "Hangup": self._hangup,
            "UserEvent": self._userevent,
            "BridgeEnter": self._bridge_enter,
        }
        self.events_seen = 0

    def call_id(self, linkedid: str) -> str:
        return f"{self.server}/{linkedid}" if self.namespaced else linkedid

    def has_channel(self, channel: str, uniqueid: str = "") -> bool:
        """Whether a live call here has this channel (the caller's or a leg's) or this uniqueid
        as its linkedid: which of several servers a channel lives on."""
        for c in self.calls.values():
            if (channel and (c.channel == channel or channel in c.legs)) or (uniqueid and uniqueid == c.linkedid):
                return True
        return False

    def wants(self, event_name: str) -> bool:
        return event_name in self._handlers

    def feed(self, msg: Message) -> list[DomainEvent]:
        h = self._handlers.get(msg.name)
        if h is None:
            return []
        self.events_seen += 1
        return h(msg)

    # -- helpers ----------------------------------------------------------------------

    def _call(self, linkedid: str) -> TrackedCall | None:
        if linkedid in self._ended:
            return None
        c = self.calls.get(linkedid)
        if c is None:
            c = TrackedCall(linkedid, self.call_id(linkedid))
            self.calls[linkedid] = c
        return c

    def _finish(self, linkedid: str) -> None:
        self.calls.pop(linkedid, None)
        self._ended[linkedid] = None
        if len(self._ended) > MAX_ENDED_REMEMBERED:
            self._ended.pop(next(iter(self._ended)))

    @staticmethod
    def _is_caller(msg: Message) -> bool:
        u = msg.get("Uniqueid")
        return bool(u) and u == msg.get("Linkedid")

    # -- handlers ---------------------------------------------------------------------

    def _newchannel(self, msg: Message) -> list[DomainEvent]:
        lid = msg.get("Linkedid") or ""
        c = self._call(lid)
        if c is not None:
            c.legs.add(msg.get("Channel") or "")
        return []

    def _newexten(self, msg: Message) -> list[DomainEvent]:
        if not self._is_caller(msg):
            return []
        lid = msg["Linkedid"]
        ctx = msg.get("Context") or ""
        if ctx not in (dp.CTX_INBOUND, dp.CTX_HOLD, dp.CTX_AGENT):
            return []
        c = self._call(lid)
        if c is None:
            return []
        prio = msg.get("Priority") or ""
        exten = msg.get("Exten") or ""
        prev_ctx = c.context
        c.context, c.exten, c.channel = ctx, exten, msg.get("Channel") or c.channel
        now = self.clock()
        out: list[DomainEvent] = []
        if ctx == dp.CTX_INBOUND and not c.arrived:
            c.arrived = True
            out.append(CallArrived(c.call_id, c.channel, lid, clean_caller(msg.get("CallerIDNum")),
                                   clean_caller(msg.get("CallerIDName")), exten, now))
        elif ctx == dp.CTX_HOLD and prio == "1":
            out.extend(self._adopt_if_needed(c, msg, now))
            if prev_ctx != dp.CTX_HOLD:
                out.append(CallHeld(c.call_id, c.channel, now))
        elif ctx == dp.CTX_AGENT and prio == "1":
            out.extend(self._adopt_if_needed(c, msg, now))
            c.agent = exten
            c.gap = False  # this offer is watched from its start
            out.append(CallAtAgent(c.call_id, exten, now))
        return out

    def _adopt_if_needed(self, c: TrackedCall, msg: Message, now: float) -> list[DomainEvent]:
        if c.arrived:
            return []
        c.arrived = True
        return [CallArrived(c.call_id, c.channel, c.linkedid, clean_caller(msg.get("CallerIDNum")),
                            clean_caller(msg.get("CallerIDName")), "", now)]

    def _userevent(self, msg: Message) -> list[DomainEvent]:
        lid = msg.get("Linkedid") or ""
        name = msg.get("UserEvent")
        c = self._call(lid)
        if c is None:
            return []
        if name == dp.UE_DIAL_RESULT:
            agent = msg.get("Agent") or c.agent or ""
            c.agent = None
            return [DialResult(c.call_id, agent, msg.get("DialStatus") or "", msg.get("CallId") or "",
                               self.clock())]
        if name == dp.UE_CALL_END:
            c.cti_call_id = msg.get("CallId") or c.cti_call_id
        return []

    def _bridge_enter(self, msg: Message) -> list[DomainEvent]:
        if not self._is_caller(msg):
            return []
        c = self._call(msg["Linkedid"])
        if c is None or c.bridged or msg.get("Context") != dp.CTX_AGENT:
            return []
        c.bridged = True
        agent = c.agent or msg.get("Exten") or ""
        return [CallBridged(c.call_id, agent, msg.get("BridgeUniqueid") or "", self.clock())]

    def _hangup(self, msg: Message) -> list[DomainEvent]:
        lid = msg.get("Linkedid") or ""
        c = self._call(lid)
        if c is None:
            return []
        chan = msg.get("Channel") or ""
        if not self._is_caller(msg):
            if c.first_hangup is None:
                base = c.channel.rpartition(";")[0] if c.channel else None
                c.first_hangup = "caller" if base and chan.startswith(base + ";") else "agent"
            return []
        side = c.first_hangup or ("system" if c.arrived else "unknown")
        try:
            cause = int(msg.get("Cause") or 0)
        except ValueError:
            cause = 0
        self._finish(lid)
        return [CallEnded(c.call_id, cause, msg.get("Cause-txt") or "", side, "hangup", self.clock(),
                          gap=c.gap and not c.bridged)]

    # -- resynchronisation ------------------------------------------------------------

    def resync_begin(self) -> set[str]:
        """The calls known when the listing is requested (only these may be closed as gone)."""
        return set(self.calls)

    def link_lost(self) -> None:
        """The AMI link dropped: every live call may lose events until the next listing."""
        for c in self.calls.values():
            c.gap = True

    def resync(self, channels: Iterable[Message], known_before: set[str] | None = None) -> list[DomainEvent]:
        """Reconcile with a ``CoreShowChannels`` listing after a (re)connect.

        ``known_before`` (from :meth:`resync_begin`, taken before the action was sent) keeps
        calls that started while the listing was being produced from being closed.
        """
        now = self.clock()
        if known_before is None:
            known_before = set(self.calls)
        live: dict[str, Message] = {}
        for m in channels:
            lid = m.get("Linkedid") or ""
            if m.get("Uniqueid") == lid:
                live[lid] = m
        out: list[DomainEvent] = []
        for lid in list(self.calls):
            gone = self.calls[lid]
            if lid in live or lid not in known_before:
                continue
            self._finish(lid)
            if gone.arrived:
                out.append(CallEnded(gone.call_id, 0, "", "unknown", RESYNC_GONE, now))
        for lid, m in live.items():
            ctx = m.get("Context") or ""
            if ctx not in (dp.CTX_INBOUND, dp.CTX_HOLD, dp.CTX_AGENT) and lid not in self.calls:
                continue
            c = self._call(lid)
            if c is None:
                continue
            c.gap = False  # its state is known again; a bridge, if any, shows in this listing
            c.channel = m.get("Channel") or c.channel
            if not c.arrived:
                c.arrived = True
                out.append(CallArrived(c.call_id, c.channel, lid, clean_caller(m.get("CallerIDNum")),
                                       clean_caller(m.get("CallerIDName")), "", now))
            if ctx == dp.CTX_HOLD and c.context != dp.CTX_HOLD:
                c.context = ctx
                out.append(CallHeld(c.call_id, c.channel, now))
            elif ctx == dp.CTX_AGENT and (m.get("BridgeId") or ""):
                c.context = ctx
                if not c.bridged:
                    c.bridged = True
                    c.agent = m.get("Exten") or c.agent
                    out.append(CallBridged(c.call_id, c.agent or "", m.get("BridgeId") or "", now))
        return out
