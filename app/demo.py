"""`brandlift demo`: fill an empty database with a generated shop (once)."""

from __future__ import annotations

from sqlalchemy import func, select

from app.catalog.schemas import CampaignIn, ItemIn, UserIn
from app.catalog.service import upsert
from app.config import Settings
from app.context import AppContext
from app.events.schemas import EventIn
from app.events.service import store_events
from app.models import Campaign, Item, User
from app.synthetic import generate_world, iter_event_batches


async def load_demo(
    settings: Settings,
    users: int = 2000,
    items: int = 800,
    days: int = 60,
    *,
    only_if_empty: bool = True,
    seed: int = 7,
) -> str:
    """Generate and load a demo shop; with `only_if_empty`, a database with items is left alone."""
    from rich.progress import Progress

    ctx = AppContext.create(settings)
    try:
        async with ctx.sessions() as session:
            existing = await session.scalar(select(func.count()).select_from(Item))
        if only_if_empty and existing:
            return f"demo data already present ({existing} items): nothing loaded"
        world = generate_world(n_users=users, n_items=items, days=days, seed=seed)
        stored = 0
        with Progress(transient=True) as progress:
            task = progress.add_task("loading demo shop", total=len(world.events) + 3)
            async with ctx.sessions() as session:
                for model, schema, key, rows in (
                    (Item, ItemIn, "item_id", world.items),
                    (User, UserIn, "user_id", world.users),
                    (Campaign, CampaignIn, "campaign_id", world.campaigns),
                ):
                    for start in range(0, len(rows), 1000):
                        parsed = [schema.model_validate(r) for r in rows[start : start + 1000]]
                        await upsert(session, model, key, parsed)
                    progress.advance(task)
                for batch in iter_event_batches(world.events, 1000):
                    count, _ = await store_events(
                        session, [EventIn.model_validate(e) for e in batch]
                    )
                    stored += count
                    progress.advance(task, len(batch))
        return (
            f"demo loaded: {len(world.items)} items, {len(world.users)} users, "
            f"{len(world.campaigns)} campaigns, {stored} events"
        )
    finally:
        await ctx.close()
