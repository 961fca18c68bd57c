"""Feedback loop: served lists recorded, purchases attributed inside the window only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from app.analytics.served import forget, served_log
from app.analytics.service import catch_up
from app.models import AnalyticsCursor, Event, ServedList
from tests.conftest import INGEST, READ, unique
from tests.experiments.feedback import (
    WINDOW_HOURS,
    create_experiment,
    iso,
    post_events,
    serve,
    soon,
    stop_experiment,
)

WIDE = {
    "from": iso(datetime.now(UTC) - timedelta(days=2)),
    "to": iso(datetime.now(UTC) + timedelta(days=2)),
}


async def report(client: httpx.AsyncClient, group_by: str = "strategy") -> dict[str, Any]:
    resp = await client.get(
        "/v1/analytics/recommendations", params={**WIDE, "group_by": group_by}, headers=READ
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def event(kind: str, user: str, item: str, minutes: float, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": unique("ev"),
        "type": kind,
        "user_id": user,
        "item_id": item,
        "timestamp": soon(minutes),
        **extra,
    }


async def test_purchase_is_attributed_inside_the_window_only(
    feedback: httpx.AsyncClient, catalog: list[str]
) -> None:
    user, other = unique("shopper"), unique("shopper")
    body = await serve(feedback, user)
    rid, items = body["request_id"], [i["item_id"] for i in body["items"]]
    assert len(items) >= 2
    before = (await report(feedback))["totals"]
    ctx = {"request_id": rid}
    outside = WINDOW_HOURS * 60 + 30
    await post_events(
        feedback,
        [
            event("rec_impression", user, items[0], 1, context=ctx),
            event("rec_click", user, items[0], 2, context=ctx),
            event("purchase", user, items[0], 10, amount=50.0),  # attributed
            event("purchase", user, items[1], outside, amount=70.0),  # after the window
            event("purchase", user, unique("not-recommended"), 12, amount=30.0),
            event("purchase", other, items[0], 15, amount=40.0),  # someone else
            event("purchase", user, items[1], -5, amount=20.0),  # before the list was served
        ],
    )
    after = (await report(feedback))["totals"]
    assert after["impressions"] - before["impressions"] == 1
    assert after["clicks"] - before["clicks"] == 1
    assert after["conversions"] - before["conversions"] == 1
    assert after["revenue"] - before["revenue"] == pytest.approx(50.0)


async def test_served_lists_land_in_the_database_with_their_group(
    feedback: httpx.AsyncClient, feedback_app: FastAPI, catalog: list[str]
) -> None:
    user = unique("shopper")
    body = await serve(feedback, user, n=4)
    await catch_up(feedback_app.state.ctx)
    async with feedback_app.state.ctx.sessions() as session:
        row = await session.get(ServedList, body["request_id"])
    assert row is not None
    assert row.user_id == user
    assert row.item_ids == [i["item_id"] for i in body["items"]]
    assert row.strategy == body["strategy"]
    assert row.model_version == body["model_version"]
    assert row.experiment is None


async def test_purchase_without_amount_is_worth_price_times_quantity(
    feedback: httpx.AsyncClient, feedback_app: FastAPI, catalog: list[str]
) -> None:
    ctx = feedback_app.state.ctx
    user, rid = unique("shopper"), unique("req")
    async with ctx.sessions() as session:  # a list served just now with two known items
        session.add(
            ServedList(
                request_id=rid,
                user_id=user,
                item_ids=catalog[:2],
                strategy="analytics-test",
                model_version=None,
                served_at=datetime.now(UTC),
            )
        )
        await session.commit()
    await post_events(feedback, [event("purchase", user, catalog[1], 3, quantity=3)])
    groups = {g["strategy"]: g for g in (await report(feedback))["groups"]}
    assert groups["analytics-test"]["conversions"] == 1
    assert groups["analytics-test"]["revenue"] == pytest.approx(3 * 11.0)  # price of item 1


async def test_group_by_variant_and_model_version(
    feedback: httpx.AsyncClient, catalog: list[str]
) -> None:
    name = unique("angroups")
    await create_experiment(
        feedback,
        {
            "name": name,
            "surface": "recommendations",
            "variants": [
                {"name": "base", "weight": 1},
                {"name": "pop", "weight": 1, "strategy": "popular"},
            ],
        },
    )
    shown: dict[str, int] = {}
    events = []
    try:
        for k in range(30):
            body = await serve(feedback, f"{name}-u{k}")
            shown[body["variant"]] = shown.get(body["variant"], 0) + 1
            item = body["items"][0]["item_id"]
            events.append(
                event(
                    "rec_impression",
                    body["user_id"],
                    item,
                    1,
                    context={"request_id": body["request_id"]},
                )
            )
        await post_events(feedback, events)
        by_variant = await report(feedback, "variant")
    finally:
        await stop_experiment(feedback, name)
    mine = {g["variant"]: g for g in by_variant["groups"] if g["experiment"] == name}
    assert {k: g["impressions"] for k, g in mine.items()} == shown
    assert all(g["experiment"] for g in by_variant["groups"])  # no-experiment lists left out
    by_version = await report(feedback, "model_version")
    assert all("model_version" in g for g in by_version["groups"])
    assert by_version["totals"]["impressions"] >= sum(shown.values())
    assert by_version["attribution_window_hours"] == WINDOW_HOURS


async def test_buffered_lists_survive_a_cache_outage(
    feedback: httpx.AsyncClient, feedback_app: FastAPI, catalog: list[str]
) -> None:
    ctx = feedback_app.state.ctx
    log = served_log(ctx)
    ctx.cache.mark_down(ConnectionError("planted outage"))
    body = await serve(feedback, unique("shopper"))
    assert await log.flush(ctx) == 0  # the cache refused: nothing sent, nothing lost
    assert len(log.buffer) >= 1
    assert await ctx.cache.ping()  # the cache is back
    await catch_up(ctx)
    async with ctx.sessions() as session:
        assert await session.get(ServedList, body["request_id"]) is not None


async def test_validation_and_auth(feedback: httpx.AsyncClient) -> None:
    url = "/v1/analytics/recommendations"
    for params, field in (
        ({"group_by": "colour"}, "group_by"),
        ({"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "from"),
        ({"from": "2030-01-01T00:00:00"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"frm": "2030-01-01T00:00:00Z"}, "frm"),
    ):
        resp = await feedback.get(url, params=params, headers=READ)
        assert resp.status_code == 422, (params, resp.text)
        assert field in resp.text
    for path in (url, "/v1/analytics/campaigns"):
        assert (await feedback.get(path)).status_code == 401
        assert (await feedback.get(path, headers=INGEST)).status_code == 403


async def test_erasure_can_drop_lists_still_queued(
    feedback: httpx.AsyncClient, feedback_app: FastAPI, catalog: list[str]
) -> None:
    ctx = feedback_app.state.ctx
    gone, kept = unique("forget-me"), unique("keep-me")
    first = await serve(feedback, gone)
    await served_log(ctx).flush(ctx)  # one list already in the cache queue...
    second = await serve(feedback, gone)  # ...and one still in this process's buffer
    other = await serve(feedback, kept)
    assert await forget(ctx, gone) == 2
    await catch_up(ctx)
    async with ctx.sessions() as session:
        assert await session.get(ServedList, first["request_id"]) is None
        assert await session.get(ServedList, second["request_id"]) is None
        assert await session.get(ServedList, other["request_id"]) is not None


async def test_cursor_moves_past_events_that_are_not_feedback(
    feedback: httpx.AsyncClient, feedback_app: FastAPI, catalog: list[str]
) -> None:
    """Views after the last feedback event are skipped once, not rescanned on every pass."""
    ctx = feedback_app.state.ctx
    user = unique("viewer")
    await post_events(feedback, [event("view", user, catalog[k], 1) for k in range(5)])
    await catch_up(ctx)
    async with ctx.sessions() as session:
        top = await session.scalar(select(func.max(Event.id)))
        cursor = await session.scalar(select(AnalyticsCursor.last_id))
    assert cursor == top


async def test_a_request_folds_within_its_budget_then_the_worker_finishes(
    feedback: httpx.AsyncClient, feedback_app: FastAPI, catalog: list[str]
) -> None:
    ctx = feedback_app.state.ctx
    body = await serve(feedback, unique("shopper"))
    impression = event(
        "rec_impression", body["user_id"], catalog[0], 1, context={"request_id": body["request_id"]}
    )
    await post_events(feedback, [impression])
    hurried = await catch_up(ctx, budget=1e-9)  # spent before the first chunk
    assert hurried["up_to_date"] is False and hurried["events"] == 0
    done = await catch_up(ctx)  # the worker's pass: no budget
    assert done["up_to_date"] is True and done["events"] >= 1
