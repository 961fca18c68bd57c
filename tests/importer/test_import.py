"""`brandlift import`: good rows stored through the API's rules, bad rows in the rejects file,
re-runs store nothing twice, RetailRocket-style files, Parquet, catalog kinds."""

from __future__ import annotations

import asyncio
import csv
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import Result
from fastapi import FastAPI
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings, get_settings
from app.importer import service as import_service
from app.models import Campaign, Event, Item, User
from app.recommendations.live_view import UNAVAILABLE_KEY
from tests.conftest import READ, unique

runner = CliRunner()
SUMMARY = re.compile(
    r"(\d[\d,]*) rows read, (\d[\d,]*) stored, (\d[\d,]*) already present, (\d[\d,]*) rejected"
)


async def run_cli(settings: Settings, *args: str) -> Result:
    """The real command, in a thread (it runs its own event loop), against the test database."""
    env = {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "LOG_LEVEL": "WARNING",
    }

    def call() -> Result:
        get_settings.cache_clear()
        try:
            return runner.invoke(cli, ["import", *args], env=env)
        finally:
            get_settings.cache_clear()

    return await asyncio.to_thread(call)


def counts(result: Result) -> tuple[int, int, int, int]:
    assert result.exit_code == 0, result.output
    found = SUMMARY.search(result.stdout)
    assert found, result.stdout
    read, stored, present, rejected = (int(g.replace(",", "")) for g in found.groups())
    return read, stored, present, rejected


def rejects(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def stored_events(app: FastAPI, users: list[str]) -> list[Event]:
    async with app.state.ctx.sessions() as session:
        rows = await session.scalars(select(Event).where(Event.user_id.in_(users)))
        return list(rows)


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


async def test_good_rows_stored_bad_rows_rejected_and_rerun_is_idempotent(
    tmp_path: Path, settings: Settings, app: FastAPI
) -> None:
    shopper, other = unique("imp-u"), unique("imp-u")
    item = unique("imp-i")
    now = datetime.now(UTC).replace(microsecond=0)
    good = [
        [unique("e"), shopper, "view", item, (now - timedelta(hours=2)).isoformat(), "", ""],
        [
            unique("e"),
            shopper,
            "purchase",
            item,
            (now - timedelta(hours=1)).isoformat(),
            "2",
            "19.5",
        ],
        ["", other, "add_to_cart", item, (now - timedelta(minutes=5)).isoformat(), "1", ""],
        ["", other, "view", item, (now - timedelta(minutes=4)).isoformat(), "", ""],
    ]
    bad = [
        [unique("e"), shopper, "teleport", item, now.isoformat(), "", ""],  # unknown type
        [unique("e"), shopper, "view", "", now.isoformat(), "", ""],  # item event, no item
        [unique("e"), shopper, "purchase", item, now.isoformat(), "-1", ""],  # negative qty
        [unique("e"), shopper, "view", item, (now + timedelta(days=3)).isoformat(), "", ""],
        [unique("e"), shopper, "view", item, "2026-01-01 10:00:00", "", ""],  # no offset
        [unique("e"), "x" * 300, "view", item, now.isoformat(), "", ""],  # id too long
    ]
    header = ["event_id", "shopper", "type", "item_id", "timestamp", "quantity", "amount"]
    path = write_csv(tmp_path / "events.csv", header, good + bad)
    rejected_path = tmp_path / "out" / "rejects.jsonl"
    args = ["events", str(path), "--map", "shopper=user_id", "--rejects", str(rejected_path)]

    first = counts(await run_cli(settings, *args))
    assert first == (10, 4, 0, 6)
    lines = rejects(rejected_path)
    assert [r["record"] for r in lines] == [5, 6, 7, 8, 9, 10]
    reasons = [r["reason"] for r in lines]
    assert reasons[0].startswith("type:")
    assert reasons[1].startswith("item_id:") and "required" in reasons[1]
    assert reasons[2].startswith("quantity:")
    assert "future" in reasons[3]
    assert reasons[4].startswith("timestamp:") and "timezone" in reasons[4].lower()
    assert reasons[5].startswith("user_id (column shopper):")
    assert lines[0]["row"]["type"] == "teleport"  # the row as it stood in the file

    events = await stored_events(app, [shopper, other])
    assert len(events) == 4
    purchase = next(e for e in events if e.type == "purchase")
    assert (purchase.quantity, purchase.amount, purchase.item_id) == (2, 19.5, item)
    derived = [e.event_id for e in events if e.user_id == other]
    assert all(e.startswith("imp-") for e in derived) and len(set(derived)) == 2
    async with app.state.ctx.sessions() as session:
        assert await session.get(User, other) is not None  # bare rows, as through the API
        assert await session.get(Item, item) is not None

    again = counts(await run_cli(settings, *args))
    assert again == (10, 0, 4, 6)
    assert len(await stored_events(app, [shopper, other])) == 4
    assert len(rejects(rejected_path)) == 6  # rewritten, not appended


async def test_retailrocket_file(tmp_path: Path, settings: Settings, app: FastAPI) -> None:
    visitor, buyer = str(900_000_000 + int(unique("")[-6:], 16)), unique("rr")
    item = unique("rr-item")
    stamp = 1_433_221_332_117  # milliseconds, as RetailRocket writes them
    rows = [
        [stamp, visitor, "view", item, ""],
        [stamp + 1000, visitor, "addtocart", item, ""],
        [stamp + 2000, buyer, "transaction", item, "4000"],
        [stamp + 2000, buyer, "transaction", item, "4000"],  # the same row twice: one event
        [stamp, buyer, "rate", item, ""],
        ["yesterday", buyer, "view", item, ""],
    ]
    path = write_csv(
        tmp_path / "events.csv",
        ["timestamp", "visitorid", "event", "itemid", "transactionid"],
        rows,
    )
    rejected = tmp_path / "rr.rejects.jsonl"
    args = ["events", str(path), "--format", "retailrocket", "--rejects", str(rejected)]
    assert counts(await run_cli(settings, *args)) == (6, 3, 1, 2)
    events = sorted(await stored_events(app, [visitor, buyer]), key=lambda e: e.ts)
    assert [e.type for e in events] == ["view", "add_to_cart", "purchase"]
    assert events[0].ts == datetime(2015, 6, 2, 5, 2, 12, 117000, tzinfo=UTC)
    assert events[2].context == {"transaction_id": 4000}
    assert {r["reason"].split(" ")[0] for r in rejects(rejected)} == {"type", "timestamp:"}
    assert counts(await run_cli(settings, *args)) == (6, 0, 4, 2)


async def test_parquet_and_json_lines(tmp_path: Path, settings: Settings, app: FastAPI) -> None:
    user = unique("pq")
    when = datetime.now(UTC) - timedelta(hours=3)
    table = pa.table(
        {
            "visitor": [user, user, user],
            "event": ["view", "click", "purchase"],
            "item": ["pq-1", "pq-2", None],
            "ts": [when, when + timedelta(minutes=1), when + timedelta(minutes=2)],
        }
    )
    parquet = tmp_path / "events.parquet"
    pq.write_table(table, parquet)
    result = await run_cli(
        settings,
        "events",
        str(parquet),
        "--map",
        "visitor=user_id",
        "--map",
        "event=type",
        "--map",
        "item=item_id",
        "--map",
        "ts=timestamp",
        "--rejects",
        str(tmp_path / "pq.rejects"),
    )
    assert counts(result) == (3, 2, 0, 1)
    assert {e.type for e in await stored_events(app, [user])} == {"view", "click"}

    lines = tmp_path / "users.jsonl"
    people = [unique("jl"), unique("jl")]
    lines.write_bytes(
        b"\n".join(
            [
                orjson.dumps({"user_id": people[0], "attributes": {"tier": "gold"}}),
                b"{not json",
                orjson.dumps({"user_id": people[1], "age": 41}),
                b"",
                orjson.dumps(["a", "list"]),
            ]
        )
    )
    rejected = tmp_path / "users.rejects"
    assert counts(await run_cli(settings, "users", str(lines), "--rejects", str(rejected))) == (
        4,
        2,
        0,
        2,
    )
    assert {r["record"] for r in rejects(rejected)} == {2, 4}
    async with app.state.ctx.sessions() as session:
        first, second = [await session.get(User, p) for p in people]
    assert first is not None and first.attributes == {"tier": "gold"}
    assert second is not None and second.attributes == {"age": 41}


async def test_catalog_csv_items_and_campaigns(
    tmp_path: Path, settings: Settings, app: FastAPI, client: httpx.AsyncClient
) -> None:
    gone, kept = unique("it"), unique("it")
    items = write_csv(
        tmp_path / "items.csv",
        ["item_id", "title", "category", "brand", "price", "tags", "available"],
        [
            [gone, "Old boot", "shoes", "stride", "49.5", "leather|winter", "false"],
            [kept, "Trail runner", "shoes", "stride", "89.9", '["trail"]', "true"],
            [unique("it"), "Broken", "shoes", "stride", "-3", "", ""],
        ],
    )
    rejected = tmp_path / "items.rejects"
    assert counts(await run_cli(settings, "items", str(items), "--rejects", str(rejected))) == (
        3,
        2,
        0,
        1,
    )
    assert rejects(rejected)[0]["reason"].startswith("price:")
    body = (await client.get(f"/v1/items/{gone}", headers=READ)).json()
    assert body["tags"] == ["leather", "winter"] and body["available"] is False
    assert body["price"] == 49.5
    if settings.redis_url:  # the shared cache hears that the item is gone, as with the API
        assert await app.state.ctx.cache.run(lambda r: r.sismember(UNAVAILABLE_KEY, gone))

    campaign = unique("cmp")
    campaigns = write_csv(
        tmp_path / "campaigns.csv",
        ["campaign_id", "brand", "item_ids", "bid", "active"],
        [[campaign, "stride", f"{gone}|{kept}", "0.4", "true"]],
    )
    assert counts(await run_cli(settings, "campaigns", str(campaigns))) == (1, 1, 0, 0)
    async with app.state.ctx.sessions() as session:
        row = await session.get(Campaign, campaign)
        total = await session.scalar(select(func.count()).select_from(Campaign))
    assert row is not None and row.item_ids == [gone, kept] and row.bid == 0.4
    assert total


async def test_usage_errors(tmp_path: Path, settings: Settings) -> None:
    path = write_csv(tmp_path / "x.csv", ["a"], [["1"]])
    assert (await run_cli(settings, "orders", str(path))).exit_code == 2
    assert (await run_cli(settings, "events", str(tmp_path / "missing.csv"))).exit_code == 2
    odd = tmp_path / "data.xyz"
    odd.write_text("a\n")
    assert (await run_cli(settings, "events", str(odd))).exit_code == 2
    assert (await run_cli(settings, "items", str(path), "--format", "retailrocket")).exit_code == 2
    assert (await run_cli(settings, "events", str(path), "--map", "oops")).exit_code == 2
    unit = await run_cli(settings, "events", str(path), "--timestamp-unit", "hours")
    assert unit.exit_code == 2


async def test_dry_run_stores_nothing(tmp_path: Path, settings: Settings, app: FastAPI) -> None:
    user = unique("dry")
    path = write_csv(
        tmp_path / "e.csv",
        ["user_id", "type", "item_id", "timestamp"],
        [[user, "view", "dry-item", datetime.now(UTC).isoformat()]],
    )
    result = await run_cli(settings, "events", str(path), "--dry-run")
    assert counts(result) == (1, 0, 0, 0) and "dry run" in result.stdout
    assert await stored_events(app, [user]) == []


async def test_catalog_rows_go_through_copy_with_the_apis_upsert_rules(
    tmp_path: Path,
    settings: Settings,
    app: FastAPI,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if settings.database_url.startswith("postgresql"):
        # On Postgres the catalog goes through COPY and a staging table, not the API's INSERT.
        def refuse(*_args: Any, **_kwargs: Any) -> None:
            raise AssertionError("the INSERT path was used on Postgres")

        monkeypatch.setattr(import_service, "upsert", refuse)
    item, user = unique("cp"), unique("cpu")
    first = tmp_path / "items.jsonl"
    lines = [
        {"item_id": item, "title": "Canvas tote", "brand": "stride", "price": 10, "tags": ["x"]},
        {"item_id": item, "price": 12.5},  # a repeat merges into the first, field by field
    ]
    first.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    assert counts(await run_cli(settings, "items", str(first))) == (2, 1, 0, 0)
    body = (await client.get(f"/v1/items/{item}", headers=READ)).json()
    assert (body["title"], body["price"], body["tags"], body["available"]) == (
        "Canvas tote",
        12.5,
        ["x"],
        True,
    )
    # Left out (or empty, or null: a file's missing value): kept, as with POST /v1/items.
    second = tmp_path / "items2.jsonl"
    second.write_bytes(orjson.dumps({"item_id": item, "title": None, "category": "bags"}))
    assert counts(await run_cli(settings, "items", str(second))) == (1, 1, 0, 0)
    again = (await client.get(f"/v1/items/{item}", headers=READ)).json()
    assert (again["title"], again["category"], again["price"]) == ("Canvas tote", "bags", 12.5)
    assert again["updated_at"] >= body["updated_at"]

    users = write_csv(tmp_path / "users.csv", ["user_id", "tier", "age"], [[user, "gold", "41"]])
    assert counts(await run_cli(settings, "users", str(users))) == (1, 1, 0, 0)
    assert counts(await run_cli(settings, "users", str(users))) == (1, 1, 0, 0)  # re-run: same
    profile = (await client.get(f"/v1/users/{user}", headers=READ)).json()
    assert profile["attributes"] == {"tier": "gold", "age": 41}
