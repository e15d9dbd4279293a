"""Shared fixtures of the crm_core tests: a real store on SQLite (tmp file) or PostgreSQL.

PostgreSQL: URL from CTI_TEST_PG_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/test);
each test gets its own schema, dropped afterwards; skipped with the reason when unreachable.
The ``store`` fixture itself is in ``tests/conftest.py``.
"""

from __future__ import annotations

import os

import asyncpg
import pytest
from sqlalchemy.engine import make_url

PG_URL = os.environ.get(
    "CTI_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(_asyncpg_dsn(PG_URL), timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL not reachable at {make_url(PG_URL).render_as_string()}: {exc!r}")
