"""Planting sponsored impressions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import INGEST, unique


def impression(
    user: str,
    campaign_id: str,
    item: str,
    *,
    event_id: str | None = None,
    in_context: bool = False,
    ago: timedelta = timedelta(minutes=5),
) -> dict[str, Any]:
    """A rec_impression carrying the campaign (as campaign_id, or in its context)."""
    event: dict[str, Any] = {
        "event_id": event_id or unique("imp"),
        "user_id": user,
        "type": "rec_impression",
        "item_id": item,
        "timestamp": (datetime.now(UTC) - ago).isoformat(),
        "context": {"request_id": unique("req")},
    }
    if in_context:
        event["context"]["campaign_id"] = campaign_id
    else:
        event["campaign_id"] = campaign_id
    return event


async def send(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> dict:
    resp = await client.post("/v1/events", json=events, headers=INGEST)
    assert resp.status_code == 202, resp.text
    return resp.json()
