"""ORM tables. The migrations under migrations/ are the source of truth for the schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID_LENGTH = 256

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite has no 64-bit identity type distinct from INTEGER PRIMARY KEY (its rowid).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on both backends (SQLite stores them naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None and dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class Item(TimestampMixin, Base):
    __tablename__ = "items"

    item_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    title: Mapped[str | None] = mapped_column(String(1024))
    category: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
    brand: Mapped[str | None] = mapped_column(String(ID_LENGTH), index=True)
    price: Mapped[float | None] = mapped_column(Float)
    tags: Mapped[list[str] | None] = mapped_column(JSONType)
    kind: Mapped[str] = mapped_column(String(16), server_default="product")
    available: Mapped[bool] = mapped_column(Boolean, server_default=true())


class User(TimestampMixin, Base):
    __tablename__ = "users"

    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class Campaign(TimestampMixin, Base):
    __tablename__ = "campaigns"

    campaign_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    brand: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    category: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    item_ids: Mapped[list[str] | None] = mapped_column(JSONType)
    bid: Mapped[float | None] = mapped_column(Float)
    budget: Mapped[float | None] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, server_default=true())
    promotion: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class Event(Base):
    """Append-only behaviour log; the ingest path never updates a row."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(ID_LENGTH), unique=True)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    item_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    campaign_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    type: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    quantity: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[float | None] = mapped_column(Float)
    value: Mapped[float | None] = mapped_column(Float)
    dwell_seconds: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str | None] = mapped_column(String(64))
    context: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())

    __table_args__ = (
        Index("ix_events_user_id_ts", "user_id", "ts"),
        Index("ix_events_item_id_ts", "item_id", "ts"),
        Index("ix_events_type_ts", "type", "ts"),
        # Ad events are a small share of the log: a partial index keeps ingest cheap.
        Index(
            "ix_events_campaign_id_ts",
            "campaign_id",
            "ts",
            postgresql_where=text("campaign_id IS NOT NULL"),
            sqlite_where=text("campaign_id IS NOT NULL"),
        ),
    )


EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "item_id",
    "campaign_id",
    "type",
    "ts",
    "quantity",
    "amount",
    "value",
    "dwell_seconds",
    "source",
    "context",
)


class ModelRun(Base):
    """One rebuild of the recommendation models: the model registry."""

    __tablename__ = "model_runs"

    version: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    # training | live | rejected | failed | retired
    status: Mapped[str] = mapped_column(String(16), index=True)
    trigger: Mapped[str] = mapped_column(String(32), server_default="schedule")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data_start: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    detail: Mapped[str | None] = mapped_column(String(2000))


class Job(Base):
    """Work requested through the API (e.g. POST /v1/admin/rebuild) and picked up by a worker."""

    __tablename__ = "jobs"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued|running|done|failed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class DirtyUser(Base):
    """Shoppers waiting for a real-time update while the cache was unreachable."""

    __tablename__ = "dirty_users"

    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    marked_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class UserProfile(Base):
    """A shopper's profile and predictions as of the last rebuild (one row per known user)."""

    __tablename__ = "user_profiles"

    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    segment: Mapped[str] = mapped_column(String(32))
    features: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    predictions: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    version: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())

    # Segment pages are read in user_id order: GET /v1/segments/{name}/users?cursor=
    __table_args__ = (Index("ix_user_profiles_segment_user_id", "segment", "user_id"),)


# --- marketing evaluation (experiments, analytics, offline report) -------------------------


class Experiment(Base):
    """An A/B experiment on a surface; assignment is a hash of (name, user), never stored."""

    __tablename__ = "experiments"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    surface: Mapped[str] = mapped_column(String(32), index=True)
    # [{name, weight, strategy?, params?}, ...]; the first is the control
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    holdout: Mapped[float] = mapped_column(Float, server_default=text("0"))
    primary_metric: Mapped[str] = mapped_column(String(32), server_default="ctr")
    start_at: Mapped[datetime] = mapped_column(UTCDateTime)
    end_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class ServedList(Base):
    """One served recommendation list, written by the worker from the API's served-list stream."""

    __tablename__ = "served_lists"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    item_ids: Mapped[list[str]] = mapped_column(JSONType)
    strategy: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[int | None] = mapped_column(BigInteger)
    experiment: Mapped[str | None] = mapped_column(String(128))
    variant: Mapped[str | None] = mapped_column(String(128))
    served_at: Mapped[datetime] = mapped_column(UTCDateTime)

    # Attribution looks up a purchaser's lists served in the window before the purchase.
    __table_args__ = (Index("ix_served_lists_user_id_served_at", "user_id", "served_at"),)


class RecHourly(Base):
    """Recommendation feedback rolled up per hour and serving group (analytics reads this)."""

    __tablename__ = "rec_hourly"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    strategy: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_version: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # 0: unknown
    experiment: Mapped[str] = mapped_column(String(128), primary_key=True)  # "": none
    variant: Mapped[str] = mapped_column(String(128), primary_key=True)  # "": none
    impressions: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    clicks: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    conversions: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    revenue: Mapped[float] = mapped_column(Float, server_default=text("0"))


class CampaignHourly(Base):
    """Ad feedback rolled up per hour and campaign (campaign analytics reads this)."""

    __tablename__ = "campaign_hourly"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    impressions: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    clicks: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    conversions: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    revenue: Mapped[float] = mapped_column(Float, server_default=text("0"))


class ExperimentUser(Base):
    """Per experiment and user: exposure and outcome totals (experiment results read this)."""

    __tablename__ = "experiment_users"

    experiment: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(128))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lists: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    impressions: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    clicks: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    conversions: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    revenue: Mapped[float] = mapped_column(Float, server_default=text("0"))


class AnalyticsCursor(Base):
    """How far the analytics roll-ups have read the events log (last folded events.id)."""

    __tablename__ = "analytics_cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class EvaluationReport(Base):
    """An offline evaluation report (`brandlift evaluate`); the newest is on the dashboard."""

    __tablename__ = "evaluation_reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    html: Mapped[str] = mapped_column(Text)
