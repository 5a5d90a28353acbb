"""Holds that keep a photo from erasure and purge, the size each copy was published at, held
photos in purge reports.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "photo_holds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("held_by", sa.String(length=120), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("released_by", sa.String(length=120), nullable=True),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_photo_holds_photo_id", "photo_holds", ["photo_id"])
    with op.batch_alter_table("publications") as batch_op:
        # The longest edge the copy was made at (0: full size); NULL for copies published before.
        batch_op.add_column(sa.Column("long_edge", sa.Integer(), nullable=True))
    with op.batch_alter_table("purge_reports") as batch_op:
        batch_op.add_column(sa.Column("held", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("purge_reports") as batch_op:
        batch_op.drop_column("held")
    with op.batch_alter_table("publications") as batch_op:
        batch_op.drop_column("long_edge")
    op.drop_index("ix_photo_holds_photo_id", table_name="photo_holds")
    op.drop_table("photo_holds")
