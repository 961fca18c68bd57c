"""Test fixtures: a fresh database per session (Postgres + Redis, or the SQLite path).

BRANDLIFT_TEST_BACKEND=postgres (default) uses real Postgres and Redis; =sqlite runs the
embedded default (SQLite file, in-process cache). Tests marked `postgres_only` are skipped
on the SQLite path.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy.engine import make_url

from app.config import Settings
from app.main import create_app
from app.migrate import upgrade

# Shared fixtures that several test folders use (a trained model on a planted world).
pytest_plugins = ["tests.live_world"]

BACKEND = os.environ.get("BRANDLIFT_TEST_BACKEND", "postgres")
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# One Redis database per test process (1-15) so parallel runs do not flush each other.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", f"redis://127.0.0.1:6379/{os.getpid() % 15 + 1}")

KEYS = {
    "ingest": "test-ingest-key",
    "read": "test-read-key",
    "both": "test-both-key",
    "admin": "test-admin-key",
}
API_KEYS = (
    f"{KEYS['ingest']}:ingest,{KEYS['read']}:read,{KEYS['both']}:ingest+read,{KEYS['admin']}:admin"
)
INGEST = {"X-API-Key": KEYS["ingest"]}
READ = {"X-API-Key": KEYS["read"]}
ADMIN = {"X-API-Key": KEYS["admin"]}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if BACKEND != "sqlite":
        return
    skip = pytest.mark.skip(reason="needs Postgres and Redis")
    for item in items:
        if "postgres_only" in item.keywords:
            item.add_marker(skip)


def unique(prefix: str = "t") -> str:
    """A fresh id so tests never see each other's rows."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def _create_pg_database() -> str:
    name = f"brandlift_test_{os.getpid()}"
    admin = make_url(PG_ADMIN_URL)
    conn = await asyncpg.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username, database=admin.database
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin.set(database=name).render_as_string(hide_password=False)


async def _drop_pg_database(url: str) -> None:
    admin = make_url(PG_ADMIN_URL)
    conn = await asyncpg.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username, database=admin.database
    )
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if BACKEND == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "brandlift.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        return
    url = asyncio.run(_create_pg_database())
    upgrade(url)
    yield url
    asyncio.run(_drop_pg_database(url))


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    if BACKEND == "sqlite":
        return None
    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    client.close()
    return TEST_REDIS_URL


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str | None) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        brandlift_api_keys=API_KEYS,
        log_json=False,
        log_level="WARNING",
        run_worker_in_process=False,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
