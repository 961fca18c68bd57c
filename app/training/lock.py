"""Only one rebuild at a time across every worker process."""

from __future__ import annotations

import fcntl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

REBUILD_LOCK_ID = 0x6272616E64  # "brand": an arbitrary, fixed advisory lock id


@asynccontextmanager
async def rebuild_lock(engine: AsyncEngine) -> AsyncIterator[bool]:
    """Yield True if this process holds the rebuild lock, False if another one does.

    Postgres: a session advisory lock on a dedicated connection, released on exit or when
    the process dies (the connection closes). SQLite: an exclusive flock beside the file.
    """
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            got = bool(
                await conn.scalar(text("SELECT pg_try_advisory_lock(:id)"), {"id": REBUILD_LOCK_ID})
            )
            try:
                yield got
            finally:
                if got:
                    await conn.execute(
                        text("SELECT pg_advisory_unlock(:id)"), {"id": REBUILD_LOCK_ID}
                    )
                await conn.commit()
        return
    database = make_url(str(engine.url)).database or "memory"
    path = Path(f"{database}.rebuild.lock")
    with path.open("w") as handle:  # noqa: ASYNC230 - a lock file, opened once per rebuild
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
