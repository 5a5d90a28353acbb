"""The scale each face analysis guarantees: the size it searched at and the smallest face it found.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Decisions made before this revision analysed the full photo for faces of 32 px and more.
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.add_column(sa.Column("analysis_scale", sa.Float(), nullable=False, server_default="1.0"))
        batch_op.add_column(sa.Column("min_detect_px", sa.Integer(), nullable=False, server_default="32"))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.drop_column("min_detect_px")
        batch_op.drop_column("analysis_scale")
