"""Alembic environment of the CRM schema: runs on the connection crm_core.migrate hands in."""

from __future__ import annotations

from alembic import context

from crm_core.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
