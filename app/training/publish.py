"""Step 5: write a build's lists to the cache under a new version, then switch one pointer.

Layout (all keys under "bl:"):
  live                 -> the live version number (the only pointer readers follow)
  v:{v}:recs  (hash)   user_id -> {"s": strategy, "i": [[item_id, score, reason], ...],
                                   "x": [item_id, ...] never to show again}
  v:{v}:top   (hash)   user_id -> the same with only the first TOP_ITEMS of "i", and "m": 1
                                   when "recs" holds more (serving's usual read: a fifth of
                                   the bytes to move and parse)
  v:{v}:sim   (hash)   item_id -> [[item_id, score], ...]
  v:{v}:pop   (hash)   "{window}|{category or *}" -> [[item_id, score], ...]
  v:{v}:meta  (hash)   item_id -> {"c": category, "b": brand, "k": kind}
  v:{v}:seen  (hash)   user_id -> [item_id, ...]   (never recommended again)
  v:{v}:info  (string) {version, kind, created_at, ...}
A version's keys carry a TTL until they go live, so a publish that dies halfway leaves
nothing behind for long and never touches what is being served; the previous live version
expires a grace period after the switch so readers holding its number finish cleanly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import partial
from typing import Any

import orjson

from app.cache import Cache, key
from app.training.build import BuildOutput
from app.training.dataset import Catalog, Interactions

PENDING_TTL = 3600  # an unfinished version disappears after an hour
RETIRED_TTL = 300  # readers get five minutes to move off a superseded version
CHUNK = 1000
# Enough for the usual n=10 after serve-time filters drop a few; bigger asks read "recs".
TOP_ITEMS = 20
# prof..aud: profiles, segments and ad scores (app/training/publish_profiles.py); promo:
# measured promotion boosts (app/training/promotions.py).
PARTS = (
    "recs", "top", "sim", "pop", "meta", "seen", "info",
    "prof", "pmeta", "ads", "adm", "aud", "promo",
)  # fmt: skip
LIVE_KEY = key("live")


def version_key(version: int, part: str) -> str:
    return key("v", version, part)


def top_of(body: dict[str, Any]) -> dict[str, Any]:
    """A user's list body cut to its "top" payload (the first TOP_ITEMS items)."""
    if len(body["i"]) <= TOP_ITEMS:
        return body
    return {**body, "i": body["i"][:TOP_ITEMS], "m": 1}


def list_blobs(body: dict[str, Any]) -> tuple[bytes, bytes]:
    """A user's list as its "recs" payload and its "top" payload."""
    full = orjson.dumps(body)
    top = top_of(body)
    return full, full if top is body else orjson.dumps(top)


def _chunks(pairs: Iterable[tuple[str, bytes]]) -> Iterator[dict[str, bytes]]:
    batch: dict[str, bytes] = {}
    for field, value in pairs:
        batch[field] = value
        if len(batch) >= CHUNK:
            yield batch
            batch = {}
    if batch:
        yield batch


def payloads(out: BuildOutput, catalog: Catalog, inter: Interactions) -> dict[str, Any]:
    """Turn code-level lists into the cache's byte payloads, part by part (lazily)."""
    ids = catalog.item_ids
    users = inter.user_ids

    def user_lists(top: bool) -> Iterator[tuple[str, bytes]]:
        empty: list[int] = []
        for user, (strategy, items) in out.user_lists.items():
            # "x": items never to show again, kept beside the list so serving is one HGET.
            bought = [ids[i] for i in out.purchased.get(user, empty)]
            body = {"s": strategy, "i": items, "x": bought}
            yield users[user], orjson.dumps(top_of(body) if top else body)

    def sim() -> Iterator[tuple[str, bytes]]:
        for item, neighbours in out.similar.items():
            yield ids[item], orjson.dumps([[ids[j], round(s, 5)] for j, s in neighbours])

    def pop() -> Iterator[tuple[str, bytes]]:
        for window, lists in out.popular.items():
            for category, items in lists.items():
                yield (
                    f"{window}|{category}",
                    orjson.dumps([[ids[i], round(s, 3)] for i, s in items]),
                )

    def meta() -> Iterator[tuple[str, bytes]]:
        for i, item_id in enumerate(ids):
            yield (
                item_id,
                orjson.dumps(
                    {"c": catalog.category[i], "b": catalog.brand[i], "k": catalog.kind[i]}
                ),
            )

    def seen() -> Iterator[tuple[str, bytes]]:
        for user, items in out.purchased.items():
            yield users[user], orjson.dumps([ids[i] for i in items])

    return {
        "recs": partial(user_lists, False),
        "top": partial(user_lists, True),
        "sim": sim,
        "pop": pop,
        "meta": meta,
        "seen": seen,
    }


async def write_version(
    cache: Cache, version: int, parts: dict[str, Any], info: dict[str, Any]
) -> None:
    """Write every part of a version (with the pending TTL); nothing points at it yet."""
    for part, produce in parts.items():
        name = version_key(version, part)
        for batch in _chunks(produce()):
            await cache.run(partial(_hset_expire, name=name, mapping=batch))
    await cache.run(
        lambda r: r.set(version_key(version, "info"), orjson.dumps(info), ex=PENDING_TTL)
    )


async def _hset_expire(client: Any, *, name: str, mapping: dict[str, bytes]) -> None:
    async with client.pipeline(transaction=False) as pipe:
        pipe.hset(name, mapping=mapping)
        pipe.expire(name, PENDING_TTL)
        await pipe.execute()


async def switch_live(cache: Cache, version: int) -> int | None:
    """Atomically make `version` live; the old version expires after a grace period."""

    async def op(client: Any) -> int | None:
        previous = await client.get(LIVE_KEY)
        async with client.pipeline(transaction=True) as pipe:
            for part in PARTS:
                pipe.persist(version_key(version, part))
            pipe.set(LIVE_KEY, str(version))
            if previous is not None and int(previous) != version:
                for part in PARTS:
                    pipe.expire(version_key(int(previous), part), RETIRED_TTL)
            await pipe.execute()
        return int(previous) if previous is not None else None

    return await cache.run(op)


async def live_version(cache: Cache) -> int | None:
    """The version readers are served from, if any."""
    raw = await cache.run(lambda r: r.get(LIVE_KEY))
    return int(raw) if raw is not None else None
