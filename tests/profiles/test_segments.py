"""Segments partition the profiled users; paging returns every member exactly once."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from app.models import UserProfile
from app.training.segments import SEGMENTS
from tests.conftest import READ
from tests.profiles.world import ProfileWorld


async def all_members(client: httpx.AsyncClient, name: str, limit: int) -> list[str]:
    members: list[str] = []
    cursor = None
    while True:
        params = {"limit": str(limit)} | ({"cursor": cursor} if cursor else {})
        resp = await client.get(f"/v1/segments/{name}/users", params=params, headers=READ)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert page["segment"] == name and len(page["users"]) <= limit
        members += [u["user_id"] for u in page["users"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return members


async def test_segments_partition_the_profiled_users(
    client: httpx.AsyncClient, app: object, profile_world: ProfileWorld
) -> None:
    resp = await client.get("/v1/segments", headers=READ)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model_version"] >= profile_world.version
    listed = {s["name"]: s for s in body["segments"]}
    assert set(listed) == set(SEGMENTS)
    async with app.state.ctx.sessions() as session:  # type: ignore[attr-defined]
        profiled = await session.scalar(select(func.count()).select_from(UserProfile))
    assert sum(s["size"] for s in listed.values()) == profiled
    assert abs(sum(s["share"] for s in listed.values()) - 1.0) < 1e-3
    seen: dict[str, str] = {}
    for name in SEGMENTS:
        members = await all_members(client, name, limit=97)
        assert len(members) == len(set(members)) == listed[name]["size"]
        assert members == sorted(members)
        for user in members:
            assert user not in seen, f"{user} in {seen.get(user)} and {name}"
            seen[user] = name
    assert len(seen) == profiled
    # Every shopper of the world (and the planted ones) is profiled, in one segment only.
    assert set(profile_world.users) <= set(seen)
    assert seen[profile_world.attributes_only] == "unengaged"
    for user in profile_world.lapsed:
        assert seen[user] in ("at_risk", "hibernating")


async def test_segment_means_describe_their_members(
    client: httpx.AsyncClient, profile_world: ProfileWorld
) -> None:
    segments = {
        s["name"]: s for s in (await client.get("/v1/segments", headers=READ)).json()["segments"]
    }
    champions, hibernating = segments["champions"]["mean"], segments["hibernating"]["mean"]
    assert champions["frequency"] > hibernating["frequency"]
    assert champions["recency_days"] < hibernating["recency_days"]
    assert champions["churn_probability"] < hibernating["churn_probability"]


async def test_a_member_page_carries_predictions(
    client: httpx.AsyncClient, profile_world: ProfileWorld
) -> None:
    resp = await client.get("/v1/segments/champions/users?limit=5", headers=READ)
    page = resp.json()
    assert len(page["users"]) == 5 and page["next_cursor"]
    for member in page["users"]:
        assert set(member) == {
            "user_id",
            "predicted_spend_30d",
            "churn_probability",
            "recency_days",
        }
        assert member["recency_days"] <= 14


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("limit=0", 422),
        ("limit=1001", 422),
        ("limit=abc", 422),
        ("cursor=%%%", 422),
        ("color=red", 422),
    ],
)
async def test_bad_page_parameters_are_422(
    client: httpx.AsyncClient, profile_world: ProfileWorld, query: str, status: int
) -> None:
    resp = await client.get(f"/v1/segments/loyal/users?{query}", headers=READ)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["errors"][0]["field"] in ("limit", "cursor", "color")


async def test_unknown_segment_is_a_404(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/segments/whales/users", headers=READ)
    assert resp.status_code == 404
    assert resp.headers["content-type"].startswith("application/problem+json")
