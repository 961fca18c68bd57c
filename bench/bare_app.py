"""The reference for bench/serve.py: a bare FastAPI route that returns one Redis GET.

It does what any read endpoint must at least do (route, one cache round trip, send bytes),
so the service's endpoints are measured against the practical limit on the same server.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from fastapi import FastAPI
from starlette.responses import Response

PAYLOAD_KEY = "bench:bare:payload"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.redis = aioredis.Redis.from_url(os.environ["REDIS_URL"])
    yield
    await app.state.redis.aclose()


app = FastAPI(lifespan=lifespan)


@app.get("/bare/{user_id}")
async def bare(user_id: str) -> Response:
    payload = await app.state.redis.get(PAYLOAD_KEY)
    return Response(payload, media_type="application/json")


@app.get("/health/ready")
async def ready() -> dict[str, str]:
    return {"status": "ready"}
