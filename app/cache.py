"""The cache: Redis in production, an in-process Redis-compatible store in the embedded default.

Both sides speak the redis-py asyncio API, so every caller has one code path. A small circuit
breaker keeps requests fast while Redis is down: after a failure the cache is treated as down
for `retry_after` seconds and callers go straight to their fallbacks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

T = TypeVar("T")
KEY_PREFIX = "bl:"


class CacheUnavailable(Exception):
    """Raised by `Cache.run` when Redis cannot be used right now."""


class Cache:
    """A redis-py asyncio client plus health tracking shared by the API and the worker."""

    def __init__(self, client: aioredis.Redis, *, embedded: bool, retry_after: float = 1.0):
        self.client = client
        self.embedded = embedded
        self.retry_after = retry_after
        self._down_until = 0.0
        self.last_error: str | None = None

    @classmethod
    def from_url(cls, url: str | None, *, timeout: float = 0.25) -> Cache:
        """Connect to REDIS_URL, or build the in-process store when it is unset.

        The short socket timeout bounds how long a request can hang on a stuck Redis before
        the breaker opens and fallbacks take over; the worker passes a longer one.
        """
        if not url:
            import fakeredis

            return cls(fakeredis.FakeAsyncRedis(), embedded=True)
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=10,
            max_connections=64,
        )
        return cls(client, embedded=False)

    @property
    def available(self) -> bool:
        """False while the breaker is open after a recent failure."""
        return time.monotonic() >= self._down_until

    def mark_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.retry_after
        self.last_error = type(exc).__name__

    async def run(self, op: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
        """Run one cache operation; raise CacheUnavailable instead of a Redis error."""
        if not self.available:
            raise CacheUnavailable(self.last_error or "cache down")
        try:
            result = await op(self.client)
        except (TimeoutError, RedisError, OSError) as exc:
            self.mark_down(exc)
            raise CacheUnavailable(type(exc).__name__) from exc
        self.last_error = None
        return result

    async def ping(self, timeout: float = 1.0) -> bool:  # noqa: ASYNC109
        """Check the cache for real (ignores the breaker), closing it again on success."""
        try:
            await asyncio.wait_for(self.client.ping(), timeout=timeout)
        except (TimeoutError, RedisError, OSError) as exc:
            self.mark_down(exc)
            return False
        self._down_until = 0.0
        self.last_error = None
        return True

    async def close(self) -> None:
        await self.client.aclose()


def key(*parts: Any) -> str:
    """Build a namespaced cache key: key("recs", 3, "u1") -> "bl:recs:3:u1"."""
    return KEY_PREFIX + ":".join(str(p) for p in parts)
