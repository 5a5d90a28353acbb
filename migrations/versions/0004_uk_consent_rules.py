"""UK consent rules: leavers, grants that outlast leaving, recorded DPIAs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("people") as batch_op:
        batch_op.add_column(sa.Column("left_on", sa.Date(), nullable=True))
    with op.batch_alter_table("consent_records") as batch_op:
        batch_op.add_column(
            sa.Column("survives_leaving", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "dpia_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=False),
        sa.Column("approved_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dpia_records")),
    )


def downgrade() -> None:
    op.drop_table("dpia_records")
    with op.batch_alter_table("consent_records") as batch_op:
        batch_op.drop_column("survives_leaving")
    with op.batch_alter_table("people") as batch_op:
        batch_op.drop_column("left_on")
