"""Read-path speed: recommendation GETs vs a bare one-Redis-GET route (issue 3), the same
GETs with 20 active brand promotions (issue 8), and the ad-score lookup of one shopper x 50
campaigns (issue 4).

    .venv/bin/python bench/serve.py [--duration 8] [--repeat 3] [--promotions 20]

Both servers run under uvicorn with the same settings (2 worker processes, Redis, no access
log); load comes from wrk on the same machine. Saturation throughput uses 32 connections;
tail latency uses 4 connections. The promotion campaigns are scored by the rebuild (created
with an `end` in the past, so the first measurement has none live), then switched on
through POST /v1/campaigns while the server runs: half of them have a frequency cap, so a
request pipelines the list, the ad-score row and the shopper's cap counters. Runs are
interleaved in rounds (recommendations, bare, ads, ...) and medians reported, so a burst of
other work on the shared cores does not land on one side of a ratio only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import statistics
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
    base_url: str,
    template: str,
    users: list[str],
    connections: int,
    duration: float,
    pace_ms: int = 0,
    cpus: set[int] | None = None,
) -> dict[str, float]:
    """Run wrk, each request for the next user id; return req/s and latency percentiles (ms).

    pace_ms > 0: each connection waits that long before each request (a steady read rate
    instead of saturation; wrk's latency excludes the wait). cpus: run wrk on those only."""
    script = WRK_SCRIPT % {
        "users": ",".join(f'"{u}"' for u in users),
        "template": template,
        "key": READ_KEY,
    }
    if pace_ms > 0:
        script += f"\ndelay = function() return {int(pace_ms)} end\n"
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
        f"{int(duration)}s",
        "--latency",
        "-s",
        handle.name,
        base_url,
    ]
    if cpus is not None:
        cmd = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *cmd]
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
    rows = [
        CampaignIn.model_validate(c) for c in campaigns(n_promotions, live=False) + ad_campaigns()
    ]
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


AD_CAMPAIGNS = 50


def ad_campaigns() -> list[dict[str, object]]:
    """Plain (non-promotion) campaigns for the ad-score lookup: one shopper x 50 of them."""
    return [
        {"campaign_id": f"ad{k}", "brand": f"brand{k % 60}", "bid": 0.4 + k / 100, "active": True}
        for k in range(AD_CAMPAIGNS)
    ]


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Per-field median over repeated wrk runs (each run is one sample of a noisy machine)."""
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--promotions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of interleaved runs")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (Debian package 'wrk'): apt-get install -y wrk")
    url, users = asyncio.run(prepare(args.events, args.promotions))
    ours = "/v1/users/%s/recommendations?n=10"
    ads = "/v1/ads/scores?user_id=%s" + "".join(
        f"&campaign_id={c['campaign_id']}" for c in ad_campaigns()
    )
    runs: dict[str, list[dict[str, float]]] = {}

    def measure(name: str, base: str, template: str, connections: int) -> None:
        runs.setdefault(name, []).append(wrk(base, template, users, connections, args.duration))

    try:
        env = {"REDIS_URL": REDIS_DB_URL}
        with run_server(url, workers=args.workers, env=env) as server:
            sample = httpx.get(
                f"{server.base_url}/v1/users/{users[0]}/recommendations?n=10",
                headers={"X-API-Key": READ_KEY},
            ).content
            ad_body = httpx.get(server.base_url + ads % users[0], headers={"X-API-Key": READ_KEY})
            ad_body.raise_for_status()
            assert len(ad_body.json()["scores"]) == AD_CAMPAIGNS, ad_body.text
            redis.Redis.from_url(REDIS_DB_URL).set("bench:bare:payload", sample)
            with bare_server(args.workers) as bare_url:
                # Interleaved rounds: a disturbance on the shared cores hits both sides of a
                # ratio alike instead of one whole series.
                for _ in range(args.repeat):
                    measure("recs_sat", server.base_url, ours, 32)
                    measure("bare_sat", bare_url, "/bare/%s", 32)
                    measure("recs_tail", server.base_url, ours, 4)
                    measure("bare_tail", bare_url, "/bare/%s", 4)
                    measure("ads_tail", server.base_url, ads, 4)
                    measure("ads_sat", server.base_url, ads, 32)
                placed = switch_on_promotions(server.base_url, users, args.promotions)
                for _ in range(args.repeat):
                    measure("promo_sat", server.base_url, ours, 32)
                    measure("bare_sat_2", bare_url, "/bare/%s", 32)
                    measure("promo_tail", server.base_url, ours, 4)
    finally:
        asyncio.run(drop_database(url))
    m = {name: median_of(series) for name, series in runs.items()}
    ratios = [r["rps"] / b["rps"] for r, b in zip(runs["recs_sat"], runs["bare_sat"], strict=True)]
    promo_ratios = [
        p["rps"] / b["rps"] for p, b in zip(runs["promo_sat"], runs["bare_sat_2"], strict=True)
    ]
    rows = [
        ("GET /v1/users/{id}/recommendations?n=10", "recs_sat", "recs_tail"),
        (f"the same with {args.promotions} active promotions", "promo_sat", "promo_tail"),
        (f"GET /v1/ads/scores, one shopper x {AD_CAMPAIGNS} campaigns", "ads_sat", "ads_tail"),
        ("bare route: one Redis GET of the same bytes (reference)", "bare_sat", "bare_tail"),
    ]
    lines = [
        f"Command: `.venv/bin/python bench/serve.py --events {args.events} --duration "
        f"{args.duration} --repeat {args.repeat}`",
        f"{args.workers} uvicorn workers per server, wrk on the same 2 cores; response body "
        f"{len(sample)} bytes. Medians of {args.repeat} interleaved rounds (p99 range in the "
        "last column).",
        "",
        "| endpoint | req/s at 32 conns | p50 / p99 ms at 4 conns | p99 range ms | non-2xx |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, sat_key, tail_key in rows:
        sat, tail = m[sat_key], m[tail_key]
        p99s = [r["p99"] for r in runs[tail_key]]
        errors = sum(r["errors"] for r in runs[sat_key] + runs[tail_key])
        lines.append(
            f"| {name} | {sat['rps']:,.0f} | {tail['p50']:.2f} / {tail['p99']:.2f} | "
            f"{min(p99s):.2f}-{max(p99s):.2f} | {int(errors)} |"
        )
    lines += [
        "",
        f"Throughput ratio recommendations / bare (median of per-round ratios "
        f"{', '.join(f'{r:.2f}' for r in ratios)}): **{statistics.median(ratios):.2f}x** "
        f"(goal >= 0.8x); p99 at 4 clients: **{m['recs_tail']['p99']:.2f} ms** (goal <= 5 ms).",
        "",
        f"With {args.promotions} active promotions ({placed:.0%} of sampled lists carried a "
        f"sponsored item): throughput **{statistics.median(promo_ratios):.2f}x** the bare route "
        f"(measured in the same rounds) and "
        f"**{m['promo_sat']['rps'] / m['recs_sat']['rps']:.2f}x** the no-promotion path; "
        f"p99 at 4 clients **{m['promo_tail']['p99']:.2f} ms** (goal <= 5 ms).",
        "",
        f"Ad lookup, one shopper x {AD_CAMPAIGNS} campaigns: p99 at 4 clients "
        f"**{m['ads_tail']['p99']:.2f} ms** (goal <= 5 ms), {m['ads_sat']['rps']:,.0f} req/s at "
        "32 connections.",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("Read path (bench/serve.py)", text)


if __name__ == "__main__":
    main()
