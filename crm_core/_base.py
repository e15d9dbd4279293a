"""Plumbing shared by the store's parts: sessions, the SQLite writer lock, conversions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable

from crm_core.db import WRITE_OPTION, is_sqlite, pg_reads, sync_twin
from crm_core.dto import CallDTO, ContactDTO, CustomerDTO
from crm_core.errors import InvalidInput
from crm_core.models import Call, Contact, Customer

__all__ = ["StoreBase", "TimeLike", "rowcount", "to_dt", "to_epoch"]

TimeLike = float | int | datetime
T = TypeVar("T")


def to_dt(value: TimeLike | None) -> datetime | None:
    """Epoch seconds or a datetime (naive = UTC) -> aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"expected epoch seconds or datetime, got {value!r}")
    return datetime.fromtimestamp(float(value), tz=UTC)


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched (a session types every result as a plain ``Result``)."""
    assert isinstance(result, CursorResult)
    return result.rowcount


def to_epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class StoreBase:
    """Holds the engine and hands out one session per unit of work."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite has one writer at a time: queue writers here instead of on the file lock.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if is_sqlite(engine) else None
        self._sync_engine = sync_twin(engine)
        self._read_engine = sync_twin(engine, readers=4)
        self._pg_reads = pg_reads(engine)
        self._stmt_cache: dict[Any, Any] = {}  # hot-path statements, built once per store

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        """A write transaction, committed on success, rolled back on error."""
        if self._write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._sessions() as session, session.begin():
            await session.connection(execution_options={WRITE_OPTION: True})
            yield session

    async def _write_sync(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` as one write transaction of plain synchronous SQLAlchemy.

        On a SQLite file it runs in a worker thread on a native sqlite3 connection: aiosqlite
        costs a thread round trip (~0.3 ms here) per driver call, several per statement, which
        would cap the call log at a few hundred statements a second.  Elsewhere (PostgreSQL,
        in-memory SQLite) it runs on the async session through ``run_sync``.
        """
        if self._sync_engine is None:
            async with self._write() as s:
                return await s.run_sync(work)
        assert self._write_lock is not None
        async with self._write_lock:
            return await asyncio.to_thread(self._run_sync_unit, work)

    async def _read_sync(self, work: Callable[[Session], T]) -> T:
        """Run ``work(session)`` as a read of plain synchronous SQLAlchemy: on a SQLite file in a
        worker thread on a native connection (WAL readers never wait for the writer), one
        thread hop for the whole read; elsewhere on the async session through ``run_sync``."""
        if self._read_engine is None:
            async with self._read() as s:
                return await s.run_sync(work)
        return await asyncio.to_thread(self._run_read_unit, work)

    async def _read_rows(self, batch: Sequence[tuple[Executable, Mapping[str, Any]]]) -> list[Sequence[Any]]:
        """The rows of each Core SELECT in ``batch``, read together: on PostgreSQL as asyncpg
        prepared statements on one connection (``crm_core.pg_reads``), on a SQLite file in one
        worker-thread hop.  Rows answer ``row[i]`` and ``row.column``."""
        if self._pg_reads is not None:
            return await self._pg_reads.fetch_many(batch)

        def work(s: Session) -> list[Sequence[Any]]:
            conn = s.connection()
            return [conn.execute(stmt, dict(params)).all() for stmt, params in batch]

        return await self._read_sync(work)

    async def _close_reads(self) -> None:
        for twin in (self._sync_engine, self._read_engine):
            if twin is not None:
                twin.dispose()
        if self._pg_reads is not None:
            await self._pg_reads.close()

    def _run_read_unit(self, work: Callable[[Session], T]) -> T:
        assert self._read_engine is not None
        with Session(self._read_engine, expire_on_commit=False) as session:
            return work(session)

    def _run_sync_unit(self, work: Callable[[Session], T]) -> T:
        assert self._sync_engine is not None
        with Session(self._sync_engine, expire_on_commit=False) as session, session.begin():
            return work(session)

    def _insert(self, table: Any) -> Any:
        """A dialect insert offering ``on_conflict_do_nothing`` / ``on_conflict_do_update``."""
        if self.dialect == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)


def customer_dto(c: Customer) -> CustomerDTO:
    return CustomerDTO(
        id=c.id, account_no=c.account_no, name=c.name, email=c.email, segment=c.segment,
        value_tier=c.value_tier, monthly_revenue=float(c.monthly_revenue or 0.0),
        account_manager=c.account_manager, phones=tuple(p.e164 for p in c.phones),
    )


def contact_dto(c: Contact) -> ContactDTO:
    at = to_epoch(c.at)
    assert at is not None
    return ContactDTO(
        id=c.id, customer_id=c.customer_id, channel=c.channel, direction=c.direction, at=at,
        agent_id=c.agent_id, disposition=c.disposition, notes=c.notes, call_id=c.call_id,
    )


def call_dto(c: Call) -> CallDTO:
    return CallDTO(
        id=c.id, call_id=c.call_id, cti_call_id=c.cti_call_id, uniqueid=c.uniqueid,
        linkedid=c.linkedid, server=c.server, channel=c.channel, caller_num=c.caller_num,
        caller_name=c.caller_name, dnis=c.dnis, customer_id=c.customer_id, ivr_path=c.ivr_path,
        ivr_choice=c.ivr_choice, queue=c.queue, skills=c.skills,
        arrived_at=to_epoch(c.arrived_at), queued_at=to_epoch(c.queued_at),
        offered_at=to_epoch(c.offered_at), answered_at=to_epoch(c.answered_at),
        ended_at=to_epoch(c.ended_at), outcome=c.outcome, wait_s=c.wait_s, talk_s=c.talk_s,
        agent_id=c.agent_id, offers=c.offers or 0, hangup_cause=c.hangup_cause,
        hangup_side=c.hangup_side, end_reason=c.end_reason, disposition=c.disposition,
        notes=c.notes, answered_by=c.answered_by, outage_from=to_epoch(c.outage_from),
        outage_to=to_epoch(c.outage_to),
    )
