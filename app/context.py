"""The long-lived resources of one process (API or worker), created once and closed once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.cache import Cache
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.security import KeyRing


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cache: Cache
    keys: KeyRing
    # Per-process extras (fallback lists, worker handle...) registered by the domains.
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def create(cls, settings: Settings, *, cache_timeout: float | None = None) -> AppContext:
        """Open the engine and cache for these settings (connections are made lazily)."""
        engine = make_engine(settings.database_url)
        return cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            cache=Cache.from_url(
                settings.redis_url, timeout=cache_timeout or settings.redis_timeout_seconds
            ),
            keys=KeyRing(settings.brandlift_api_keys),
        )

    async def close(self) -> None:
        await self.cache.close()
        await self.engine.dispose()
