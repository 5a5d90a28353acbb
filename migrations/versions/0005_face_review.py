"""A reviewer's identification of a face by eye: the resolution and the person named.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("faces") as batch_op:
        batch_op.add_column(sa.Column("review_resolution", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("reviewed_person_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_faces_reviewed_person_id_people"),
            "people",
            ["reviewed_person_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("faces") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_faces_reviewed_person_id_people"), type_="foreignkey")
        batch_op.drop_column("reviewed_person_id")
        batch_op.drop_column("review_resolution")
