"""Serving recommendations: the live lists, filters at serve time, and the fallback chain."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from app.analytics.served import record_served
from app.cache import CacheUnavailable
from app.context import AppContext
from app.experiments.assignment import assignment_for
from app.ids import request_id
from app.metrics import cache_outcome
from app.promotions import placement
from app.promotions.tally import tally
from app.recommendations.live_view import LiveView, get_live_view
from app.recommendations.schemas import Strategy
from app.training.publish import TOP_ITEMS, version_key

MAX_N = 100
# Variant strategies that replace the personalised list: (reported strategy, popular window).
BASELINES: dict[str, tuple[Strategy, str]] = {
    "popular": ("popular", "30d"),
    "trending": ("trending", "1d"),
}


@dataclass
class Filters:
    category: str | None = None
    brand: str | None = None
    kind: str | None = None
    exclude: set[str] = field(default_factory=set)


@dataclass
class Picker:
    """Collects up to n items that pass every filter, in the order offered."""

    n: int
    view: LiveView
    filters: Filters
    banned: set[str]
    items: list[dict[str, Any]] = field(default_factory=list)
    taken: set[str] = field(default_factory=set)

    @property
    def full(self) -> bool:
        return len(self.items) >= self.n

    def offer(self, candidates: Iterable[tuple[str, float, str]]) -> None:
        for item_id, score, reason in candidates:
            if self.full:
                return
            if item_id in self.taken or item_id in self.banned or not self._passes(item_id):
                continue
            self.taken.add(item_id)
            self.items.append({"item_id": item_id, "score": score, "reason": reason})

    def admit(self, item_id: str) -> bool:
        """Let a sponsored item in if it may be shown and is not in the list yet."""
        if item_id in self.taken or item_id in self.banned or not self._passes(item_id):
            return False
        self.taken.add(item_id)
        return True

    def _passes(self, item_id: str) -> bool:
        if item_id in self.view.unavailable or item_id in self.filters.exclude:
            return False
        f = self.filters
        if f.category is None and f.brand is None and f.kind is None:
            return True
        meta = self.view.meta.get(item_id)
        if meta is None:
            return False
        category, brand, kind = meta
        return (
            (f.category is None or category == f.category)
            and (f.brand is None or brand == f.brand)
            and (f.kind is None or kind == f.kind)
        )


async def _published(ctx: AppContext, version: int, user_id: str, part: str) -> bytes | None:
    """The user's published list (with its never-again items), whole ("recs") or its head
    ("top"): one HGET."""
    raw: Any = await ctx.cache.run(lambda r: r.hget(version_key(version, part), user_id))
    return raw if raw is None else bytes(raw)


def _top_suffices(view: LiveView, n: int, filters: Filters) -> bool:
    """Whether the list's head likely holds n servable items (the tail is read if not)."""
    plain = filters.category is None and filters.brand is None and filters.kind is None
    return view.has_top and plain and n + len(filters.exclude) <= TOP_ITEMS // 2


async def _rest_of_list(ctx: AppContext, version: int, user_id: str) -> list[list[Any]]:
    """The published items after the head, for when filters left the head short."""
    try:
        raw = await _published(ctx, version, user_id, "recs")
    except CacheUnavailable:
        return []  # the fallback chain fills the list
    return orjson.loads(raw)["i"][TOP_ITEMS:] if raw else []


async def _similar_to(ctx: AppContext, version: int, item_ids: list[str]) -> list[list[Any]]:
    if not item_ids:
        return []
    blobs = await ctx.cache.run(lambda r: r.hmget(version_key(version, "sim"), item_ids))
    return [orjson.loads(b) if b else [] for b in blobs]


async def recommend(ctx: AppContext, user_id: str, n: int, filters: Filters) -> dict[str, Any]:
    """Top-n items for a user; never empty while the catalog has available items."""
    view = get_live_view(ctx)
    await view.refresh(ctx)
    # Experiment assignment is a hash of (experiment, user) against an in-memory list: no I/O.
    assignment = await assignment_for(ctx, "recommendations", user_id)
    baseline = BASELINES.get(assignment.strategy or "") if assignment else None
    strategy: Strategy = "popular-fallback"
    published: dict[str, Any] | None = None
    seen: list[str] = []
    cache_ok = view.version is not None
    # Promotions stay out of experiments' non-personalised arms (they would blur the test).
    promos = placement.live_promotions(view.promotions) if view.promotions and not baseline else []
    decisions: list[placement.Decision] = []
    if cache_ok:
        try:
            if promos:
                raw, decisions = await _with_promotions(ctx, view.version, user_id, promos)  # type: ignore[arg-type]
            else:
                part = "top" if _top_suffices(view, n, filters) else "recs"
                raw = await _published(ctx, view.version, user_id, part)  # type: ignore[arg-type]
            published = orjson.loads(raw) if raw else None
            seen = published.get("x", []) if published else []
            cache_outcome("hit" if raw else "miss").inc()
        except CacheUnavailable:
            cache_ok = False
            cache_outcome("fallback").inc()
    picker = Picker(n=n, view=view, filters=filters, banned=set(seen))
    if baseline is not None:
        # A non-personalised variant (or the holdout): popular items, minus what was bought.
        strategy, window = baseline
        label = "trending" if window == "1d" else "popular"
        if filters.category:
            picker.offer(
                (i, s, f"{label} in {filters.category}")
                for i, s in view.popular_list(filters.category, window)
            )
        picker.offer((i, s, f"{label} now") for i, s in view.popular_list(None, window))
    elif published:
        strategy = published["s"]
        boosted = placement.boost_list(published["i"], decisions) if decisions else {}
        picker.offer((i, s, r) for i, s, r in published["i"])
        if not picker.full and published.get("m"):
            rest = await _rest_of_list(ctx, view.version, user_id)  # type: ignore[arg-type]
            picker.offer((i, s, r) for i, s, r in rest)
        for entry in picker.items:
            if entry["item_id"] in boosted:
                entry["campaign_id"] = boosted[entry["item_id"]]
    elif cache_ok:
        strategy = "cold-start"
    if not picker.full and baseline is None and cache_ok and seen and view.version is not None:
        # Similar to what the user bought most recently (the seen list is newest last).
        recent = list(reversed(seen))[:3]
        for source, neighbours in zip(
            recent, await _similar_to(ctx, view.version, recent), strict=True
        ):
            picker.offer((i, s, f"similar to {source} you bought") for i, s in neighbours)
    if not picker.full and filters.category:
        picker.offer(
            (i, s, f"popular in {filters.category}") for i, s in view.popular_list(filters.category)
        )
    if not picker.full:
        picker.offer((i, s, "popular now") for i, s in view.popular_list(None))
    items = picker.items
    if decisions:
        items = _place(ctx, user_id, n, picker, decisions, published["i"] if published else [])
    # A plain dict in the Recommendations schema's shape: the router serialises it with
    # orjson directly, which is the hottest path of the service.
    body = {
        "user_id": user_id,
        "items": items,
        "model_version": view.version,
        "strategy": strategy,
        "generated_at": datetime.now(UTC),
        "request_id": request_id(),
        "experiment": assignment.experiment if assignment else None,
        "variant": assignment.variant if assignment else None,
    }
    record_served(ctx, body)  # buffered in memory; flushed to the cache in the background
    return body


async def _with_promotions(
    ctx: AppContext, version: int, user_id: str, promos: list[Any]
) -> tuple[bytes | None, list[placement.Decision]]:
    """The published list plus what promotions need, still one round trip."""
    holdout = ctx.settings.promotion_holdout
    raw, ads_row, counts, held = await ctx.cache.run(
        lambda r: placement.fetch(r, version, user_id, promos, holdout)
    )
    decisions = placement.decide(promos, ads_row, counts, held)
    return (raw if raw is None else bytes(raw)), decisions


def _place(
    ctx: AppContext,
    user_id: str,
    n: int,
    picker: Picker,
    decisions: list[placement.Decision],
    published: list[list[Any]],
) -> list[dict[str, Any]]:
    """Sponsored slots into the organic list; note cap hits, exposure and holdout."""
    sponsored, per = placement.sponsored_items(n, decisions, published, picker.admit)
    items = placement.merge(picker.items, sponsored, n)
    shown = {i.get("campaign_id") for i in items}
    notes = tally(ctx)
    for d in decisions:
        cid = d.promo.campaign_id
        if d.state != "show":
            notes.note(ctx, cid, user_id, d.state)
        elif per.get(cid) or cid in shown:
            notes.note(ctx, cid, user_id, "exposed")
    return items
