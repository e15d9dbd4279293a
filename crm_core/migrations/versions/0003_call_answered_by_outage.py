"""call log: who answered (answered_by) and the AMI outage a call ended in (outage_from/to)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import crm_core.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch_op:
        batch_op.add_column(sa.Column("answered_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("outage_from", crm_core.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("outage_to", crm_core.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch_op:
        batch_op.drop_column("outage_to")
        batch_op.drop_column("outage_from")
        batch_op.drop_column("answered_by")
