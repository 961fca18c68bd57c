"""Generated events as numpy columns, and their conversion to API dicts in time order.

A column set holds one entry per event: `age` (seconds before `end`), `type` (code into
TYPES), `user`, `item`, `campaign`, `qty`, `source`, `request` (-1 when absent) and `amount`,
`dwell`, `value` (NaN when absent).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

TYPES = (
    "view", "click", "add_to_cart", "remove_from_cart", "purchase", "rating",
    "ad_impression", "ad_click", "ad_conversion", "rec_impression", "rec_click",
)  # fmt: skip
T = {name: k for k, name in enumerate(TYPES)}


def cols(
    age: np.ndarray,
    kind: str,
    user: np.ndarray,
    item: np.ndarray | None = None,
    *,
    campaign: np.ndarray | None = None,
    qty: np.ndarray | None = None,
    amount: np.ndarray | None = None,
    dwell: np.ndarray | None = None,
    value: np.ndarray | None = None,
    source: np.ndarray | None = None,
    request: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One event type as columns; absent fields are -1 (ints) or NaN (floats)."""
    n = len(age)

    def fill(x: np.ndarray | None, empty: float) -> np.ndarray:
        return np.full(n, empty) if x is None else np.asarray(x)

    cols = {
        "age": age,
        "type": np.full(n, T[kind], dtype=np.int64),
        "user": user,
        "item": fill(item, -1).astype(np.int64),
        "campaign": fill(campaign, -1).astype(np.int64),
        "qty": fill(qty, -1).astype(np.int64),
        "amount": fill(amount, np.nan).astype(float),
        "dwell": fill(dwell, np.nan).astype(float),
        "value": fill(value, np.nan).astype(float),
        "source": fill(source, -1).astype(np.int64),
        "request": fill(request, -1).astype(np.int64),
    }
    return cols if mask is None else {k: v[mask] for k, v in cols.items()}


def concat(*parts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def to_dicts(
    columns: dict[str, np.ndarray],
    item_ids: list[str],
    user_ids: list[str],
    campaign_ids: list[str],
    end: datetime,
    id_stem: str,
) -> list[dict[str, Any]]:
    """EventIn-shaped dicts in time order, numbered `{id_stem}{k:08d}`."""
    order = np.argsort(-columns["age"], kind="stable")
    c = {k: v[order] for k, v in columns.items()}
    base = np.datetime64(end.replace(tzinfo=None), "us")
    stamps = np.datetime_as_string(base - (c["age"] * 1e6).astype("timedelta64[us]"), unit="ms")
    types = np.array(TYPES, dtype=object)[c["type"]].tolist()
    users = np.array(user_ids, dtype=object)[c["user"]].tolist()
    # Index -1 (no item, no campaign) picks the trailing None.
    items = np.array([*item_ids, None], dtype=object)[c["item"]].tolist()
    campaigns = np.array([*campaign_ids, None], dtype=object)[c["campaign"]].tolist()
    sources = np.array(["web", "app", "email", None], dtype=object)[c["source"]].tolist()
    qty, request = c["qty"].tolist(), c["request"].tolist()
    amount, dwell, value = c["amount"].tolist(), c["dwell"].tolist(), c["value"].tolist()
    events = []
    for k, stamp in enumerate(stamps.tolist()):
        e: dict[str, Any] = {
            "event_id": f"{id_stem}{k:08d}",
            "user_id": users[k],
            "type": types[k],
            "timestamp": stamp + "+00:00",
        }
        if items[k] is not None:
            e["item_id"] = items[k]
        if campaigns[k] is not None:
            e["campaign_id"] = campaigns[k]
        if qty[k] >= 0:
            e["quantity"] = qty[k]
        if amount[k] == amount[k]:  # not NaN
            e["amount"] = amount[k]
        if dwell[k] == dwell[k]:
            e["dwell_seconds"] = dwell[k]
        if value[k] == value[k]:
            e["value"] = value[k]
        if sources[k] is not None:
            e["source"] = sources[k]
        if request[k] >= 0:
            e["context"] = {"request_id": f"{id_stem}r{request[k]}"}
        events.append(e)
    return events
