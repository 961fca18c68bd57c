"""This process's copy of the promotions: settings, candidate items, ad-score columns, boosts.

Loaded by the recommendations live view (app/recommendations/live_view.py) when the live
pointer or the promotion epoch moves, both read by its once-a-second MGET, so serving a
request never reads promotion settings from the cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from app.cache import Cache
from app.promotions.store import CFG_KEY, DEFAULT_KEEP_HOURS
from app.training.publish import version_key

Meta = dict[str, tuple[str | None, str | None, str]]


@dataclass
class Promo:
    """One campaign's promotion as serving applies it."""

    campaign_id: str
    brand: str | None
    slots: int
    share: float
    min_relevance: float
    boost: float | None  # None: slot mode; else the worker's effective (measured) boost
    cap: int | None
    cap_hours: float
    start: float
    end: float
    column: int | None  # in the user's ad-score row; None: not scored by the live model
    cold: float  # p_click for shoppers without a published ad-score row
    items: list[str]  # candidate items, most popular first
    item_set: frozenset[str] = field(default_factory=frozenset)

    def live(self, now: float) -> bool:
        return self.start <= now < self.end


def _epoch(value: Any, default: float) -> float:
    return datetime.fromisoformat(value).timestamp() if value else default


def _candidates(cfg: dict[str, Any], meta: Meta, rank: dict[str, int]) -> list[str]:
    """The campaign's items (its item_ids, else its brand's, else its category's), popular first."""
    if cfg.get("i"):
        items = list(dict.fromkeys(cfg["i"]))
    elif cfg.get("b"):
        items = [i for i, (_, brand, _) in meta.items() if brand == cfg["b"]]
    elif cfg.get("c"):
        items = [i for i, (category, _, _) in meta.items() if category == cfg["c"]]
    else:
        items = []
    return sorted(items, key=lambda i: rank.get(i, len(rank)))


def build(
    raw_cfg: dict[Any, Any],
    adm_campaigns: list[dict[str, Any]],
    adm_cold: dict[str, list[float]],
    measured: dict[str, dict[str, Any]],
    meta: Meta,
    popular: list[tuple[str, float]],
) -> list[Promo]:
    """Active promotions from the cache's raw cfg hash and the live version's parts."""
    columns = {m["campaign_id"]: col for col, m in enumerate(adm_campaigns)}
    cold = adm_cold.get("p_click") or []
    rank = {item: r for r, (item, _) in enumerate(popular)}
    promos = []
    for raw_id, blob in sorted(raw_cfg.items()):
        campaign_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        cfg = orjson.loads(blob)
        p = cfg["p"]
        if not cfg.get("a", True):
            continue
        boost = None
        if p.get("boost") is not None:
            # Only a boost the worker measured against the holdout is applied.
            m = measured.get(campaign_id)
            boost = float(m["boost"]) if m and m.get("requested") == p["boost"] else 1.0
        column = columns.get(campaign_id)
        cap = p.get("frequency_cap") or {}
        items = _candidates(cfg, meta, rank)
        promos.append(
            Promo(
                campaign_id=campaign_id,
                brand=cfg.get("b"),
                slots=int(p.get("slots", 1)),
                share=float(p.get("share", 0.2)),
                min_relevance=float(p.get("min_relevance", 0.0)),
                boost=boost,
                cap=int(cap["impressions"]) if cap else None,
                cap_hours=float(cap["per_hours"]) if cap else DEFAULT_KEEP_HOURS,
                start=_epoch(p.get("start"), -math.inf),
                end=_epoch(p.get("end"), math.inf),
                column=column,
                cold=float(cold[column]) if column is not None and column < len(cold) else 0.0,
                items=items,
                item_set=frozenset(items),
            )
        )
    return promos


async def load(cache: Cache, version: int | None, meta: Meta, popular: list[Any]) -> list[Promo]:
    """Read the cfg hash and the version's ad metadata and boosts in one round trip."""

    async def op(client: Any) -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            pipe.hgetall(CFG_KEY)
            if version is not None:
                pipe.hmget(version_key(version, "adm"), ["campaigns", "cold"])
                pipe.hgetall(version_key(version, "promo"))
            return list(await pipe.execute())

    got = await cache.run(op)
    raw_cfg = got[0]
    if not raw_cfg:
        return []
    adm: list[Any] = got[1] if version is not None else [None, None]
    measured_raw: dict[Any, Any] = got[2] if version is not None else {}
    measured = {
        (k.decode() if isinstance(k, bytes) else str(k)): orjson.loads(v)
        for k, v in measured_raw.items()
    }
    return build(
        raw_cfg,
        orjson.loads(adm[0]) if adm[0] else [],
        orjson.loads(adm[1]) if adm[1] else {},
        measured,
        meta,
        popular,
    )
