"""User profiles: segment, features and predictions per shopper, rebuilt by the worker.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.models import JSONType, UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_profiles",
        sa.Column("user_id", sa.String(256), primary_key=True),
        sa.Column("segment", sa.String(32), nullable=False),
        sa.Column("features", JSONType),
        sa.Column("predictions", JSONType),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=sa.func.now(), nullable=False),
    )
    # Segment pages walk user ids in order from a cursor: one index range scan per page.
    op.create_index("ix_user_profiles_segment_user_id", "user_profiles", ["segment", "user_id"])


def downgrade() -> None:
    op.drop_table("user_profiles")
