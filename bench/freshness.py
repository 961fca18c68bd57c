"""Real-time freshness: time from a 202 to the first list that reflects the events (issue 5).

    .venv/bin/python bench/freshness.py [--probes 60] [--load 500]

Production layout: `brandlift serve` (2 processes) and `brandlift worker` (rebuilds and the
real-time loop) on a fresh Postgres database with Redis. After the worker's first model goes
live, a background client ingests --load events/s for random shoppers while probes buy an item
and poll the shopper's list every 10 ms:
- existing shoppers buy their current top item: reflected when it is gone from the list;
- new shoppers buy three items: reflected when their list turns `personalised`.
The read path's p99 is measured with wrk (4 paced connections, a steady read rate) before the
load and during it. Then a burst (default 10,000 events/s for 30 s) checks that the dirty queue
coalesces, stays bounded and drains.

--pin: one read API process, wrk and Redis on CPU 0, everything else (worker, ingest API, load
client, Postgres) on CPU 1, so the read path shares no core with the worker, as when they run
on separate hosts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import httpx

from bench.common import (
    ADMIN_KEY,
    INGEST_KEY,
    READ_KEY,
    ROOT,
    connect,
    create_database,
    drop_database,
    migrate,
    percentile,
    run_server,
    server_env,
    stop_process,
    write_section,
)
from bench.cpu import cpu_share
from bench.serve import wrk
from bench.world import copy_world, make_world

REDIS_URL = "redis://127.0.0.1:6379/10"
READ_PACE_MS = 5  # per connection: about 700 reads/s from 4 connections


def start_worker(url: str) -> subprocess.Popen[bytes]:
    env = server_env(url, REDIS_URL=REDIS_URL, REBUILD_INTERVAL_SECONDS="3600")
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", "worker"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def event(user: str, item: str, kind: str = "purchase") -> dict[str, object]:
    return {
        "event_id": uuid.uuid4().hex,
        "user_id": user,
        "item_id": item,
        "type": kind,
        "timestamp": datetime.now(UTC).isoformat(),
    }


async def wait_live(http: httpx.AsyncClient, within_s: float = 300) -> int:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        body = (await http.get("/v1/models", headers={"X-API-Key": ADMIN_KEY})).json()
        if body.get("live_version"):
            return int(body["live_version"])
        await asyncio.sleep(0.5)
    raise TimeoutError("no model went live")


def readers(
    base_url: str, users: list[str], seconds: float, cpus: set[int] | None = None
) -> dict[str, float]:
    """4 paced readers (wrk, its own process): a steady read rate, not saturation, so what a
    background load does to read latency shows instead of how CPU is shared at 100% load."""
    return wrk(
        base_url,
        "/v1/users/%s/recommendations?n=10",
        users,
        4,
        seconds,
        pace_ms=READ_PACE_MS,
        cpus=cpus,
    )


def server_pids(name: str) -> list[int]:
    found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


def unpin_servers() -> None:
    """Give Redis and Postgres (and the backends Postgres forked meanwhile) every CPU back."""
    every = set(range(os.cpu_count() or 1))
    for pid in server_pids("redis-server") + server_pids("postgres"):
        pin(pid, every)


def pin(pid: int, cpus: set[int]) -> None:
    """Keep every thread of a process on `cpus` (threads and children started later inherit
    it)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return  # gone meanwhile
    for task in tasks:
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task), cpus)


async def background_load(
    http: httpx.AsyncClient, users: list[str], items: list[str], rate: int, stop: asyncio.Event
) -> int:
    sent = 0
    while not stop.is_set():
        batch = [
            event(random.choice(users), random.choice(items), "view") for _ in range(rate // 10)
        ]
        await http.post("/v1/events", json=batch, headers={"X-API-Key": INGEST_KEY})
        sent += len(batch)
        await asyncio.sleep(0.1)
    return sent


async def probe(
    http: httpx.AsyncClient, writes: httpx.AsyncClient, user: str, items: list[str], existing: bool
) -> float:
    """Seconds from the 202 to the first list that reflects the purchase."""
    h = {"X-API-Key": READ_KEY}
    url = f"/v1/users/{user}/recommendations?n=10"
    if existing:
        current = (await http.get(url, headers=h)).json()["items"]
        bought = [current[0]["item_id"]]
    else:
        bought = random.sample(items, 3)
    resp = await writes.post(
        "/v1/events", json=[event(user, i) for i in bought], headers={"X-API-Key": INGEST_KEY}
    )
    assert resp.status_code == 202, resp.text
    accepted = time.perf_counter()
    while time.perf_counter() - accepted < 10:
        body = (await http.get(url, headers=h)).json()
        ids = {i["item_id"] for i in body["items"]}
        if (existing and not ids & set(bought)) or (
            not existing and body["strategy"] == "personalised"
        ):
            return time.perf_counter() - accepted
        await asyncio.sleep(0.01)
    return float("inf")


async def burst(
    http: httpx.AsyncClient, users: list[str], items: list[str], rate: int, seconds: float
) -> dict[str, float]:
    """`rate` events/s for `seconds` (batches of 1000 from 4 senders; a third of them for
    new shoppers); samples the dirty queue every 0.25 s until it has drained."""
    import redis.asyncio as aioredis

    from app.realtime.queue import DIRTY_KEY

    r = aioredis.Redis.from_url(REDIS_URL)
    fresh = [f"burst-{uuid.uuid4().hex[:8]}" for _ in range(len(users) // 2)]
    pool = users + fresh
    sent = 0
    samples: list[tuple[float, int, float]] = []  # (t, queue length, lag s)
    start = time.monotonic()
    stop_at = start + seconds

    async def sender(k: int) -> None:
        nonlocal sent
        batches = 0
        while time.monotonic() < stop_at:
            batch = [event(random.choice(pool), random.choice(items), "view") for _ in range(1000)]
            resp = await http.post("/v1/events", json=batch, headers={"X-API-Key": INGEST_KEY})
            assert resp.status_code == 202, resp.text
            sent += 1000
            batches += 1
            # Pace each sender to rate / 4 events/s.
            ahead = start + batches * 4000 / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)

    async def watch() -> None:
        while True:
            length = int(await r.zcard(DIRTY_KEY))
            oldest = await r.zrange(DIRTY_KEY, 0, 0, withscores=True)
            lag = time.time() - oldest[0][1] if oldest else 0.0
            samples.append((time.monotonic() - start, length, lag))
            if time.monotonic() > stop_at and length == 0:
                return
            await asyncio.sleep(0.25)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(sender(k) for k in range(4)))
    ended = time.monotonic() - start
    await asyncio.wait_for(watcher, timeout=600)
    await r.aclose()
    return {
        "sent": sent,
        "rate": sent / ended,
        "distinct_users": len(pool),
        "max_queue": max(q for _, q, _ in samples),
        "max_lag": max(lag for _, _, lag in samples),
        "drained_after": samples[-1][0] - ended,
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    url = await create_database("brandlift_bench_fresh")
    world = make_world(args.events)
    await asyncio.to_thread(migrate, url)
    conn = await connect(url)
    await copy_world(conn, world)
    await conn.close()
    import redis.asyncio as aioredis

    await aioredis.Redis.from_url(REDIS_URL).flushdb()
    worker = start_worker(url)
    try:
        with contextlib.ExitStack() as stack:
            env = {"REDIS_URL": REDIS_URL}
            if args.layout == "split":
                # Production layout for read latency: storefront reads and ingest on separate
                # API processes (as a load balancer would route them), so a batch being parsed
                # never delays a read queued behind it in the same event loop.
                reader = stack.enter_context(run_server(url, workers=1, env=env))
                writer = stack.enter_context(run_server(url, workers=1, env=env))
                roles = {"api (reads)": reader.process.pid, "api (ingest)": writer.process.pid}
            else:
                reader = writer = stack.enter_context(run_server(url, workers=2, env=env))
                roles = {"api": reader.process.pid}
            roles["worker"] = worker.pid
            read_url, write_url = reader.base_url, writer.base_url
            http = httpx.AsyncClient(base_url=read_url, timeout=30)
            writes = httpx.AsyncClient(base_url=write_url, timeout=30)
            read_cpus: set[int] | None = None
            try:
                await wait_live(http)
                if args.pin:
                    # The read path (wrk, the read API, Redis) on CPU 0; the worker, the ingest
                    # API, this load client and Postgres on CPU 1. Redis and Postgres get both
                    # CPUs back afterwards.
                    read_cpus, rest = {0}, {1}
                    for pid in (reader.process.pid, *server_pids("redis-server")):
                        pin(pid, read_cpus)
                    ours = (writer.process.pid, worker.pid, os.getpid())
                    for pid in (*ours, *server_pids("postgres")):
                        pin(pid, rest)
                    stack.callback(unpin_servers)
                users = [f"u{u}" for u in sorted(set(world.users.tolist()))[:3000]]
                items = [i[0] for i in world.items]
                # CPU is sampled inside each read phase, a second in and a second before its end.
                window = max(args.read_seconds - 2, 1)
                # Warm the read path first (connections, first-request work in each process)
                # so the quiet reference is the steady state, like the loaded phase.
                await asyncio.to_thread(readers, read_url, users, 2, read_cpus)
                quiet_cpu = asyncio.create_task(cpu_share(roles, 1, window))
                quiet = await asyncio.to_thread(
                    readers, read_url, users, args.read_seconds, read_cpus
                )
                stop = asyncio.Event()
                load = asyncio.create_task(background_load(writes, users, items, args.load, stop))
                during = asyncio.create_task(
                    asyncio.to_thread(readers, read_url, users, args.read_seconds, read_cpus)
                )
                busy_cpu = asyncio.create_task(cpu_share(roles, 1, window))
                times = []
                for k in range(args.probes):
                    existing = k % 2 == 0
                    user = random.choice(users) if existing else f"fresh-{uuid.uuid4().hex[:8]}"
                    times.append((existing, await probe(http, writes, user, items, existing)))
                busy = await during
                stop.set()
                sent = await load
                bursted = (
                    await burst(writes, users, items, args.burst_rate, args.burst_seconds)
                    if args.burst_seconds > 0
                    else None
                )
            finally:
                await http.aclose()
                await writes.aclose()
    finally:
        stop_process(worker)
        await drop_database(url)
    return {
        "times": times,
        "quiet": quiet,
        "busy": busy,
        "sent": sent,
        "burst": bursted,
        "cpu": {"quiet": await quiet_cpu, "busy": await busy_cpu},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--probes", type=int, default=60)
    parser.add_argument("--load", type=int, default=500, help="background events/s")
    parser.add_argument("--read-seconds", type=float, default=8.0)
    parser.add_argument("--burst-rate", type=int, default=10_000, help="events/s in the burst")
    parser.add_argument("--burst-seconds", type=float, default=30.0, help="0: no burst")
    parser.add_argument(
        "--layout",
        choices=("shared", "split"),
        default="shared",
        help="shared: 2 API processes serve everything; split: 1 for reads, 1 for ingest",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="split layout with the read API, wrk and Redis on CPU 0, the worker, ingest API, "
        "load client and Postgres on CPU 1 (as when the worker runs on its own host)",
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if args.pin:
        args.layout = "split"
    out = asyncio.run(run(args))
    all_times = [t for _, t in out["times"]]  # type: ignore[attr-defined]
    lines = [
        f"Command: `.venv/bin/python bench/freshness.py --events {args.events} --probes "
        f"{args.probes} --load {args.load} --burst-rate {args.burst_rate} --burst-seconds "
        f"{args.burst_seconds:.0f} " + ("--pin`" if args.pin else f"--layout {args.layout}`"),
        (
            "API: 2 processes serving reads and ingest alike"
            if args.layout == "shared"
            else "API: one process for reads, one for ingest (separate `brandlift serve`s)"
        )
        + "; worker in its own process; Postgres + Redis; probes alternate existing and new "
        f"shoppers; background ingest {args.load} events/s."
        + (
            " Pinned: wrk, the read API and Redis on CPU 0; the worker, the ingest API, the "
            "load client and Postgres on CPU 1 (the read path does not share a core with the "
            "worker, as with separate hosts)."
            if args.pin
            else ""
        ),
        "",
        "| what | p50 | p95 | p99 | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, subset in (
        ("202 -> list reflects it, all probes (s)", all_times),
        ("  existing shoppers (bought item gone)", [t for e, t in out["times"] if e]),  # type: ignore[attr-defined]
        ("  new shoppers (list turns personalised)", [t for e, t in out["times"] if not e]),  # type: ignore[attr-defined]
    ):
        lines.append(
            f"| {label} | {percentile(subset, 50):.3f} | {percentile(subset, 95):.3f} | "
            f"{percentile(subset, 99):.3f} | p95 <= 1 s, p99 <= 2 s |"
        )
    quiet, busy = out["quiet"], out["busy"]
    lines += [
        "",
        f"Read path: 4 wrk connections, each pausing {READ_PACE_MS} ms before each request "
        "(a steady read rate, in its own process).",
        "",
        "| read path (ms) | req/s | p50 | p90 | p99 | goal |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, r in (("no load (reference)", quiet), ("during load and probes", busy)):
        lines.append(
            f"| {label} | {r['rps']:,.0f} | {r['p50']:.2f} | {r['p90']:.2f} | {r['p99']:.2f} | "  # type: ignore[index]
            + ("reference |" if r is quiet else "within 20% of reference |")
        )
    ratio = busy["p99"] / quiet["p99"]  # type: ignore[index]
    lines += [
        "",
        f"Read p99 during / before: **{ratio:.2f}x**; background events sent: {out['sent']}.",
        "",
        "Cores busy in each read phase, per process kind (of 2; sampled from /proc):",
        "",
    ]
    cpu = out["cpu"]
    kinds = sorted(set(cpu["quiet"]) | set(cpu["busy"]))  # type: ignore[index]
    lines += [
        "| phase | " + " | ".join(kinds) + " | total |",
        "| --- |" + " --- |" * (len(kinds) + 1),
    ]
    for phase in ("quiet", "busy"):
        shares = cpu[phase]  # type: ignore[index]
        lines.append(
            f"| {phase} | "
            + " | ".join(f"{shares.get(k, 0.0):.2f}" for k in kinds)
            + f" | {sum(shares.values()):.2f} |"
        )
    b = out["burst"]
    if b:
        lines += [
            "",
            f"Burst: {b['sent']:,.0f} events in {args.burst_seconds:.0f} s ({b['rate']:,.0f} "  # type: ignore[index]
            f"events/s asked {args.burst_rate:,}/s) over {b['distinct_users']:,} shoppers: the "  # type: ignore[index]
            f"dirty queue peaked at **{b['max_queue']:,.0f}** shoppers (coalesced; bounded by "  # type: ignore[index]
            f"distinct shoppers), its lag at **{b['max_lag']:.1f} s**, and it was empty "  # type: ignore[index]
            f"{b['drained_after']:.1f} s after the burst ended.",  # type: ignore[index]
        ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        title = "read path on its own CPU" if args.pin else f"{args.layout} API"
        write_section(f"Real-time freshness, {title} (bench/freshness.py)", text)


if __name__ == "__main__":
    main()
