"""Migrations: upgrade head, downgrade base, upgrade head again, on Postgres and on SQLite."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.engine import make_url

from app.db import make_engine
from app.migrate import downgrade, upgrade
from app.models import Base
from tests.conftest import PG_ADMIN_URL

TABLES = set(Base.metadata.tables)
EVENT_INDEXES = {"ix_events_user_id_ts", "ix_events_item_id_ts", "ix_events_type_ts"}


def _snapshot(conn: Connection) -> dict[str, Any]:
    inspector = inspect(conn)
    tables = set(inspector.get_table_names())
    indexes = {i["name"] for i in inspector.get_indexes("events")} if "events" in tables else set()
    unique = (
        {tuple(u["column_names"]) for u in inspector.get_unique_constraints("events")}
        | {tuple(i["column_names"]) for i in inspector.get_indexes("events") if i["unique"]}
        if "events" in tables
        else set()
    )
    version = None
    if "alembic_version" in tables:
        version = MigrationContext.configure(conn).get_current_revision()
    diff = compare_metadata(MigrationContext.configure(conn), Base.metadata) if tables else []
    return {
        "tables": tables,
        "indexes": indexes,
        "unique": unique,
        "version": version,
        "diff": diff,
    }


def snapshot(url: str) -> dict[str, Any]:
    """Tables, events indexes, revision and model drift, read through SQLAlchemy."""

    async def read() -> dict[str, Any]:
        engine = make_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(_snapshot)
        finally:
            await engine.dispose()

    return asyncio.run(read())


def assert_round_trip(url: str) -> None:
    assert snapshot(url)["tables"] == set()
    for attempt in range(2):
        upgrade(url)
        state = snapshot(url)
        assert state["tables"] >= TABLES | {"alembic_version"}, attempt
        assert state["version"] is not None
        assert state["indexes"] >= EVENT_INDEXES
        assert ("event_id",) in state["unique"]  # idempotent ingest relies on it
        # The migrated schema is what the ORM models describe (no missing table or column).
        assert state["diff"] == [], state["diff"]
        upgrade(url)  # a second upgrade to head is a no-op
        downgrade(url, "base")
        state = snapshot(url)
        assert state["tables"] - {"alembic_version"} == set()
        assert state["version"] is None
    upgrade(url)
    assert snapshot(url)["tables"] >= TABLES


def test_sqlite_up_down_up(tmp_path: Path) -> None:
    assert_round_trip(f"sqlite:///{tmp_path / 'fresh' / 'brandlift.db'}")


async def _admin(sql: str) -> None:
    admin = make_url(PG_ADMIN_URL)
    conn = await asyncpg.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username, database=admin.database
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def fresh_postgres() -> Iterator[str]:
    name = f"brandlift_migrations_{os.getpid()}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.postgres_only
def test_postgres_up_down_up(fresh_postgres: str) -> None:
    assert_round_trip(fresh_postgres)
