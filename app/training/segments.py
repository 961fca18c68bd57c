"""RFM segments: every profiled shopper falls in exactly one named segment.

Recency is measured against the churn window W; frequency and monetary are scored 1-5 by
quintile among shoppers who bought something (ties share a score). Rules, first match wins:
  unengaged    no item events at all (profile from attributes only)
  new          first seen within `new_user_days`, at most one purchase
  champions    active within W, has bought, frequency and monetary scores >= 4
  loyal        active within W, has bought, frequency score >= 3
  promising    active within W, has bought
  browsers     active within W, never bought
  at_risk      inactive for longer than W, frequency score >= 3 or monetary score >= 4
  hibernating  everyone else (inactive for longer than W, low value)
"""

from __future__ import annotations

import numpy as np

from app.training.profiles import FeatureTable, ProfileConfig

SEGMENTS: dict[str, str] = {
    "champions": "recent, frequent, high-spending buyers",
    "loyal": "recent buyers who buy often",
    "promising": "recent buyers with few purchases so far",
    "new": "first seen recently",
    "browsers": "active recently but never bought",
    "at_risk": "valuable buyers who have not been active lately",
    "hibernating": "inactive for a while, low value",
    "unengaged": "no behaviour yet (profile from attributes only)",
}
SUMMARY_FIELDS = (
    "recency_days",
    "frequency",
    "monetary",
    "predicted_spend_30d",
    "churn_probability",
)


def quintile_scores(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """1-5 by quintile of `values` among `mask` (ties share the lower score); 0 elsewhere."""
    scores = np.zeros(len(values), dtype=np.int64)
    if not mask.any():
        return scores
    pool = values[mask]
    # Rank by "how many are strictly smaller", so equal values always get the same score.
    below = np.searchsorted(np.sort(pool), pool, side="left")
    scores[mask] = 1 + np.minimum((5 * below) // len(pool), 4)
    return scores


def assign(table: FeatureTable, cfg: ProfileConfig) -> np.ndarray:
    """The segment name of every user (object array)."""
    window = cfg.churn_window_days
    has = table.events > 0
    buyer = table.frequency > 0
    recent = has & (np.nan_to_num(table.recency_days, nan=np.inf) <= window)
    f = quintile_scores(table.frequency, buyer)
    m = quintile_scores(table.monetary, buyer)
    new = has & (np.nan_to_num(table.first_seen_days, nan=np.inf) <= cfg.new_user_days)
    out = np.full(len(has), "hibernating", dtype=object)
    rules = [
        ("unengaged", ~has),
        ("new", new & (table.frequency <= 1)),
        ("champions", recent & buyer & (f >= 4) & (m >= 4)),
        ("loyal", recent & buyer & (f >= 3)),
        ("promising", recent & buyer),
        ("browsers", recent & ~buyer),
        ("at_risk", ~recent & buyer & ((f >= 3) | (m >= 4))),
    ]
    decided = np.zeros(len(has), dtype=bool)
    for name, mask in rules:
        take = mask & ~decided
        out[take] = name
        decided |= take
    return out


def summarise(segments: np.ndarray, columns: dict[str, np.ndarray]) -> list[dict[str, object]]:
    """Size, share and mean features per segment (every segment listed, empty ones too)."""
    total = max(len(segments), 1)
    out: list[dict[str, object]] = []
    for name, description in SEGMENTS.items():
        members = segments == name
        size = int(members.sum())
        mean: dict[str, float | None] = {}
        for field in SUMMARY_FIELDS:
            values = columns[field][members]
            values = values[np.isfinite(values)]
            mean[field] = round(float(values.mean()), 4) if len(values) else None
        out.append(
            {
                "name": name,
                "description": description,
                "size": size,
                "share": round(size / total, 4),
                "mean": mean,
            }
        )
    return out
