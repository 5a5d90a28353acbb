"""Requests without a link are matched by a background job: when it matched each one.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("withdrawal_requests") as batch_op:
        # NULL: the matching job has not run yet (the request is recorded, nobody suspended).
        batch_op.add_column(sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True))
    # Requests made before were matched when they were received.
    op.execute("UPDATE withdrawal_requests SET matched_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("withdrawal_requests") as batch_op:
        batch_op.drop_column("matched_at")
