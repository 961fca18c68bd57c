"""Rate limiting per API key: a fixed window counted in the cache, shared by all processes.

RATE_LIMIT_REQUESTS requests per RATE_LIMIT_WINDOW_SECONDS per key (0: off). Over the limit
the answer is 429 problem+json with Retry-After (seconds until the window ends). Health,
metrics and keyless requests are not counted (keyless keyed endpoints answer 401 anyway),
except dashboard sign-in attempts, counted per client address. When the cache is down
requests pass: an outage must not turn into refused traffic.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterator
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.cache import CacheUnavailable, key
from app.metrics import RATE_LIMITED
from app.problems import problem_response

EXEMPT_PREFIXES = ("/health/", "/metrics", "/dashboard/static/")
LOGIN_PATH = "/dashboard/login"


def _identity(scope: Scope) -> str | None:
    """What a request is counted against: its API key (hashed), or None (not counted)."""
    for name, value in scope.get("headers", ()):
        if name == b"x-api-key" and value:
            return "k:" + hashlib.sha256(value).hexdigest()[:32]
    if scope.get("path") == LOGIN_PATH and scope.get("method") == "POST":
        client = scope.get("client") or ("unknown", 0)
        return f"ip:{client[0]}"
    return None


async def _count(client: Any, name: str, window: int) -> int:
    async with client.pipeline(transaction=False) as pipe:
        pipe.incr(name)
        pipe.expire(name, window + 1)
        count, _ = await pipe.execute()
    return int(count)


def _routes(routes: Any) -> Iterator[Any]:
    """Every concrete route, looking inside included routers."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes)
        else:
            yield route


def _label_route(scope: Scope) -> None:
    """Name the route a refused request was meant for, so /metrics counts it there."""
    app = scope.get("app")
    for route in _routes(getattr(getattr(app, "router", None), "routes", ())):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            scope["route"] = route
            return


class RateLimitMiddleware:
    """Pure ASGI middleware; reads its settings from the app's context at request time."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        ctx = getattr(scope["app"].state, "ctx", None)
        limit = ctx.settings.rate_limit_requests if ctx is not None else 0
        identity = _identity(scope) if limit > 0 else None
        if ctx is None or identity is None:
            await self.app(scope, receive, send)
            return
        window = max(1, ctx.settings.rate_limit_window_seconds)
        now = time.time()
        slot = int(now // window)
        reset = max(1, math.ceil((slot + 1) * window - now))
        name = key("rl", identity, slot)
        try:
            count = await ctx.cache.run(lambda r: _count(r, name, window))
        except CacheUnavailable:
            await self.app(scope, receive, send)
            return
        headers = {
            "RateLimit-Limit": str(limit),
            "RateLimit-Remaining": str(max(0, limit - count)),
            "RateLimit-Reset": str(reset),
        }
        if count > limit:
            RATE_LIMITED.inc()
            _label_route(scope)
            response = problem_response(
                429,
                f"rate limit of {limit} requests per {window} s exceeded for this key",
                instance=scope["path"],
                headers={**headers, "Retry-After": str(reset)},
            )
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                raw.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)
