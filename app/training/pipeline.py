"""One full rebuild: lock, load, build, evaluate against the live model, publish, switch."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from app.context import AppContext
from app.logging import get_logger
from app.metrics import REBUILD_DURATION, REBUILDS
from app.models import ModelRun
from app.realtime.ads import LiveAds, live_ads
from app.realtime.queue import carry_over_realtime, mark_dirty
from app.realtime.recompute import LiveModel
from app.registry import service as registry
from app.training.build import BuildOutput, build, preprocess_config
from app.training.dataset import load_catalog, refresh_log
from app.training.lock import rebuild_lock
from app.training.preprocess import clean
from app.training.profile_job import ProfileJob
from app.training.promotions import publish_promotions
from app.training.publish import payloads, switch_live, write_version
from app.training.publish_profiles import publish_profiles

log = get_logger(__name__)


def guardrail(
    metrics: dict[str, Any], live_metrics: dict[str, Any] | None, tolerance: float
) -> str | None:
    """Why a new model must not go live, or None. Compares NDCG@10 on each run's holdout."""
    new, old = metrics.get("ndcg@10"), (live_metrics or {}).get("ndcg@10")
    if new is None or old is None:
        return None  # nothing comparable (no holdout yet): the first model always goes live
    if new < old * (1.0 - tolerance):
        return f"ndcg@10 {new:.4f} is worse than the live model's {old:.4f} beyond {tolerance:.0%}"
    return None


def _epoch_to_dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None


def _incumbent(live: ModelRun | None, reselect_hours: float) -> tuple[str | None, str]:
    """The live kind while its auto-selection is recent, and when that selection happened."""
    now = datetime.now(UTC)
    if live is None or not live.params or not live.params.get("selected_at"):
        return None, now.isoformat()
    selected_at = datetime.fromisoformat(live.params["selected_at"])
    if (now - selected_at).total_seconds() > reselect_hours * 3600:
        return None, now.isoformat()
    return live.kind, selected_at.isoformat()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for the duration (process-wide). A rebuild allocates
    millions of small acyclic objects (list rows, profiles, payloads); the collections they
    trigger walk every live object, which measured 0.5-1 s of a 3 s build. Reference counting
    still frees them as before; the collector resumes afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


async def rebuild(ctx: AppContext, *, trigger: str = "schedule") -> dict[str, Any]:
    """Run one rebuild if no other process is running one; returns what happened."""
    async with rebuild_lock(ctx.engine) as acquired:
        if not acquired:
            return {"status": "skipped", "detail": "another rebuild is running"}
        with gc_paused():
            return await _rebuild_locked(ctx, trigger)


async def _rebuild_locked(ctx: AppContext, trigger: str) -> dict[str, Any]:
    settings = ctx.settings
    started = time.perf_counter()
    snapshot_at = time.time()  # real-time updates after this are newer than the build
    version = await registry.start_run(ctx.sessions, settings.model_kind, trigger)
    log.info("rebuild started", version=version, trigger=trigger)
    profile_job: ProfileJob | None = None
    ads: LiveAds | None = None
    try:
        catalog = await load_catalog(ctx.engine)
        # The worker keeps the event log between rebuilds and reads only what is new.
        event_log = await refresh_log(ctx.engine, ctx.extras.get("event_log"))
        ctx.extras["event_log"] = event_log
        # Cleaned once here: the recommender build and the profiles both start from it.
        inter, _ = await asyncio.to_thread(
            clean, event_log.interactions(catalog), catalog, preprocess_config(settings)
        )
        load_seconds = time.perf_counter() - started
        live = await registry.live_run(ctx.sessions)
        tuned = (live.params or {}).get("tuned") if live else None
        incumbent, selected_at = _incumbent(live, settings.reselect_hours)
        # Profiles start now, beside the recommender build (two cores, two CPU-bound jobs).
        profile_job = ProfileJob(ctx, catalog, inter, version)
        out: BuildOutput = await asyncio.to_thread(
            build, catalog, inter, settings, tuned=tuned, incumbent=incumbent
        )
        out.timings["load"] = round(load_seconds, 3)
        compared = incumbent is not None or len(out.metrics.get("candidates", [])) > 1
        params: dict[str, Any] = {
            "model": out.params,
            # Only a real comparison on a holdout counts as a selection worth keeping.
            "selected_at": selected_at if compared else None,
        }
        if tuned:
            params["tuned"] = tuned
        fields: dict[str, Any] = {
            "kind": out.kind,
            "params": params,
            "metrics": {**out.metrics, "clean": vars(out.stats), "timings": out.timings},
            "data_start": _epoch_to_dt(out.data_start),
            "data_end": _epoch_to_dt(out.data_end),
        }
        reason = guardrail(
            out.metrics, live.metrics if live else None, settings.guardrail_tolerance
        )
        if reason:
            await registry.finish_run(ctx.sessions, version, "rejected", detail=reason, **fields)
            REBUILDS.labels("rejected").inc()
            log.warning("model rejected by guardrail", version=version, reason=reason)
            return {"status": "rejected", "version": version, "detail": reason}
        tick = time.perf_counter()
        info = {
            "version": version,
            "kind": out.kind,
            "created_at": datetime.now(UTC).isoformat(),
            "users": len(out.user_lists),
            "items": len(catalog),
        }

        async def publish_lists() -> None:
            await write_version(ctx.cache, version, payloads(out, catalog, inter), info)
            out.timings["publish_lists"] = round(time.perf_counter() - tick, 3)

        # The lists go out while the profile stage finishes: each waits on Redis or Postgres
        # part of the time, when the other can use the CPU.
        lists_written = asyncio.create_task(publish_lists())
        try:
            profiles = await publish_profiles(ctx, out, profile_job)
            out.timings["profiles_and_ads"] = round(time.perf_counter() - tick, 3)
            await lists_written
        finally:
            lists_written.cancel()  # a no-op once written; stops it when the profiles failed
        # Published: real time keeps the model, not the millions of list rows.
        out.user_lists = {}
        fields["metrics"].update(profiles)
        ads = live_ads(await profile_job.task, catalog)  # real time rescores ads with it
        tick_promotions = time.perf_counter()
        fields["metrics"].update(await publish_promotions(ctx, version, catalog, out))
        out.timings["promotions"] = round(time.perf_counter() - tick_promotions, 3)
        carried = await carry_over_realtime(ctx.cache, version, since=snapshot_at)
        await switch_live(ctx.cache, version)
        # Those users get recomputed against the new model too.
        await mark_dirty(ctx.cache, carried, ctx.settings.realtime_queue_max)
        out.timings["publish"] = round(time.perf_counter() - tick, 3)
        fields["metrics"]["timings"] = out.timings
        await registry.finish_run(ctx.sessions, version, "live", **fields)
    except Exception as exc:
        await registry.finish_run(
            ctx.sessions, version, "failed", detail=f"{type(exc).__name__}: {exc}"[:2000]
        )
        REBUILDS.labels("failed").inc()
        log.exception("rebuild failed", version=version)
        return {"status": "failed", "version": version, "detail": type(exc).__name__}
    finally:
        if profile_job is not None:
            profile_job.abandon()  # a no-op once it has its model
    duration = time.perf_counter() - started
    REBUILD_DURATION.set(duration)
    REBUILDS.labels("live").inc()
    ctx.extras["realtime_model"] = LiveModel(version, out, catalog, ads=ads)
    for callback in ctx.extras.get("on_live", []):
        callback(version)  # e.g. this process's serving view re-reads the pointer now
    log.info("model live", version=version, kind=out.kind, seconds=round(duration, 2))
    return {"status": "live", "version": version, "kind": out.kind, "seconds": round(duration, 3)}
