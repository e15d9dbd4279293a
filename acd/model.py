"""ACD data model (pure: no asyncio, no I/O)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cti.dialplan import DEFAULT_RING_TIMEOUT


class AgentState(enum.StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    NOT_READY = "not_ready"
    RESERVED = "reserved"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


@dataclass(slots=True)
class Agent:
    """An agent as the ACD sees it.  ``skills`` maps skill name -> proficiency (higher is better)."""

    id: str
    name: str
    extension: str
    skills: dict[str, int] = field(default_factory=dict)
    state: AgentState = AgentState.LOGGED_OUT
    reason: str = ""
    state_since: float = 0.0
    idle_since: float = 0.0
    current_call: str | None = None

    def has_skills(self, skills: tuple[str, ...]) -> bool:
        return all(s in self.skills for s in skills)

    def proficiency(self, skills: tuple[str, ...]) -> int:
        return sum(self.skills.get(s, 0) for s in skills)


@dataclass(slots=True)
class WaitingCall:
    """A call in a queue.  ``held``: the caller is in [cti-hold] now (may be redirected).
    ``offer_agent``: the agent reserved for / ringing with this call, if any.
    ``retry_at``: not offered again before this time (after a failed Redirect)."""

    call_id: str
    cti_call_id: str
    channel: str
    queue: str
    skills: tuple[str, ...]
    priority: int
    enqueued_at: float
    held: bool = False
    offers: int = 0
    caller_num: str = ""
    caller_name: str = ""
    customer_id: int | None = None
    ivr_choice: str = ""
    offer_agent: str | None = None
    retry_at: float = 0.0
    redirect_failures: int = 0  # in a row: the retry delay doubles with each


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    skills: tuple[str, ...] = ()
    ring_timeout_s: int = DEFAULT_RING_TIMEOUT
    wrap_up_s: float = 10.0
    record: bool = False
    max_wait_s: float = 0.0  # 0 = no limit (reported by stats only)


@dataclass(frozen=True, slots=True)
class Assignment:
    call_id: str
    agent_id: str


@dataclass(frozen=True, slots=True)
class OfferDecision:
    """What the offer AGI sets on the caller's channel for a good offer."""

    call_id: str
    agent_id: str
    device: str
    ring_timeout_s: int
    record_file: str  # "" when the call is not recorded
    offer_no: int
