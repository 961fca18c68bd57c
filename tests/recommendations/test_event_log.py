"""The worker's event log: incremental reads match a full read, deletions force a full one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
from sqlalchemy import delete

from app.models import Event
from app.training.dataset import load_catalog, refresh_log
from tests.conftest import INGEST, unique


def _events(user: str, n: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "event_id": unique("log"),
            "user_id": user,
            "item_id": f"{user}-item-{k % 4}",
            "type": "purchase" if k % 3 == 0 else "view",
            "timestamp": (now - timedelta(minutes=k)).isoformat(),
            "amount": 5.0 if k % 3 == 0 else None,
        }
        for k in range(n)
    ]


def _signature(log: Any, catalog: Any) -> list[tuple[str, str, int, float]]:
    inter = log.interactions(catalog)
    rows = zip(
        inter.user.tolist(),
        inter.item.tolist(),
        inter.etype.tolist(),
        inter.ts.tolist(),
        strict=True,
    )
    return sorted((inter.user_ids[u], catalog.item_ids[i], t, ts) for u, i, t, ts in rows)


async def test_incremental_reads_match_a_full_read(client: httpx.AsyncClient, app: Any) -> None:
    engine = app.state.ctx.engine
    user = unique("loguser")
    await client.post("/v1/events", json=_events(user, 12), headers=INGEST)
    log = await refresh_log(engine)
    before = log.count
    await client.post("/v1/events", json=_events(user, 9), headers=INGEST)
    log = await refresh_log(engine, log)
    assert log.count == before + 9
    catalog = await load_catalog(engine)
    full = await refresh_log(engine)
    assert _signature(log, catalog) == _signature(full, catalog)

    # An erasure below the cursor: the next refresh notices and reads everything again.
    async with app.state.ctx.sessions() as session:
        await session.execute(delete(Event).where(Event.user_id == user))
        await session.commit()
    log = await refresh_log(engine, log)
    assert user not in set(np.array(log.user_ids)[np.unique(log.column("u", np.int32))])
    assert log.count == (await refresh_log(engine)).count
