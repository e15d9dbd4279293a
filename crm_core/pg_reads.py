"""PostgreSQL hot reads: SQLAlchemy Core statements, compiled once, run on plain asyncpg.

The screen pop's lookups and the customer 360 view are a handful of indexed single-row or
short-range SELECTs.  Through SQLAlchemy's async session each one costs ~0.3 ms of greenlet,
session and pool bookkeeping (plus a pre-ping round trip per checkout) on top of a ~0.1 ms
round trip, which put the 1M-customer lookup's p99 over 4 ms.  Here the same Core statements
(one definition for both engines) are compiled to ``$n`` SQL once and run as asyncpg prepared
statements on a small pool of its own; a whole batch of reads takes one connection checkout.
Writes never come here: they stay on the engine (transactions, the write-ahead call log).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["PgReads", "Row"]

log = logging.getLogger(__name__)


class Row(asyncpg.Record):  # type: ignore[misc]  # asyncpg is untyped, so Record is Any
    """A record that also answers ``row.column`` like a SQLAlchemy Row."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


_ADAPTER_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback",
                 "async_creator_fn")


async def _no_reset(_con: asyncpg.Connection) -> None:
    """Reads leave no session state behind: skip the pool's reset round trip on release."""


class _Compiled:
    __slots__ = ("defaults", "names", "processors", "sql")

    def __init__(self, stmt: Executable, engine: AsyncEngine) -> None:
        assert isinstance(stmt, ClauseElement)  # a Core statement (SELECT ...)
        compiled = stmt.compile(dialect=engine.dialect)
        assert isinstance(compiled, SQLCompiler)  # a statement's compiler, with its binds
        if any(b.expanding for b in compiled.binds.values()):
            raise ValueError("expanding IN parameters are not supported on the fast read path")
        self.sql = str(compiled)
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.defaults = compiled.params
        self.processors = [compiled.binds[n].type.bind_processor(engine.dialect) for n in self.names]

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        out = []
        for name, proc in zip(self.names, self.processors, strict=True):
            value = params[name] if name in params else self.defaults[name]
            out.append(proc(value) if proc is not None else value)
        return out


class PgReads:
    """A lazily opened asyncpg pool beside the engine's, for batches of Core SELECTs."""

    def __init__(self, engine: AsyncEngine, server_settings: Mapping[str, str] | None,
                 size: int = 10) -> None:
        self._engine = engine
        # the engine's own connect arguments (host, user, ssl, ...), minus those only
        # SQLAlchemy's adapter reads; asyncpg would send unknown ones to the server as settings
        _args, kwargs = engine.dialect.create_connect_args(engine.url)
        for key in _ADAPTER_ONLY:
            kwargs.pop(key, None)
        self._connect = kwargs
        self._settings = dict(server_settings or {})
        self._closed = False
        self._size = size
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._compiled: dict[Executable, _Compiled] = {}  # statements hash by identity

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._closed:
                    raise asyncpg.InterfaceError("the store is closed")
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        min_size=1, max_size=self._size, record_class=Row, reset=_no_reset,
                        **{"timeout": 30, **self._connect,
                           "server_settings": {**self._connect.get("server_settings", {}), **self._settings}},
                    )
        return self._pool

    def _compile(self, stmt: Executable) -> _Compiled:
        hit = self._compiled.get(stmt)
        if hit is None:
            if len(self._compiled) >= 512:  # callers pass cached statements; bound it anyway
                self._compiled.clear()
            hit = self._compiled[stmt] = _Compiled(stmt, self._engine)
        return hit

    async def fetch_many(self, batch: Sequence[tuple[Executable, Mapping[str, Any]]]) -> list[Sequence[Row]]:
        """Run each (statement, params) in order on one pooled connection: the rows of each."""
        plans = [(self._compile(stmt), params) for stmt, params in batch]
        try:
            pool = await self._get_pool()
            async with pool.acquire() as con:
                return [await con.fetch(c.sql, *c.args(p)) for c, p in plans]
        except asyncpg.DataError as e:  # e.g. an id out of the column's range: the caller's input
            raise DataError(plans[0][0].sql if plans else "", None, e) from e
        except (TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as e:
            raise OperationalError(plans[0][0].sql if plans else "", None, e) from e

    async def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
