"""Read-path speed: recommendation GETs vs a bare one-Redis-GET route (issue 3), and the
same GETs with 20 active brand promotions (issue 8).

    .venv/bin/python bench/serve.py [--duration 10] [--promotions 20]

Both servers run under uvicorn with the same settings (2 worker processes, Redis, no access
log); load comes from wrk on the same machine. Saturation throughput uses 32 connections;
tail latency uses 4 connections. The promotion campaigns are scored by the rebuild (created
with an `end` in the past, so the first measurement has none live), then switched on
through POST /v1/campaigns while the server runs: half of them have a frequency cap, so a
request pipelines the list, the ad-score row and 10 cap counters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx
import redis

from bench.common import (
    INGEST_KEY,
    READ_KEY,
    ROOT,
    connect,
    create_database,
    drop_database,
    free_port,
    migrate,
    run_server,
    server_env,
    stop_process,
    wait_ready,
    write_section,
)
from bench.world import copy_world, make_world

REDIS_DB_URL = "redis://127.0.0.1:6379/12"
WRK_SCRIPT = """
local users = {%(users)s}
local i = 0
request = function()
  i = i + 1
  local path = string.format("%(template)s", users[(i %% #users) + 1])
  return wrk.format("GET", path, {["X-API-Key"] = "%(key)s"})
end
"""


@contextlib.contextmanager
def bare_server(workers: int) -> Iterator[str]:
    port = free_port()
    env = server_env("unused", REDIS_URL=REDIS_DB_URL)
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.bare_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process)


def wrk(
    base_url: str, template: str, users: list[str], connections: int, duration: int
) -> dict[str, float]:
    """Run wrk, each request for the next user id; return req/s and latency percentiles (ms)."""
    script = WRK_SCRIPT % {
        "users": ",".join(f'"{u}"' for u in users),
        "template": template,
        "key": READ_KEY,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    threads = "2" if connections > 2 else "1"
    cmd = [
        "wrk",
        "-t",
        threads,
        "-c",
        str(connections),
        "-d",
        f"{duration}s",
        "--latency",
        "-s",
        handle.name,
        base_url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(handle.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {}
    for q in ("50", "90", "99"):
        m = re.search(rf"\s{q}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)  # type: ignore[union-attr]
        lat[q] = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": lat["50"],
        "p90": lat["90"],
        "p99": lat["99"],
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def campaigns(count: int, *, live: bool) -> list[dict[str, object]]:
    """`count` brand campaigns with promotions (a cap on every other one); not yet live
    unless `live` (an end in the past keeps them out of serving but in the rebuild)."""
    rows = []
    for k in range(count):
        promotion: dict[str, object] = {"slots": 1, "share": 0.2, "min_relevance": 0.0}
        if k % 2 == 0:
            promotion["frequency_cap"] = {"impressions": 1000, "per_hours": 24}
        if not live:
            promotion["end"] = "2000-01-01T00:00:00Z"
        rows.append(
            {"campaign_id": f"promo{k}", "brand": f"brand{k}", "bid": 0.5, "active": True,
             "promotion": promotion}
        )  # fmt: skip
    return rows


async def prepare(n_events: int, n_promotions: int) -> tuple[str, list[str]]:
    from app.catalog.schemas import CampaignIn
    from app.catalog.service import upsert
    from app.config import Settings
    from app.context import AppContext
    from app.models import Campaign
    from app.training.pipeline import rebuild

    url = await create_database("brandlift_bench_serve")
    await asyncio.to_thread(migrate, url)
    world = make_world(n_events)
    conn = await connect(url)
    await copy_world(conn, world)
    await conn.close()
    ctx = AppContext.create(Settings(database_url=url, redis_url=REDIS_DB_URL), cache_timeout=10)
    await ctx.cache.client.flushdb()
    rows = [CampaignIn.model_validate(c) for c in campaigns(n_promotions, live=False)]
    async with ctx.sessions() as session:
        await upsert(session, Campaign, "campaign_id", rows)
    result = await rebuild(ctx, trigger="bench")
    assert result["status"] == "live", result
    await ctx.close()
    users = [f"u{u}" for u in sorted(set(world.users.tolist()))[:2000]]
    return url, users


def switch_on_promotions(base_url: str, users: list[str], count: int) -> float:
    """Make the campaigns live through the API; returns the share of lists with a sponsored
    item (checked on 200 users once every process has seen the change)."""
    resp = httpx.post(
        f"{base_url}/v1/campaigns",
        json=campaigns(count, live=True),
        headers={"X-API-Key": INGEST_KEY},
    )
    resp.raise_for_status()
    time.sleep(2.5)  # each process checks the promotion epoch once a second
    hits = 0
    for user in users[:200]:
        body = httpx.get(
            f"{base_url}/v1/users/{user}/recommendations?n=10", headers={"X-API-Key": READ_KEY}
        ).json()
        hits += any(i.get("sponsored") for i in body["items"])
    return hits / 200


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--promotions", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian package 'wrk'): apt-get install -y wrk")
    url, users = asyncio.run(prepare(args.events, args.promotions))
    rows = []
    try:
        env = {"REDIS_URL": REDIS_DB_URL}
        with run_server(url, workers=args.workers, env=env) as server:
            sample = httpx.get(
                f"{server.base_url}/v1/users/{users[0]}/recommendations?n=10",
                headers={"X-API-Key": READ_KEY},
            ).content
            redis.Redis.from_url(REDIS_DB_URL).set("bench:bare:payload", sample)
            ours = "/v1/users/%s/recommendations?n=10"
            sat = wrk(server.base_url, ours, users, 32, args.duration)
            tail = wrk(server.base_url, ours, users, 4, args.duration)
            placed = switch_on_promotions(server.base_url, users, args.promotions)
            promo_sat = wrk(server.base_url, ours, users, 32, args.duration)
            promo_tail = wrk(server.base_url, ours, users, 4, args.duration)
        with bare_server(args.workers) as bare_url:
            bare_sat = wrk(bare_url, "/bare/%s", users, 32, args.duration)
            bare_tail = wrk(bare_url, "/bare/%s", users, 4, args.duration)
        rows.append(("GET /v1/users/{id}/recommendations?n=10", sat, tail))
        rows.append((f"the same with {args.promotions} active promotions", promo_sat, promo_tail))
        rows.append(
            ("bare route: one Redis GET of the same bytes (reference)", bare_sat, bare_tail)
        )
    finally:
        asyncio.run(drop_database(url))
    lines = [
        f"Command: `.venv/bin/python bench/serve.py --events {args.events} --duration {args.duration}`",
        f"{args.workers} uvicorn workers per server, wrk on the same 2 cores; response body {len(sample)} bytes.",
        "",
        "| endpoint | req/s at 32 conns | p50 / p99 ms at 4 conns | non-2xx |",
        "| --- | --- | --- | --- |",
    ]
    for name, s, t in rows:
        lines.append(
            f"| {name} | {s['rps']:,.0f} | {t['p50']:.2f} / {t['p99']:.2f} | {int(s['errors'] + t['errors'])} |"
        )
    ratio = sat["rps"] / bare_sat["rps"]
    lines += [
        "",
        f"Throughput ratio recommendations / bare: **{ratio:.2f}x** (goal >= 0.8x); "
        f"p99 at 4 clients: **{tail['p99']:.2f} ms** (goal <= 5 ms).",
        "",
        f"With {args.promotions} active promotions ({placed:.0%} of sampled lists carried a "
        f"sponsored item): throughput **{promo_sat['rps'] / sat['rps']:.2f}x** the "
        f"no-promotion path and **{promo_sat['rps'] / bare_sat['rps']:.2f}x** the bare "
        f"route; p99 at 4 clients **{promo_tail['p99']:.2f} ms** "
        f"({promo_tail['p99'] / tail['p99']:.2f}x the no-promotion path; goal <= 5 ms).",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("Read path (bench/serve.py)", text)


if __name__ == "__main__":
    main()
