"""The ACD service: agents, waiting calls, offers, RONA and wrap-up around the pure router.

Inbound: domain events from the bus (``bus.on``, inline and cheap).  Outbound: AgentStateChanged,
CallOffered, OfferCancelled, CallAnswered, CallAbandoned on the bus, and ``redirect`` through
:class:`CallControl`.  Routing runs in a task scheduled after each relevant event, never in the
bus handler itself.  ``decide_offer`` is called by the offer FastAGI handler.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, Self

from acd.errors import UnknownAgent, UnknownCall
from acd.model import Agent, AgentState, OfferDecision, QueueConfig, WaitingCall
from acd.routing import route
from acd.states import AgentEvent, transition
from cti import dialplan
from cti.bus import Bus
from cti.domain import (
    RESYNC_GONE,
    SHUTDOWN,
    AgentStateChanged,
    CallAbandoned,
    CallAnswered,
    CallAtAgent,
    CallBridged,
    CallEnded,
    CallHeld,
    CallLeftContract,
    CallOffered,
    CallQueued,
    DialResult,
    Disposition,
    OfferCancelled,
)

log = logging.getLogger(__name__)

_NO_ANSWER_REASON = {"NOANSWER": "rona"}


MAX_RETRY_S = 30.0  # the longest wait before a failed Redirect is tried again


class CallControl(Protocol):
    async def redirect(self, channel: str, context: str, exten: str, priority: int = 1, *,
                       call_id: str = "") -> None:
        """Redirect the channel of call ``call_id`` (which names its Asterisk server when there
        are several); raises when it fails (e.g. the channel is gone)."""


class _ActiveCall:
    __slots__ = ("agent_id", "call_id", "queue")

    def __init__(self, call_id: str, agent_id: str, queue: str) -> None:
        self.call_id = call_id
        self.agent_id = agent_id
        self.queue = queue


class Distributor:
    def __init__(
        self,
        bus: Bus,
        call_control: CallControl,
        queues: dict[str, QueueConfig],
        agents: list[Agent],
        clock: Callable[[], float] = time.time,
        redirect_retry_s: float = 1.0,
    ) -> None:
        self._bus = bus
        self._retry_s = redirect_retry_s
        self._cc = call_control
        self._queues = dict(queues)
        self._agents: dict[str, Agent] = {a.id: a for a in agents}
        self._clock = clock
        self._calls: dict[str, WaitingCall] = {}
        self._active: dict[str, _ActiveCall] = {}  # call_id -> bridged call
        self._early_held: dict[str, str] = {}  # CallHeld seen before CallQueued: call_id -> channel
        # waiting callers moved out of the contract by someone else: routed again (at their old
        # place) if they come back to [cti-hold]
        self._away: dict[str, WaitingCall] = {}
        self._disposed: set[str] = set()  # Disposition came while the agent was still on the call
        self._wrap_timers: dict[str, asyncio.Task[None]] = {}  # agent_id -> timer
        self._tasks: set[asyncio.Task[None]] = set()
        self._route_pending = False
        self._running = False
        bus.on(CallQueued, self._on_queued)
        bus.on(CallHeld, self._on_held)
        bus.on(CallAtAgent, self._on_at_agent)
        bus.on(CallLeftContract, self._on_left_contract)
        bus.on(CallBridged, self._on_bridged)
        bus.on(DialResult, self._on_dial_result)
        bus.on(CallEnded, self._on_ended)
        bus.on(Disposition, self._on_disposition)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._running = True
        self._kick()

    async def stop(self) -> None:
        self._running = False
        tasks = list(self._tasks) + list(self._wrap_timers.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._wrap_timers.clear()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def settle(self) -> None:
        """Wait until no routing or redirect task is pending (wrap-up timers excluded)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- agent commands (web edge) -------------------------------------------------------

    def agent(self, agent_id: str) -> Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise UnknownAgent(agent_id) from None

    def add_agent(self, agent: Agent) -> None:
        self._agents.setdefault(agent.id, agent)

    def login(self, agent_id: str) -> None:
        self._apply(self.agent(agent_id), AgentEvent.LOGIN, "login")

    def logout(self, agent_id: str) -> None:
        a = self.agent(agent_id)
        self._withdraw_reservation(a, "logout")
        self._apply(a, AgentEvent.LOGOUT, "logout", call_id=None)

    def set_ready(self, agent_id: str) -> None:
        a = self.agent(agent_id)
        self._cancel_wrap(agent_id)
        self._apply(a, AgentEvent.SET_READY, "", call_id=None)
        self._kick()

    def set_not_ready(self, agent_id: str, reason: str) -> None:
        a = self.agent(agent_id)
        self._withdraw_reservation(a, reason)
        self._cancel_wrap(agent_id)
        self._apply(a, AgentEvent.SET_NOT_READY, reason, call_id=None)

    def disposition(self, agent_id: str, call_id: str, code: str, notes: str = "") -> None:
        """The agent closes the call: publishes Disposition, which ends the wrap-up."""
        a = self.agent(agent_id)
        if a.current_call != call_id and call_id not in self._active:
            raise UnknownCall(call_id)
        self._bus.publish(Disposition(call_id, agent_id, code, notes, self._clock()))

    # -- offer AGI -------------------------------------------------------------------------

    def decide_offer(self, agent_id: str, cti_call_id: str, channel: str) -> OfferDecision | None:
        """Confirm an offer for the offer AGI, or None when it is stale (send back to hold)."""
        a = self._agents.get(agent_id)
        if a is None or a.state is not AgentState.RESERVED or a.current_call is None:
            log.info("stale offer to %s (agent not reserved)", agent_id)
            return None
        call = self._calls.get(a.current_call)
        if call is None or call.offer_agent != agent_id:
            log.info("stale offer to %s (call gone)", agent_id)
            return None
        if cti_call_id != call.cti_call_id and not (not cti_call_id and channel == call.channel):
            log.info("stale offer to %s: %r is not the reserved call %s", agent_id, cti_call_id, call.call_id)
            return None
        q = self._queue(call.queue, call.skills)
        call.offers += 1
        if channel:
            call.channel = channel
        rec = dialplan.record_file(call.cti_call_id, call.offers) if q.record else ""
        self._apply(a, AgentEvent.OFFER, "", call_id=call.call_id)
        self._bus.publish(
            CallOffered(
                call.call_id, call.cti_call_id, agent_id, call.offers, call.queue, call.caller_num,
                call.caller_name, call.customer_id, call.ivr_choice, rec, self._clock(),
            )
        )
        return OfferDecision(
            call.call_id, agent_id, dialplan.agent_device(a.extension), q.ring_timeout_s, rec, call.offers
        )

    # -- read side -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        queues: dict[str, dict[str, int]] = {
            name: {"waiting": 0, "offering": 0, "ready_agents": 0} for name in self._queues
        }
        for c in self._calls.values():
            q = queues.setdefault(c.queue, {"waiting": 0, "offering": 0, "ready_agents": 0})
            q["offering" if c.offer_agent else "waiting"] += 1
        for name, qc in self._queues.items():
            queues[name]["ready_agents"] = sum(
                1 for a in self._agents.values() if a.state is AgentState.READY and a.has_skills(qc.skills)
            )
        return {
            "at": now,
            "agents": [
                {
                    "id": a.id, "name": a.name, "extension": a.extension, "skills": dict(a.skills),
                    "state": a.state.value, "reason": a.reason, "state_since": a.state_since,
                    "idle_since": a.idle_since, "current_call": a.current_call,
                }
                for a in sorted(self._agents.values(), key=lambda a: a.id)
            ],
            "calls": [
                {
                    "call_id": c.call_id, "cti_call_id": c.cti_call_id, "queue": c.queue,
                    "skills": list(c.skills), "priority": c.priority, "enqueued_at": c.enqueued_at,
                    "wait_s": max(0.0, now - c.enqueued_at), "held": c.held, "offers": c.offers,
                    "offer_agent": c.offer_agent, "customer_id": c.customer_id,
                }
                for c in sorted(self._calls.values(), key=lambda c: (c.enqueued_at, c.call_id))
            ],
            "queues": queues,
        }

    def waiting_call(self, call_id: str) -> WaitingCall | None:
        return self._calls.get(call_id)

    # -- bus handlers (inline: cheap, never await) -----------------------------------------

    def _on_queued(self, ev: CallQueued) -> None:
        if ev.call_id in self._calls or ev.call_id in self._active:
            return
        call = WaitingCall(
            ev.call_id, ev.cti_call_id, ev.channel, ev.queue, tuple(ev.skills), ev.priority, ev.at,
            caller_num=ev.caller_num, caller_name=ev.caller_name, customer_id=ev.customer_id,
            ivr_choice=ev.ivr_choice,
        )
        early = self._early_held.pop(ev.call_id, None)
        if early is not None:
            call.held = True
            call.channel = early or call.channel
        self._calls[ev.call_id] = call
        self._kick()

    def _on_held(self, ev: CallHeld) -> None:
        call = self._calls.get(ev.call_id)
        if call is None and ev.call_id in self._away:  # back from elsewhere: its place is kept
            call = self._calls[ev.call_id] = self._away.pop(ev.call_id)
        if call is None:
            if ev.call_id not in self._active:
                self._early_held[ev.call_id] = ev.channel
            return
        if ev.channel:
            call.channel = ev.channel
        if call.offer_agent is not None:
            a = self._agents.get(call.offer_agent)
            if a is not None and a.state is AgentState.RESERVED:
                return  # hold loop raced our Redirect; the offer stands
            # back in hold with an offer outstanding and no DialResult: withdraw it
            if a is not None and a.current_call == call.call_id and a.state is AgentState.RINGING:
                self._apply(a, AgentEvent.RELEASE, "returned-to-hold", call_id=None)
                self._bus.publish(OfferCancelled(call.call_id, a.id, "returned-to-hold", self._clock()))
            call.offer_agent = None
        call.held = True
        self._kick()

    def _on_at_agent(self, ev: CallAtAgent) -> None:
        call = self._calls.get(ev.call_id)
        if call is not None:
            call.held = False

    def _on_left_contract(self, ev: CallLeftContract) -> None:
        call = self._calls.pop(ev.call_id, None)
        if call is None:
            return  # not waiting (answered, or never queued): nothing to route
        log.info("caller %s left the queue for %s,%s (not our Redirect): no longer routed",
                 ev.call_id, ev.context, ev.exten)
        self._withdraw_offer(call, "left-contract")
        call.held = False
        self._away[ev.call_id] = call
        self._kick()

    def _withdraw_offer(self, call: WaitingCall, reason: str) -> None:
        """The caller will not reach the agent it was offered to: free that agent."""
        agent_id, call.offer_agent = call.offer_agent, None
        a = self._agents.get(agent_id) if agent_id is not None else None
        if a is not None and a.current_call == call.call_id and a.state in (AgentState.RESERVED,
                                                                              AgentState.RINGING):
            self._apply(a, AgentEvent.RELEASE, reason, call_id=None)
            self._bus.publish(OfferCancelled(call.call_id, a.id, reason, self._clock()))

    def _on_bridged(self, ev: CallBridged) -> None:
        call = self._calls.get(ev.call_id)
        a = self._agents.get(ev.agent_id)
        if call is None or a is None or a.current_call != ev.call_id:
            away = self._calls.pop(ev.call_id, None) or self._away.pop(ev.call_id, None)
            if away is not None:  # answered by someone else (another client, a transfer): not ours to route
                log.info("caller %s answered by %s, not by an offer of ours: no longer routed",
                         ev.call_id, ev.answered_by or ev.agent_id)
                self._withdraw_offer(away, "answered-elsewhere")
                self._kick()
            elif ev.call_id not in self._active:
                log.warning("bridge of %s with %s not offered by the ACD", ev.call_id, ev.agent_id)
            return
        if a.state not in (AgentState.RINGING, AgentState.RESERVED):
            return
        del self._calls[ev.call_id]
        self._active[ev.call_id] = _ActiveCall(ev.call_id, a.id, call.queue)
        self._apply(a, AgentEvent.ANSWER, "", call_id=ev.call_id)
        self._bus.publish(CallAnswered(ev.call_id, a.id, max(0.0, ev.at - call.enqueued_at), self._clock()))

    def _on_dial_result(self, ev: DialResult) -> None:
        if ev.dial_status == "ANSWER":
            return
        a = self._agents.get(ev.agent_id)
        call = self._calls.get(ev.call_id)
        if call is not None and call.offer_agent == ev.agent_id:
            call.offer_agent = None
            call.held = False  # the caller goes back to hold by itself: wait for CallHeld
        if a is None or a.current_call != ev.call_id or a.state not in (AgentState.RESERVED, AgentState.RINGING):
            return  # stale offer (NODEVICE after the agent moved on): agent unaffected
        if ev.dial_status == dialplan.DIAL_NODEVICE:
            self._apply(a, AgentEvent.RELEASE, "stale-offer", call_id=None)
        else:
            reason = _NO_ANSWER_REASON.get(ev.dial_status, ev.dial_status.lower() or "rona")
            self._apply(a, AgentEvent.NO_ANSWER, reason, call_id=None)
        self._bus.publish(OfferCancelled(ev.call_id, ev.agent_id, ev.dial_status, self._clock()))
        self._kick()

    def _on_ended(self, ev: CallEnded) -> None:
        self._early_held.pop(ev.call_id, None)
        if self._away.pop(ev.call_id, None) is not None:
            return  # it ended outside the contract, where someone else had sent it: not an abandon of ours
        call = self._calls.pop(ev.call_id, None)
        now = self._clock()
        if call is not None:
            unknown = (ev.reason == RESYNC_GONE or ev.gap) and call.offer_agent is not None
            shutdown = ev.reason == SHUTDOWN
            if call.offer_agent is not None:
                a = self._agents.get(call.offer_agent)
                if a is not None and a.current_call == call.call_id and a.state in (
                    AgentState.RESERVED, AgentState.RINGING
                ):
                    agent_reason, offer_reason = (("ended-during-outage",) * 2 if unknown
                                                  else ("shutdown",) * 2 if shutdown
                                                  else ("caller-hangup", "hangup"))
                    self._apply(a, AgentEvent.RELEASE, agent_reason, call_id=None)
                    self._bus.publish(OfferCancelled(call.call_id, a.id, offer_reason, now))
            # ringing an agent when the link went down: maybe answered; a shutdown: the system's doing
            if not unknown and not shutdown:
                self._bus.publish(CallAbandoned(call.call_id, call.queue, max(0.0, ev.at - call.enqueued_at),
                                                "queue", now))
            self._kick()
            return
        active = self._active.pop(ev.call_id, None)
        if active is None:
            return  # never queued (left in the IVR): nothing for the ACD
        a = self._agents.get(active.agent_id)
        if a is None or a.current_call != ev.call_id or a.state is not AgentState.ON_CALL:
            return
        self._apply(a, AgentEvent.CALL_END, "", call_id=ev.call_id)
        wrap = self._queue(active.queue, ()).wrap_up_s
        if ev.call_id in self._disposed or wrap <= 0:
            self._disposed.discard(ev.call_id)
            self._end_wrap(a, "disposition" if wrap > 0 else "")
        else:
            self._start_wrap(a, ev.call_id, wrap)

    def _on_disposition(self, ev: Disposition) -> None:
        a = self._agents.get(ev.agent_id)
        if a is None or a.current_call != ev.call_id:
            return
        if a.state is AgentState.WRAP_UP:
            self._end_wrap(a, "disposition")
        elif a.state is AgentState.ON_CALL:
            self._disposed.add(ev.call_id)

    # -- internals -------------------------------------------------------------------------

    def _queue(self, name: str, skills: tuple[str, ...]) -> QueueConfig:
        q = self._queues.get(name)
        if q is None:
            log.warning("call for unconfigured queue %r: using defaults", name)
            q = QueueConfig(name, skills)
            self._queues[name] = q
        return q

    def _apply(self, a: Agent, ev: AgentEvent, reason: str, call_id: str | None = None) -> None:
        old = a.state
        new = transition(old, ev)
        now = self._clock()
        keep_call = new in (AgentState.RESERVED, AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP)
        new_call = (call_id or a.current_call) if keep_call else None
        if new is AgentState.READY and old not in (AgentState.RESERVED, AgentState.RINGING, AgentState.READY):
            a.idle_since = now
        if new is old and reason == a.reason and new_call == a.current_call:
            return
        if new is not old:
            a.state_since = now
        a.state, a.reason, a.current_call = new, reason, new_call
        self._bus.publish(AgentStateChanged(a.id, new.value, reason, new_call, now))
        if new is AgentState.READY:
            self._kick()

    def _withdraw_reservation(self, a: Agent, reason: str) -> None:
        if a.state is AgentState.RESERVED and a.current_call is not None:
            call = self._calls.get(a.current_call)
            if call is not None and call.offer_agent == a.id:
                call.offer_agent = None  # the offer AGI will find it stale
                self._bus.publish(OfferCancelled(call.call_id, a.id, reason or "withdrawn", self._clock()))

    def _start_wrap(self, a: Agent, call_id: str, wrap_s: float) -> None:
        self._cancel_wrap(a.id)
        if not self._running:
            return
        self._wrap_timers[a.id] = asyncio.get_running_loop().create_task(self._wrap_timer(a, call_id, wrap_s))

    async def _wrap_timer(self, a: Agent, call_id: str, wrap_s: float) -> None:
        await asyncio.sleep(wrap_s)
        self._wrap_timers.pop(a.id, None)
        if a.state is AgentState.WRAP_UP and a.current_call == call_id:
            self._end_wrap(a, "wrap-up-timeout", from_timer=True)

    def _end_wrap(self, a: Agent, reason: str, from_timer: bool = False) -> None:
        if not from_timer:
            self._cancel_wrap(a.id)
        self._apply(a, AgentEvent.WRAP_DONE, reason, call_id=None)

    def _cancel_wrap(self, agent_id: str) -> None:
        t = self._wrap_timers.pop(agent_id, None)
        if t is not None and t is not asyncio.current_task():
            t.cancel()

    def _spawn(self, coro: Any) -> None:
        t: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def retry_waiting(self) -> None:
        """Offer the calls whose Redirect failed again now (the AMI link is back)."""
        for call in self._calls.values():
            if call.retry_at:
                call.retry_at = 0.0
        self._kick()

    def _kick(self) -> None:
        if not self._running or self._route_pending:
            return
        self._route_pending = True
        self._spawn(self._route_task())

    async def _route_task(self) -> None:
        self._route_pending = False
        now = self._clock()
        for asg in route(self._agents.values(), self._calls.values(), now):
            a, call = self._agents[asg.agent_id], self._calls[asg.call_id]
            self._apply(a, AgentEvent.RESERVE, "", call_id=call.call_id)
            call.offer_agent = a.id
            call.held = False
            self._spawn(self._redirect(a, call))

    async def _redirect(self, a: Agent, call: WaitingCall) -> None:
        try:
            await self._cc.redirect(call.channel, dialplan.CTX_AGENT, a.id, 1, call_id=call.call_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  any AMI failure is logged and frees the agent; the call stays queued
            log.warning("redirect of %s to %s failed: %s", call.call_id, a.id, exc)
            if call.offer_agent == a.id:
                call.offer_agent = None
            if a.state is AgentState.RESERVED and a.current_call == call.call_id:
                self._apply(a, AgentEvent.RELEASE, "redirect-failed", call_id=None)
                self._bus.publish(OfferCancelled(call.call_id, a.id, "redirect-failed", self._clock()))
            if self._calls.get(call.call_id) is call and call.offer_agent is None:
                # The caller is still in the hold loop (a Redirect that never left, or was
                # refused), and the loop itself says nothing new: offer it again, not at once
                # (a link that is down would fail every try) but after redirect_retry_s,
                # doubling with each failure in a row up to 30 s; a reconnect retries at once
                # (retry_waiting).
                call.redirect_failures += 1
                delay = min(self._retry_s * 2 ** (call.redirect_failures - 1), MAX_RETRY_S)
                call.held = True
                call.retry_at = self._clock() + delay
                asyncio.get_running_loop().call_later(delay, self._kick)
        else:
            call.redirect_failures = 0
