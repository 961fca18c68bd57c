"""Cap hits and reach noted on the hot path, sent to the cache in the background.

Serving only updates in-process counters (no I/O); a task flushes them every FLUSH_SECONDS
in one pipeline (HINCRBY for cap hits, HSETNX for first exposure / holdout times), and keeps
them while the cache is down, so every API process adds to the same delivery report.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from app.cache import CacheUnavailable
from app.context import AppContext
from app.flusher import BackgroundFlusher
from app.promotions.store import CAP_HITS_KEY, reach_key

FLUSH_SECONDS = 0.5
REACH_MAX = 100_000  # entries kept per process while the cache is down


class Tally(BackgroundFlusher):
    def __init__(self) -> None:
        super().__init__(FLUSH_SECONDS)
        self.cap_hits: Counter[str] = Counter()
        self.reach: dict[tuple[str, str, str], float] = {}
        # Entries already flushed: HSETNX would ignore them, so skip the round trip's work.
        self.sent: set[tuple[str, str, str]] = set()

    def note(self, ctx: AppContext, campaign_id: str, user_id: str, state: str) -> None:
        """state: "capped", "holdout" or "exposed"."""
        if state == "capped":
            self.cap_hits[campaign_id] += 1
        else:
            k = (campaign_id, state, user_id)
            if k in self.sent or k in self.reach or len(self.reach) >= REACH_MAX:
                return
            self.reach[k] = time.time()
        self.kick(ctx)

    def pending(self) -> bool:
        return bool(self.cap_hits or self.reach)

    def forget(self, user_id: str) -> int:
        """Drop the shopper's reach entries not yet sent (erasure); returns how many.

        Without this a flush after the erasure's sweep would write them back.
        """
        named = [k for k in self.reach if k[2] == user_id]
        for k in named:
            del self.reach[k]
        # A later note must be sent again: the sweep removed what was flushed.
        self.sent = {k for k in self.sent if k[2] != user_id}
        return len(named)

    async def flush(self, ctx: AppContext) -> bool:
        """Send what was counted; False (and everything kept) when the cache is down."""
        if not self.cap_hits and not self.reach:
            return True
        hits, reach = self.cap_hits, self.reach
        self.cap_hits, self.reach = Counter(), {}

        async def op(client: Any) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for campaign_id, count in hits.items():
                    pipe.hincrby(CAP_HITS_KEY, campaign_id, count)
                for (campaign_id, group, user_id), at in reach.items():
                    pipe.hsetnx(reach_key(campaign_id, group), user_id, f"{at:.3f}")
                await pipe.execute()

        try:
            await ctx.cache.run(op)
        except CacheUnavailable:
            self.cap_hits.update(hits)
            for k, at in reach.items():
                self.reach.setdefault(k, at)
            return False
        if len(self.sent) + len(reach) > REACH_MAX:
            self.sent.clear()
        self.sent.update(reach)
        return True


def tally(ctx: AppContext) -> Tally:
    current = ctx.extras.get("promotion_tally")
    if current is None:
        current = ctx.extras["promotion_tally"] = Tally()
    assert isinstance(current, Tally)
    return current
