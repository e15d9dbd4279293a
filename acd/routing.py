"""The routing decision (pure, deterministic, time injected).

Calls are served highest priority first, then longest waiting (earliest ``enqueued_at``),
then by call id.  For each call the agent is the READY agent having every skill of the call
that has been idle longest; ties go to the higher total proficiency, then the smaller agent id.
Only calls held in [cti-hold] with no offer outstanding are routed; each agent gets at most one call.
"""

from __future__ import annotations

from collections.abc import Iterable

from acd.model import Agent, AgentState, Assignment, WaitingCall


def call_order(call: WaitingCall) -> tuple[int, float, str]:
    return (-call.priority, call.enqueued_at, call.call_id)


def route(agents: Iterable[Agent], calls: Iterable[WaitingCall], now: float) -> list[Assignment]:
    free = [a for a in agents if a.state is AgentState.READY and a.current_call is None]
    waiting = sorted(
        (c for c in calls if c.held and c.offer_agent is None and c.enqueued_at <= now and c.retry_at <= now),
        key=call_order,
    )
    out: list[Assignment] = []
    taken: set[str] = set()
    for call in waiting:
        if len(taken) == len(free):
            break
        best: Agent | None = None
        best_key: tuple[float, int, str] | None = None
        for agent in free:
            if agent.id in taken or not agent.has_skills(call.skills):
                continue
            key = (agent.idle_since, -agent.proficiency(call.skills), agent.id)
            if best_key is None or key < best_key:
                best, best_key = agent, key
        if best is not None:
            taken.add(best.id)
            out.append(Assignment(call.call_id, best.id))
    return out
