"""Customer CSV on a :class:`~crm_core.store.Store` (see docs/customers-csv.md).

:func:`import_records` upserts validated records in batches (SQLAlchemy Core ``INSERT ... ON
CONFLICT DO UPDATE``, bulk phone rows, one transaction per batch) and :func:`export_rows` streams
the customers out. The rows themselves are read and checked by the pure :mod:`crm_core.csv_rows`.

Import semantics: rows are applied in file order as if each were upserted on its own with
``Store.upsert_customer``. A phone that belongs to another customer at that point rejects
the row (``upsert_customer`` raises Conflict there); the ``phones`` column, when present,
replaces the customer's phone set. A column absent from the header is left as stored; a column
present with an empty cell clears the field (NULL, or 0 for the two numbers).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from crm_core._base import StoreBase
from crm_core.csv_rows import COLUMNS, CustomerRecord, Header, Problem, Reject, RowValidator, export_fields
from crm_core.models import Customer, CustomerPhone, table_of, utcnow

__all__ = [
    "ANALYZE_AFTER",
    "BATCH_SIZE",
    "ImportStats",
    "export_rows",
    "import_records",
    "plan_phones",
    "write_batch",
]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ImportStats:
    """``imported``: new account numbers; ``updated``: account numbers already stored (changed
    or not); ``rejected``: refused rows."""

    imported: int = 0
    updated: int = 0
    rejected: int = 0

    @property
    def rows(self) -> int:
        return self.imported + self.updated + self.rejected

    def line(self) -> str:
        return f"imported={self.imported} updated={self.updated} rejected={self.rejected}"


# -- on a store: batched upserts --------------------------------------------------------------

BATCH_SIZE = 2000
_IN_CHUNK = 5000  # bound parameters per IN (...) lookup, well below SQLite's and asyncpg's limits
_UPDATABLE = ("name", "email", "segment", "value_tier", "monthly_revenue", "tenure_months",
              "account_manager")


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@dataclass(slots=True)
class _PhonePlan:
    accepted: list[CustomerRecord]
    rejects: list[Reject]
    delete: list[str] = field(default_factory=list)
    insert: list[tuple[str, str]] = field(default_factory=list)  # (account_no, e164)
    changed: set[str] = field(default_factory=set)  # account numbers whose phone set changes


def plan_phones(records: Sequence[CustomerRecord],
                stored: Iterable[tuple[str, str]]) -> _PhonePlan:
    """Apply the rows' phone sets in order (pure). ``stored``: ``(e164, owner account_no)`` of
    every stored phone that a row names or that a row's customer holds. A row naming a phone
    that another customer holds at that point is rejected, as ``upsert_customer`` would."""
    owner: dict[str, str] = {}
    held: dict[str, set[str]] = {}
    for e164, account in stored:
        owner[e164] = account
        held.setdefault(account, set()).add(e164)
    before = {a: frozenset(p) for a, p in held.items()}
    plan = _PhonePlan(accepted=[], rejects=[])
    accepted = plan.accepted.append
    for r in records:
        phones, account = r.phones, r.account_no
        assert phones is not None
        taken = [p for p in phones if owner.get(p, account) != account]
        if taken:
            plan.rejects.append(Reject(r.line, account, tuple(
                Problem("phones", f"{p} belongs to another customer (account {owner[p]})")
                for p in taken)))
            continue
        old = held.get(account)
        if old:
            for p in old.difference(phones):
                del owner[p]
        for p in phones:
            owner[p] = account
        held[account] = set(phones)
        accepted(r)
    for r in plan.accepted:
        assert r.phones is not None
        old_set = before.get(r.account_no)
        if not old_set:
            added = r.phones
        else:
            gone = old_set.difference(r.phones)
            added = tuple(p for p in r.phones if p not in old_set)
            plan.delete.extend(sorted(gone))
            if gone:
                plan.changed.add(r.account_no)
        if added:
            plan.insert.extend((r.account_no, p) for p in added)
            plan.changed.add(r.account_no)
    return plan


class _Driver:
    """Statements run at the driver level on one connection of a write unit.

    The upsert and the phone insert are SQLAlchemy Core statements compiled once per batch
    and run with the driver's own ``executemany`` on plain tuples: a compiled execute processes
    every row's parameters in Python, which costs more than SQLite's own work. The lookups are
    one-line SQL with positional markers (``?`` for sqlite3, ``$n`` for asyncpg); table names
    come from the models, and PostgreSQL finds them on the store's ``search_path``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect
        if self.dialect.paramstyle not in ("qmark", "numeric_dollar"):
            raise NotImplementedError(f"paramstyle {self.dialect.paramstyle!r}")

    def marks(self, n: int, start: int = 1) -> str:
        if self.dialect.paramstyle == "qmark":
            return ",".join("?" * n)
        return ",".join(f"${i}" for i in range(start, start + n))

    def bind(self, column: Any, value: Any) -> Any:
        """``value`` as the driver wants it for ``column`` (e.g. a UTCDateTime)."""
        processor = column.type.bind_processor(self.dialect)
        return processor(value) if processor is not None else value

    def rows(self, sql: str, params: Sequence[Any]) -> Sequence[Any]:
        """The result rows (tuple-like, hashable)."""
        return self.conn.exec_driver_sql(sql, tuple(params)).all()

    def run(self, sql: str, params: Sequence[Any]) -> None:
        self.conn.exec_driver_sql(sql, tuple(params))

    def many(self, sql: str, params: list[tuple[Any, ...]]) -> None:
        if params:
            self.conn.exec_driver_sql(sql, params)

    def ids(self, accounts: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for chunk in _chunks(accounts):
            out.update(self.rows(
                f"SELECT account_no, id FROM {_CUSTOMERS} WHERE account_no IN"
                f" ({self.marks(len(chunk))})", chunk))
        return out

    def stored_phones(self, phones: Sequence[str],
                            customer_ids: Sequence[int]) -> set[tuple[str, str]]:
        """``(e164, owner account_no)`` of the given phones and of the given customers' phones."""
        base = (f"SELECT p.e164, c.account_no FROM {_PHONES} p JOIN {_CUSTOMERS} c"
                " ON c.id = p.customer_id WHERE ")
        out: set[tuple[str, str]] = set()
        for chunk in _chunks(phones):
            out.update(self.rows(base + f"p.e164 IN ({self.marks(len(chunk))})", chunk))
        for ids in _chunks(customer_ids):
            out.update(self.rows(base + f"p.customer_id IN ({self.marks(len(ids))})", ids))
        return out


def _compile(dialect: Dialect, stmt: Any, keys: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """SQL text and the order of its positional parameters."""
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    assert compiled.positiontup is not None
    return str(compiled), tuple(compiled.positiontup)


@functools.lru_cache(maxsize=16)
def _upsert_sql(dialect: Dialect, columns: tuple[str, ...]) -> tuple[str, tuple[int, ...]]:
    """``INSERT ... ON CONFLICT (account_no) DO UPDATE`` of ``columns`` (and ``updated_at``),
    only where one of them differs; with the index in ``_INSERT_KEYS`` of each parameter."""
    table = table_of(Customer)
    ins = (postgresql.insert if dialect.name == "postgresql" else sqlite.insert)(table)
    sql, order = _compile(dialect, ins.on_conflict_do_update(
        index_elements=["account_no"],
        set_={**{c: ins.excluded[c] for c in columns}, "updated_at": ins.excluded.updated_at},
        where=or_(*(table.c[c].is_distinct_from(ins.excluded[c]) for c in columns)),
    ), _INSERT_KEYS)
    return sql, tuple(_INSERT_KEYS.index(k) for k in order)


_CUSTOMERS = Customer.__tablename__
_PHONES = CustomerPhone.__tablename__
_INSERT_KEYS = ("account_no", "name", "email", "segment", "value_tier", "monthly_revenue",
                "tenure_months", "account_manager", "created_at", "updated_at", "erased")


async def write_batch(store: StoreBase, header: Header,
                      records: Sequence[CustomerRecord]) -> tuple[int, int, list[Reject]]:
    """Upsert ``records`` (distinct account numbers, file order) in one transaction.

    Returns ``(imported, updated, rejects)``; rejects are rows whose phones belong to another
    customer. A stored row that would not change is left untouched (``updated_at`` kept)."""
    if not records:
        return 0, 0, []
    with_phones = header.has("phones")
    columns = [c for c in _UPDATABLE if header.has(c)]
    table = Customer.__table__

    def work(s: Session) -> tuple[int, int, list[Reject]]:
        db = _Driver(s.connection())
        existing = db.ids([r.account_no for r in records])
        plan = _PhonePlan(accepted=list(records), rejects=[])
        if with_phones:
            wanted = sorted({p for r in records for p in (r.phones or ())})
            plan = plan_phones(records, db.stored_phones(wanted, list(existing.values())))
        if not plan.accepted:
            return 0, 0, plan.rejects
        now = db.bind(table.c.updated_at, utcnow())
        erased = db.bind(table.c.erased, False)
        sql, pick = _upsert_sql(db.dialect, tuple(columns))
        params: list[tuple[Any, ...]] = [(r.account_no, r.name, r.email, r.segment, r.value_tier,
                   r.monthly_revenue or 0.0, r.tenure_months or 0, r.account_manager,
                   now, now, erased) for r in plan.accepted]
        if pick != tuple(range(len(_INSERT_KEYS))):
            params = [tuple(row[i] for i in pick) for row in params]
        db.many(sql, params)
        new = [r.account_no for r in plan.accepted if r.account_no not in existing]
        if with_phones:
            ids = {**existing, **(db.ids([a for a, _p in plan.insert if a not in existing]))}
            for chunk in _chunks(plan.delete):
                db.run(f"DELETE FROM {_PHONES} WHERE e164 IN ({db.marks(len(chunk))})", chunk)
            sql, order = _compile(db.dialect, table_of(CustomerPhone).insert(),
                                  ("customer_id", "e164"))
            db.many(sql, [(ids[a], p) if order[0] == "customer_id" else (p, ids[a])
                          for a, p in plan.insert])
            touched = sorted(existing[a] for a in plan.changed if a in existing)
            for chunk in _chunks(touched):
                db.run(f"UPDATE {_CUSTOMERS} SET updated_at = {db.marks(1)} WHERE id IN"
                       f" ({db.marks(len(chunk), start=2)})", (now, *chunk))
        return len(new), len(plan.accepted) - len(new), plan.rejects

    return await store._write_sync(work)


def _take(validator: RowValidator, rows: Iterator[tuple[int, Sequence[str]]],
          n: int) -> tuple[list[CustomerRecord], list[Reject]]:
    """Read and validate the next ``n`` rows (runs in a worker thread)."""
    records: list[CustomerRecord] = []
    rejects: list[Reject] = []
    check = validator.check
    for line, fields in itertools.islice(rows, n):
        result = check(line, fields)
        if isinstance(result, Reject):
            rejects.append(result)
        else:
            records.append(result)
    return records, rejects


ANALYZE_AFTER = 50_000


async def _analyze(store: StoreBase) -> None:
    """Refresh PostgreSQL's planner statistics of the customer tables after a large import: with
    the statistics of a near-empty table, the planner scans instead of using the indexes (a
    re-import into a freshly loaded 300k base ran at 6.5k rows/s, 15.3k after ``ANALYZE``).
    SQLite's planner does not need it."""
    if store.dialect != "postgresql":
        return
    try:
        async with store.engine.begin() as conn:
            await conn.exec_driver_sql(f"ANALYZE {_CUSTOMERS}, {_PHONES}")
    except SQLAlchemyError as e:  # only an optimisation: the import goes on
        log.warning("ANALYZE after CSV import batches failed: %s", e.__class__.__name__)


async def import_records(
    store: StoreBase,
    header: Header,
    rows: Iterable[tuple[int, Sequence[str]]],
    *,
    batch_size: int = BATCH_SIZE,
    on_reject: Callable[[Reject], None] | None = None,
    on_progress: Callable[[ImportStats], None] | None = None,
) -> ImportStats:
    """Validate ``rows`` and upsert them batch by batch (one transaction each).

    Reading and validating the next batch runs in a worker thread while the current batch is
    written, so the two overlap (SQLite releases the GIL while it works). ``on_reject`` sees
    every rejected row, in line order within a batch; ``on_progress`` sees the running totals
    after each batch. An error (unreadable file, database error) raises; the batches before it
    stay committed, so the import can simply be run again."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    validator = RowValidator(header)
    source = iter(rows)
    stats = ImportStats()
    unanalysed = 0  # rows written since the planner statistics were last refreshed
    upcoming = asyncio.ensure_future(asyncio.to_thread(_take, validator, source, batch_size))
    try:
        while True:
            records, rejects = await upcoming
            if not records and not rejects:
                if unanalysed >= ANALYZE_AFTER // 5:
                    await _analyze(store)
                return stats
            upcoming = asyncio.ensure_future(
                asyncio.to_thread(_take, validator, source, batch_size))
            imported, updated, late = await write_batch(store, header, records)
            stats.imported += imported
            stats.updated += updated
            stats.rejected += len(rejects) + len(late)
            if on_reject is not None:
                for r in sorted(rejects + late, key=lambda r: r.line):
                    on_reject(r)
            if on_progress is not None:
                on_progress(stats)
            unanalysed += imported + updated
            if unanalysed >= ANALYZE_AFTER:
                await _analyze(store)
                unanalysed = 0
    finally:
        if not upcoming.done():
            # let the worker finish its batch: nothing else may read ``rows`` meanwhile
            with contextlib.suppress(Exception):
                await asyncio.shield(upcoming)
        elif not upcoming.cancelled():
            upcoming.exception()  # retrieved: an error of a batch never written is moot


# -- on a store: streaming export -------------------------------------------------------------


async def export_rows(store: StoreBase, *, chunk: int = 2000) -> AsyncIterator[list[str]]:
    """The header, then every customer that is not erased, by id; streamed ``chunk`` rows at
    a time (a server-side cursor on PostgreSQL), never the whole table in memory."""
    yield list(COLUMNS)
    c = Customer.__table__.c
    stmt = (
        select(c.id, c.account_no, c.name, c.email, c.segment, c.value_tier, c.monthly_revenue,
               c.tenure_months, c.account_manager, CustomerPhone.e164)
        .outerjoin(CustomerPhone, CustomerPhone.customer_id == c.id)
        .where(c.erased.is_(False))
        .order_by(c.id, CustomerPhone.id)
        .execution_options(yield_per=chunk)
    )
    async with store._read() as s:
        result = await s.stream(stmt)
        current: tuple[Any, ...] | None = None
        phones: list[str] = []
        async for part in result.partitions(chunk):
            for row in part:
                if current is None or row[0] != current[0]:
                    if current is not None:
                        yield export_fields(current[1], current[2], phones, *current[3:9])
                    current, phones = tuple(row), []
                if row[9] is not None:
                    phones.append(row[9])
        if current is not None:
            yield export_fields(current[1], current[2], phones, *current[3:9])
