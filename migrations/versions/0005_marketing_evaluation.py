"""Marketing evaluation: experiments, served lists, feedback roll-ups, evaluation reports.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models import BigId, JSONType, UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = 256


def _counter(name: str, type_: sa.types.TypeEngine | type = sa.BigInteger) -> sa.Column:
    return sa.Column(name, type_, server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("surface", sa.String(32), nullable=False),
        sa.Column("variants", JSONType, nullable=False),
        sa.Column("holdout", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("primary_metric", sa.String(32), server_default="ctr", nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime()),
        sa.Column("stopped_at", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_experiments_surface", "experiments", ["surface"])
    op.create_table(
        "served_lists",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(ID), nullable=False),
        sa.Column("item_ids", JSONType, nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("model_version", sa.BigInteger()),
        sa.Column("experiment", sa.String(128)),
        sa.Column("variant", sa.String(128)),
        sa.Column("served_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_served_lists_user_id_served_at", "served_lists", ["user_id", "served_at"])
    op.create_table(
        "rec_hourly",
        sa.Column("hour", UTCDateTime(), primary_key=True),
        sa.Column("strategy", sa.String(32), primary_key=True),
        sa.Column("model_version", sa.BigInteger(), primary_key=True),
        sa.Column("experiment", sa.String(128), primary_key=True),
        sa.Column("variant", sa.String(128), primary_key=True),
        _counter("impressions"),
        _counter("clicks"),
        _counter("conversions"),
        _counter("revenue", sa.Float),
    )
    op.create_table(
        "campaign_hourly",
        sa.Column("hour", UTCDateTime(), primary_key=True),
        sa.Column("campaign_id", sa.String(ID), primary_key=True),
        _counter("impressions"),
        _counter("clicks"),
        _counter("conversions"),
        _counter("revenue", sa.Float),
    )
    op.create_table(
        "experiment_users",
        sa.Column("experiment", sa.String(128), primary_key=True),
        sa.Column("user_id", sa.String(ID), primary_key=True),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        _counter("lists", sa.Integer),
        _counter("impressions", sa.Integer),
        _counter("clicks", sa.Integer),
        _counter("conversions", sa.Integer),
        _counter("revenue", sa.Float),
    )
    op.create_table(
        "analytics_cursor",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("last_id", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "evaluation_reports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("summary", JSONType),
        sa.Column("html", sa.Text(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("evaluation_reports")
    op.drop_table("analytics_cursor")
    op.drop_table("experiment_users")
    op.drop_table("campaign_hourly")
    op.drop_table("rec_hourly")
    op.drop_table("served_lists")
    op.drop_table("experiments")
