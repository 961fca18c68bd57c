"""Full rebuild time vs a bare `implicit` fit on the same matrix (issue 3).

    .venv/bin/python bench/train.py [--events 1000000]

Loads a generated shop into a fresh Postgres database, runs the real worker pipeline
(load, preprocess, evaluate, train, publish every user's list to Redis) and times each step;
then fits `implicit` ALS alone on the same confidence matrix with the same parameters.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bench.common import (
    connect,
    create_database,
    drop_database,
    machine_note,
    migrate,
    write_section,
)
from bench.world import copy_events, copy_world, make_world


async def run(n_events: int, model_kind: str) -> dict[str, object]:
    from app.config import Settings
    from app.context import AppContext
    from app.training.build import DEFAULT_PARAMS, preprocess_config
    from app.training.dataset import load_catalog, load_interactions
    from app.training.models import build_model
    from app.training.pipeline import rebuild
    from app.training.preprocess import clean, confidence_matrix, event_weights

    url = await create_database("brandlift_bench_train")
    try:
        await asyncio.to_thread(migrate, url)
        fresh = n_events // 100  # arrive between the first and the second rebuild
        world = make_world(n_events + fresh)
        conn = await connect(url)
        tick = time.perf_counter()
        await copy_world(conn, world, stop=n_events)
        print(f"loaded {n_events} events in {time.perf_counter() - tick:.1f}s", flush=True)
        settings = Settings(
            database_url=url, redis_url="redis://127.0.0.1:6379/13", model_kind=model_kind
        )
        ctx = AppContext.create(settings, cache_timeout=10.0)
        await ctx.cache.client.flushdb()
        tick = time.perf_counter()
        first = await rebuild(ctx, trigger="bench")
        first_seconds = time.perf_counter() - tick
        # Steady state: 1% new events, the worker's event log read incrementally and the
        # auto-selected kind retrained without re-running the selection.
        await copy_events(conn, world, n_events, n_events + fresh)
        await conn.close()
        tick = time.perf_counter()
        result = await rebuild(ctx, trigger="bench")
        rebuild_seconds = time.perf_counter() - tick
        from app.registry import service as registry

        first_row = await registry.get_run_by_version(ctx.sessions, int(first["version"]))
        first_timings = (first_row.metrics or {}).get("timings", {}) if first_row else {}

        run_row = await registry.get_run_by_version(ctx.sessions, int(result["version"]))
        timings = (run_row.metrics or {}).get("timings", {}) if run_row else {}
        metrics = run_row.metrics if run_row else {}

        # Reference: the same matrix, implicit's ALS fit alone with the live kind's params.
        catalog = await load_catalog(ctx.engine)
        inter = await load_interactions(ctx.engine, catalog)
        cfg = preprocess_config(settings)
        inter, _ = clean(inter, catalog, cfg)
        matrix = confidence_matrix(
            inter.user,
            inter.item,
            event_weights(inter, cfg, time.time()),
            (inter.n_users, len(catalog)),
        )
        # The reference: implicit's ALS fit alone on the same matrix. The live kind's
        # own fit is reported beside it.
        model = build_model("als", DEFAULT_PARAMS["als"])
        tick = time.perf_counter()
        model.fit(matrix)
        bare_fit = time.perf_counter() - tick
        live_kind = str(result.get("kind") or "als")
        live_model = build_model(live_kind, DEFAULT_PARAMS.get(live_kind, {}))
        tick = time.perf_counter()
        live_model.fit(matrix)
        live_fit = time.perf_counter() - tick
        await ctx.close()
        return {
            "events": n_events,
            "users": matrix.shape[0],
            "items": matrix.shape[1],
            "status": result["status"],
            "kind": result.get("kind"),
            "rebuild": rebuild_seconds,
            "first": first_seconds,
            "first_timings": first_timings,
            "bare_fit": bare_fit,
            "live_fit": live_fit,
            "timings": timings,
            "ndcg": metrics.get("ndcg@10") if metrics else None,
            "baseline": (metrics.get("baseline_popular") or {}).get("ndcg@10") if metrics else None,
            "candidates": [
                (c["kind"], c["metrics"]["ndcg@10"], c["metrics"]["fit_seconds"])
                for c in (metrics.get("candidates") or [])
            ],
        }
    finally:
        await drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--model-kind", default="auto")
    parser.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    args = parser.parse_args()
    out = asyncio.run(run(args.events, args.model_kind))
    ratio = out["rebuild"] / out["bare_fit"]  # type: ignore[operator]
    lines = [
        f"Command: `.venv/bin/python bench/train.py --events {args.events} --model-kind {args.model_kind}`",
        f"Machine: {machine_note()}",
        "",
        "| what | seconds |",
        "| --- | --- |",
        f"| steady-state rebuild after 1% new events ({out['events']:,} events, {out['users']:,} users, {out['items']:,} items; "
        f"live kind `{out['kind']}`) | {out['rebuild']:.1f} |",
        f"| first rebuild of a fresh worker (full read, all candidates compared) | {out['first']:.1f} |",
        f"| bare `implicit` ALS fit on the same matrix (reference) | {out['bare_fit']:.1f} |",
        f"| bare fit of the live kind `{out['kind']}` on the same matrix | {out['live_fit']:.1f} |",
        f"| ratio steady-state rebuild / bare fit (goal <= 3x, and < 120 s) | {ratio:.2f}x |",
        f"| ratio first rebuild / bare fit | {out['first'] / out['bare_fit']:.2f}x |",
        "",
        f"Steps, steady state (s): {out['timings']}",
        f"Steps, first rebuild (s): {out['first_timings']}",
        f"Holdout NDCG@10 of the live model {out['ndcg']} vs popularity {out['baseline']}; "
        f"candidates (kind, NDCG@10, fit s): {out['candidates']}",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("Rebuild time (bench/train.py)", text)


if __name__ == "__main__":
    main()
