"""Alembic migrations build the schema the models describe, on SQLite and PostgreSQL; an
outdated schema is refused with the command to run; `cti db` upgrades and reports."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from crm_core import migrate
from crm_core.db import ensure_pg_schema, make_engine
from crm_core.migrate import SchemaOutdated
from crm_core.models import Base
from crm_core.store import Store
from tests.crm_fixtures import PG_URL, _pg_admin

ROOT = Path(__file__).resolve().parent.parent


async def _diff(engine: object) -> list[object]:
    async with engine.connect() as conn:  # type: ignore[attr-defined]
        return await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))


async def test_migrations_build_the_models_schema_on_sqlite(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    try:
        assert (await migrate.schema_state(engine)).current is None
        with pytest.raises(SchemaOutdated, match="cti db upgrade"):
            await migrate.check_current(engine)
        state = await migrate.upgrade(engine)
        assert state.up_to_date and state.current == migrate.head()
        assert await _diff(engine) == []  # the migration and the models agree, table by table
        assert (await migrate.upgrade(engine)).up_to_date  # a second upgrade is a no-op
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_migrations_build_the_models_schema_on_postgres() -> None:
    admin = await _pg_admin()
    schema = f"crm_mig_{uuid.uuid4().hex[:10]}"
    engine = make_engine(PG_URL, schema=schema)
    try:
        await ensure_pg_schema(engine, schema)
        assert (await migrate.schema_state(engine)).current is None
        assert (await migrate.upgrade(engine)).up_to_date
        assert await _diff(engine) == []
    finally:
        await engine.dispose()
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


async def test_store_without_create_refuses_an_outdated_schema(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    with pytest.raises(SchemaOutdated, match=r"none .empty database.*cti db upgrade"):
        await Store.open(url, create=False)
    async with Store.open(url) as s:  # create=True migrates
        assert await s.count_calls() == 0
    async with Store.open(url, create=False) as s:
        assert await s.count_calls() == 0


def test_cti_db_upgrade_and_status_and_serve_refusal(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"

    def cti(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "callcenter", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, check=False, env={"PATH": "/usr/bin:/bin", "CTI_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
                                               "HOME": str(tmp_path)})

    st = cti("db", "status")
    assert st.returncode == 1 and "schema empty" in st.stdout and "cti db upgrade" in st.stdout
    serve = cti("serve")
    assert serve.returncode == 1 and "run `cti db upgrade` first" in serve.stderr  # 1: the environment (cli.py)
    up = cti("db", "upgrade")
    assert up.returncode == 0 and f"empty -> {migrate.head()}" in up.stdout, up.stderr
    st = cti("db", "status", "--db", str(db))
    assert st.returncode == 0 and "up to date" in st.stdout
