"""Plain, frozen data objects handed out by the store (pure, no I/O).

Times are epoch seconds (``float``, UTC) so they travel to JSON, websockets and the
real-time parts of the system unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["AgentDTO", "CallDTO", "ContactDTO", "Customer360", "CustomerDTO", "UserDTO"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


class _JsonMixin:
    def to_json(self) -> dict[str, Any]:
        """A dict of JSON-safe values (tuples become lists)."""
        assert dataclasses.is_dataclass(self)
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class CustomerDTO(_JsonMixin):
    id: int
    account_no: str
    name: str
    email: str | None
    segment: str | None
    value_tier: str | None
    monthly_revenue: float
    account_manager: str | None
    phones: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ContactDTO(_JsonMixin):
    id: int
    customer_id: int | None
    channel: str
    direction: str
    at: float
    agent_id: str | None
    disposition: str | None
    notes: str | None
    call_id: str | None


@dataclass(frozen=True, slots=True)
class CallDTO(_JsonMixin):
    id: int
    call_id: str
    cti_call_id: str | None
    uniqueid: str | None
    linkedid: str | None
    server: str
    channel: str | None
    caller_num: str | None
    caller_name: str | None
    dnis: str | None
    customer_id: int | None
    ivr_path: str | None
    ivr_choice: str | None
    queue: str | None
    skills: str | None
    arrived_at: float | None
    queued_at: float | None
    offered_at: float | None
    answered_at: float | None
    ended_at: float | None
    outcome: str
    wait_s: float | None
    talk_s: float | None
    agent_id: str | None
    offers: int
    hangup_cause: str | None
    hangup_side: str | None
    end_reason: str | None
    disposition: str | None
    notes: str | None
    answered_by: str | None = None  # who or what answered (the bridged peer's channel)
    outage_from: float | None = None  # not seen ending (an AMI outage): it ended in this window
    outage_to: float | None = None


@dataclass(frozen=True, slots=True)
class Customer360(_JsonMixin):
    customer: CustomerDTO
    last_contacts: tuple[ContactDTO, ...]
    last_calls: tuple[CallDTO, ...]
    churn_risk: float
    churn_reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "customer": self.customer.to_json(),
            "last_contacts": [c.to_json() for c in self.last_contacts],
            "last_calls": [c.to_json() for c in self.last_calls],
            "churn_risk": self.churn_risk,
            "churn_reasons": list(self.churn_reasons),
        }


@dataclass(frozen=True, slots=True)
class UserDTO(_JsonMixin):
    username: str
    role: str
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class AgentDTO(_JsonMixin):
    id: str
    name: str
    extension: str | None
    active: bool
    skills: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class TierReport(_JsonMixin):
    """What ``assign_value_tiers`` did: ``top`` of ``customers`` got the top tier (revenue at or
    above ``cut``); ``unmanaged`` are top-tier accounts still without an account manager."""

    customers: int
    top: int
    cut: float | None
    unmanaged: tuple[str, ...]
