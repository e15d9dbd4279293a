"""Fixtures shared across test modules: a real CRM store (SQLite file or PostgreSQL) and a running web app."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crm_core.store import Store
from tests.crm_fixtures import PG_URL, _pg_admin
from tests.web_support import Env, start_env


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A real store: a SQLite file, then PostgreSQL in a schema of its own (skipped when unreachable)."""
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


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    """The aiohttp app (login, hub, REST) on a free loopback port, with a fake ACD behind it."""
    e = await start_env()
    try:
        yield e
    finally:
        await e.runner.cleanup()
