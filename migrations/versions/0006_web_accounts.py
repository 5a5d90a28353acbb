"""Web accounts (usernames, one-time passwords, hashed API tokens), withdrawal links and requests.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.add_column(sa.Column("username", sa.String(length=120), nullable=False))
        batch_op.add_column(
            sa.Column("must_change_password", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch_op.add_column(sa.Column("api_token_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("api_token_created_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.alter_column("email", existing_type=sa.String(length=254), nullable=True)
        batch_op.create_unique_constraint(batch_op.f("uq_staff_users_username"), ["username"])
        batch_op.create_unique_constraint(batch_op.f("uq_staff_users_api_token_hash"), ["api_token_hash"])
    op.create_table(
        "withdrawal_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_withdrawal_links_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawal_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_withdrawal_links_token_hash")),
    )
    with op.batch_alter_table("withdrawal_links") as batch_op:
        batch_op.create_index(batch_op.f("ix_withdrawal_links_person_id"), ["person_id"], unique=False)
    op.create_table(
        "withdrawal_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("claimed_name", sa.String(length=200), nullable=True),
        sa.Column("claimed_date_of_birth", sa.Date(), nullable=True),
        sa.Column("relationship_to_person", sa.String(length=40), nullable=True),
        sa.Column("contact_email", sa.String(length=254), nullable=True),
        sa.Column("person_ids", sa.JSON(), nullable=False),
        sa.Column("record_ids", sa.JSON(), nullable=False),
        sa.Column("decided_by", sa.String(length=120), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_withdrawal_requests")),
        sa.UniqueConstraint("reference", name=op.f("uq_withdrawal_requests_reference")),
    )
    with op.batch_alter_table("withdrawal_requests") as batch_op:
        batch_op.create_index(batch_op.f("ix_withdrawal_requests_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("withdrawal_requests") as batch_op:
        batch_op.drop_index(batch_op.f("ix_withdrawal_requests_status"))
    op.drop_table("withdrawal_requests")
    with op.batch_alter_table("withdrawal_links") as batch_op:
        batch_op.drop_index(batch_op.f("ix_withdrawal_links_person_id"))
    op.drop_table("withdrawal_links")
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_staff_users_api_token_hash"), type_="unique")
        batch_op.drop_constraint(batch_op.f("uq_staff_users_username"), type_="unique")
        batch_op.alter_column("email", existing_type=sa.String(length=254), nullable=False)
        batch_op.drop_column("last_login_at")
        batch_op.drop_column("api_token_created_at")
        batch_op.drop_column("api_token_hash")
        batch_op.drop_column("must_change_password")
        batch_op.drop_column("username")
