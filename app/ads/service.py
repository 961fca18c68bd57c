"""Serving ad scores, audiences and budget plans from the live version.

A shopper's scores for every scored campaign sit in one cache field (float16 pairs), so one
user x 50 campaigns is one HGET; campaign metadata and the cold-start row live in this
process (app/profiles/view.py), which also answers when the cache is down.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from app.ads import allocation
from app.cache import CacheUnavailable
from app.context import AppContext
from app.metrics import cache_outcome
from app.models import Campaign
from app.problems import Problem
from app.profiles.view import CampaignMeta, ProfileView, get_profile_view, hget, hmget


def _split(view: ProfileView, asked: list[str]) -> tuple[list[CampaignMeta], list[str]]:
    """Known campaigns (all of them when none are asked) and unknown ids, in asked order."""
    if not asked:
        return list(view.campaigns.values()), []
    known, unknown, seen = [], [], set()
    for cid in asked:
        if cid in seen:
            continue
        seen.add(cid)
        meta = view.campaigns.get(cid)
        if meta is None:
            unknown.append(cid)
        else:
            known.append(meta)
    return known, unknown


def _scores(row: np.ndarray, campaigns: list[CampaignMeta]) -> list[dict[str, Any]]:
    """Score dicts, best expected value first (ties: higher p_click, then the asked order).

    Vectorised: this runs on the ad server's auction path for up to 100 campaigns.
    """
    if not campaigns:
        return []
    cols = np.fromiter((m.column for m in campaigns), np.int64, len(campaigns))
    bids = np.fromiter((m.bid or 0.0 for m in campaigns), np.float64, len(campaigns))
    values = np.fromiter((m.conversion_value for m in campaigns), np.float64, len(campaigns))
    p_click = row[0, cols].astype(np.float64)
    p_convert = row[1, cols].astype(np.float64)
    expected = np.where(bids > 0, p_click * bids, p_convert * values)
    order = np.lexsort((-p_click, -expected)).tolist()
    pc, pv, ev = (np.round(a, 6).tolist() for a in (p_click, p_convert, expected))
    return [
        {
            "campaign_id": campaigns[i].campaign_id,
            "p_click": pc[i],
            "p_convert": pv[i],
            "expected_value": ev[i],
        }
        for i in order
    ]


def _row(view: ProfileView, blob: bytes | None) -> tuple[np.ndarray, str]:
    if blob:
        row = np.frombuffer(blob, dtype=np.float16).reshape(2, -1)
        if row.shape[1] == view.cold_ads.shape[1]:
            return row.astype(np.float32), "personalised"
    return view.cold_ads, "cold-start"


async def user_scores(ctx: AppContext, user_id: str, asked: list[str]) -> dict[str, Any]:
    """One shopper's scores for the asked campaigns; never an error."""
    view = get_profile_view(ctx)
    await view.refresh(ctx)
    campaigns, unknown = _split(view, asked)
    version = view.loaded
    row, strategy = view.cold_ads, "fallback"
    if version is not None:
        try:
            blob = await hget(ctx, version, "ads", user_id)
            row, strategy = _row(view, blob)
            cache_outcome("hit" if blob else "miss").inc()
        except CacheUnavailable:
            cache_outcome("fallback").inc()
    return {
        "user_id": user_id,
        "model_version": version,
        "strategy": strategy,
        "scores": _scores(row, campaigns),
        "unknown": unknown,
    }


def baseline_scores(ctx: AppContext, asked: list[str]) -> list[dict[str, Any]]:
    """The non-personalised scores (campaign priors) of an experiment's holdout group."""
    view = get_profile_view(ctx)
    return _scores(view.cold_ads, _split(view, asked)[0])


async def bulk_scores(ctx: AppContext, user_ids: list[str], asked: list[str]) -> dict[str, Any]:
    """Many shoppers at once: one HMGET for all of them."""
    view = get_profile_view(ctx)
    await view.refresh(ctx)
    campaigns, unknown = _split(view, asked)
    version = view.loaded
    users = list(dict.fromkeys(user_ids))
    blobs: list[bytes | None] = [None] * len(users)
    cached = version is not None
    if version is not None:
        try:
            blobs = await hmget(ctx, version, "ads", users)
        except CacheUnavailable:
            cached = False
            cache_outcome("fallback").inc()
    results = []
    for user_id, blob in zip(users, blobs, strict=True):
        row, strategy = _row(view, blob) if cached else (view.cold_ads, "fallback")
        results.append(
            {"user_id": user_id, "strategy": strategy, "scores": _scores(row, campaigns)}
        )
    return {"model_version": version, "results": results, "unknown": unknown}


async def audience(
    ctx: AppContext, campaign_id: str, n: int, min_score: float, include_buyers: bool
) -> dict[str, Any]:
    """The campaign's best prospects (and, when asked, existing buyers after them)."""
    view = get_profile_view(ctx)
    await view.refresh(ctx)
    stored: dict[str, list[list[Any]]] = {"p": [], "b": []}
    if view.loaded is not None:
        try:
            raw = await hget(ctx, view.loaded, "aud", campaign_id)
        except CacheUnavailable:
            raise Problem(
                503, "audiences are served from the cache, which is unreachable; retry later",
                headers={"Retry-After": "1"},
            ) from None  # fmt: skip
        if raw:
            stored = orjson.loads(raw)
    if not stored["p"] and not stored["b"] and campaign_id not in view.campaigns:
        async with ctx.sessions() as session:
            if await session.get(Campaign, campaign_id) is None:
                raise Problem(404, f"campaign '{campaign_id}' not found")
    groups = [(stored["p"], False)] + ([(stored["b"], True)] if include_buyers else [])
    users: list[dict[str, Any]] = []
    for members, buyer in groups:
        for user_id, p_click, p_convert in members:
            if len(users) >= n:
                break
            if p_click >= min_score:
                users.append(
                    {"user_id": user_id, "p_click": p_click, "p_convert": p_convert, "buyer": buyer}
                )
    return {
        "campaign_id": campaign_id,
        "model_version": view.loaded,
        "users": users,
        "prospects": sum(1 for u in users if not u["buyer"]),
        "buyers": sum(1 for u in users if u["buyer"]),
    }


async def allocation_plan(ctx: AppContext, budget: float) -> dict[str, Any]:
    """Split `budget` across the scored campaigns by expected return with diminishing returns."""
    view = get_profile_view(ctx)
    await view.refresh(ctx)
    curves = []
    for meta in view.campaigns.values():
        raw = meta.raw
        cap = raw.get("budget")
        curves.append(
            allocation.Curve(
                campaign_id=meta.campaign_id,
                reach_cost=float(raw.get("reach_cost") or 0.0),
                reach_return=float(raw.get("reach_return") or 0.0),
                cost_per_click=float(raw.get("cost_per_click") or meta.bid or 1.0),
                conversion_value=meta.conversion_value,
                cap=float(cap) if cap is not None and cap > 0 else None,
            )
        )
    spend, _ = allocation.allocate(curves, budget)
    rows: list[dict[str, Any]] = []
    for curve, amount in zip(curves, spend, strict=True):
        total, marginal = allocation.returns(curve, amount)
        capped = curve.cap is not None and amount >= curve.cap - 1e-6
        first = curve.reach_return / curve.reach_cost if curve.reach_cost > 0 else 0.0
        value = curve.conversion_value
        rows.append({
            "campaign_id": curve.campaign_id,
            "amount": round(amount, 2),
            "share": round(amount / budget, 4) if budget > 0 else 0.0,
            "expected_return": round(total, 2),
            "expected_clicks": round(amount / curve.cost_per_click, 1),
            "expected_conversions": round(total / value, 2) if value > 0 else 0.0,
            "roi_first_unit": round(first, 4),
            "marginal_roi": round(marginal, 4),
            "capped": capped,
            "explanation": allocation.explain(curve, amount, budget, capped),
        })  # fmt: skip
    rows.sort(key=lambda r: (-r["amount"], -r["roi_first_unit"], r["campaign_id"]))
    allocated = round(sum(spend), 2)
    return {
        "budget": budget,
        "model_version": view.loaded,
        "allocated": allocated,
        "unallocated": round(max(budget - allocated, 0.0), 2),
        "expected_return": round(sum(r["expected_return"] for r in rows), 2),
        "campaigns": rows,
    }
