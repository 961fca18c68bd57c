"""The Postgres storage path: look-up + COPY, and its fallback when a concurrent writer races."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text

from app.events.schemas import EventIn
from app.events.service import known_items, store_events
from app.models import Event, Item, User
from tests.conftest import unique

pytestmark = pytest.mark.postgres_only


def make_events(n: int, user: str, item: str) -> list[EventIn]:
    now = datetime.now(UTC)
    return [
        EventIn(event_id=unique("e"), user_id=user, type="view", timestamp=now, item_id=item)
        for _ in range(n)
    ]


async def stored(app: Any, ids: list[str]) -> int:
    async with app.state.ctx.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(Event).where(Event.event_id.in_(ids))
        )
        return int(count or 0)


async def wait_for_lock_waiter(app: Any) -> None:
    """Block until some backend of this database waits on a row lock (our COPY)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(10):
        while True:
            async with app.state.ctx.engine.connect() as conn:
                if (await conn.scalar(query)) > 0:
                    return
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("other_commits", [True, False])
async def test_copy_racing_an_uncommitted_duplicate(app: Any, other_commits: bool) -> None:
    """Another transaction holds one of our event_ids uncommitted while we COPY: if it commits,
    we fall back to ON CONFLICT and count that event as a duplicate; if it rolls back, the
    event is ours. Either way every event is stored exactly once."""
    user, item = unique("u"), unique("i")
    # Known user and item, so nothing but the event itself makes the two writers meet.
    async with app.state.ctx.sessions() as session:
        await store_events(session, make_events(1, user, item))
    batch = make_events(50, user, item)
    contested = batch[25]
    async with app.state.ctx.engine.connect() as other:
        await other.execute(
            text(
                "INSERT INTO events (event_id, user_id, item_id, type, ts) "
                "VALUES (:e, :u, :i, 'view', now())"
            ),
            {"e": contested.event_id, "u": user, "i": item},
        )

        async def ingest() -> tuple[int, Any]:
            async with app.state.ctx.sessions() as session:
                return await store_events(session, batch)

        task = asyncio.create_task(ingest())
        await wait_for_lock_waiter(app)
        assert not task.done()
        await (other.commit() if other_commits else other.rollback())
    accepted, by_type = await task
    assert accepted == (49 if other_commits else 50)
    assert by_type == {"view": accepted}
    assert await stored(app, [e.event_id for e in batch]) == 50


async def test_concurrent_batches_with_known_rows_store_each_event_once(app: Any) -> None:
    user, item = unique("u"), unique("i")
    async with app.state.ctx.sessions() as session:
        await store_events(session, make_events(1, user, item))
    batch = make_events(200, user, item)

    async def ingest(events: list[EventIn]) -> int:
        async with app.state.ctx.sessions() as session:
            return (await store_events(session, events))[0]

    orders = [batch, list(reversed(batch)), batch[100:] + batch[:100]] * 2
    accepted = await asyncio.gather(*(ingest(list(o)) for o in orders))
    assert sum(accepted) == 200
    assert await stored(app, [e.event_id for e in batch]) == 200


async def test_bare_rows_are_created_and_items_remembered(app: Any) -> None:
    user, item = unique("u"), unique("i")
    async with app.state.ctx.sessions() as session:
        assert item not in known_items(session)
        await store_events(session, make_events(3, user, item))
        assert item in known_items(session)
        assert await session.get(User, user) is not None
        assert await session.get(Item, item) is not None


async def test_store_inside_an_open_session_transaction(app: Any) -> None:
    """A caller that already used the session gets the events committed with its own work."""
    events = make_events(5, unique("u"), unique("i"))
    async with app.state.ctx.sessions() as session:
        await session.execute(text("SELECT 1"))
        accepted, _ = await store_events(session, events)
    assert accepted == 5
    assert await stored(app, [e.event_id for e in events]) == 5
