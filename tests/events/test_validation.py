"""Batch validation: 400 / 413 / 422 as the contract says; nothing of a rejected batch is stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select

from app.config import Settings
from app.main import create_app
from app.models import Campaign, Event, Item, User
from tests.conftest import INGEST, unique

PROBLEM = "application/problem+json"
LONG_ID = "x" * 257  # ids may be at most 256 characters


def event(**overrides: Any) -> dict[str, Any]:
    base = {
        "event_id": unique("e"),
        "user_id": unique("u"),
        "type": "view",
        "timestamp": datetime.now(UTC).isoformat(),
        "item_id": unique("i"),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def in_future(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


async def stored(app: FastAPI, model: Any, column: Any, ids: list[str]) -> int:
    async with app.state.ctx.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(model).where(column.in_(ids)))
        return int(count or 0)


def problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    return body


def bad_pairs(body: dict[str, Any]) -> set[tuple[int | None, str]]:
    return {(e["index"], e["field"]) for e in body["errors"]}


@pytest.mark.parametrize(
    "content",
    [b"not json", b'[{"event_id": "e1"', b"\xff\xfe\x00", b"[1, 2,]", b"{'a': 1}"],
    ids=["text", "truncated", "binary", "trailing-comma", "single-quotes"],
)
async def test_body_that_is_not_json_is_400(client: httpx.AsyncClient, content: bytes) -> None:
    resp = await client.post("/v1/events", content=content, headers=INGEST)
    body = problem(resp, 400)
    assert "JSON" in body["detail"]


@pytest.mark.parametrize("content", [b"", b"   \n"], ids=["empty", "whitespace"])
async def test_empty_body_is_400(client: httpx.AsyncClient, content: bytes) -> None:
    problem(await client.post("/v1/events", content=content, headers=INGEST), 400)


@pytest.mark.parametrize("path", ["/v1/events", "/v1/items", "/v1/users", "/v1/campaigns"])
@pytest.mark.parametrize("payload", [{"event_id": "e"}, "text", 7, None], ids=repr)
async def test_non_array_json_is_422(client: httpx.AsyncClient, path: str, payload: Any) -> None:
    body = problem(await client.post(path, content=orjson.dumps(payload), headers=INGEST), 422)
    assert bad_pairs(body) == {(None, "body")}


async def test_over_5000_events_is_413_and_5000_is_fine(
    client: httpx.AsyncClient, app: Any
) -> None:
    now = datetime.now(UTC).isoformat()
    user = unique("u")
    batch = [
        {
            "event_id": unique("e"),
            "user_id": user,
            "type": "view",
            "item_id": "i1",
            "timestamp": now,
        }
        for _ in range(5001)
    ]
    body = problem(await client.post("/v1/events", json=batch, headers=INGEST), 413)
    assert "5000" in body["detail"]
    assert await stored(app, Event, Event.event_id, [e["event_id"] for e in batch]) == 0
    ok = await client.post("/v1/events", json=batch[:5000], headers=INGEST)
    assert ok.status_code == 202, ok.text
    assert ok.json() == {"accepted": 5000, "duplicates": 0}


@pytest.mark.parametrize(
    ("path", "key"),
    [("/v1/items", "item_id"), ("/v1/users", "user_id"), ("/v1/campaigns", "campaign_id")],
)
async def test_over_1000_catalog_rows_is_413(
    client: httpx.AsyncClient, app: Any, path: str, key: str
) -> None:
    rows = [{key: unique(key[0])} for _ in range(1001)]
    body = problem(await client.post(path, json=rows, headers=INGEST), 413)
    assert "1000" in body["detail"]
    model, column = {
        "item_id": (Item, Item.item_id),
        "user_id": (User, User.user_id),
        "campaign_id": (Campaign, Campaign.campaign_id),
    }[key]
    assert await stored(app, model, column, [r[key] for r in rows]) == 0
    ok = await client.post(path, json=rows[:1000], headers=INGEST)
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"upserted": 1000}


async def test_declared_body_over_8_mib_is_413(client: httpx.AsyncClient) -> None:
    # Whitespace inside an empty array: valid JSON, so only the byte limit can reject it.
    content = b"[" + b" " * (8 * 1024 * 1024) + b"]"
    body = problem(await client.post("/v1/events", content=content, headers=INGEST), 413)
    assert str(8 * 1024 * 1024) in body["detail"]


@pytest.fixture(scope="module")
async def small_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database with a 2000-byte body limit."""
    small = create_app(settings.model_copy(update={"max_body_bytes": 2000}))
    async with LifespanManager(small):
        transport = httpx.ASGITransport(app=small)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


def padded_batch(size: int) -> bytes:
    """One valid event padded with whitespace to exactly `size` bytes."""
    raw = orjson.dumps([event()])
    return raw[:-1] + b" " * (size - len(raw)) + b"]"


@pytest.mark.parametrize("path", ["/v1/events", "/v1/items", "/v1/users", "/v1/campaigns"])
async def test_configured_byte_limit_applies_to_every_batch_endpoint(
    small_client: httpx.AsyncClient, path: str
) -> None:
    problem(await small_client.post(path, content=b"[" + b" " * 2000 + b"]", headers=INGEST), 413)


async def test_byte_limit_boundary_and_chunked_upload(
    small_client: httpx.AsyncClient, app: Any
) -> None:
    at_limit = padded_batch(2000)
    ok = await small_client.post("/v1/events", content=at_limit, headers=INGEST)
    assert ok.status_code == 202, ok.text
    over = padded_batch(2001)
    problem(await small_client.post("/v1/events", content=over, headers=INGEST), 413)

    # Without Content-Length the limit is enforced while reading the stream.
    ev = event()
    raw = orjson.dumps([ev])
    chunked = raw[:-1] + b" " * 2500 + b"]"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(chunked), 500):
            yield chunked[start : start + 500]

    resp = await small_client.post("/v1/events", content=chunks(), headers=INGEST)
    assert resp.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in resp.request.headers
    problem(resp, 413)
    assert await stored(app, Event, Event.event_id, [ev["event_id"]]) == 0


# (overrides for one event, the field the error must name)
INVALID_EVENTS = [
    ({"event_id": LONG_ID}, "event_id"),
    ({"user_id": LONG_ID}, "user_id"),
    ({"item_id": LONG_ID}, "item_id"),
    ({"type": "ad_click", "item_id": None, "campaign_id": LONG_ID}, "campaign_id"),
    ({"event_id": ""}, "event_id"),
    ({"type": "purchase", "amount": -0.01}, "amount"),
    ({"type": "purchase", "quantity": -1}, "quantity"),
    ({"dwell_seconds": -3}, "dwell_seconds"),
    ({"timestamp": in_future(25)}, "timestamp"),
    ({"timestamp": "yesterday"}, "timestamp"),
    ({"type": "click", "item_id": None}, "item_id"),
    ({"type": "purchase", "item_id": None}, "item_id"),
    ({"type": "rec_click", "item_id": None}, "item_id"),
    ({"type": "ad_impression", "item_id": None}, "campaign_id"),
    ({"type": "ad_conversion"}, "campaign_id"),
    ({"type": "rating"}, "value"),
    ({"type": "teleport"}, "type"),
    ({"type": None}, "type"),
    ({"user_id": None}, "user_id"),
    ({"source": "s" * 65}, "source"),
    ({"context": ["not", "an", "object"]}, "context"),
]


@pytest.mark.parametrize(("overrides", "field"), INVALID_EVENTS, ids=[f for _, f in INVALID_EVENTS])
async def test_each_rule_rejects_the_batch_naming_index_and_field(
    client: httpx.AsyncClient, app: Any, overrides: dict[str, Any], field: str
) -> None:
    batch = [event(), event(), event(**overrides), event()]
    body = problem(await client.post("/v1/events", json=batch, headers=INGEST), 422)
    assert bad_pairs(body) == {(2, field)}
    assert all(e["message"] for e in body["errors"])
    assert body["error_count"] == 1
    assert await stored(app, Event, Event.event_id, [e["event_id"] for e in batch]) == 0


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
@pytest.mark.parametrize("field", ["amount", "value", "dwell_seconds"])
async def test_non_finite_numbers_are_422(
    client: httpx.AsyncClient, app: Any, literal: bytes, field: str
) -> None:
    # The rating's own value is the literal under test when field == "value".
    ev = event(type="rating") if field == "value" else event(type="rating", value=1.0)
    raw = orjson.dumps([ev])
    content = raw[:-2] + b', "' + field.encode() + b'": ' + literal + b"}]"
    body = problem(await client.post("/v1/events", content=content, headers=INGEST), 422)
    assert bad_pairs(body) == {(0, field)}
    assert await stored(app, Event, Event.event_id, [ev["event_id"]]) == 0


async def test_limits_accept_their_boundary_values(client: httpx.AsyncClient) -> None:
    batch = [
        event(event_id="e" + "x" * 255, user_id=unique("u") + "y" * 200),
        event(type="purchase", amount=0, quantity=0, dwell_seconds=0),
        event(timestamp=in_future(23)),
        event(type="rating", value=-1.5),  # ratings may use any finite scale
        event(type="ad_impression", item_id=None, campaign_id="c" * 256),
    ]
    resp = await client.post("/v1/events", json=batch, headers=INGEST)
    assert resp.status_code == 202, resp.text
    assert resp.json()["accepted"] == len(batch)


async def test_every_bad_entry_is_listed_and_nothing_is_stored(
    client: httpx.AsyncClient, app: Any
) -> None:
    good = [event() for _ in range(6)]
    batch = [
        good[0],
        event(type="rating"),
        good[1],
        event(type="purchase", amount=-5, quantity=-2),
        good[2],
        event(type="ad_click", item_id=None),
        good[3],
        event(user_id=LONG_ID, timestamp=in_future(48)),
        good[4],
        [1, 2],
        good[5],
    ]
    body = problem(await client.post("/v1/events", json=batch, headers=INGEST), 422)
    assert bad_pairs(body) == {
        (1, "value"),
        (3, "amount"),
        (3, "quantity"),
        (5, "campaign_id"),
        (7, "user_id"),
        (7, "timestamp"),
        (9, "body"),
    }
    assert body["error_count"] == 7
    assert "5 invalid entries" in body["detail"]
    # Neither the good events nor the users and items they name were stored.
    assert await stored(app, Event, Event.event_id, [e["event_id"] for e in good]) == 0
    assert await stored(app, User, User.user_id, [e["user_id"] for e in good]) == 0
    assert await stored(app, Item, Item.item_id, [e["item_id"] for e in good]) == 0


# (endpoint, id field, a bad row, the field the error must name)
INVALID_CATALOG = [
    ("/v1/items", "item_id", {"price": -1}, "price"),
    ("/v1/items", "item_id", {"kind": "service"}, "kind"),
    ("/v1/items", "item_id", {"item_id": LONG_ID}, "item_id"),
    ("/v1/items", "item_id", {"tags": "not-a-list"}, "tags"),
    ("/v1/users", "user_id", {"attributes": {"nested": {"a": 1}}}, "attributes.nested"),
    ("/v1/users", "user_id", {"user_id": LONG_ID}, "user_id"),
    ("/v1/campaigns", "campaign_id", {"bid": -0.5}, "bid"),
    ("/v1/campaigns", "campaign_id", {"budget": "lots"}, "budget"),
    ("/v1/campaigns", "campaign_id", {"promotion": {"share": 0.9}}, "promotion.share"),
]


@pytest.mark.parametrize(
    ("path", "key", "bad", "field"), INVALID_CATALOG, ids=[c[3] for c in INVALID_CATALOG]
)
async def test_invalid_catalog_row_rejects_the_batch(
    client: httpx.AsyncClient, app: Any, path: str, key: str, bad: dict[str, Any], field: str
) -> None:
    rows = [{key: unique(key[0])}, {key: unique(key[0]), **bad}, {key: unique(key[0])}]
    body = problem(await client.post(path, json=rows, headers=INGEST), 422)
    pairs = bad_pairs(body)
    assert {index for index, _ in pairs} == {1}
    assert any(f == field or f.startswith(field + ".") for _, f in pairs), pairs
    model = {"item_id": Item, "user_id": User, "campaign_id": Campaign}[key]
    column = getattr(model, key)
    assert await stored(app, model, column, [r[key] for r in rows if len(r[key]) <= 256]) == 0
