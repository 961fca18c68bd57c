"""/metrics: request counts by route template and the ingest counters, read before and after."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import INGEST, READ, unique

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient) -> Samples:
    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def event(**overrides: Any) -> dict[str, Any]:
    base = {
        "event_id": unique("e"),
        "user_id": unique("u"),
        "item_id": unique("i"),
        "type": "view",
        "timestamp": datetime.now(UTC).isoformat(),
    }
    return base | overrides


async def test_ingest_counters_move(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    views = [event() for _ in range(3)]
    purchases = [event(type="purchase", amount=5.0) for _ in range(2)]
    ads = [event(type="ad_click", item_id=None, campaign_id="c1")]
    first = await client.post("/v1/events", json=views + purchases + ads, headers=INGEST)
    assert first.json() == {"accepted": 6, "duplicates": 0}
    again = await client.post(
        "/v1/events", json=[*views[:2], purchases[0], event()], headers=INGEST
    )
    assert again.json() == {"accepted": 1, "duplicates": 3}
    bad = await client.post("/v1/events", json=[event(type="rating")], headers=INGEST)
    assert bad.status_code == 422
    for _ in range(2):
        assert (await client.post("/v1/events", content=b"{", headers=INGEST)).status_code == 400
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ingested = "brandlift_events_ingested_total"
    assert delta(ingested, type="view") == 4
    assert delta(ingested, type="purchase") == 2
    assert delta(ingested, type="ad_click") == 1
    assert delta(ingested, type="rating") == 0
    assert delta("brandlift_events_duplicates_total") == 3
    assert delta("brandlift_events_rejected_total", reason="422") == 1
    assert delta("brandlift_events_rejected_total", reason="400") == 2
    requests = "brandlift_http_requests_total"
    assert delta(requests, method="POST", route="/v1/events", status="202") == 2
    assert delta(requests, method="POST", route="/v1/events", status="422") == 1
    assert delta(requests, method="POST", route="/v1/events", status="400") == 2
    latency = "brandlift_http_request_duration_seconds_count"
    assert delta(latency, method="POST", route="/v1/events") == 5


async def test_requests_are_labelled_by_route_template(client: httpx.AsyncClient) -> None:
    item_ids = [unique("i"), unique("i")]
    await client.post("/v1/items", json=[{"item_id": i} for i in item_ids], headers=INGEST)
    before = await scrape(client)
    for item_id in item_ids:
        assert (await client.get(f"/v1/items/{item_id}", headers=READ)).status_code == 200
    assert (await client.get(f"/v1/items/{unique('gone')}", headers=READ)).status_code == 404
    assert (await client.get(f"/no/such/{unique('path')}")).status_code == 404
    assert (await client.get("/v1/items/x")).status_code == 401
    after = await scrape(client)

    def delta(**labels: str) -> float:
        name = "brandlift_http_requests_total"
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/v1/items/{item_id}"
    assert delta(method="GET", route=route, status="200") == 2
    assert delta(method="GET", route=route, status="404") == 1
    assert delta(method="GET", route=route, status="401") == 1
    assert delta(method="GET", route="unmatched", status="404") == 1
    # Raw ids and paths never become label values (bounded cardinality).
    routes = {dict(labels).get("route", "") for _, labels in after}
    assert not any(i in r for r in routes for i in item_ids)
    assert not any(r.startswith("/no/") for r in routes)


async def test_metrics_scrape_counts_itself(client: httpx.AsyncClient) -> None:
    before = await scrape(client)
    after = await scrape(client)
    name = "brandlift_http_requests_total"
    labels = {"method": "GET", "route": "/metrics", "status": "200"}
    assert value(after, name, **labels) - value(before, name, **labels) == 1
