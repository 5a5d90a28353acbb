"""Upload batches of the web app and the API: which photos were uploaded together, and their jobs.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_batches")),
    )
    op.create_table(
        "upload_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=True),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["upload_batches.id"],
            name=op.f("fk_upload_items_batch_id_upload_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name=op.f("fk_upload_items_photo_id_photos"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_items")),
    )
    with op.batch_alter_table("upload_items") as batch_op:
        batch_op.create_index(batch_op.f("ix_upload_items_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_upload_items_photo_id"), ["photo_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("upload_items") as batch_op:
        batch_op.drop_index(batch_op.f("ix_upload_items_photo_id"))
        batch_op.drop_index(batch_op.f("ix_upload_items_batch_id"))
    op.drop_table("upload_items")
    op.drop_table("upload_batches")
