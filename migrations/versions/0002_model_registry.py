"""Model registry (model_runs) and the jobs queue used by on-demand rebuilds.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models import BigId, JSONType, UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_runs",
        sa.Column("version", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("trigger", sa.String(32), server_default="schedule", nullable=False),
        sa.Column("started_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("data_start", UTCDateTime()),
        sa.Column("data_end", UTCDateTime()),
        sa.Column("params", JSONType),
        sa.Column("metrics", JSONType),
        sa.Column("detail", sa.String(2000)),
    )
    op.create_index("ix_model_runs_status", "model_runs", ["status"])
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("result", JSONType),
    )
    op.create_index("ix_jobs_status", "jobs", ["status"])


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_table("model_runs")
