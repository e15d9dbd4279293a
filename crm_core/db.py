"""Engines and schema creation for SQLite (aiosqlite, WAL) and PostgreSQL (asyncpg).

SQLite connections get ``journal_mode=WAL``, ``synchronous=NORMAL``, ``busy_timeout=5000`` and
``foreign_keys=ON``. The driver's implicit transactions are switched off and SQLAlchemy emits
``BEGIN`` itself, so a unit of work opened with the execution option ``crm_write=True``
starts with ``BEGIN IMMEDIATE`` (takes the write lock up front: no lock-upgrade deadlock
between processes). PostgreSQL uses a pool; an optional ``schema`` sets ``search_path``.
"""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import QueuePool

if TYPE_CHECKING:
    from crm_core.pg_reads import PgReads

__all__ = ["WRITE_OPTION", "ensure_pg_schema", "is_sqlite", "make_engine", "pg_reads", "sync_twin"]

log = logging.getLogger(__name__)
WRITE_OPTION = "crm_write"
_PG_SETTINGS: weakref.WeakKeyDictionary[Engine, dict[str, str]] = weakref.WeakKeyDictionary()


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def _quote_ident(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"invalid schema name {name!r}")
    return f'"{name}"'


def make_engine(url: str, *, schema: str | None = None, pool_size: int = 10) -> AsyncEngine:
    """Create an async engine for ``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://…``."""
    parsed: URL = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername == "sqlite":
            parsed = parsed.set(drivername="sqlite+aiosqlite")
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed, connect_args={"timeout": 30})
        _install_sqlite_hooks(engine)
        return engine
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+asyncpg")
        connect_args: dict[str, Any] = {}
        if schema:
            _quote_ident(schema)
            connect_args["server_settings"] = {"search_path": schema}
        pg = create_async_engine(
            parsed, pool_size=pool_size, max_overflow=pool_size, pool_timeout=60,
            pool_pre_ping=True, connect_args=connect_args,
        )
        _PG_SETTINGS[pg.sync_engine] = dict(connect_args.get("server_settings", {}))
        return pg
    raise ValueError(f"unsupported database URL {parsed.render_as_string()!r}")


def sync_twin(engine: AsyncEngine, readers: int = 0) -> Engine | None:
    """A synchronous pysqlite engine on the same SQLite file, run in worker threads: the
    writer (``readers=0``: one connection, ``BEGIN IMMEDIATE``; ``StoreBase._write_sync``) or a
    pool of ``readers`` (``StoreBase._read_sync``); ``None`` for PostgreSQL and in-memory SQLite."""
    if not is_sqlite(engine):
        return None
    database = engine.url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    twin = create_engine(engine.url.set(drivername="sqlite+pysqlite"), connect_args={"timeout": 30,
                         "check_same_thread": False}, poolclass=QueuePool, pool_size=max(1, readers),
                         max_overflow=0)
    _install_sqlite_hooks(twin, always_immediate=not readers)  # readers: a plain deferred BEGIN
    return twin


def pg_reads(engine: AsyncEngine) -> PgReads | None:
    """The asyncpg fast read path beside a PostgreSQL engine (same URL and ``search_path``);
    ``None`` for SQLite."""
    if engine.dialect.name != "postgresql":
        return None
    from crm_core.pg_reads import PgReads

    return PgReads(engine, _PG_SETTINGS.get(engine.sync_engine))


def _install_sqlite_hooks(engine: AsyncEngine | Engine, always_immediate: bool = False) -> None:
    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        try:
            for pragma in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=NORMAL",
                "PRAGMA busy_timeout=5000",
                "PRAGMA foreign_keys=ON",
                "PRAGMA secure_delete=ON",  # erased data is overwritten, not left in free pages
            ):
                cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = always_immediate or conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


async def ensure_pg_schema(engine: AsyncEngine, schema: str | None) -> None:
    """Create the PostgreSQL schema named in the store's ``search_path`` (no-op elsewhere)."""
    if schema and engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(schema)}"))
