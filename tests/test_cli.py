"""The `brandlift` command line."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from app.cli import cli
from app.config import get_settings
from app.db import make_engine

runner = CliRunner()


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    """Commands read settings once per process; tests change the environment between them."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for command in ("migrate", "serve", "worker", "demo"):
        assert command in result.output


def test_no_arguments_shows_help() -> None:
    result = runner.invoke(cli, [])
    assert "migrate" in result.output and "serve" in result.output


def test_serve_takes_a_port() -> None:
    result = runner.invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--workers" in result.output


def test_unknown_command_fails() -> None:
    assert runner.invoke(cli, ["frobnicate"]).exit_code != 0


def test_migrate_creates_the_schema_from_database_url(tmp_path: Path) -> None:
    path = tmp_path / "cli" / "brandlift.db"
    url = f"sqlite:///{path}"
    result = runner.invoke(cli, ["migrate"], env={"DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert "migrated" in result.output

    async def tables() -> set[str]:
        engine = make_engine(url)
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        await engine.dispose()
        return names

    assert {"items", "users", "campaigns", "events"} <= asyncio.run(tables())
