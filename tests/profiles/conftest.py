"""One generated shop with planted shoppers, rebuilt once for the profile tests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import unique
from tests.profiles.world import ProfileWorld, build_world


@pytest.fixture(scope="session")
async def profile_world(client: httpx.AsyncClient, app: Any) -> ProfileWorld:
    return await build_world(
        client, app, unique("pw"), n_users=300, n_items=200, days=60, n_campaigns=8, seed=11
    )
