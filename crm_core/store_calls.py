"""The call log: write-ahead, idempotent, safe against out-of-order milestones.

Every write is an ``INSERT … ON CONFLICT`` keyed by ``call_id`` (the CTI call key, Asterisk's
Linkedid), so a milestone that arrives before ``call_arrived`` creates the row instead of
being lost, and a repeated write never makes a second row.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, select
from sqlalchemy.orm import Session

from crm_core._base import StoreBase, TimeLike, call_dto, to_dt, to_epoch
from crm_core.dto import CallDTO
from crm_core.errors import InvalidInput
from crm_core.models import OUTCOMES, Call, CallEvent, Recording, table_of, utcnow

__all__ = ["CALL_FIELDS", "CallLogMixin", "CallLogOp"]

log = logging.getLogger(__name__)

#: Columns a caller may set through call_update / call_end.
CALL_FIELDS = frozenset(
    c.key for c in Call.__table__.columns if c.key not in ("id", "call_id", "updated_at")
)
_TIME_FIELDS = frozenset(f for f in CALL_FIELDS if f.endswith("_at")) | {"outage_from", "outage_to"}
_STR_FIELDS = frozenset({"hangup_cause", "hangup_side", "end_reason", "uniqueid", "linkedid", "answered_by"})
_MILESTONES = ("arrived_at", "queued_at", "offered_at", "answered_at")


@dataclass(frozen=True, slots=True)
class CallLogOp:
    """One call-log write: ``op`` is "arrived", "update", "event" or "end"; ``fields`` are the
    keyword arguments of ``call_arrived`` / ``call_update`` / ``call_event`` / ``call_end``."""

    op: str
    call_id: str
    fields: Mapping[str, Any]


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
    for key, raw in fields.items():
        value = raw
        if key in _TIME_FIELDS:
            value = to_dt(raw)
        elif key == "ivr_path":
            value = _join(raw, "/")
        elif key == "skills":
            value = _join(raw, ",")
        elif key in _STR_FIELDS and raw is not None:
            value = str(raw)
        elif key == "outcome" and raw is not None and raw not in OUTCOMES:
            raise InvalidInput(f"outcome must be one of {OUTCOMES}, got {raw!r}")
        elif key in ("offers", "customer_id") and raw is not None:
            value = int(raw)
        out[key] = value
    return out


def _prepare(op: CallLogOp) -> CallLogOp:
    """Validate and convert an operation's values (raises InvalidInput) before any I/O."""
    f = dict(op.fields)
    if op.op == "arrived":
        f["arrived_at"] = f.pop("at")
        return CallLogOp(op.op, op.call_id, call_values(f))
    if op.op in ("update", "end"):
        if op.op == "end":
            f["ended_at"] = f.pop("at")
        return CallLogOp(op.op, op.call_id, call_values(f))
    if op.op == "event":
        when = to_dt(f["at"])
        if when is None:
            raise InvalidInput("a call event needs a time")
        key = f.get("dedup_key") or f"{f['kind']}@{when.timestamp():.6f}"
        return CallLogOp(op.op, op.call_id, {"kind": str(f["kind"]), "at": when, "dedup_key": key,
                                             "data": _jsonsafe(f.get("data") or {})})
    raise InvalidInput(f"unknown call-log operation {op.op!r}")


def _jsonsafe(data: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return result


class CallLogMixin(StoreBase):
    """Writes run as plain synchronous SQLAlchemy in one unit of work (:meth:`_write_sync`):
    on a SQLite file in a worker thread on a native connection (one thread hop a batch instead
    of several a statement), elsewhere through the async session's ``run_sync``."""

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
        await self.call_log_batch([CallLogOp("arrived", call_id, {
            "uniqueid": uniqueid, "linkedid": linkedid, "channel": channel, "caller_num": caller_num,
            "caller_name": caller_name, "dnis": dnis, "at": at, "server": server, **fields})])

    async def call_update(self, call_id: str, **fields: Any) -> None:
        """Set the given columns; creates the row if it is missing (upsert)."""
        await self.call_log_batch([CallLogOp("update", call_id, fields)])

    async def call_event(
        self, call_id: str, kind: str, at: TimeLike, data: dict[str, Any],
        dedup_key: str | None = None,
    ) -> bool:
        """Add an event to the call's timeline; ``False`` when it was already there.

        Without ``dedup_key`` the key is ``"<kind>@<epoch µs>"``: the same event at the same
        instant is written once.
        """
        op = _prepare(CallLogOp("event", call_id, {"kind": kind, "at": at, "data": data,
                                                   "dedup_key": dedup_key}))
        inserted: int = await self._write_sync(lambda s: self._bulk_events(s, [op]))
        return inserted == 1

    async def call_end(
        self,
        call_id: str,
        *,
        at: TimeLike | None,
        outcome: str,
        hangup_cause: str | int | None = None,
        hangup_side: str | None = None,
        end_reason: str | None = None,
        **fields: Any,
    ) -> None:
        """Close the call log row (creating it if needed).

        Idempotent: once a row has ``ended_at``, a later call_end only fills columns that are
        still empty (and an ``in_progress`` outcome). ``talk_s`` = ended - answered;
        ``wait_s`` = (answered, else ended) - queued.  ``at=None``: the end was not seen and
        nothing tells when: the row's last milestone (arrival, queued, offered, answered) is
        taken, the last time the call was known alive (and ``outage_from``, if empty).
        """
        await self.call_log_batch([CallLogOp("end", call_id, {
            "at": at, "outcome": outcome, "hangup_cause": hangup_cause, "hangup_side": hangup_side,
            "end_reason": end_reason, **fields})])

    async def call_log_batch(self, ops: Sequence[CallLogOp]) -> None:
        """Apply call-log operations in one transaction (all or nothing).

        Row operations (arrived, update, end) run in order; timeline events, which only need
        their call's row to exist, are written together at the end with one multi-row insert.
        Values are validated before the transaction starts.
        """
        prepared = [_prepare(op) for op in ops]

        def work(session: Session) -> None:
            events: list[CallLogOp] = []
            for op in prepared:
                if op.op == "event":
                    events.append(op)
                else:
                    self._apply_row(session, op)
            if events:
                self._bulk_events(session, events)

        await self._write_sync(work)

    # -- synchronous halves (run inside _write_sync) ---------------------------------

    def _apply_row(self, session: Session, op: CallLogOp) -> None:
        conn = session.connection()
        values = dict(op.fields)
        if op.op == "end":
            self._end_row(conn, op.call_id, values)
            return
        if op.op not in ("arrived", "update"):
            raise InvalidInput(f"unknown call-log operation {op.op!r}")
        stmt = self._row_statement(op.op, frozenset(values))
        conn.execute(stmt, {**values, "call_id": op.call_id, "updated_at": utcnow()})

    def _row_statement(self, op: str, keys: frozenset[str]) -> Any:
        """The upsert for an arrival or an update of these columns, built once and reused
        (building it costs ~1 ms of CPU; executing it, a few µs)."""
        cache = self._stmt_cache
        stmt = cache.get((op, keys))
        if stmt is not None:
            return stmt
        t = Call.__table__
        ins = self._insert(t)
        ex = ins.excluded
        if op == "arrived":  # fills only what is empty: an arrival never overwrites
            set_: dict[str, Any] = {k: func.coalesce(t.c[k], ex[k]) for k in keys if k != "server"}
            if "server" in keys:
                set_["server"] = case((t.c.server == "default", ex.server), else_=t.c.server)
            stmt = ins.on_conflict_do_update(index_elements=["call_id"], set_=set_)
        elif keys:
            stmt = ins.on_conflict_do_update(index_elements=["call_id"],
                                             set_={**{k: ex[k] for k in keys}, "updated_at": ex.updated_at})
        else:
            stmt = ins.on_conflict_do_nothing(index_elements=["call_id"])
        cache[(op, keys)] = stmt
        return stmt

    def _end_row(self, conn: Any, call_id: str, values: dict[str, Any]) -> None:
        """Close the row; once closed, a later end only fills what is still empty."""
        t = table_of(Call)
        conn.execute(self._row_statement("update", frozenset()), {"call_id": call_id, "updated_at": utcnow()})
        cache = self._stmt_cache
        if "select" not in cache:
            cache["select"] = select(t).where(t.c.call_id == bindparam("b_call_id"))
        row = conn.execute(cache["select"], {"b_call_id": call_id}).mappings().one()
        already = row["ended_at"] is not None
        new: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            current = row[key]
            empty = current is None or (key == "outcome" and current == "in_progress")
            if not already or empty:
                new[key] = value
        if already:  # its end was written before: a later "not seen ending" adds no outage window
            new.pop("outage_from", None)
            new.pop("outage_to", None)
        cur = {**row, **new}
        if cur["ended_at"] is None and "ended_at" in values:  # ended at an unknown time: its last milestone
            last = max((t for t in (to_dt(cur[k]) for k in _MILESTONES) if t is not None), default=None)
            if last is not None:
                new["ended_at"] = cur["ended_at"] = last
                if cur["outage_to"] is not None and cur["outage_from"] is None:
                    new["outage_from"] = cur["outage_from"] = last
        ended, answered, queued = (to_dt(cur["ended_at"]), to_dt(cur["answered_at"]), to_dt(cur["queued_at"]))
        if ended is not None:
            if answered is not None and (cur["talk_s"] is None or not already):
                new["talk_s"] = _seconds(answered, ended)
            if queued is not None and (cur["wait_s"] is None or not already):
                new["wait_s"] = _seconds(queued, answered or ended)
        if new:
            keys = ("close", frozenset(new))
            if keys not in cache:
                cache[keys] = t.update().where(t.c.call_id == bindparam("b_call_id")).values(
                    {k: bindparam(f"b_{k}") for k in (*new, "updated_at")})
            conn.execute(cache[keys], {"b_call_id": call_id, "b_updated_at": utcnow(),
                                       **{f"b_{k}": v for k, v in new.items()}})
        if already:
            log.debug("call %s: call_end again, only empty columns filled", call_id)

    def _bulk_events(self, session: Session, events: Sequence[CallLogOp]) -> int:
        """Insert timeline events (creating missing call rows); returns how many were new."""
        ids = sorted({op.call_id for op in events})
        session.execute(self._insert(Call).on_conflict_do_nothing(index_elements=["call_id"]),
                        [{"call_id": c} for c in ids])
        pks: dict[str, int] = {}
        for i in range(0, len(ids), 500):
            rows = session.execute(select(Call.call_id, Call.id).where(Call.call_id.in_(ids[i:i + 500])))
            pks.update(rows.all())
        params = []
        for op in events:
            f = op.fields
            params.append({"call_pk": pks[op.call_id], "kind": f["kind"], "at": f["at"],
                           "dedup_key": f["dedup_key"], "data": f["data"]})
        insert = self._insert(CallEvent)
        if len(params) == 1:  # tell whether it was new
            stmt = insert.values(**params[0]).on_conflict_do_nothing(
                index_elements=["call_pk", "dedup_key"]).returning(CallEvent.id)
            return 0 if session.execute(stmt).scalar_one_or_none() is None else 1
        session.execute(insert.on_conflict_do_nothing(index_elements=["call_pk", "dedup_key"]), params)
        return len(params)

    async def add_recording(self, call_id: str, path: str, *, duration_s: float | None = None,
                            size_bytes: int | None = None, sha256: str | None = None) -> int:
        """Register a recording file of a call (creating the call row if needed); its id."""
        async with self._write() as s:
            await s.execute(self._insert(Call).values(call_id=call_id).on_conflict_do_nothing(
                index_elements=["call_id"]))
            pk = (await s.execute(select(Call.id).where(Call.call_id == call_id))).scalar_one()
            rec = Recording(call_pk=pk, path=path, duration_s=duration_s, size_bytes=size_bytes, sha256=sha256)
            s.add(rec)
            await s.flush()
            return int(rec.id)

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
        if outcome is not None and outcome not in OUTCOMES:
            raise InvalidInput(f"outcome must be one of {OUTCOMES}, got {outcome!r}")
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

    async def iter_calls(self, batch: int = 1000) -> AsyncIterator[list[CallDTO]]:
        """Every call row in pages of ``batch`` (by primary key): a whole table without loading it."""
        last = 0
        while True:
            stmt = select(Call).where(Call.id > last).order_by(Call.id).limit(batch)
            async with self._read() as s:
                page = [call_dto(r) for r in (await s.execute(stmt)).scalars()]
            if not page:
                return
            yield page
            last = page[-1].id

    async def iter_ivr_steps(self, since: TimeLike | None = None, until: TimeLike | None = None,
                             batch: int = 2000) -> AsyncIterator[list[list[tuple[str, str]]]]:
        """The IVR steps (``(node, digits)`` in order) of every call that arrived in the range, a page
        of calls at a time (by primary key): the IVR funnel without loading the table."""
        last = 0
        while True:
            page = select(Call.id).where(Call.id > last).order_by(Call.id).limit(batch)
            if since is not None:
                page = page.where(Call.arrived_at >= to_dt(since))
            if until is not None:
                page = page.where(Call.arrived_at < to_dt(until))
            async with self._read() as s:
                ids = list((await s.execute(page)).scalars())
                if not ids:
                    return
                steps = (await s.execute(
                    select(CallEvent.call_pk, CallEvent.data)
                    .where(CallEvent.call_pk.in_(ids), CallEvent.kind == "ivr_step")
                    .order_by(CallEvent.call_pk, CallEvent.at, CallEvent.id))).all()
            paths: dict[int, list[tuple[str, str]]] = {}
            for pk, data in steps:
                d = dict(data or {})
                paths.setdefault(pk, []).append((str(d.get("node", "")), str(d.get("digits", ""))))
            yield [paths[pk] for pk in ids if pk in paths]
            last = ids[-1]

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
