"""Shared fixtures of the crm_core tests: a real store on SQLite (tmp file) or PostgreSQL.

PostgreSQL: URL from CTI_TEST_PG_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/test);
each test gets its own schema, dropped afterwards; skipped with the reason when unreachable.
Import the fixtures into a test module with ``from tests.crm_fixtures import store  # noqa``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from crm_core.store import Store

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


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        async with Store.open(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'crm.db'}") as s:
            yield s
        return
    admin = await _pg_admin()
    schema = f"crm_test_{uuid.uuid4().hex[:12]}"
    try:
        async with Store.open(PG_URL, schema=schema) as s:
            yield s
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
