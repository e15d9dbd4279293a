"""Schema migrations (Alembic): build or upgrade the CRM schema, and tell whether it is current.

``upgrade(engine)`` brings an empty or older database to the newest revision (SQLite and
PostgreSQL alike; on PostgreSQL the store's ``search_path`` schema holds the tables and the
``alembic_version`` row).  ``schema_state(engine)`` returns the database's revision and the
newest one; ``check_current(engine)`` raises :class:`SchemaOutdated` with the command to run.
The revisions live in ``crm_core/migrations/versions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

from crm_core.errors import CrmError

__all__ = ["SchemaOutdated", "SchemaState", "check_current", "head", "schema_state", "upgrade"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaOutdated(CrmError):
    """The database's schema is not the newest revision: run ``cti db upgrade``."""


@dataclass(frozen=True, slots=True)
class SchemaState:
    current: str | None  # None: no schema (an empty database)
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config(connection: Any = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    rev = ScriptDirectory.from_config(_config()).get_current_head()
    assert rev is not None
    return rev


async def upgrade(engine: AsyncEngine, revision: str = "head") -> SchemaState:
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(_config(c), revision))
    return await schema_state(engine)


async def schema_state(engine: AsyncEngine) -> SchemaState:
    async with engine.connect() as conn:
        current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    return SchemaState(current, head())


async def check_current(engine: AsyncEngine) -> SchemaState:
    state = await schema_state(engine)
    if not state.up_to_date:
        where = engine.url.render_as_string(hide_password=True)
        raise SchemaOutdated(
            f"the CRM schema of {where} is at revision {state.current or 'none (empty database)'}, "
            f"this version needs {state.head}: run `cti db upgrade` first")
    return state
