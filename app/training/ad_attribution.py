"""Labelling ad impressions with the clicks and conversions that followed them.

A click counts for the latest impression of the same shopper and campaign at most
CLICK_WINDOW earlier; a conversion for the latest clicked impression at most CONVERT_WINDOW
earlier. Clicks with no such impression (and conversions with no such click) are counted and
left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.training.profile_data import AD_CODE, AdLog

DAY = 86_400.0
CLICK_WINDOW = 3600.0
CONVERT_WINDOW = 7 * DAY


@dataclass
class Impressions:
    user: np.ndarray
    campaign: np.ndarray
    ts: np.ndarray
    clicked: np.ndarray
    converted: np.ndarray
    amount: np.ndarray  # conversion amounts attributed to the impression
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.user)


def _latest_before(
    base_key: np.ndarray, base_ts: np.ndarray, key: np.ndarray, ts: np.ndarray, window: float
) -> np.ndarray:
    """Index into sorted `base_key` of the latest entry with the same pair within `window`."""
    if not len(base_key):  # e.g. clicks whose impressions were erased
        return np.full(len(key), -1, dtype=np.int64)
    idx = np.searchsorted(base_key, key, side="right") - 1
    ok = idx >= 0
    pair_span = np.int64(1) << np.int64(32)
    same = ok & (base_key[np.maximum(idx, 0)] // pair_span == key // pair_span)
    close = same & (ts - base_ts[np.maximum(idx, 0)] <= window)
    return np.where(close, idx, -1)


def attribute(log: AdLog, n_campaigns: int) -> Impressions:
    """Impressions labelled with the clicks and conversions that followed them."""
    kind = log.etype
    imp = kind == AD_CODE["ad_impression"]
    t0 = float(log.ts.min()) if len(log) else 0.0
    pair = log.user.astype(np.int64) * max(n_campaigns, 1) + log.campaign
    # One sortable int64 key: pair in the high 32 bits, whole seconds in the low ones.
    key = (pair << np.int64(32)) + np.floor(log.ts - t0).astype(np.int64)
    order = np.flatnonzero(imp)[np.argsort(key[imp], kind="stable")]
    imp_key, imp_ts = key[order], log.ts[order]
    clicked = np.zeros(len(order), bool)
    clicks = np.flatnonzero(kind == AD_CODE["ad_click"])
    hit = _latest_before(imp_key, imp_ts, key[clicks], log.ts[clicks], CLICK_WINDOW)
    clicked[hit[hit >= 0]] = True
    converted = np.zeros(len(order), bool)
    amount = np.zeros(len(order))
    convs = np.flatnonzero(kind == AD_CODE["ad_conversion"])
    clicked_ix = np.flatnonzero(clicked)
    got = _latest_before(
        imp_key[clicked_ix], imp_ts[clicked_ix], key[convs], log.ts[convs], CONVERT_WINDOW
    )
    target = clicked_ix[got[got >= 0]]
    converted[target] = True
    np.add.at(amount, target, np.nan_to_num(log.amount[convs][got >= 0].astype(np.float64)))
    stats = {
        "impressions": len(order),
        "clicks": int(clicked.sum()),
        "clicks_without_impression": int((hit < 0).sum()),
        "conversions": int(converted.sum()),
        "conversions_without_click": int((got < 0).sum()),
    }
    return Impressions(
        log.user[order].astype(np.int64),
        log.campaign[order].astype(np.int64),
        imp_ts,
        clicked,
        converted,
        amount,
        stats,
    )
