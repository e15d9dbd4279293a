"""customer revenue history (per month)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customer_revenue",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("revenue", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"],
                                name=op.f("fk_customer_revenue_customer_id_customers"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_revenue")),
        sa.UniqueConstraint("customer_id", "month", name=op.f("uq_customer_revenue_customer_id")),
    )
    with op.batch_alter_table("customer_revenue") as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_revenue_customer_id"), ["customer_id"], unique=False)


def downgrade() -> None:
    op.drop_table("customer_revenue")
