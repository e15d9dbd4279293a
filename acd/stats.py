"""Real-time queue statistics folded from domain events (pure: ``apply(ev)``, ``snapshot(now)``)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cti.domain import (
    AgentStateChanged,
    CallAbandoned,
    CallAnswered,
    CallEnded,
    CallOffered,
    CallQueued,
    DomainEvent,
)


@dataclass(slots=True)
class QueueStats:
    name: str
    waiting: dict[str, float] = field(default_factory=dict)  # call_id -> enqueued_at
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    answered_in_sl: int = 0
    total_answer_wait_s: float = 0.0

    def longest_wait(self, now: float) -> float:
        return max((now - t for t in self.waiting.values()), default=0.0)

    def service_level(self) -> float | None:
        n = self.answered + self.abandoned
        return self.answered_in_sl / n if n else None

    def average_wait(self) -> float | None:
        return self.total_answer_wait_s / self.answered if self.answered else None


class StatsFold:
    """Fold of CallQueued/CallOffered/CallAnswered/CallAbandoned/CallEnded/AgentStateChanged."""

    def __init__(self, service_level_s: float = 20.0) -> None:
        self.service_level_s = service_level_s
        self.queues: dict[str, QueueStats] = {}
        self._call_queue: dict[str, str] = {}
        self.agent_states: dict[str, str] = {}

    def _q(self, name: str) -> QueueStats:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = QueueStats(name)
        return q

    def apply(self, ev: DomainEvent) -> None:
        if isinstance(ev, CallQueued):
            self._call_queue[ev.call_id] = ev.queue
            self._q(ev.queue).waiting[ev.call_id] = ev.at
        elif isinstance(ev, CallOffered):
            self._q(ev.queue).offered += 1
        elif isinstance(ev, CallAnswered):
            name = self._call_queue.get(ev.call_id)
            if name is None:
                return
            q = self._q(name)
            q.waiting.pop(ev.call_id, None)
            q.answered += 1
            q.total_answer_wait_s += ev.wait_s
            if ev.wait_s <= self.service_level_s:
                q.answered_in_sl += 1
        elif isinstance(ev, CallAbandoned):
            q = self._q(ev.queue)
            q.waiting.pop(ev.call_id, None)
            q.abandoned += 1  # the ACD publishes one CallAbandoned per abandoned call
        elif isinstance(ev, CallEnded):
            name = self._call_queue.pop(ev.call_id, None)
            if name is not None:
                self._q(name).waiting.pop(ev.call_id, None)
        elif isinstance(ev, AgentStateChanged):
            self.agent_states[ev.agent_id] = ev.state

    def agents_by_state(self) -> dict[str, int]:
        return dict(Counter(self.agent_states.values()))

    def snapshot(self, now: float) -> dict[str, Any]:
        return {
            "queues": {
                name: {
                    "waiting": len(q.waiting),
                    "longest_wait_s": q.longest_wait(now),
                    "offered": q.offered,
                    "answered": q.answered,
                    "abandoned": q.abandoned,
                    "service_level": q.service_level(),
                    "average_wait_s": q.average_wait(),
                }
                for name, q in sorted(self.queues.items())
            },
            "agents_by_state": self.agents_by_state(),
        }
