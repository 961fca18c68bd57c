"""One generated shop with ad traffic, rebuilt once for the ad targeting tests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import unique
from tests.profiles.world import ProfileWorld, build_world


@pytest.fixture(scope="session")
async def ad_world(client: httpx.AsyncClient, app: Any) -> ProfileWorld:
    return await build_world(
        client, app, unique("aw"), n_users=400, n_items=200, days=45, n_campaigns=10,
        seed=5, events_per_user=40.0,
    )  # fmt: skip
