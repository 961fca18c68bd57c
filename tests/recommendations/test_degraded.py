"""Redis stops answering: serving stays 200 from memory; Redis back: normal, no restart."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.main import create_app
from app.training.pipeline import rebuild
from tests.conftest import READ
from tests.live_world import LiveWorld

pytestmark = pytest.mark.postgres_only


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A real redis-server of our own, so we can freeze it without disturbing others."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield proc, port
    os.kill(proc.pid, signal.SIGCONT)
    proc.terminate()
    proc.wait(timeout=10)


async def test_redis_down_and_back(
    settings: Any, live_world: LiveWorld, private_redis: tuple[subprocess.Popen[bytes], int]
) -> None:
    proc, port = private_redis
    app = create_app(
        settings.model_copy(
            # tolerance 1.0: this run always goes live on the private Redis
            update={"redis_url": f"redis://127.0.0.1:{port}/0", "guardrail_tolerance": 1.0}
        )
    )
    fan = next(u for u, c in live_world.taste.items() if c == "beauty")
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await rebuild(app.state.ctx, trigger="test"))["status"] == "live"
            assert (await client.get("/health/ready")).status_code == 200
            normal = (await client.get(f"/v1/users/{fan}/recommendations?n=5", headers=READ)).json()
            assert normal["strategy"] == "personalised"

            os.kill(proc.pid, signal.SIGSTOP)  # Redis hangs: connections open, no answers
            try:
                ready = await client.get("/health/ready")
                assert ready.status_code == 503
                assert ready.json()["checks"]["cache"]["status"] == "degraded"
                started = time.perf_counter()
                for _ in range(20):
                    resp = await client.get(f"/v1/users/{fan}/recommendations?n=5", headers=READ)
                    assert resp.status_code == 200
                    body = resp.json()
                    assert body["strategy"] == "popular-fallback"
                    assert len(body["items"]) == 5
                # The breaker keeps requests from waiting on the frozen server each time.
                assert time.perf_counter() - started < 2.0
            finally:
                os.kill(proc.pid, signal.SIGCONT)

            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                resp = await client.get(f"/v1/users/{fan}/recommendations?n=5", headers=READ)
                if resp.json()["strategy"] == "personalised":
                    break
                await asyncio.sleep(0.2)
            assert resp.json()["strategy"] == "personalised"
            assert (await client.get("/health/ready")).status_code == 200
