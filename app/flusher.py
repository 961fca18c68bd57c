"""Figures gathered on the hot path without I/O and sent to the cache by a background task."""

from __future__ import annotations

import asyncio
import contextlib

from app.context import AppContext


class BackgroundFlusher:
    """Subclasses buffer in process and call `kick` after each addition; a task then calls
    `flush` every `flush_seconds` while `pending()`, and `close` sends what is left."""

    def __init__(self, flush_seconds: float) -> None:
        self.flush_seconds = flush_seconds
        self.task: asyncio.Task[None] | None = None

    def pending(self) -> bool:
        raise NotImplementedError

    async def flush(self, ctx: AppContext) -> object:
        raise NotImplementedError

    def kick(self, ctx: AppContext) -> None:
        """Start the flushing task unless one is running."""
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run(ctx))

    async def _run(self, ctx: AppContext) -> None:
        while self.pending():
            await asyncio.sleep(self.flush_seconds)
            await self.flush(ctx)

    async def close(self, ctx: AppContext) -> None:
        """Stop the task and send what is still buffered (best effort)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        with contextlib.suppress(Exception):
            await self.flush(ctx)
