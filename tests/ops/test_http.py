"""The HTTP surface as a whole: the OpenAPI document and problem+json for routing errors."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import INGEST

BATCH_ENDPOINTS = {
    "/v1/events": "EventIn",
    "/v1/items": "ItemIn",
    "/v1/users": "UserIn",
    "/v1/campaigns": "CampaignIn",
}


@pytest.fixture(scope="module")
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    resp = await client.get("/openapi.json")
    assert resp.status_code == 200
    doc: dict[str, Any] = resp.json()
    return doc


@pytest.mark.parametrize(("path", "schema"), BATCH_ENDPOINTS.items())
async def test_batch_request_bodies_are_documented(
    openapi: dict[str, Any], path: str, schema: str
) -> None:
    body = openapi["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    array = body["content"]["application/json"]["schema"]
    assert array["type"] == "array"
    assert array["items"] == {"$ref": f"#/components/schemas/{schema}"}
    component = openapi["components"]["schemas"][schema]
    id_field = {"EventIn": "event_id"}.get(schema, schema[:-2].lower() + "_id")
    assert id_field in component["properties"]
    assert id_field in component["required"]


async def test_event_schema_lists_types_and_nested_refs_resolve(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    event_type = schemas["EventIn"]["properties"]["type"]
    assert "rating" in event_type["enum"] and "ad_conversion" in event_type["enum"]
    # Every $ref anywhere in the document points at a component that exists.
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(openapi)
    assert any(r.endswith("/Promotion") for r in refs)
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in schemas, ref


async def test_responses_are_documented(openapi: dict[str, Any]) -> None:
    assert "202" in openapi["paths"]["/v1/events"]["post"]["responses"]
    item_get = openapi["paths"]["/v1/items/{item_id}"]["get"]
    assert "200" in item_get["responses"]


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json() | {"detail": None} == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": None,
        "instance": "/v1/nothing-here",
    }


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    resp = await client.delete("/v1/events", headers=INGEST)
    assert resp.status_code == 405
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["status"] == 405
    assert "POST" in resp.headers["allow"]


async def test_unhandled_error_is_500_problem_without_internals(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internal state")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        resp = await http.get("/boom")
    assert resp.status_code == 500
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["title"] == "Internal Server Error"
    assert "secret" not in resp.text
