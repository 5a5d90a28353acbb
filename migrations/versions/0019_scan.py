"""Scanning what is already public: sources, runs, findings and the placements they found.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scan_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=80), nullable=False),
        sa.Column("watch", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_sources")),
        sa.UniqueConstraint(
            "kind", "location", "channel", name=op.f("uq_scan_sources_kind_location_channel")
        ),
    )
    op.create_table(
        "scan_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("max_pages", sa.Integer(), nullable=True),
        sa.Column("max_images", sa.Integer(), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["scan_sources.id"],
            name=op.f("fk_scan_runs_source_id_scan_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_runs")),
    )
    op.create_index("ix_scan_runs_source_id", "scan_runs", ["source_id"])
    op.create_table(
        "scan_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=True),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("faces", sa.JSON(), nullable=False),
        sa.Column("places", sa.JSON(), nullable=False),
        sa.Column("tasks", sa.JSON(), nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["photo_id"], ["photos.id"], name=op.f("fk_scan_findings_photo_id_photos"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["scan_runs.id"], name=op.f("fk_scan_findings_run_id_scan_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_findings")),
    )
    op.create_index("ix_scan_findings_run_id", "scan_findings", ["run_id"])
    op.create_index("ix_scan_findings_photo_id", "scan_findings", ["photo_id"])
    op.create_table(
        "scan_placements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("publication_id", sa.Integer(), nullable=False),
        sa.Column("last_run_id", sa.Integer(), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["publication_id"],
            ["publications.id"],
            name=op.f("fk_scan_placements_publication_id_publications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["scan_sources.id"],
            name=op.f("fk_scan_placements_source_id_scan_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scan_placements")),
        sa.UniqueConstraint("publication_id", name=op.f("uq_scan_placements_publication_id")),
    )
    op.create_index("ix_scan_placements_source_id", "scan_placements", ["source_id"])


def downgrade() -> None:
    op.drop_index("ix_scan_placements_source_id", table_name="scan_placements")
    op.drop_table("scan_placements")
    op.drop_index("ix_scan_findings_photo_id", table_name="scan_findings")
    op.drop_index("ix_scan_findings_run_id", table_name="scan_findings")
    op.drop_table("scan_findings")
    op.drop_index("ix_scan_runs_source_id", table_name="scan_runs")
    op.drop_table("scan_runs")
    op.drop_table("scan_sources")
