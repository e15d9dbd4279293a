"""Customer analytics (pure): churn signals from recent contacts and calls.

This walking-skeleton score looks at the last ``window_days`` (30) only:

* repeat calls: a call within 7 days of the customer's previous call (unresolved issue);
* abandoned calls: the customer gave up waiting;
* complaints: a contact or call whose disposition is a complaint code.

Each signal adds a fixed weight; the score is capped at 1.0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Signal", "churn_score", "is_complaint", "REPEAT_WINDOW_S", "WINDOW_S"]

DAY_S = 86400.0
WINDOW_S = 30 * DAY_S
REPEAT_WINDOW_S = 7 * DAY_S
W_REPEAT = 0.15
W_ABANDONED = 0.2
W_COMPLAINT = 0.3


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
    signals: Sequence[Signal], now: float, complaint_codes: Iterable[str] = ()
) -> tuple[float, tuple[str, ...]]:
    """Return ``(risk 0..1, human-readable reasons)`` for the signals of one customer."""
    codes = tuple(complaint_codes)
    recent = sorted((s for s in signals if now - WINDOW_S <= s.at <= now), key=lambda s: s.at)
    call_times = [s.at for s in recent if s.is_call]
    repeats = sum(1 for a, b in zip(call_times, call_times[1:]) if b - a <= REPEAT_WINDOW_S)
    abandoned = sum(1 for s in recent if s.is_call and s.outcome == "abandoned")
    complaints = sum(1 for s in recent if is_complaint(s.disposition, codes))
    reasons: list[str] = []
    if repeats:
        reasons.append(f"{_plural(repeats, 'repeat call')} within 7 days")
    if abandoned:
        reasons.append(f"{_plural(abandoned, 'abandoned call')} in the last 30 days")
    if complaints:
        reasons.append(f"{_plural(complaints, 'complaint')} in the last 30 days")
    score = min(1.0, W_REPEAT * repeats + W_ABANDONED * abandoned + W_COMPLAINT * complaints)
    return round(score, 3), tuple(reasons)
