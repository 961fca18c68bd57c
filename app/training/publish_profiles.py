"""The profile stage's output written under a rebuild's new version (profile_job.py runs it).

Cache layout (under "bl:v:{v}:", pending TTL until the version goes live, like the rest):
  prof  (hash)  user_id -> the GET /v1/users/{id}/profile body (JSON)
  pmeta (hash)  "segments" -> segment summary, "cold" -> predictions for a brand-new user
  ads   (hash)  user_id -> float16 [p_click..., p_convert...] over adm's campaigns, in order
  adm   (hash)  "campaigns" -> [{campaign_id, bid, value, ...}] (active campaigns, in order),
                "cold" -> {"p_click": [...], "p_convert": [...]} for users with no history
  aud   (hash)  campaign_id -> {"p": [[user, p_click, p_convert], ...] prospects,
                                "b": [...] existing buyers of the brand}, best first
The user_profiles table gets the same profiles (segment paging and the cache-down path);
rows of users no longer known are removed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import asyncpg
import numpy as np
import orjson
from sqlalchemy import delete
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.cache import Cache
from app.context import AppContext
from app.models import UserProfile
from app.training.build import BuildOutput
from app.training.profile_build import ProfileOutput
from app.training.profile_data import Campaigns
from app.training.publish import PENDING_TTL, version_key

if TYPE_CHECKING:
    from app.training.profile_job import ProfileJob

PROFILE_PARTS = ("prof", "pmeta", "ads", "adm", "aud")
CHUNK = 1000
PROFILE_COLUMNS = ("user_id", "segment", "features", "predictions", "version", "updated_at")
AUDIENCE_MAX = 10_000  # users kept per campaign and group (prospects, buyers)


def _num(value: float, digits: int) -> float | None:
    return round(float(value), digits) if np.isfinite(value) else None


def profile_rows(
    res: ProfileOutput, version: int, updated_at: str, start: int, stop: int
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]]:
    """(user_id, full profile body, features, predictions) for users start..stop."""
    t = res.table
    for u in range(start, stop):
        features = {
            "rfm": {
                "recency_days": _num(t.recency_days[u], 2),
                "frequency": int(t.frequency[u]),
                "monetary": round(float(t.monetary[u]), 2),
            },
            "top_categories": [{"category": c, "affinity": a} for c, a in res.top_categories[u]],
            "top_brands": [{"brand": b, "affinity": a} for b, a in res.top_brands[u]],
            "price_sensitivity": _num(t.price_sensitivity[u], 4),
            "avg_dwell_seconds": _num(t.avg_dwell[u], 1),
            "events": int(t.events[u]),
        }
        predictions = {
            "predicted_spend_30d": round(float(res.spend[u]), 2),
            "churn_probability": round(float(res.churn[u]), 4),
            "confidence": "low" if res.low_confidence[u] else "normal",
            "top_factors": {
                target: [{"feature": f, "contribution": c} for f, c in rows[u]]
                for target, rows in res.factors.items()
            },
        }
        body = {
            "user_id": res.users[u],
            "attributes": res.attributes[u],
            "segment": str(res.segments[u]),
            **features,
            **predictions,
            "updated_at": updated_at,
            "model_version": version,
        }
        yield res.users[u], body, features, predictions


async def _hset(cache: Cache, name: str, mapping: dict[str, bytes]) -> None:
    async def op(client: Any) -> None:
        async with client.pipeline(transaction=False) as pipe:
            pipe.hset(name, mapping=mapping)
            pipe.expire(name, PENDING_TTL)
            await pipe.execute()

    await cache.run(op)


@dataclass
class PreparedProfiles:
    """Every profile serialised: cache fields in batches, and user_profiles rows (JSON text
    for Postgres' COPY, dicts for SQLite's executemany)."""

    batches: list[dict[str, bytes]]
    records: list[tuple[Any, ...]]
    updated_at: datetime


def prepare_profiles(res: ProfileOutput, version: int, postgres: bool) -> PreparedProfiles:
    """Serialise the profiles (CPU only: the rebuild runs it in a thread while CF trains)."""
    updated_at = datetime.fromtimestamp(res.now, tz=UTC)
    stamp = updated_at.isoformat()
    batches: list[dict[str, bytes]] = []
    records: list[tuple[Any, ...]] = []
    for start in range(0, len(res.users), CHUNK):
        rows = list(profile_rows(res, version, stamp, start, min(start + CHUNK, len(res.users))))
        batches.append({u: orjson.dumps(body) for u, body, _, _ in rows})
        if postgres:
            records.extend(
                (u, body["segment"], orjson.dumps(f).decode(), orjson.dumps(p).decode())
                for u, body, f, p in rows
            )
        else:
            records.extend((u, body["segment"], f, p) for u, body, f, p in rows)
    return PreparedProfiles(batches, records, updated_at)


def is_postgres(ctx: AppContext) -> bool:
    return ctx.engine.dialect.name == "postgresql"


async def cache_profiles(
    ctx: AppContext, version: int, prepared: PreparedProfiles, res: ProfileOutput
) -> None:
    """Profiles and segment metadata under the (still pending) version."""
    for batch in prepared.batches:
        await _hset(ctx.cache, version_key(version, "prof"), batch)
    meta = {"segments": orjson.dumps(res.summary), "cold": orjson.dumps(res.cold)}
    await _hset(ctx.cache, version_key(version, "pmeta"), meta)


async def _store_profiles(ctx: AppContext, prepared: PreparedProfiles, version: int) -> None:
    """The user_profiles table: an upsert of every row, then users no longer known go."""
    async with ctx.sessions() as session:
        if is_postgres(ctx):
            await _copy_profiles(session, prepared.records, version, prepared.updated_at)
            return
        stmt = sqlite_insert(UserProfile)
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id"],
            set_={c: stmt.excluded[c] for c in PROFILE_COLUMNS[1:]},
        )
        for start in range(0, len(prepared.records), CHUNK):
            await session.execute(
                stmt,
                [
                    {
                        "user_id": u,
                        "segment": segment,
                        "features": f,
                        "predictions": p,
                        "version": version,
                        "updated_at": prepared.updated_at,
                    }
                    for u, segment, f, p in prepared.records[start : start + CHUNK]
                ],
            )
        await session.execute(delete(UserProfile).where(UserProfile.version != version))
        await session.commit()


async def _copy_profiles(
    session: AsyncSession, records: list[tuple[Any, ...]], version: int, updated_at: datetime
) -> None:
    """Binary COPY into a staging table, one upsert, then rows of users no longer known go:
    several times faster than the ORM's executemany, in one transaction."""
    conn = await session.connection()
    raw: asyncpg.Connection = (await conn.get_raw_connection()).driver_connection
    async with raw.transaction():
        await _stage_and_upsert(raw, records, version, updated_at)


async def _stage_and_upsert(
    raw: asyncpg.Connection, records: list[tuple[Any, ...]], version: int, updated_at: datetime
) -> None:
    await raw.execute(
        "CREATE TEMP TABLE profile_stage (LIKE user_profiles INCLUDING DEFAULTS) ON COMMIT DROP"
    )
    await raw.copy_records_to_table(
        "profile_stage",
        records=[(*r, version, updated_at) for r in records],
        columns=list(PROFILE_COLUMNS),
    )
    columns = ", ".join(PROFILE_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in PROFILE_COLUMNS[1:])
    # Sorted ids: a concurrent writer (erasure's sweep) locks rows in the same order.
    await raw.execute(
        f"INSERT INTO user_profiles ({columns}) SELECT {columns} FROM profile_stage "
        f"ORDER BY user_id ON CONFLICT (user_id) DO UPDATE SET {updates}"
    )
    await raw.execute("DELETE FROM user_profiles WHERE version <> $1", version)


def active_campaigns(campaigns: Campaigns) -> np.ndarray:
    """Codes of the campaigns scored and published, in the order of adm's columns."""
    return np.array([k for k, on in enumerate(campaigns.active) if on], dtype=np.int64)


def ad_payloads(
    res: ProfileOutput,
) -> tuple[dict[str, bytes], Iterator[tuple[str, bytes]], dict[str, bytes], dict[str, Any]]:
    """(adm fields, ads rows, aud fields, ad publish metrics) for the active campaigns."""
    ads, campaigns = res.ad_model, res.ads_campaigns
    active = active_campaigns(campaigns)
    warm = res.warm
    if len(active):
        pc, pv = ads.score(warm, active)
        cold_pc, cold_pv = ads.score_cold(active)
    else:
        pc = pv = np.zeros((len(warm), 0), np.float32)
        cold_pc = cold_pv = np.zeros(0)
    buyers = ads.user.brand_buyer[warm].tocsc()
    user_ids = np.asarray(res.users, dtype=object)
    bids = [b for b in campaigns.bid if b]
    typical_bid = float(np.mean(bids)) if bids else 1.0
    meta, audiences = [], {}
    for col, k in enumerate(active.tolist()):
        bid = campaigns.bid[k]
        cpc = float(bid) if bid else typical_bid
        value = float(ads.value[k])
        brand = ads.camp.brand[k]
        buyer = (
            np.asarray(buyers[:, brand].toarray()).ravel() > 0
            if brand >= 0
            else np.zeros(len(warm), bool)
        )
        audiences[campaigns.ids[k]] = orjson.dumps(
            {
                "p": _best(warm[~buyer], pc[~buyer, col], pv[~buyer, col], user_ids),
                "b": _best(warm[buyer], pc[buyer, col], pv[buyer, col], user_ids),
            }
        )
        meta.append(
            {
                "campaign_id": campaigns.ids[k],
                "brand": campaigns.brand[k],
                "category": campaigns.category[k],
                "bid": bid,
                "budget": campaigns.budget[k],
                "cost_per_click": round(cpc, 4),
                "conversion_value": round(value, 4),
                "ctr": round(float(ads.ctr[k]), 6),
                "reach_cost": round(float(pc[:, col].sum()) * cpc, 4),
                "reach_return": round(float(pv[:, col].sum()) * value, 4),
                "audience": len(warm),
            }
        )
    adm = {
        "campaigns": orjson.dumps(meta),
        "cold": orjson.dumps({"p_click": cold_pc.tolist(), "p_convert": cold_pv.tolist()}),
    }
    rows = (
        (res.users[u], np.stack([pc[i], pv[i]]).astype(np.float16).tobytes())
        for i, u in enumerate(warm.tolist())
    )
    return adm, rows, audiences, {"active_campaigns": len(active), "scored_users": len(warm)}


def _best(users: np.ndarray, pc: np.ndarray, pv: np.ndarray, ids: np.ndarray) -> list[list[Any]]:
    order = np.argsort(-pc, kind="stable")[:AUDIENCE_MAX]
    return [
        list(row)
        for row in zip(
            ids[users[order]].tolist(),
            np.round(pc[order].astype(np.float64), 6).tolist(),
            np.round(pv[order].astype(np.float64), 6).tolist(),
            strict=True,
        )
    ]


def _jsonable(value: Any) -> Any:
    """Plain JSON types only (numpy scalars unwrapped, NaN and infinities as null)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


async def publish_profiles(ctx: AppContext, out: BuildOutput, job: ProfileJob) -> dict[str, Any]:
    """Finish `job` (started beside the recommender build, its profiles already cached) and
    write the profile rows and ad scores under its version; returns what goes into the run's
    metrics (models with coefficients by feature name)."""
    res = await job.finish(out.model)
    built = time.perf_counter()
    version = job.version
    assert job.prepared is not None  # set before the job waits for the model
    await _store_profiles(ctx, job.prepared, version)
    adm, rows, audiences, ad_stats = await asyncio.to_thread(ad_payloads, res)
    batch: dict[str, bytes] = {}
    for user_id, blob in rows:
        batch[user_id] = blob
        if len(batch) >= CHUNK:
            await _hset(ctx.cache, version_key(version, "ads"), batch)
            batch = {}
    if batch:
        await _hset(ctx.cache, version_key(version, "ads"), batch)
    for campaign_id, blob in audiences.items():  # one campaign a call: each can be large
        await _hset(ctx.cache, version_key(version, "aud"), {campaign_id: blob})
    await _hset(ctx.cache, version_key(version, "adm"), adm)
    ad_metrics = dict(res.ad_model.metrics)
    linear = {
        "spend_30d": res.spend_model.describe(),
        "churn": res.churn_model.describe(),
        "ad_click": ad_metrics.pop("click_model"),
        "ad_convert": ad_metrics.pop("convert_model"),
    }
    res.metrics["timings"].update(**job.timings, publish=round(time.perf_counter() - built, 3))
    return _jsonable(
        {
            "profiles": res.metrics,
            "linear_models": linear,
            "ads": {**ad_metrics, **ad_stats},
        }
    )
