"""MovieLens-100K for bench/accuracy.py: the files, the reference split, the service's matrix,
and loading a time window into the service's own storage.

The data is read from ../shared/data/ml-100k relative to the repo root and never copied into
the project (its licence forbids redistribution).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse

from app.config import Settings
from app.training.build import preprocess_config
from app.training.dataset import TYPE_CODE, Catalog, Interactions
from app.training.evaluate import Split, temporal_split
from app.training.preprocess import clean, confidence_matrix, event_weights

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "ml-100k"
EVENT_BATCH = 5000  # the HTTP contract's batch limit


@dataclass
class MovieLens:
    users: np.ndarray  # user index per rating
    items: np.ndarray  # item index per rating
    ratings: np.ndarray  # 1-5
    timestamps: np.ndarray  # seconds since the epoch
    user_ids: list[str]  # index -> the data set's id
    item_ids: list[str]
    titles: dict[str, str]
    genres: dict[str, list[str]]
    attributes: dict[str, dict[str, Any]]

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def _primary(genres: list[str] | None) -> str | None:
    return genres[0] if genres else None


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="latin-1") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return rows[1:]  # the header names the columns


def load(path: Path = DATA) -> MovieLens | None:
    """The three atomic files as arrays and dictionaries; None when the data set is absent."""
    names = ("ml-100k.inter", "ml-100k.item", "ml-100k.user")
    if not all((path / name).exists() for name in names):
        return None
    raw = np.loadtxt(path / "ml-100k.inter", skiprows=1, delimiter="\t")
    user_codes, users = np.unique(raw[:, 0].astype(np.int64), return_inverse=True)
    item_codes, items = np.unique(raw[:, 1].astype(np.int64), return_inverse=True)
    titles, genres = {}, {}
    for item_id, title, _year, classes in _rows(path / "ml-100k.item"):
        titles[item_id], genres[item_id] = title, classes.split()
    attributes = {
        user_id: {"age": int(age), "gender": gender, "occupation": occupation, "zip_code": zip_code}
        for user_id, age, gender, occupation, zip_code in _rows(path / "ml-100k.user")
    }
    return MovieLens(
        users=users,
        items=items,
        ratings=raw[:, 2].astype(np.float32),
        timestamps=raw[:, 3],
        user_ids=[str(u) for u in user_codes],
        item_ids=[str(i) for i in item_codes],
        titles=titles,
        genres=genres,
        attributes=attributes,
    )


def time_cutoff(data: MovieLens, mask: np.ndarray, share: float = 0.1) -> float:
    """The time that leaves the last `share` of the rows in `mask` after it."""
    ts = np.sort(data.timestamps[mask], kind="stable")
    return float(ts[int(len(ts) * (1 - share))])


def binary_split(data: MovieLens, mask: np.ndarray, cutoff: float) -> Split:
    """The README's reference split of the rows in `mask`: train = every rating before
    `cutoff` as 1; targets = items first rated at/after it, for users seen before it."""
    ones = np.ones(int(mask.sum()), np.float32)
    return temporal_split(
        data.users[mask],
        data.items[mask],
        ones,
        data.timestamps[mask],
        data.n_users,
        data.n_items,
        cutoff=cutoff,
    )


def catalog(data: MovieLens) -> Catalog:
    """The items as the service's Catalog, in the data set's item order."""
    n = data.n_items
    first_genre = [_primary(data.genres.get(i)) for i in data.item_ids]
    cat = Catalog(
        item_ids=list(data.item_ids),
        category=first_genre,
        brand=[None] * n,
        kind=["content"] * n,
        title=[data.titles.get(i) for i in data.item_ids],
        tags=[data.genres.get(i, []) for i in data.item_ids],
        price=np.full(n, np.nan, np.float32),
        available=np.ones(n, bool),
    )
    cat.index = {item_id: k for k, item_id in enumerate(cat.item_ids)}
    return cat


def service_split(data: MovieLens, mask: np.ndarray, cutoff: float, settings: Settings) -> Split:
    """Same targets as `binary_split`, but train is the confidence matrix the service's own
    preprocessing makes of the ratings before `cutoff` (rating weight x value / 5, decay to
    `cutoff` as "now", log1p), i.e. what the worker would train on at that moment."""
    before = mask & (data.timestamps < cutoff)
    n = int(before.sum())
    inter = Interactions(
        user_ids=list(data.user_ids),
        user=data.users[before].astype(np.int32),
        item=data.items[before].astype(np.int32),
        etype=np.full(n, TYPE_CODE["rating"], np.int8),
        ts=data.timestamps[before].astype(np.float64),
        quantity=np.full(n, np.nan, np.float32),
        amount=np.full(n, np.nan, np.float32),
        value=data.ratings[before].astype(np.float32),
    )
    cfg = preprocess_config(settings)
    inter, _ = clean(inter, catalog(data), cfg)
    weights = event_weights(inter, cfg, now=cutoff)
    shape = (data.n_users, data.n_items)
    train = confidence_matrix(inter.user, inter.item, weights, shape)
    return Split(train=train, test=binary_split(data, mask, cutoff).test)


async def load_into_service(sessions: Any, data: MovieLens, mask: np.ndarray, shift: float) -> int:
    """Items (first genre as category, all genres as tags, kind content), users with their
    attributes, and the ratings in `mask` as `rating` events (value = stars, timestamps moved
    by `shift` seconds), through the service's own validation and storage code."""
    from pydantic import BaseModel

    from app.catalog.schemas import ItemIn, UserIn
    from app.catalog.service import upsert
    from app.events.schemas import EventIn
    from app.events.service import store_events
    from app.models import Item, User

    items: list[BaseModel] = [
        ItemIn(
            item_id=item_id,
            title=data.titles.get(item_id),
            category=_primary(data.genres.get(item_id)),
            tags=data.genres.get(item_id) or [],
            kind="content",
        )
        for item_id in data.item_ids
    ]
    users: list[BaseModel] = [
        UserIn(user_id=u, attributes=data.attributes.get(u)) for u in data.user_ids
    ]
    async with sessions() as session:
        await upsert(session, Item, "item_id", items)
        await upsert(session, User, "user_id", users)
    rows = np.flatnonzero(mask)
    stored = 0
    for start in range(0, len(rows), EVENT_BATCH):
        events = [
            EventIn(
                event_id=f"ml-{k}",
                user_id=data.user_ids[data.users[k]],
                item_id=data.item_ids[data.items[k]],
                type="rating",
                value=float(data.ratings[k]),
                timestamp=datetime.fromtimestamp(float(data.timestamps[k]) + shift, tz=UTC),
            )
            for k in rows[start : start + EVENT_BATCH].tolist()
        ]
        async with sessions() as session:
            count, _ = await store_events(session, events)
        stored += count
    return stored


def seen_matrix(data: MovieLens, mask: np.ndarray) -> sparse.csr_matrix:
    """users x items, 1 where the user rated the item within `mask`."""
    ones = np.ones(int(mask.sum()), np.float32)
    matrix = sparse.csr_matrix(
        (ones, (data.users[mask], data.items[mask])), shape=(data.n_users, data.n_items)
    )
    matrix.data[:] = 1.0
    return matrix
