"""The analytics pass: fold new feedback events into the roll-ups, with purchase attribution.

Reads events after a stored cursor (`analytics_cursor`, the last folded `events.id`) in
chunks, in one transaction per chunk under a lock, so concurrent passes never fold an event
twice. Events younger than ANALYTICS_SETTLE_SECONDS (by their `received_at`) wait for the
next pass: the cursor stops before the first of them, so a list still buffered in an API
process, or an ingest transaction still open, lands before the events that refer to it.

- `rec_impression`/`rec_click`: counted in `rec_hourly` under the group of the list their
  `context.request_id` names (strategy, model version, experiment, variant), or the group
  their context spells out, else "unknown"; and in `experiment_users` when that list was
  served under an experiment or the context names one.
- `purchase`: attributed (last touch) to the newest list served to the same user in the
  attribution window before the purchase that contained the item; counted as a conversion
  with its amount (price x quantity when the event has none) for that list's group.
- `ad_impression`/`ad_click`/`ad_conversion`: counted per hour and campaign in
  `campaign_hourly` (conversions with their amount as revenue) and, when the context names an
  "ads" experiment, for that experiment's user.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.analytics.fold_io import PgIO, SqlIO, open_io
from app.context import AppContext
from app.experiments.assignment import Spec
from app.models import AnalyticsCursor, Event

REC_TYPES = ("rec_impression", "rec_click")
AD_TYPES = ("ad_impression", "ad_click", "ad_conversion")
FOLD_TYPES = (*REC_TYPES, *AD_TYPES, "purchase")
CHUNK = 20_000
CURSOR = "events"
LOCK_KEY = 0x626C616E  # pg advisory lock id of the analytics pass
# Counter positions in a user row [variant, first_seen, lists, impressions, clicks, conv, rev]
# and in an hourly row [impressions, clicks, conversions, revenue].
_REC = {"rec_impression": 0, "rec_click": 1}
_AD = {"ad_impression": 0, "ad_click": 1, "ad_conversion": 2}
Group = tuple[str, int, str, str]  # strategy, model version (0: unknown), experiment, variant


def _hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _label(value: Any, limit: int) -> str:
    return str(value)[:limit] if value not in (None, "") else ""


def _version(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _served_group(served: tuple[Any, ...]) -> Group:
    """(strategy, model_version, experiment, variant, ...) of a served list as a group."""
    return (served[0], int(served[1] or 0), served[2] or "", served[3] or "")


class Chunk:
    """Aggregates of one chunk of events, written at once."""

    def __init__(self, specs: dict[str, Spec]) -> None:
        self.specs = specs
        self.hourly: dict[tuple[datetime, str, int, str, str], list[float]] = {}
        self.users: dict[tuple[str, str], list[Any]] = {}
        self.campaigns: dict[tuple[datetime, str], list[float]] = {}

    def hour_row(self, ts: datetime, group: Group) -> list[float]:
        k = (_hour(ts), *group)
        row = self.hourly.get(k)
        if row is None:
            row = self.hourly[k] = [0, 0, 0, 0.0]
        return row

    def user_row(self, spec: Spec, user_id: str, ts: datetime) -> list[Any]:
        k = (spec.name, user_id)
        row = self.users.get(k)
        if row is None:
            row = self.users[k] = [spec.variant_of(user_id), ts, 0, 0, 0, 0, 0.0]
        elif ts < row[1]:
            row[1] = ts
        return row

    async def write(self, io: PgIO | SqlIO) -> None:
        await io.upsert_hourly([(*k, *v) for k, v in self.hourly.items()])
        await io.upsert_users([(*k, *v) for k, v in self.users.items()])
        await io.upsert_campaigns([(*k, *v) for k, v in self.campaigns.items()])


def _fold_rows(chunk: Chunk, rows: list[tuple], lists: dict[str, tuple]) -> list[tuple]:
    """Count feedback events; returns the purchases for attribution."""
    purchases = []
    specs = chunk.specs
    for row in rows:
        kind = row[3]
        counter = _REC.get(kind)
        if counter is not None:
            rid, c_exp = row[8], row[9]
            served = lists.get(rid) if rid else None
            if served is not None:
                group = _served_group(served)
            else:
                strategy = _label(row[11], 32) or "unknown"
                group = (strategy, _version(row[12]), _label(c_exp, 128), _label(row[10], 128))
            chunk.hour_row(row[4], group)[counter] += 1
            spec = specs.get(group[2] or c_exp or "")
            if spec is not None and spec.surface == "recommendations":
                chunk.user_row(spec, row[1], row[4])[3 + counter] += 1
        elif kind == "purchase":
            purchases.append(row)
        else:
            k = (_hour(row[4]), row[13])
            counters = chunk.campaigns.get(k)
            if counters is None:
                counters = chunk.campaigns[k] = [0, 0, 0, 0.0]
            counters[_AD[kind]] += 1
            if kind == "ad_conversion":
                counters[3] += float(row[5] or 0.0)
            spec = specs.get(row[9] or "")
            if spec is not None and spec.surface == "ads":
                user = chunk.user_row(spec, row[1], row[4])
                user[3 + _AD[kind]] += 1
                if kind == "ad_conversion":
                    user[6] += float(row[5] or 0.0)
    return purchases


async def _attribute(
    io: PgIO | SqlIO, chunk: Chunk, purchases: list[tuple], window: timedelta
) -> None:
    """Credit each purchase to the newest list in the window before it that held the item."""
    if not purchases:
        return
    lo = min(p[4] for p in purchases) - window
    hi = max(p[4] for p in purchases)
    lists = await io.lists_by_user(sorted({p[1] for p in purchases}), lo, hi)
    if not lists:
        return
    no_amount = sorted({p[2] for p in purchases if p[5] is None and p[2]})
    prices = await io.prices(no_amount) if no_amount else {}
    for p in purchases:
        user, item, ts = p[1], p[2], p[4]
        served = next(
            (s for s in lists.get(user, ()) if s[0] <= ts <= s[0] + window and item in s[1]),
            None,
        )
        if served is None:
            continue
        amount = p[5]
        if amount is None:
            amount = prices.get(item, 0.0) * (p[6] if p[6] is not None else 1)
        group = _served_group(served[2:])
        row = chunk.hour_row(ts, group)
        row[2] += 1
        row[3] += float(amount)
        spec = chunk.specs.get(group[2])
        if spec is not None:
            counters = chunk.user_row(spec, user, served[0])
            counters[5] += 1
            counters[6] += float(amount)


async def _cursor(session: AsyncSession) -> int:
    value = await session.scalar(
        select(AnalyticsCursor.last_id).where(AnalyticsCursor.name == CURSOR)
    )
    if value is None:
        session.add(AnalyticsCursor(name=CURSOR, last_id=0))
        await session.flush()
        return 0
    return int(value)


class Busy(Exception):
    """Another process is folding right now (only raised when not waiting for it)."""


async def fold_chunk(
    ctx: AppContext,
    specs: dict[str, Spec],
    settle: float,
    window: timedelta,
    limit: int = CHUNK,
    *,
    wait: bool = True,
) -> tuple[int, bool]:
    """Fold the next chunk; returns (events folded, whether more may be waiting)."""
    async with ctx.sessions() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            if wait:
                await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
            elif not await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": LOCK_KEY}
            ):
                raise Busy
        cursor = await _cursor(session)
        now = await session.scalar(select(func.now()))
        if isinstance(now, datetime) and now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=settle)
        # Read before the events: every feedback event up to it is in the read below, so an
        # all-settled, short read lets the cursor skip the other events after the last one.
        top = int(await session.scalar(select(func.max(Event.id))) or 0)
        io = await open_io(session)
        rows = await io.events(cursor, FOLD_TYPES, limit)
        settled = []
        for row in rows:
            received = row[7] if row[7].tzinfo else row[7].replace(tzinfo=UTC)
            if received > cutoff:
                break
            settled.append(row)
        complete = len(settled) == len(rows) < limit
        last = max(settled[-1][0] if settled else cursor, top if complete else 0)
        if not settled:
            if last > cursor:
                await _move(session, last, now)
            return 0, False
        chunk = Chunk(specs)
        request_ids = sorted({r[8] for r in settled if r[8] and r[3] in _REC})
        lists = await io.lists_by_request(request_ids)
        purchases = _fold_rows(chunk, settled, lists)
        await _attribute(io, chunk, purchases, window)
        await chunk.write(io)
        await _move(session, last, now)
    return len(settled), len(settled) == len(rows) == limit


async def _move(session: AsyncSession, last_id: int, now: Any) -> None:
    await session.execute(
        update(AnalyticsCursor)
        .where(AnalyticsCursor.name == CURSOR)
        .values(last_id=last_id, updated_at=now)
    )
