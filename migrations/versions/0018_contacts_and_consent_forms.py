"""People's contacts, personal links to the online consent form, and reminders sent.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "person_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("relationship_to_person", sa.String(length=40), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_person_contacts_person_id_people"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person_contacts")),
        sa.UniqueConstraint("person_id", "email", name=op.f("uq_person_contacts_person_id_email")),
    )
    op.create_index("ix_person_contacts_person_id", "person_contacts", ["person_id"])
    op.create_table(
        "consent_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("biometric", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answers", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name=op.f("fk_consent_links_person_id_people"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["person_contacts.id"],
            name=op.f("fk_consent_links_contact_id_person_contacts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_consent_links_token_hash")),
    )
    op.create_index("ix_consent_links_person_id", "consent_links", ["person_id"])
    op.create_table(
        "consent_reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("deadline", sa.String(length=100), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["people.id"],
            name=op.f("fk_consent_reminders_person_id_people"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_reminders")),
        sa.UniqueConstraint(
            "person_id",
            "deadline",
            "due_on",
            "days",
            name=op.f("uq_consent_reminders_person_id_deadline_due_on_days"),
        ),
    )
    op.create_index("ix_consent_reminders_person_id", "consent_reminders", ["person_id"])


def downgrade() -> None:
    op.drop_index("ix_consent_reminders_person_id", table_name="consent_reminders")
    op.drop_table("consent_reminders")
    op.drop_index("ix_consent_links_person_id", table_name="consent_links")
    op.drop_table("consent_links")
    op.drop_index("ix_person_contacts_person_id", table_name="person_contacts")
    op.drop_table("person_contacts")
