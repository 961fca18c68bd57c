"""`brandlift demo`: fill an empty database with a generated shop (once)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select

from app.catalog.schemas import CampaignIn, ItemIn, UserIn
from app.catalog.service import upsert
from app.config import Settings
from app.context import AppContext
from app.events.schemas import EventIn
from app.events.service import store_events
from app.models import Campaign, Item, User
from app.synthetic import DEFAULT_EVENTS_PER_USER, generate_world, iter_event_batches

BATCH = 1000


async def load_demo(
    settings: Settings,
    users: int = 2000,
    items: int = 800,
    days: int = 60,
    *,
    only_if_empty: bool = True,
    seed: int = 7,
    events_per_user: float = DEFAULT_EVENTS_PER_USER,
    id_prefix: str = "",
) -> str:
    """Generate and load a demo shop; with `only_if_empty`, a database with items is left alone."""
    ctx = AppContext.create(settings)
    try:
        async with ctx.sessions() as session:
            existing = int(await session.scalar(select(func.count()).select_from(Item)) or 0)
        if only_if_empty and existing:
            return f"demo data already present ({existing} items): nothing loaded"
        started = time.perf_counter()
        world = generate_world(
            n_users=users,
            n_items=items,
            days=days,
            seed=seed,
            events_per_user=events_per_user,
            id_prefix=id_prefix,
        )
        catalog: list[tuple[Any, type[BaseModel], str, list[dict[str, Any]]]] = [
            (Item, ItemIn, "item_id", world.items),
            (User, UserIn, "user_id", world.users),
            (Campaign, CampaignIn, "campaign_id", world.campaigns),
        ]
        total = len(world.items) + len(world.users) + len(world.campaigns) + len(world.events)
        accepted = 0
        with _progress() as progress:
            task = progress.add_task("loading demo shop", total=total)
            async with ctx.sessions() as session:
                for model, schema, key, rows in catalog:
                    for start in range(0, len(rows), BATCH):
                        chunk = rows[start : start + BATCH]
                        await upsert(session, model, key, [schema.model_validate(r) for r in chunk])
                        progress.advance(task, len(chunk))
                for batch in iter_event_batches(world.events, BATCH):
                    stored, _ = await store_events(
                        session, [EventIn.model_validate(e) for e in batch]
                    )
                    accepted += stored
                    progress.advance(task, len(batch))
        return (
            f"demo loaded: {len(world.items)} items, {len(world.users)} users, "
            f"{len(world.campaigns)} campaigns, {accepted} events "
            f"in {time.perf_counter() - started:.1f} s"
        )
    finally:
        await ctx.close()


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )
