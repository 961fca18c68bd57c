"""The profile stage of a rebuild, run beside the recommender build.

Everything but the ad step (features, spend and churn models, segments, serialising every
profile) runs while the recommender trains, and the profiles are cached under the pending
version before it is done; only the ad step waits for the trained recommender. (Running the
stage in a child process instead was measured slower on two cores: the CPU work is the same
and the child competes with the build's own threads.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from app.context import AppContext
from app.training.dataset import Catalog, Interactions
from app.training.profile_build import ProfileOutput, add_ads, profile_core
from app.training.profile_data import load_profile_data
from app.training.publish_profiles import (
    PreparedProfiles,
    cache_profiles,
    is_postgres,
    prepare_profiles,
)

SELECTIONS = "linear_selections"  # ctx.extras key: the worker's last linear-model choices


def _fresh_selections(ctx: AppContext) -> dict[str, dict[str, Any]]:
    """The linear-model kinds chosen by cross-validation less than RESELECT_HOURS ago."""
    horizon = datetime.now(UTC) - timedelta(hours=ctx.settings.reselect_hours)
    return {
        target: chosen
        for target, chosen in (ctx.extras.get(SELECTIONS) or {}).items()
        if datetime.fromisoformat(chosen["selected_at"]) > horizon
    }


class ProfileJob:
    """The profile stage, started beside the recommender build: the profiles are serialised
    and cached under `version` while the recommender still trains. `finish(model)` hands
    the recommender over and waits for the result."""

    def __init__(
        self,
        ctx: AppContext,
        catalog: Catalog,
        inter: Interactions,
        version: int,
    ) -> None:
        self.model: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.timings: dict[str, float] = {}
        self.version = version
        self.prepared: PreparedProfiles | None = None
        self.cached = asyncio.Event()  # set once the profiles are in the cache
        self.task = asyncio.create_task(self._run(ctx, catalog, inter))
        # An abandoned job's error is expected: retrieve it so asyncio does not log it.
        self.task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _run(self, ctx: AppContext, catalog: Catalog, inter: Interactions) -> ProfileOutput:
        started = time.perf_counter()
        data = await load_profile_data(ctx.engine)
        loaded = time.perf_counter()
        selections = _fresh_selections(ctx)
        core = await asyncio.to_thread(
            profile_core, data, catalog, inter, ctx.settings, selections=selections
        )
        self.prepared = await asyncio.to_thread(
            prepare_profiles, core.res, self.version, is_postgres(ctx)
        )
        await cache_profiles(ctx, self.version, self.prepared, core.res)
        self.cached.set()
        ctx.extras[SELECTIONS] = core.res.selections
        profiled = time.perf_counter()
        recommender = await asyncio.wrap_future(self.model)
        self.timings["wait_for_recommender"] = round(time.perf_counter() - profiled, 3)
        res = await asyncio.to_thread(add_ads, core, data, catalog, recommender, ctx.settings)
        self.timings["load"] = round(loaded - started, 3)
        self.timings["build"] = round(profiled - loaded, 3)
        return res

    async def finish(self, model: Any) -> ProfileOutput:
        """The profiles, ad scores and models, built with `model` for the ad features."""
        self.model.set_result(model)
        return await self.task

    def abandon(self) -> None:
        """No model is coming (failed, rejected or cancelled rebuild): the job stops at its
        wait and the result is dropped. Safe to call at any point, any number of times."""
        if not self.model.done():
            self.model.set_exception(RuntimeError("the rebuild did not produce a model"))
