"""Helpers for tests that rebuild or run the real-time loop on the app's own context."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from app.context import AppContext
from app.realtime.loop import process_batch


@contextlib.contextmanager
def forced_live(ctx: AppContext) -> Iterator[None]:
    """Rebuilds on this context go live whatever their holdout says (the guardrail is not
    under test here, and the planted world's later rebuilds may score a little lower)."""
    original = ctx.settings
    ctx.settings = original.model_copy(update={"guardrail_tolerance": 1.0})
    try:
        yield
    finally:
        ctx.settings = original


async def drain(ctx: AppContext) -> None:
    """Run the real-time loop until the dirty queue is empty."""
    for _ in range(200):
        if not await process_batch(ctx, limit=1000):
            return
    raise AssertionError("the dirty queue did not drain")
