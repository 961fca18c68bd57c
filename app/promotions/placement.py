"""Promotions on the serving hot path: eligibility, boosts and sponsored slots.

A request with promotions live costs the same single round trip as one without: the
user's published list, their ad-score row and one ZCOUNT per capped campaign go in one
pipeline. Rules, per campaign (in order of the user's relevance, best first):
- its ad-targeting score (p_click of GET /v1/ads/scores) must reach `min_relevance`;
- a deterministic `PROMOTION_HOLDOUT` share of eligible users is held out (brand lift);
- `frequency_cap.impressions` rec_impression events carrying the campaign within
  `per_hours` stop it for that user (a cap hit);
- slots: at most min(slots, floor(share x n)) of its items, and all campaigns together at
  most floor(MAX_SHARE x n); never items the user bought, unavailable or filtered out, nor
  items already in the organic list. Boost: its items' organic scores are raised by the
  worker's measured boost before the list is cut.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.experiments.assignment import bucket
from app.promotions.store import SEP, impressions_key
from app.promotions.view import Promo
from app.training.publish import version_key

MAX_SHARE = 0.5  # of a list, all campaigns together
SPACING = 3  # sponsored items sit at ranks 2, 5, 8... when the list has room


@dataclass
class Decision:
    promo: Promo
    relevance: float
    state: str  # "show", "holdout" or "capped"


def boosted_score(score: float, boost: float) -> float:
    """Raise a score by `boost` (x boost for positive scores; monotone for negative ones)."""
    return score + (boost - 1.0) * abs(score)


def live_promotions(promos: list[Promo]) -> list[Promo]:
    now = time.time()
    return [p for p in promos if p.live(now)]


async def fetch(
    client: Any, version: int, user_id: str, promos: list[Promo], holdout: float
) -> tuple[Any, Any, dict[str, int], set[str]]:
    """(published list, ad-score row, impressions per capped campaign, held-out campaigns)."""
    held = {p.campaign_id for p in promos if bucket(f"promo:{p.campaign_id}", user_id) < holdout}
    capped = {p.campaign_id: p.cap_hours for p in promos if p.cap is not None}
    capped = {c: h for c, h in capped.items() if c not in held}
    now = time.time()
    async with client.pipeline(transaction=False) as pipe:
        pipe.hget(version_key(version, "recs"), user_id)
        pipe.hget(version_key(version, "ads"), user_id)
        if capped:
            # One command for every capped campaign: the user's impressions in the longest
            # window, counted per campaign here (each redis-py command costs ~20 us of CPU).
            since = now - max(capped.values()) * 3600
            pipe.zrangebyscore(impressions_key(user_id), since, "+inf", withscores=True)
        got = await pipe.execute()
    counts: dict[str, int] = {}
    for member, at in got[2] if capped else ():
        campaign = (member.decode() if isinstance(member, bytes) else member).split(SEP, 1)[0]
        hours = capped.get(campaign)
        if hours is not None and at >= now - hours * 3600:
            counts[campaign] = counts.get(campaign, 0) + 1
    return got[0], got[1], counts, held


def decide(
    promos: list[Promo], ads_row: bytes | None, counts: dict[str, int], held: set[str]
) -> list[Decision]:
    """Campaigns the user is eligible for (relevance reached), best relevance first."""
    row = np.frombuffer(ads_row, dtype=np.float16) if ads_row else None
    width = len(row) // 2 if row is not None else 0
    out = []
    for p in promos:
        if p.column is not None and row is not None and p.column < width:
            relevance = float(row[p.column])
        else:
            relevance = p.cold
        if relevance < p.min_relevance or (p.column is None and p.min_relevance > 0):
            continue  # an unscored campaign only reaches everyone (min_relevance 0)
        if p.campaign_id in held:
            state = "holdout"
        elif p.cap is not None and counts.get(p.campaign_id, 0) >= p.cap:
            state = "capped"
        else:
            state = "show"
        out.append(Decision(p, relevance, state))
    out.sort(key=lambda d: -d.relevance)
    return out


def boost_list(items: list[list[Any]], decisions: list[Decision]) -> dict[str, str]:
    """Re-rank a published list in place with the shown boosts; returns item -> campaign."""
    boosts: dict[str, tuple[float, str]] = {}
    for d in decisions:
        if d.state == "show" and d.promo.boost is not None and d.promo.boost > 1.0:
            for item in d.promo.item_set:
                if item not in boosts or d.promo.boost > boosts[item][0]:
                    boosts[item] = (d.promo.boost, d.promo.campaign_id)
    if not boosts:
        return {}
    hit = {i[0]: boosts[i[0]][1] for i in items if i[0] in boosts}
    if hit:
        rescored = [
            [i, boosted_score(float(s), boosts[i][0]) if i in hit else s, r] for i, s, r in items
        ]
        rescored.sort(key=lambda x: -float(x[1]))  # stable: ties keep the organic order
        items[:] = rescored
    return hit


def sponsored_items(
    n: int,
    decisions: list[Decision],
    published: list[list[Any]],
    allowed: Any,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Sponsored entries for the shown slot campaigns, and how many each placed.

    `allowed(item_id)` says whether the item may join the list (not bought, available,
    passes the filters, not already in it); it records the items it lets through.
    """
    budget = int(n * MAX_SHARE)
    organic = {i[0]: float(i[1]) for i in published}
    placed: list[dict[str, Any]] = []
    per: dict[str, int] = {}
    for d in decisions:
        p = d.promo
        if d.state != "show" or p.boost is not None or budget <= 0:
            continue
        room = min(p.slots, int(p.share * n), budget)
        if room <= 0:
            continue
        # The user's own ranking of the brand first (the published list goes beyond n),
        # then the brand's most popular items.
        ranked = [i[0] for i in published if i[0] in p.item_set] + p.items
        count = 0
        for item in ranked:
            if count >= room:
                break
            if allowed(item):
                placed.append({
                    "item_id": item,
                    "score": organic.get(item, 0.0),
                    "reason": f"sponsored by {p.brand}" if p.brand else "sponsored",
                    "sponsored": True,
                    "campaign_id": p.campaign_id,
                })  # fmt: skip
                count += 1
        if count:
            per[p.campaign_id] = count
            budget -= count
    return placed, per


def merge(organic: list[dict[str, Any]], sponsored: list[dict[str, Any]], n: int) -> list[Any]:
    """Interleave sponsored entries into the organic list (ranks 2, 5, 8..., tighter when
    there are many), cut to n; every sponsored entry fits since there are at most n/2."""
    if not sponsored:
        return organic[:n]
    gap = max(1, min(SPACING, n // len(sponsored)))
    out: list[dict[str, Any]] = []
    si = oi = 0
    while len(out) < n and (si < len(sponsored) or oi < len(organic)):
        if si < len(sponsored) and (len(out) >= 1 + gap * si or oi >= len(organic)):
            out.append(sponsored[si])
            si += 1
        else:
            out.append(organic[oi])
            oi += 1
    return out
