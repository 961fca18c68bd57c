"""The promotion stage of a rebuild: settings to the cache, boosts bounded on the holdout.

A boost raises the organic score of a campaign's items (app/promotions/placement.py,
`boosted_score`). Here each boosted campaign's boost is applied to the holdout model's
ranked lists (the chosen kind fitted on the train window, top DEPTH per holdout user, as the
published lists are cut); NDCG@10 is measured with and without it, and the boost is shrunk
(halving its excess over 1) until the relative drop is at most PROMOTION_NDCG_TOLERANCE,
or dropped (1.0). The effective boost and the measured drop are published under the version
(`bl:v:{v}:promo`, campaign_id -> {requested, boost, ndcg_drop, ...}) and go into the run's
metrics; serving applies only a boost measured for the campaign's current setting.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import orjson

from app.context import AppContext
from app.promotions.placement import boosted_score
from app.promotions.store import sync_settings
from app.training.build import MIN_TEST_USERS, BuildOutput
from app.training.dataset import Catalog
from app.training.evaluate import Split, holdout_users, per_user_metrics
from app.training.publish import PENDING_TTL, version_key

K = 10
DEPTH = 100  # candidates re-ranked per user: the published list length by default
MAX_HALVINGS = 12
CHUNK = 4096


class FixedLists:
    """A stand-in model that 'recommends' precomputed lists (rows in `users` order)."""

    def __init__(self, users: np.ndarray, ids: np.ndarray) -> None:
        self.users, self.ids = users, ids

    def recommend(
        self, users: np.ndarray, _x: Any, n: int, filter_seen: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        rows = np.searchsorted(self.users, users)
        return self.ids[rows, :n], np.zeros((len(users), n), np.float32)


def campaign_items(cfg: dict[str, Any], catalog: Catalog) -> np.ndarray:
    """Catalog codes of a campaign's items (item_ids, else its brand's, else its category's)."""
    if cfg.get("i"):
        codes = [catalog.index[i] for i in cfg["i"] if i in catalog.index]
    elif cfg.get("b"):
        codes = [k for k, b in enumerate(catalog.brand) if b == cfg["b"]]
    elif cfg.get("c"):
        codes = [k for k, c in enumerate(catalog.category) if c == cfg["c"]]
    else:
        codes = []
    return np.asarray(codes, dtype=np.int64)


def _ndcg(users: np.ndarray, ids: np.ndarray, split: Split) -> float:
    return float(per_user_metrics(FixedLists(users, ids), split, K, users)["ndcg"].mean())


def _rerank(ids: np.ndarray, scores: np.ndarray, mask: np.ndarray, boost: float) -> np.ndarray:
    # Padding (-1 ids, -inf scores) stays last: only real items of the campaign move.
    raised = np.where(mask, boosted_score(scores, boost), scores)  # type: ignore[arg-type]
    order = np.argsort(-raised, axis=1, kind="stable")[:, :K]
    return np.take_along_axis(ids, order, axis=1)


def measure_boosts(
    out: BuildOutput, boosts: dict[str, tuple[float, np.ndarray]], tolerance: float
) -> dict[str, dict[str, Any]]:
    """Effective boost and measured NDCG@10 drop per campaign (see the module docstring)."""
    if not boosts:
        return {}
    split_model = out.holdout
    users = holdout_users(split_model[0]) if split_model else np.empty(0, np.int64)
    if split_model is None or len(users) < MIN_TEST_USERS:
        # Nothing to bound the boost with: serve without it rather than unchecked.
        return {
            cid: {"requested": b, "boost": 1.0, "ndcg_drop": None, "reason": "no holdout"}
            for cid, (b, _) in boosts.items()
        }
    split, model = split_model
    parts = [
        model.recommend(users[s : s + CHUNK], split.train, DEPTH)
        for s in range(0, len(users), CHUNK)
    ]
    ids = np.vstack([np.asarray(p[0], np.int64) for p in parts])
    scores = np.vstack([np.asarray(p[1], np.float64) for p in parts])
    base = _ndcg(users, ids[:, :K], split)
    result = {}
    for cid, (requested, items) in boosts.items():
        mask = np.isin(ids, items) & (ids >= 0)
        boost, drop, ndcg = float(requested), 0.0, base
        if requested > 1.0 and mask.any():
            for _ in range(MAX_HALVINGS + 1):
                ndcg = _ndcg(users, _rerank(ids, scores, mask, boost), split)
                drop = (base - ndcg) / base if base > 0 else 0.0
                if drop <= tolerance:
                    break
                boost = 1.0 + (boost - 1.0) / 2
            else:
                boost, drop, ndcg = 1.0, 0.0, base
        result[cid] = {
            "requested": requested,
            "boost": round(boost, 4),
            "ndcg_drop": round(max(drop, 0.0), 6),
            "ndcg_base": round(base, 6),
            "ndcg_boosted": round(ndcg, 6),
            "users": len(users),
            "items": len(items),
        }
    return result


async def publish_promotions(
    ctx: AppContext, version: int, catalog: Catalog, out: BuildOutput
) -> dict[str, Any]:
    """Rewrite the settings in the cache, measure boosts, write `promo` under `version`."""
    async with ctx.sessions() as session:
        entries = await sync_settings(ctx.cache, session)
    boosts: dict[str, tuple[float, np.ndarray]] = {}
    for cid, blob in entries.items():
        cfg = orjson.loads(blob)
        boost = cfg["p"].get("boost")
        if cfg.get("a") and boost is not None:
            boosts[cid] = (float(boost), campaign_items(cfg, catalog))
    tolerance = ctx.settings.promotion_ndcg_tolerance
    measured = await asyncio.to_thread(measure_boosts, out, boosts, tolerance)
    out.holdout = None  # the holdout model is not needed any more: free it
    if measured:
        name = version_key(version, "promo")
        mapping = {cid: orjson.dumps(m) for cid, m in measured.items()}

        async def op(client: Any) -> None:
            async with client.pipeline(transaction=False) as pipe:
                pipe.hset(name, mapping=mapping)
                pipe.expire(name, PENDING_TTL)
                await pipe.execute()

        await ctx.cache.run(op)
    return {"promotions": {"active": len(entries), "tolerance": tolerance, "boosts": measured}}
