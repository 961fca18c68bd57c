"""Foundation: items, users, campaigns and the append-only events log.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models import BigId, JSONType, UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(256)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("item_id", ID, primary_key=True),
        sa.Column("title", sa.String(1024)),
        sa.Column("category", ID),
        sa.Column("brand", ID),
        sa.Column("price", sa.Float()),
        sa.Column("tags", JSONType),
        sa.Column("kind", sa.String(16), server_default="product", nullable=False),
        sa.Column("available", sa.Boolean(), server_default=sa.true(), nullable=False),
        *_timestamps(),
    )
    op.create_index("ix_items_category", "items", ["category"])
    op.create_index("ix_items_brand", "items", ["brand"])

    op.create_table(
        "users",
        sa.Column("user_id", ID, primary_key=True),
        sa.Column("attributes", JSONType),
        *_timestamps(),
    )

    op.create_table(
        "campaigns",
        sa.Column("campaign_id", ID, primary_key=True),
        sa.Column("brand", ID),
        sa.Column("category", ID),
        sa.Column("item_ids", JSONType),
        sa.Column("bid", sa.Float()),
        sa.Column("budget", sa.Float()),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("promotion", JSONType),
        *_timestamps(),
    )

    # Append-only: the ingest path only INSERTs. A surrogate bigint id gives the worker a
    # cheap "everything since id N" cursor; event_id is the client's idempotency key.
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", ID, nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("item_id", ID),
        sa.Column("campaign_id", ID),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("ts", UTCDateTime(), nullable=False),
        sa.Column("quantity", sa.Integer()),
        sa.Column("amount", sa.Float()),
        sa.Column("value", sa.Float()),
        sa.Column("dwell_seconds", sa.Float()),
        sa.Column("source", sa.String(64)),
        sa.Column("context", JSONType),
        sa.Column("received_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
    )
    op.create_index("ix_events_user_id_ts", "events", ["user_id", "ts"])
    op.create_index("ix_events_item_id_ts", "events", ["item_id", "ts"])
    op.create_index("ix_events_type_ts", "events", ["type", "ts"])
    op.create_index(
        "ix_events_campaign_id_ts",
        "events",
        ["campaign_id", "ts"],
        postgresql_where=sa.text("campaign_id IS NOT NULL"),
        sqlite_where=sa.text("campaign_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("events")
    op.drop_table("campaigns")
    op.drop_table("users")
    op.drop_table("items")
