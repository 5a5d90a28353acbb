"""Scrubbed captions on photos; covered faces.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch_op:
        batch_op.add_column(sa.Column("caption", sa.Text(), nullable=True))
    with op.batch_alter_table("faces") as batch_op:
        batch_op.add_column(sa.Column("covered", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("faces") as batch_op:
        batch_op.drop_column("covered")
    with op.batch_alter_table("photos") as batch_op:
        batch_op.drop_column("caption")
