"""Ingest benchmark: POST /v1/events over HTTP against a raw binary COPY of the same rows.

    .venv/bin/python bench/ingest.py                      # 1,000,000 events, writes RESULTS.md
    .venv/bin/python bench/ingest.py --events 100000 --no-write   # quick look

Generates the events, pre-serialises them into batches of 1000 (JSON bytes), starts the real
service on a fresh migrated Postgres database, sends every batch with several concurrent
keep-alive clients and measures events/s; re-sends a few batches to show duplicates are
counted; then truncates the table and COPYs the same rows into it (same indexes) with asyncpg's
binary copy_records_to_table, the practical limit. Goal (issue 2): HTTP >= 0.5x the COPY rate
and >= 20,000 events/s on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    INGEST_KEY,
    Stopwatch,
    connect,
    create_database,
    drop_database,
    migrate,
    run_server,
    spread,
    write_section,
)

EVENT_COLUMNS = (
    "event_id",
    "user_id",
    "item_id",
    "campaign_id",
    "type",
    "ts",
    "quantity",
    "amount",
    "value",
    "dwell_seconds",
    "source",
    "context",
)
# Rough shares of a shop's event stream: mostly views, few purchases, some ad traffic.
TYPE_WEIGHTS = {
    "view": 60,
    "click": 14,
    "add_to_cart": 7,
    "remove_from_cart": 2,
    "purchase": 3,
    "rating": 1,
    "ad_impression": 8,
    "ad_click": 1,
    "ad_conversion": 0.3,
    "rec_impression": 3,
    "rec_click": 0.7,
}
ITEM_TYPES = {"view", "click", "add_to_cart", "remove_from_cart", "purchase", "rating", "rec_click"}
AD_TYPES = {"ad_impression", "ad_click", "ad_conversion"}


@dataclass
class Workload:
    """The pre-serialised HTTP batches and the same rows as COPY records."""

    batches: list[bytes]
    records: list[tuple[Any, ...]]

    @property
    def events(self) -> int:
        return len(self.records)


def generate(n_events: int, batch_size: int, seed: int = 7) -> Workload:
    """Shoppers with sessions over 30 days on a skewed catalog; ids unique per event."""
    rng = random.Random(seed)
    n_users = max(100, n_events // 20)
    n_items = max(50, n_events // 100)
    n_campaigns = 50
    types = list(TYPE_WEIGHTS)
    weights = list(TYPE_WEIGHTS.values())
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=30)
    batches: list[bytes] = []
    records: list[tuple[Any, ...]] = []
    batch: list[dict[str, Any]] = []
    i = 0
    while i < n_events:
        # One session: a shopper, a moment, a handful of events close together.
        user = f"u{int(rng.paretovariate(1.2) * 7) % n_users:07d}"
        ts = start + timedelta(seconds=rng.randrange(30 * 86400))
        source = rng.choice(("web", "app", "web", "email"))
        for event_type in rng.choices(types, weights, k=rng.randint(1, 12)):
            if i >= n_events:
                break
            ts += timedelta(seconds=rng.randint(1, 90))
            item = (
                f"i{int(rng.paretovariate(1.1) * 5) % n_items:06d}"
                if event_type in ITEM_TYPES or rng.random() < 0.3
                else None
            )
            campaign = f"c{rng.randrange(n_campaigns):03d}" if event_type in AD_TYPES else None
            ev: dict[str, Any] = {
                "event_id": f"ev-{seed}-{i:09d}",
                "user_id": user,
                "type": event_type,
                "timestamp": ts.isoformat(),
            }
            quantity = amount = value = dwell = context = None
            if item:
                ev["item_id"] = item
            if campaign:
                ev["campaign_id"] = campaign
            if event_type in ("add_to_cart", "remove_from_cart", "purchase"):
                quantity = ev["quantity"] = rng.randint(1, 3)
            if event_type in ("purchase", "ad_conversion"):
                amount = ev["amount"] = round(rng.uniform(5, 300), 2)
            if event_type == "rating":
                value = ev["value"] = float(rng.randint(1, 5))
            if event_type == "view":
                dwell = ev["dwell_seconds"] = round(rng.expovariate(1 / 20), 1)
            ev["source"] = source
            if event_type in ("rec_impression", "rec_click"):
                context = ev["context"] = {"request_id": f"r{rng.randrange(10**9)}", "pos": 3}
            batch.append(ev)
            records.append(
                (
                    ev["event_id"],
                    user,
                    item,
                    campaign,
                    event_type,
                    ts,
                    quantity,
                    amount,
                    value,
                    dwell,
                    source,
                    None if context is None else orjson.dumps(context).decode(),
                )
            )
            i += 1
            if len(batch) == batch_size:
                batches.append(orjson.dumps(batch))
                batch = []
    if batch:
        batches.append(orjson.dumps(batch))
    return Workload(batches, records)


async def reset_tables(url: str) -> None:
    """Empty events, users and items and flush dirty pages so each run starts alike."""
    conn = await connect(url)
    try:
        await conn.execute("TRUNCATE events, users, items RESTART IDENTITY")
        await conn.execute("VACUUM ANALYZE events")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def count_rows(url: str) -> int:
    conn = await connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM events"))
    finally:
        await conn.close()


async def send_all(
    base_url: str, batches: list[bytes], concurrency: int
) -> tuple[float, int, int, list[float]]:
    """POST every batch with `concurrency` keep-alive connections; (seconds, acc, dup, lat)."""
    headers = {"X-API-Key": INGEST_KEY, "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in batches:
        queue.put_nowait(body)
    totals = {"accepted": 0, "duplicates": 0}
    latencies: list[float] = []

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120.0) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                began = time.perf_counter()
                resp = await client.post("/v1/events", content=body, headers=headers)
                latencies.append(time.perf_counter() - began)
                if resp.status_code != 202:
                    raise RuntimeError(f"ingest answered {resp.status_code}: {resp.text[:500]}")
                answer = resp.json()
                totals["accepted"] += answer["accepted"]
                totals["duplicates"] += answer["duplicates"]

        # Open the connections first so TCP set-up is not part of the timed run.
        await asyncio.gather(*(client.get("/health/live") for _ in range(concurrency)))
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - began
    return seconds, totals["accepted"], totals["duplicates"], latencies


async def copy_rows(url: str, records: list[tuple[Any, ...]]) -> float:
    """Binary COPY of every record into events in one transaction; returns seconds."""
    conn = await connect(url)
    try:
        with Stopwatch() as sw:
            async with conn.transaction():
                await conn.copy_records_to_table("events", records=records, columns=EVENT_COLUMNS)
        return sw.seconds
    finally:
        await conn.close()


async def http_round(url: str, work: Workload, workers: int, concurrency: int) -> dict[str, Any]:
    """One timed HTTP run on empty tables, with the checks that make the figure honest."""
    await reset_tables(url)
    with run_server(url, workers=workers) as server:
        seconds, accepted, duplicates, lat = await send_all(
            server.base_url, work.batches, concurrency
        )
        stored = await count_rows(url)
        # Re-sending must change nothing and be reported as duplicates.
        resend = work.batches[:10]
        _, re_acc, re_dup, _ = await send_all(server.base_url, resend, min(concurrency, 4))
    expected_dup = sum(len(orjson.loads(b)) for b in resend)
    ok = (
        accepted == work.events
        and duplicates == 0
        and stored == work.events
        and re_acc == 0
        and re_dup == expected_dup
    )
    lat.sort()
    return {
        "workers": workers,
        "concurrency": concurrency,
        "seconds": seconds,
        "rate": work.events / seconds,
        "stored": stored,
        "resent": expected_dup,
        "resent_accepted": re_acc,
        "resent_duplicates": re_dup,
        "ok": ok,
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
    }


async def copy_round(url: str, work: Workload) -> dict[str, Any]:
    await reset_tables(url)
    seconds = await copy_rows(url, work.records)
    stored = await count_rows(url)
    return {
        "seconds": seconds,
        "rate": work.events / seconds,
        "stored": stored,
        "ok": stored == work.events,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--workers", default="2", help="uvicorn worker counts to try, e.g. 1,2")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent HTTP clients")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs of each kind")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--keep-db", action="store_true", help="keep the benchmark database")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with Stopwatch() as gen:
        work = generate(args.events, args.batch_size)
    # The load client keeps a million rows alive: keep them out of its cyclic GC's scans so
    # the client takes as little CPU as possible from the server on the shared cores.
    gc.freeze()
    mib = sum(len(b) for b in work.batches) / 2**20
    print(
        f"generated {work.events:,} events in {len(work.batches)} batches ({mib:.0f} MiB JSON)"
        f" in {gen.seconds:.1f}s",
        flush=True,
    )
    url = await create_database()
    try:
        await asyncio.to_thread(migrate, url)
        http: list[dict[str, Any]] = []
        copies: list[dict[str, Any]] = []
        for _ in range(args.repeat):
            for workers in (int(w) for w in args.workers.split(",")):
                result = await http_round(url, work, workers, args.concurrency)
                print("http", json.dumps(result), flush=True)
                http.append(result)
            result = await copy_round(url, work)
            print("copy", json.dumps(result), flush=True)
            copies.append(result)
    finally:
        if not args.keep_db:
            await drop_database(url)
    return {
        "events": work.events,
        "batches": len(work.batches),
        "mib": mib,
        "http": http,
        "copy": copies,
    }


def report(args: argparse.Namespace, out: dict[str, Any]) -> str:
    """The RESULTS.md section: best consistent figures, the spread and every run."""
    copy_rates = [c["rate"] for c in out["copy"]]
    best_copy = max(copy_rates)
    by_workers: dict[int, list[dict[str, Any]]] = {}
    for r in out["http"]:
        by_workers.setdefault(r["workers"], []).append(r)
    best_w = max(by_workers, key=lambda w: max(r["rate"] for r in by_workers[w]))
    best_http = max(r["rate"] for r in by_workers[best_w])
    ratio = best_http / best_copy
    all_ok = all(r["ok"] for r in out["http"]) and all(c["ok"] for c in out["copy"])
    cmd = "OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/ingest.py"
    if args.events != 1_000_000:
        cmd += f" --events {args.events}"
    cmd += f" --workers {args.workers} --concurrency {args.concurrency} --repeat {args.repeat}"
    lines = [
        f"`{cmd}`",
        "",
        f"{out['events']:,} generated events in {out['batches']} batches of {args.batch_size} "
        f"({out['mib']:.0f} MiB of JSON, serialised before timing), sent by {args.concurrency} "
        "concurrent keep-alive clients (httpx, one process) to `brandlift serve`; the reference "
        "is one binary `COPY` (asyncpg `copy_records_to_table`) of the same rows into the same "
        "`events` table with the same indexes, after `TRUNCATE`. `synchronous_commit` is on: "
        "every 202 is a committed transaction.",
        "",
        "| measure | figure |",
        "| --- | --- |",
        f"| HTTP ingest, best ({best_w} uvicorn worker{'s' if best_w > 1 else ''}) "
        f"| **{best_http:,.0f} events/s** |",
        f"| raw binary COPY, best | **{best_copy:,.0f} rows/s** |",
        f"| HTTP / COPY | **{ratio:.2f}x** (goal >= 0.5x) |",
        f"| goal >= 20,000 events/s | {'met' if best_http >= 20_000 else 'NOT met'} |",
        f"| rows after each run = {out['events']:,}, re-sent batches all counted as duplicates "
        f"| {'yes' if all_ok else 'NO'} |",
        "",
        "Every run (rates in events/s or rows/s; latency per 1000-event request):",
        "",
        "| run | workers | rate | seconds | p50 ms | p99 ms | re-sent: accepted / duplicates |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in out["http"]:
        lines.append(
            f"| HTTP | {r['workers']} | {r['rate']:,.0f} | {r['seconds']:.1f} | "
            f"{r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['resent_accepted']} / "
            f"{r['resent_duplicates']} of {r['resent']} |"
        )
    for c in out["copy"]:
        lines.append(f"| COPY | - | {c['rate']:,.0f} | {c['seconds']:.1f} | | | |")
    for w, runs in sorted(by_workers.items()):
        lines.append("")
        lines.append(f"HTTP with {w} worker(s): {spread([r['rate'] for r in runs])} events/s.")
    lines.append(f"COPY: {spread(copy_rates)} rows/s.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = asyncio.run(run(args))
    section = report(args, out)
    print(section)
    if not args.no_write:
        write_section("Ingest: POST /v1/events vs raw COPY", section)
    ok = all(r["ok"] for r in out["http"]) and all(c["ok"] for c in out["copy"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
