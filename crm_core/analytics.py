"""Customer analytics (pure): churn signals from recent contacts and calls.

This walking-skeleton score looks at the last ``window_days`` (30) only:

* repeat calls: a call within 7 days of the customer's previous call (unresolved issue);
* abandoned calls: the customer gave up waiting;
* complaints: a contact or call whose disposition is a complaint code;
* a falling revenue trend: the latest month's revenue is at least ``REVENUE_DROP`` (25%)
  below the average of the three months before it.

Each signal adds a fixed weight; the score is capped at 1.0.

Value tiers (:class:`TierRule`): by default the top 20% of customers by monthly revenue are
``key`` accounts, which must have a named account manager; the rest are ``standard``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "REPEAT_WINDOW_S",
    "WINDOW_S",
    "Signal",
    "TierRule",
    "churn_score",
    "is_complaint",
    "revenue_trend",
]

DAY_S = 86400.0
WINDOW_S = 30 * DAY_S
REPEAT_WINDOW_S = 7 * DAY_S
W_REPEAT = 0.15
W_ABANDONED = 0.2
W_COMPLAINT = 0.3
W_REVENUE = 0.25
REVENUE_DROP = 0.25


@dataclass(frozen=True, slots=True)
class TierRule:
    """The top ``top_share`` of customers by revenue get ``top_tier``; the others ``other_tier``."""

    top_share: float = 0.2
    top_tier: str = "key"
    other_tier: str = "standard"

    def __post_init__(self) -> None:
        if not 0.0 <= self.top_share <= 1.0:
            raise ValueError(f"top_share must be within 0..1, got {self.top_share}")

    def top_count(self, customers: int) -> int:
        """How many of ``customers`` are in the top tier (before ties at the cut join them)."""
        return round(customers * self.top_share)


def revenue_trend(months: Sequence[tuple[str, float]]) -> float | None:
    """Change of the latest month against the average of the 3 before it (-0.3 = down 30%);
    ``None`` with fewer than 4 months or nothing to compare with."""
    ordered = sorted(months)
    if len(ordered) < 4:
        return None
    base = sum(r for _m, r in ordered[-4:-1]) / 3
    if base <= 0:
        return None
    return (ordered[-1][1] - base) / base


@dataclass(frozen=True, slots=True)
class Signal:
    """One interaction as analytics sees it."""

    at: float
    is_call: bool
    outcome: str | None
    disposition: str | None


def is_complaint(disposition: str | None, complaint_codes: Iterable[str] = ()) -> bool:
    if not disposition:
        return False
    code = disposition.strip().lower()
    return code.startswith("complaint") or code in {c.lower() for c in complaint_codes}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def churn_score(
    signals: Sequence[Signal], now: float, complaint_codes: Iterable[str] = (),
    revenue: Sequence[tuple[str, float]] = (),
) -> tuple[float, tuple[str, ...]]:
    """Return ``(risk 0..1, human-readable reasons)`` for one customer's signals and monthly
    revenue history (``(YYYY-MM, amount)``)."""
    codes = tuple(complaint_codes)
    recent = sorted((s for s in signals if now - WINDOW_S <= s.at <= now), key=lambda s: s.at)
    call_times = [s.at for s in recent if s.is_call]
    repeats = sum(1 for a, b in itertools.pairwise(call_times) if b - a <= REPEAT_WINDOW_S)
    abandoned = sum(1 for s in recent if s.is_call and s.outcome == "abandoned")
    complaints = sum(1 for s in recent if is_complaint(s.disposition, codes))
    reasons: list[str] = []
    if repeats:
        reasons.append(f"{_plural(repeats, 'repeat call')} within 7 days")
    if abandoned:
        reasons.append(f"{_plural(abandoned, 'abandoned call')} in the last 30 days")
    if complaints:
        reasons.append(f"{_plural(complaints, 'complaint')} in the last 30 days")
    trend = revenue_trend(revenue)
    falling = trend is not None and trend <= -REVENUE_DROP
    if falling:
        assert trend is not None
        reasons.append(f"revenue down {round(-trend * 100)}% against the 3 months before")
    score = min(1.0, W_REPEAT * repeats + W_ABANDONED * abandoned + W_COMPLAINT * complaints
                + (W_REVENUE if falling else 0.0))
    return round(score, 3), tuple(reasons)
