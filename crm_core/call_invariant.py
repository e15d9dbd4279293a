"""The call-log invariant: what every row of the call log must satisfy (pure, no I/O).

One function states it, :func:`call_row_problems`; ``cti simulate``'s consistency check, the
end-to-end and real-Asterisk tests, and ``cti db check`` apply it to every row.

A row still open (``ended_at`` empty) must say ``in_progress``; a closed row must have

* ``arrived_at``, and ``ended_at >= arrived_at``;
* an outcome from :data:`CLOSED_OUTCOMES`;
* milestones in order: arrived <= queued <= offered/answered <= ended;
* ``answered``: an ``answered_at`` and either an agent of ours or an ``answered_by``;
* ``abandoned``, ``ivr_hangup``, ``redirected``: no agent;
* ``system``: ended by a shutdown (``end_reason`` ``shutdown``, side ``system``);
* ``wait_s`` and ``talk_s`` non-negative, and adding up: ``wait_s`` = (answered, else ended) - queued,
  ``talk_s`` = ended - answered;
* an AMI outage window (``outage_from``/``outage_to``) given whole, in order, the end no later than
  the window's close.
"""

from __future__ import annotations

import itertools

from crm_core.dto import CallDTO

CLOSED_OUTCOMES = frozenset({"answered", "abandoned", "ivr_hangup", "failed", "unknown", "system", "redirected"})
NO_AGENT_OUTCOMES = frozenset({"abandoned", "ivr_hangup", "redirected"})
TOLERANCE_S = 0.01  # timestamps are stored to the millisecond on some engines


def call_row_problems(row: CallDTO, tolerance: float = TOLERANCE_S) -> list[str]:
    """Every way ``row`` breaks the invariant, as short sentences (empty: the row is valid)."""
    out: list[str] = []
    if row.ended_at is None:
        if row.outcome != "in_progress":
            out.append(f"open but outcome {row.outcome!r}")
        return out
    if row.outcome not in CLOSED_OUTCOMES:
        out.append(f"closed with outcome {row.outcome!r}")
    if row.arrived_at is None:
        out.append("closed without arrived_at")
    out.extend(_order(row, tolerance))
    out.extend(_by_outcome(row))
    out.extend(_durations(row, tolerance))
    out.extend(_outage(row, tolerance))
    return out


def _order(row: CallDTO, tol: float) -> list[str]:
    steps = [("arrived_at", row.arrived_at), ("queued_at", row.queued_at), ("answered_at", row.answered_at),
             ("ended_at", row.ended_at)]
    known = [(name, t) for name, t in steps if t is not None]
    out = [f"{a} after {b}" for (a, ta), (b, tb) in itertools.pairwise(known) if ta > tb + tol]
    if row.offered_at is not None and row.queued_at is not None and row.offered_at + tol < row.queued_at:
        out.append("offered_at before queued_at")
    return out


def _by_outcome(row: CallDTO) -> list[str]:
    out: list[str] = []
    if row.outcome == "answered":
        if row.answered_at is None:
            out.append("answered without answered_at")
        if not row.agent_id and not row.answered_by:
            out.append("answered by nobody (no agent_id, no answered_by)")
    elif row.answered_at is not None and row.outcome != "unknown":
        out.append(f"answered_at set but outcome {row.outcome!r}")
    if row.outcome in NO_AGENT_OUTCOMES and row.agent_id:
        out.append(f"{row.outcome} with agent {row.agent_id!r}")
    if row.outcome == "system" and (row.end_reason != "shutdown" or row.hangup_side != "system"):
        out.append(f"system outcome with end_reason {row.end_reason!r}, side {row.hangup_side!r}")
    return out


def _durations(row: CallDTO, tol: float) -> list[str]:
    out: list[str] = []
    for name, value in (("wait_s", row.wait_s), ("talk_s", row.talk_s)):
        if value is not None and value < -tol:
            out.append(f"{name} negative ({value})")
    ended = row.ended_at
    if row.queued_at is not None and row.wait_s is not None and ended is not None:
        expect = (row.answered_at if row.answered_at is not None else ended) - row.queued_at
        if abs(row.wait_s - expect) > tol:
            out.append(f"wait_s {row.wait_s:.3f} != {expect:.3f}")
    if row.answered_at is not None and row.talk_s is not None and ended is not None:
        expect = ended - row.answered_at
        if abs(row.talk_s - expect) > tol:
            out.append(f"talk_s {row.talk_s:.3f} != {expect:.3f}")
    if row.outcome == "answered" and row.talk_s is None:
        out.append("answered without talk_s")
    return out


def _outage(row: CallDTO, tol: float) -> list[str]:
    lo, hi = row.outage_from, row.outage_to
    if lo is None and hi is None:
        return []
    if lo is None or hi is None:
        return ["half an outage window (outage_from/outage_to)"]
    out: list[str] = []
    if lo > hi + tol:
        out.append("outage_from after outage_to")
    if row.ended_at is not None and row.ended_at > hi + tol:
        out.append("ended after its outage window closed")
    return out
