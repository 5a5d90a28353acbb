"""The name each photo was uploaded under (for the staff who uploaded it), and why a photo that
could not be read was refused (a reason code and plain words).

Revision ID: 0015
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("upload_items") as batch_op:
        batch_op.add_column(sa.Column("file_name", sa.String(length=255), nullable=True))
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.add_column(sa.Column("error_code", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch_op:
        batch_op.drop_column("error")
        batch_op.drop_column("error_code")
    with op.batch_alter_table("upload_items") as batch_op:
        batch_op.drop_column("file_name")
