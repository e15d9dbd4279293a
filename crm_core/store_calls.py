"""The call log: write-ahead, idempotent, safe against out-of-order milestones.

Every write is an ``INSERT … ON CONFLICT`` keyed by ``call_id`` (the CTI call key, Asterisk's
Linkedid), so a milestone that arrives before ``call_arrived`` creates the row instead of
being lost, and a repeated write never makes a second row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select

from crm_core._base import StoreBase, TimeLike, call_dto, to_dt, to_epoch
from crm_core.dto import CallDTO
from crm_core.errors import InvalidInput
from crm_core.models import OUTCOMES, Call, CallEvent, utcnow

__all__ = ["CallLogMixin", "CALL_FIELDS"]

log = logging.getLogger(__name__)

#: Columns a caller may set through call_update / call_end.
CALL_FIELDS = frozenset(
    c.key for c in Call.__table__.columns if c.key not in ("id", "call_id", "updated_at")
)
_TIME_FIELDS = frozenset(f for f in CALL_FIELDS if f.endswith("_at"))
_STR_FIELDS = frozenset({"hangup_cause", "hangup_side", "end_reason", "uniqueid", "linkedid"})


def _join(value: Any, sep: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Iterable):
        return sep.join(str(v) for v in value)
    raise InvalidInput(f"expected a string or a list of strings, got {value!r}")


def call_values(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate and convert API values to column values (epoch floats -> datetimes, …)."""
    unknown = set(fields) - CALL_FIELDS
    if unknown:
        raise InvalidInput(f"unknown call field(s): {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key in _TIME_FIELDS:
            value = to_dt(value)
        elif key == "ivr_path":
            value = _join(value, "/")
        elif key == "skills":
            value = _join(value, ",")
        elif key in _STR_FIELDS and value is not None:
            value = str(value)
        elif key == "outcome" and value is not None and value not in OUTCOMES:
            raise InvalidInput(f"outcome must be one of {OUTCOMES}, got {value!r}")
        elif key in ("offers", "customer_id") and value is not None:
            value = int(value)
        out[key] = value
    return out


def _jsonsafe(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return result


class CallLogMixin(StoreBase):
    async def _ensure_call(self, session: Any, call_id: str) -> int:
        stmt = self._insert(Call).values(call_id=call_id).on_conflict_do_nothing(
            index_elements=["call_id"]
        )
        await session.execute(stmt)
        pk: int = (await session.execute(select(Call.id).where(Call.call_id == call_id))).scalar_one()
        return pk

    async def call_arrived(
        self,
        call_id: str,
        *,
        uniqueid: str | None,
        linkedid: str | None,
        channel: str | None,
        caller_num: str | None,
        caller_name: str | None,
        dnis: str | None,
        at: TimeLike,
        server: str = "default",
        **fields: Any,
    ) -> None:
        """Write the call log row when the call arrives; a second call is a no-op.

        If a later milestone created the row first, the arrival columns still empty are filled.
        """
        values = call_values({
            "uniqueid": uniqueid, "linkedid": linkedid, "channel": channel,
            "caller_num": caller_num, "caller_name": caller_name, "dnis": dnis,
            "arrived_at": at, "server": server, **fields,
        })
        stmt = self._insert(Call).values(call_id=call_id, **values)
        # Only fill what is empty: the arrival never overwrites a value already there.
        excluded = stmt.excluded
        set_: dict[str, Any] = {
            k: func.coalesce(getattr(Call, k), getattr(excluded, k))
            for k in values if k != "server"
        }
        set_["server"] = case((Call.server == "default", excluded.server), else_=Call.server)
        stmt = stmt.on_conflict_do_update(index_elements=["call_id"], set_=set_)
        async with self._write() as s:
            await s.execute(stmt)

    async def call_update(self, call_id: str, **fields: Any) -> None:
        """Set the given columns; creates the row if it is missing (upsert)."""
        values = call_values(fields)
        stmt = self._insert(Call).values(call_id=call_id, **values)
        if values:
            stmt = stmt.on_conflict_do_update(
                index_elements=["call_id"], set_={**values, "updated_at": utcnow()}
            )
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=["call_id"])
        async with self._write() as s:
            await s.execute(stmt)

    async def call_event(
        self, call_id: str, kind: str, at: TimeLike, data: dict[str, Any],
        dedup_key: str | None = None,
    ) -> bool:
        """Add an event to the call's timeline; ``False`` when it was already there.

        Without ``dedup_key`` the key is ``"<kind>@<epoch µs>"``: the same event at the same
        instant is written once.
        """
        when = to_dt(at)
        assert when is not None
        key = dedup_key if dedup_key is not None else f"{kind}@{when.timestamp():.6f}"
        async with self._write() as s:
            pk = await self._ensure_call(s, call_id)
            stmt = (
                self._insert(CallEvent)
                .values(call_pk=pk, kind=kind, at=when, dedup_key=key, data=_jsonsafe(data))
                .on_conflict_do_nothing(index_elements=["call_pk", "dedup_key"])
                .returning(CallEvent.id)
            )
            inserted = (await s.execute(stmt)).scalar_one_or_none()
        return inserted is not None

    async def call_end(
        self,
        call_id: str,
        *,
        at: TimeLike,
        outcome: str,
        hangup_cause: str | int | None = None,
        hangup_side: str | None = None,
        end_reason: str | None = None,
        **fields: Any,
    ) -> None:
        """Close the call log row (creating it if needed).

        Idempotent: once a row has ``ended_at``, a later call_end only fills columns that are
        still empty (and an ``in_progress`` outcome). ``talk_s`` = ended − answered;
        ``wait_s`` = (answered, else ended) − queued.
        """
        values = call_values({
            **fields, "ended_at": at, "outcome": outcome, "hangup_cause": hangup_cause,
            "hangup_side": hangup_side, "end_reason": end_reason,
        })
        async with self._write() as s:
            await self._ensure_call(s, call_id)
            row = (
                await s.execute(select(Call).where(Call.call_id == call_id).with_for_update())
            ).scalar_one()
            already = row.ended_at is not None
            for key, value in values.items():
                if value is None:
                    continue
                current = getattr(row, key)
                empty = current is None or (key == "outcome" and current == "in_progress")
                if not already or empty:
                    setattr(row, key, value)
            if row.ended_at is not None:
                if row.answered_at is not None and (row.talk_s is None or not already):
                    row.talk_s = _seconds(row.answered_at, row.ended_at)
                if row.queued_at is not None and (row.wait_s is None or not already):
                    row.wait_s = _seconds(row.queued_at, row.answered_at or row.ended_at)
            if already:
                log.debug("call %s: call_end again, only empty columns filled", call_id)

    async def get_call(self, call_id: str) -> CallDTO | None:
        async with self._read() as s:
            row = (await s.execute(select(Call).where(Call.call_id == call_id))).scalar_one_or_none()
            return call_dto(row) if row is not None else None

    async def list_calls(
        self,
        since: TimeLike | None = None,
        until: TimeLike | None = None,
        agent_id: str | None = None,
        customer_id: int | None = None,
        outcome: str | None = None,
        limit: int = 1000,
    ) -> list[CallDTO]:
        """Calls by arrival time (oldest first); ``since`` inclusive, ``until`` exclusive."""
        stmt = select(Call)
        if since is not None:
            stmt = stmt.where(Call.arrived_at >= to_dt(since))
        if until is not None:
            stmt = stmt.where(Call.arrived_at < to_dt(until))
        if agent_id is not None:
            stmt = stmt.where(Call.agent_id == agent_id)
        if customer_id is not None:
            stmt = stmt.where(Call.customer_id == customer_id)
        if outcome is not None:
            stmt = stmt.where(Call.outcome == outcome)
        stmt = stmt.order_by(Call.arrived_at.asc().nulls_last(), Call.id.asc()).limit(limit)
        async with self._read() as s:
            return [call_dto(r) for r in (await s.execute(stmt)).scalars()]

    async def count_calls(self) -> int:
        async with self._read() as s:
            n: int = (await s.execute(select(func.count()).select_from(Call))).scalar_one()
            return n

    async def call_events(self, call_id: str) -> list[tuple[str, float, dict[str, Any]]]:
        """The call's timeline as ``(kind, epoch, data)``, in time order."""
        stmt = (
            select(CallEvent.kind, CallEvent.at, CallEvent.data)
            .join(Call, Call.id == CallEvent.call_pk)
            .where(Call.call_id == call_id)
            .order_by(CallEvent.at, CallEvent.id)
        )
        async with self._read() as s:
            rows = (await s.execute(stmt)).all()
        out: list[tuple[str, float, dict[str, Any]]] = []
        for kind, at, data in rows:
            epoch = to_epoch(at)
            assert epoch is not None
            out.append((kind, epoch, dict(data or {})))
        return out


def _seconds(start: datetime, end: datetime) -> float:
    return round(max(0.0, (end - start).total_seconds()), 3)
