"""Call tracker: AMI events -> domain events, keyed by Linkedid (the call), pure.

A call is every channel whose ``Linkedid`` is the caller's uniqueid (the caller's ``;1``
Local half runs the contract; its ``;2`` half plays the caller; agent legs created by
Dial share the Linkedid, F6).  ``feed(msg)`` returns the domain events the message
causes.  It is idempotent (the same event twice changes nothing) and tolerates events
out of order (a ``Hangup`` for a call never seen still closes it once).

**Which calls.** A call is ours from the moment its caller's channel shows up in a context
of the contract (``cti-inbound``; ``cti-hold``/``cti-agent``/``cti-end`` for a call whose
start was missed), or from its first event when it is an Originate of ours
(:meth:`CallTracker.expect_originate`).  Every other call on the PBX (internal calls, other
queues, other AMI clients' Originates) gives no domain event; ``foreign_calls`` counts them
as they end.  Once ours, the call's legs stay ours wherever they go.

**Who hung up** comes from the caller's channel, never from the order of teardown (when a
caller leaves while an agent rings, Asterisk tears the agent's leg down first, in the same
millisecond).  A ``HangupRequest`` is published at once, in the thread of the side that went
away: on the caller's channel it means the caller left (for a Local caller, its ``;2`` half
ended; for a trunk, the far end's BYE); on the channel bridged with the caller it means that
party (the agent) left.  Neither: our side ended the call (dialplan, AMI Hangup): ``system``.

**Shutdown.** ``core stop/restart now`` soft-hangs-up every channel with
``AST_SOFTHANGUP_SHUTDOWN``: a ``SoftHangupRequest`` whose ``Cause`` is the soft-hangup flag
``4`` (class ``call``, so the least-privilege user sees it; the ``Shutdown`` event is class
``system``, read when a site grants it, as is ``FullyBooted``).  Calls ended by it, or found
gone after the restart, end with reason ``shutdown``, side ``system``.

``resync(channels)`` takes the ``CoreShowChannel`` list after a reconnect: tracked calls
that are gone are closed with reason ``resync-gone`` at the last time they were seen alive
(the link's loss), with the outage window (``outage_from``/``outage_to``); live calls we did
not know are adopted.  An :class:`~cti.domain.AmiOutage` event reports the window first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cti import dialplan as dp
from cti.ami.protocol import Message
from cti.callerid import clean_caller
from cti.domain import (
    RESYNC_GONE,
    SHUTDOWN,
    AmiOutage,
    CallArrived,
    CallAtAgent,
    CallBridged,
    CallEnded,
    CallHeld,
    CallLeftContract,
    DialResult,
    DomainEvent,
)

MAX_ENDED_REMEMBERED = 100_000
MAX_BRIDGES_REMEMBERED = 50_000  # bridges whose BridgeLeave was lost (an outage) are forgotten FIFO
MAX_EXPECTED_ORIGINATES = 10_000
CONTRACT_CONTEXTS = frozenset({dp.CTX_INBOUND, dp.CTX_HOLD, dp.CTX_AGENT, dp.CTX_END})
# SoftHangupRequest's Cause is the AST_SOFTHANGUP_* flag, not a Q.850 cause; SHUTDOWN (1 << 2) is
# raised only by ast_softhangup_all() when Asterisk stops or restarts (main/asterisk.c, channel.c).
SOFTHANGUP_SHUTDOWN = "4"
# Asterisk waits up to 15 s (SHUTDOWN_TIMEOUT) for channels to die, then 1 s more, then exits.
SHUTDOWN_WINDOW_S = 20.0
_NOT_ANSWERING_BRIDGES = frozenset({"holding_bridge"})  # parking, holding: nobody answered


@dataclass(slots=True)
class TrackedCall:
    linkedid: str
    call_id: str
    channel: str = ""
    context: str = ""
    exten: str = ""
    arrived: bool = False
    agent: str | None = None  # the agent of the offer the caller is in (cti-agent), until its result
    bridged: bool = False  # answered: was in a bridge with another party
    bridge: str = ""  # the bridge the caller is in now
    bridge_agent: str = ""  # our agent, when the caller entered it from cti-agent
    peer: str = ""  # the channel bridged with the caller now
    first_hangup: str | None = None  # "caller" | "agent": whose HangupRequest came first
    requests_seen: bool = False  # a HangupRequest on one of the call's channels
    far_half_first: bool = False  # the caller's ;2 Hangup came before its ;1's (no HangupRequests)
    shutdown: bool = False  # a channel of the call was hung up by an Asterisk shutdown
    cti_call_id: str = ""
    legs: set[str] = field(default_factory=set)
    gap: bool = False  # an AMI outage since the caller last entered cti-agent
    last_seen: float = 0.0  # the last event of the call (clock time)


class CallTracker:
    def __init__(self, server: str = "default", *, namespaced: bool = False,
                 clock: Callable[[], float] | None = None) -> None:
        import time

        self.server = server
        self.namespaced = namespaced
        self.clock = clock or time.time
        self.calls: dict[str, TrackedCall] = {}
        self._ended: dict[str, None] = {}  # insertion-ordered set, bounded
        self._expected: dict[str, None] = {}  # uniqueids of our own Originates (ChannelId)
        self._bridges: dict[str, list[str]] = {}  # bridge -> channels in it (every bridge of the PBX)
        self._bridge_call: dict[str, str] = {}  # bridge -> linkedid of our caller in it
        self._peer_call: dict[str, str] = {}  # channel bridged with one of our callers -> linkedid
        self._shutdown_at: float | None = None  # the last shutdown sign (SoftHangupRequest 4, Shutdown)
        self._restarted = False  # FullyBooted after an outage says Asterisk started during it
        self._down_at: float | None = None  # the AMI link was lost then (and no resync since)
        self._up_at: float | None = None  # ... and came back then (resync_begin)
        self._handlers: dict[str, Callable[[Message], list[DomainEvent]]] = {
            "Newexten": self._newexten,
            "Newchannel": self._newchannel,
            "Hangup": self._hangup,
            "HangupRequest": self._hangup_request,
            "SoftHangupRequest": self._soft_hangup_request,
            "UserEvent": self._userevent,
            "BridgeEnter": self._bridge_enter,
            "BridgeLeave": self._bridge_leave,
            "Shutdown": self._shutdown,
            "FullyBooted": self._fully_booted,
        }
        self.events_seen = 0
        self.foreign_calls = 0  # calls that ended without ever being ours (no domain event)

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

    def expect_originate(self, uniqueid: str) -> None:
        """An Originate of ours will create a channel with this uniqueid (the action's
        ``ChannelId``): that call is ours from its first event, whatever its context."""
        self._expected[uniqueid] = None
        if len(self._expected) > MAX_EXPECTED_ORIGINATES:
            self._expected.pop(next(iter(self._expected)))

    # -- helpers ----------------------------------------------------------------------

    def _start(self, linkedid: str) -> TrackedCall | None:
        """The call, made ours now if it is not yet (None once it has ended)."""
        c = self.calls.get(linkedid)
        if c is None:
            if not linkedid or linkedid in self._ended:
                return None
            c = self.calls[linkedid] = TrackedCall(linkedid, self.call_id(linkedid))
        return c

    def _finish(self, c: TrackedCall) -> None:
        self.calls.pop(c.linkedid, None)
        self._unbridge(c)
        self._ended[c.linkedid] = None
        if len(self._ended) > MAX_ENDED_REMEMBERED:
            self._ended.pop(next(iter(self._ended)))

    def _unbridge(self, c: TrackedCall) -> None:
        if c.bridge and self._bridge_call.get(c.bridge) == c.linkedid:
            del self._bridge_call[c.bridge]
        if c.peer and self._peer_call.get(c.peer) == c.linkedid:
            del self._peer_call[c.peer]
        c.bridge = c.peer = c.bridge_agent = ""

    @staticmethod
    def _is_caller(msg: Message) -> bool:
        u = msg.get("Uniqueid")
        return bool(u) and u == msg.get("Linkedid")

    def _shutting_down(self, now: float) -> bool:
        return self._shutdown_at is not None and now - self._shutdown_at <= SHUTDOWN_WINDOW_S

    # -- handlers ---------------------------------------------------------------------

    def _newchannel(self, msg: Message) -> list[DomainEvent]:
        lid = msg.get("Linkedid") or ""
        c = self.calls.get(lid)
        if c is not None:
            c.legs.add(msg.get("Channel") or "")
            return []
        uid = msg.get("Uniqueid") or ""
        if uid != lid or uid not in self._expected:
            return []  # not ours (yet): a call becomes ours when it enters the contract
        del self._expected[uid]
        c = self._start(lid)
        if c is None:
            return []
        c.channel = msg.get("Channel") or ""
        c.arrived = True
        c.last_seen = now = self.clock()
        return [CallArrived(c.call_id, c.channel, lid, clean_caller(msg.get("CallerIDNum")),
                            clean_caller(msg.get("CallerIDName")), msg.get("Exten") or "", now)]

    def _newexten(self, msg: Message) -> list[DomainEvent]:
        if not self._is_caller(msg):
            return []
        lid = msg["Linkedid"]
        ctx = msg.get("Context") or ""
        c = self._start(lid) if ctx in CONTRACT_CONTEXTS else self.calls.get(lid)
        if c is None:
            return []
        prio = msg.get("Priority") or ""
        exten = msg.get("Exten") or ""
        prev_ctx = c.context
        c.context, c.exten, c.channel = ctx, exten, msg.get("Channel") or c.channel
        c.last_seen = now = self.clock()
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
        elif ctx not in CONTRACT_CONTEXTS and prev_ctx in CONTRACT_CONTEXTS and c.arrived:
            out.append(CallLeftContract(c.call_id, ctx, exten, now))
        return out

    def _adopt_if_needed(self, c: TrackedCall, msg: Message, now: float) -> list[DomainEvent]:
        if c.arrived:
            return []
        c.arrived = True
        return [CallArrived(c.call_id, c.channel, c.linkedid, clean_caller(msg.get("CallerIDNum")),
                            clean_caller(msg.get("CallerIDName")), "", now)]

    def _userevent(self, msg: Message) -> list[DomainEvent]:
        c = self.calls.get(msg.get("Linkedid") or "")
        if c is None:
            return []
        c.last_seen = now = self.clock()
        name = msg.get("UserEvent")
        if name == dp.UE_DIAL_RESULT:
            agent = msg.get("Agent") or c.agent or ""
            c.agent = None
            return [DialResult(c.call_id, agent, msg.get("DialStatus") or "", msg.get("CallId") or "", now)]
        if name == dp.UE_CALL_END:
            c.cti_call_id = msg.get("CallId") or c.cti_call_id
        return []

    # -- bridges ----------------------------------------------------------------------

    def _bridge_enter(self, msg: Message) -> list[DomainEvent]:
        bridge = msg.get("BridgeUniqueid") or ""
        chan = msg.get("Channel") or ""
        if not bridge or msg.get("BridgeTechnology") in _NOT_ANSWERING_BRIDGES:
            return []
        members = self._bridges.get(bridge)
        if members is None:
            members = self._bridges[bridge] = []
            if len(self._bridges) > MAX_BRIDGES_REMEMBERED:
                self._bridges.pop(next(iter(self._bridges)))
        others = [m for m in members if m != chan]
        if chan not in members:
            members.append(chan)
        if self._is_caller(msg):
            c = self.calls.get(msg["Linkedid"])
            if c is None:
                return []
            self._unbridge(c)
            c.bridge = bridge
            c.bridge_agent = (c.agent or msg.get("Exten") or "") if msg.get("Context") == dp.CTX_AGENT else ""
            self._bridge_call[bridge] = c.linkedid
            return self._answered(c, others[-1]) if others else []
        lid = self._bridge_call.get(bridge)
        c = self.calls.get(lid) if lid else None
        if c is None or c.peer:
            return []
        return self._answered(c, chan)  # the caller was there first: this one answers it

    def _answered(self, c: TrackedCall, peer: str) -> list[DomainEvent]:
        c.peer = peer
        self._peer_call[peer] = c.linkedid
        c.last_seen = now = self.clock()
        if c.bridged:
            return []  # bridged again (a transfer): answered once, by the first
        c.bridged = True
        return [CallBridged(c.call_id, c.bridge_agent, c.bridge, now, answered_by=peer)]

    def _bridge_leave(self, msg: Message) -> list[DomainEvent]:
        bridge = msg.get("BridgeUniqueid") or ""
        chan = msg.get("Channel") or ""
        members = self._bridges.get(bridge)
        if members is not None:
            if chan in members:
                members.remove(chan)
            if not members:
                del self._bridges[bridge]
        lid = self._bridge_call.get(bridge)
        c = self.calls.get(lid) if lid else None
        if c is None:
            return []
        if chan == c.channel:
            self._unbridge(c)
        elif chan == c.peer:
            self._peer_call.pop(chan, None)
            c.peer = ""
        return []

    # -- hangups ----------------------------------------------------------------------

    def _hangup_request(self, msg: Message) -> list[DomainEvent]:
        lid = msg.get("Linkedid") or ""
        c = self.calls.get(lid)
        if c is not None:
            c.requests_seen = True
            if c.first_hangup is None and self._is_caller(msg):
                c.first_hangup = "caller"  # the caller's side went away first
                return []
        chan = msg.get("Channel") or ""
        plid = self._peer_call.get(chan)
        p = self.calls.get(plid) if plid else None
        if p is not None and p.peer == chan and p.first_hangup is None:
            p.first_hangup = "agent"  # the party bridged with the caller went away first
        return []

    def _soft_hangup_request(self, msg: Message) -> list[DomainEvent]:
        if msg.get("Cause") != SOFTHANGUP_SHUTDOWN:
            return []
        self._shutdown_at = self.clock()
        c = self.calls.get(msg.get("Linkedid") or "")
        if c is not None:
            c.shutdown = True
        return []

    def _shutdown(self, msg: Message) -> list[DomainEvent]:
        self._shutdown_at = self.clock()
        for c in self.calls.values():
            c.shutdown = True
        return []

    def _fully_booted(self, msg: Message) -> list[DomainEvent]:
        try:
            uptime = float(msg.get("Uptime") or "")
        except ValueError:
            return []
        if self._down_at is not None and uptime <= self.clock() - self._down_at + 1.0:
            self._restarted = True  # Asterisk started while the link was down: its calls died with it
        return []

    def _hangup(self, msg: Message) -> list[DomainEvent]:
        lid = msg.get("Linkedid") or ""
        c = self.calls.get(lid)
        chan = msg.get("Channel") or ""
        if not self._is_caller(msg):
            if c is not None:
                c.legs.discard(chan)
                base = c.channel.rpartition(";")[0]
                if base and chan == base + ";2" and not c.requests_seen:
                    c.far_half_first = True
            return []
        if c is None:
            if lid in self._ended:
                return []
            if (msg.get("Context") or "") not in CONTRACT_CONTEXTS:
                self.foreign_calls += 1
                return []
            c = self._start(lid)  # ours, first seen at its end (events out of order)
            if c is None:
                return []
            c.channel = chan
        now = self.clock()
        reason = "hangup"
        if c.shutdown or self._shutting_down(now):
            side, reason = "system", SHUTDOWN
        elif c.first_hangup is not None:
            side = c.first_hangup
        elif c.far_half_first and not c.requests_seen:
            side = "caller"  # HangupRequest events filtered out: the Local halves' order is all we have
        else:
            side = "system" if c.arrived else "unknown"
        try:
            cause = int(msg.get("Cause") or 0)
        except ValueError:
            cause = 0
        self._finish(c)
        return [CallEnded(c.call_id, cause, msg.get("Cause-txt") or "", side, reason, now,
                          gap=c.gap and not c.bridged)]

    # -- resynchronisation ------------------------------------------------------------

    def resync_begin(self) -> set[str]:
        """The calls known when the listing is requested (only these may be closed as gone)."""
        self._up_at = self.clock()
        return set(self.calls)

    def link_lost(self, at: float | None = None) -> None:
        """The AMI link dropped (``at``: when it was last known up; default now): every live call
        may lose events until the next listing."""
        if self._down_at is None:
            self._down_at = self.clock() if at is None else at
        for c in self.calls.values():
            c.gap = True

    def resync(self, channels: Iterable[Message], known_before: set[str] | None = None) -> list[DomainEvent]:
        """Reconcile with a ``CoreShowChannels`` listing after a (re)connect.

        ``known_before`` (from :meth:`resync_begin`, taken before the action was sent) keeps
        calls that started while the listing was being produced from being closed.
        """
        now = self.clock()
        up_at = self._up_at if self._up_at is not None else now
        down_at, self._down_at, self._up_at = self._down_at, None, None
        restarted = self._restarted or (down_at is not None and self._shutdown_at is not None
                                        and down_at - self._shutdown_at <= SHUTDOWN_WINDOW_S)
        self._restarted, self._shutdown_at = False, None
        if known_before is None:
            known_before = set(self.calls)
        out: list[DomainEvent] = []
        if down_at is not None:
            out.append(AmiOutage(self.server, down_at, up_at, now, restart=restarted))
        live: dict[str, Message] = {}
        self._bridges.clear()
        for m in channels:
            lid = m.get("Linkedid") or ""
            if m.get("Uniqueid") == lid:
                live[lid] = m
            bridge = m.get("BridgeId") or ""
            if bridge:
                self._bridges.setdefault(bridge, []).append(m.get("Channel") or "")
        for lid in list(self.calls):
            gone = self.calls[lid]
            if lid in live or lid not in known_before:
                continue
            self._finish(gone)
            if gone.arrived:
                shut = restarted or gone.shutdown
                seen = max(gone.last_seen, down_at) if down_at is not None else gone.last_seen
                out.append(CallEnded(gone.call_id, 0, "", "system" if shut else "unknown",
                                     SHUTDOWN if shut else RESYNC_GONE, seen,
                                     outage_from=seen, outage_to=up_at))
        for lid, m in live.items():
            out.extend(self._resync_live(lid, m, now))
        return out

    def _resync_live(self, lid: str, m: Message, now: float) -> list[DomainEvent]:
        ctx = m.get("Context") or ""
        c = self._start(lid) if ctx in CONTRACT_CONTEXTS else self.calls.get(lid)
        if c is None:
            return []
        out: list[DomainEvent] = []
        c.gap = False  # its state is known again; a bridge, if any, shows in this listing
        c.channel = m.get("Channel") or c.channel
        c.last_seen = now
        if not c.arrived:
            c.arrived = True
            out.append(CallArrived(c.call_id, c.channel, lid, clean_caller(m.get("CallerIDNum")),
                                   clean_caller(m.get("CallerIDName")), "", now))
        if ctx == dp.CTX_HOLD and c.context != dp.CTX_HOLD:
            c.context = ctx
            out.append(CallHeld(c.call_id, c.channel, now))
        bridge = m.get("BridgeId") or ""
        self._unbridge(c)
        if bridge:
            c.context = ctx
            c.bridge = bridge
            self._bridge_call[bridge] = lid
            c.bridge_agent = (m.get("Exten") or c.agent or "") if ctx == dp.CTX_AGENT else ""
            if c.bridge_agent:
                c.agent = c.bridge_agent
            others = [ch for ch in self._bridges.get(bridge, ()) if ch != c.channel]
            if others:
                out.extend(self._answered(c, others[-1]))
            elif not c.bridged and c.bridge_agent:  # the listing lists the caller alone: its agent answered
                c.bridged = True
                out.append(CallBridged(c.call_id, c.bridge_agent, bridge, now))
        return out
