"""The operator's view of the service: one dictionary behind /v1/ops/status and /dashboard.

Everything comes from shared state (database, cache, metric files), so any API process gives
the same answer: health of the dependencies and the worker, the live model and the last runs,
and what shoppers did lately (ingest by type and hour, recommendation and ad click-through).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import orjson

from app.cache import CacheUnavailable, key
from app.context import AppContext
from app.metrics import counter_totals
from app.models import ModelRun
from app.ops import activity
from app.ops.service import readiness
from app.registry import service as registry
from app.training.publish import live_version, version_key

# Written by the worker loop (app/worker.py) once a second, with a two-minute expiry.
HEARTBEAT_KEY = key("worker", "heartbeat")
HEARTBEAT_STALE_SECONDS = 30.0
RECENT_RUNS = 10
RUN_METRICS = ("ndcg@10", "recall@10", "map@10", "coverage")


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _rounded(value: Any, digits: int = 4) -> Any:
    return round(value, digits) if isinstance(value, float) else value


async def worker_facts(ctx: AppContext, rebuilding: bool) -> dict[str, Any]:
    """Heartbeat age; a worker busy with a long rebuild does not beat, which is not stale."""
    try:
        raw = await ctx.cache.run(lambda r: r.get(HEARTBEAT_KEY))
    except CacheUnavailable:
        return {"status": "unknown", "heartbeat_age_seconds": None, "rebuilding": rebuilding}
    if raw is None:
        status = "busy" if rebuilding else "absent"
        return {"status": status, "heartbeat_age_seconds": None, "rebuilding": rebuilding}
    age = max(0.0, time.time() - float(raw))
    stale = "busy" if rebuilding else "stale"
    status = "ok" if age <= HEARTBEAT_STALE_SECONDS else stale
    return {"status": status, "heartbeat_age_seconds": round(age, 1), "rebuilding": rebuilding}


def run_facts(run: ModelRun) -> dict[str, Any]:
    """One model run as the dashboard shows it."""
    metrics = run.metrics or {}
    duration = None
    if run.finished_at is not None and run.started_at is not None:
        duration = round((run.finished_at - run.started_at).total_seconds(), 3)
    baseline = metrics.get("baseline_popular") or {}
    return {
        "version": run.version,
        "kind": run.kind,
        "status": run.status,
        "trigger": run.trigger,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "duration_seconds": duration,
        "metrics": {m: _rounded(metrics.get(m)) for m in RUN_METRICS},
        "baseline_ndcg@10": _rounded(baseline.get("ndcg@10")),
        "events": metrics.get("events"),
        "detail": run.detail,
    }


async def _published_info(ctx: AppContext) -> tuple[int | None, dict[str, Any]]:
    """The live pointer and the version's info blob, or (None, {}) without a cache."""
    try:
        version = await live_version(ctx.cache)
        if version is None:
            return None, {}
        raw = await ctx.cache.run(lambda r: r.get(version_key(version, "info")))
    except CacheUnavailable:
        return None, {}
    return version, orjson.loads(raw) if raw else {}


async def model_facts(ctx: AppContext) -> dict[str, Any] | None:
    """The model being served: the cache's live pointer first, the registry otherwise."""
    version, info = await _published_info(ctx)
    if version is not None:
        run = await registry.get_run_by_version(ctx.sessions, version)
    else:
        run = await registry.live_run(ctx.sessions)
    if run is None and version is None:
        return None
    since: datetime | None = run.finished_at if run is not None else None
    if since is None and info.get("created_at"):
        since = datetime.fromisoformat(info["created_at"])
    metrics = (run.metrics or {}) if run is not None else {}
    return {
        "version": version if version is not None else run.version,  # type: ignore[union-attr]
        "kind": info.get("kind") or (run.kind if run is not None else None),
        "source": "cache" if version is not None else "registry",
        "live_since": iso(since),
        "age_seconds": round(time.time() - since.timestamp(), 1) if since else None,
        "users": info.get("users", metrics.get("users")),
        "items": info.get("items", metrics.get("items")),
        "metrics": {m: _rounded(metrics.get(m)) for m in RUN_METRICS},
    }


def cache_facts() -> dict[str, Any]:
    """Serving lookups by outcome since the API processes started, with rates."""
    totals = counter_totals("brandlift_cache_requests", "result")
    hits, misses, fallbacks = (int(totals.get(k, 0)) for k in ("hit", "miss", "fallback"))
    total = hits + misses + fallbacks
    return {
        "hits": hits,
        "misses": misses,
        "fallbacks": fallbacks,
        "lookups": total,
        "hit_rate": round(hits / total, 4) if total else None,
        "fallback_rate": round(fallbacks / total, 4) if total else None,
    }


def overall(health: dict[str, Any]) -> str:
    """down: the database is unreachable; degraded: anything else not ok; else ok."""
    if health["database"]["status"] != "ok":
        return "down"
    others = (health["cache"], health["worker"], health.get("realtime") or {"status": "ok"})
    return "ok" if all(part["status"] == "ok" for part in others) else "degraded"


async def collect_status(ctx: AppContext, *, hours: int = 24, days: int = 7) -> dict[str, Any]:
    """Every fact the dashboard shows, as plain JSON-ready values."""
    now = time.time()
    _, ready = await readiness(ctx)
    checks = ready["checks"]
    async with ctx.sessions() as session:
        runs = await registry.list_runs(session, RECENT_RUNS)
    rebuilding = any(r.status == "training" for r in runs)
    health: dict[str, Any] = {
        "database": checks["database"],
        "cache": checks["cache"],
        "realtime": checks.get("realtime")
        or {"status": "unknown", "queued_users": None, "lag_seconds": None},
        "worker": await worker_facts(ctx, rebuilding),
    }
    health["status"] = overall(health)
    model, ingest, recs, ads, segments = await asyncio.gather(
        model_facts(ctx),
        activity.ingest_by_hour(ctx, now, hours),
        activity.ctr_by_strategy(ctx, now, days),
        activity.top_campaigns(ctx, now, days),
        activity.segment_sizes(ctx),
    )
    return {
        "generated_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "health": health,
        "model": model,
        "runs": [run_facts(r) for r in runs],
        "ingest": ingest,
        "cache": cache_facts(),
        "recommendations": recs,
        "campaigns": ads,
        "segments": segments,
    }
