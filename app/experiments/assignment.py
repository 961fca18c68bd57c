"""Deterministic assignment of users to experiment variants, and the in-process experiment list.

A user's group is a pure function of (experiment name, user id): SHA-256 of both, read as a
uniform number in [0, 1). The first `holdout` of that range is the holdout group; the rest is
split across the variants in proportion to their weights. No state, no I/O: every process
and every restart gives the same answer, and the serving path only hashes.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from app.context import AppContext
from app.logging import get_logger
from app.models import Experiment

log = get_logger(__name__)
HOLDOUT = "holdout"
# What the holdout group is served on each surface: the non-personalised baseline.
HOLDOUT_STRATEGY = "popular"
_SCALE = float(1 << 64)
FIRST_LOAD_WAIT = 0.25


def bucket(experiment: str, user_id: str) -> float:
    """A uniform number in [0, 1) fixed by (experiment, user)."""
    digest = hashlib.sha256(f"{experiment}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


@dataclass(frozen=True)
class Assignment:
    experiment: str
    variant: str
    strategy: str | None
    params: dict[str, Any] | None


@dataclass
class Spec:
    """What serving needs of one experiment, with its time window as epoch seconds."""

    name: str
    surface: str
    variants: list[dict[str, Any]]
    holdout: float
    start: float
    end: float | None
    stopped: bool = False
    _cumulative: list[float] = field(default_factory=list)
    _assignments: dict[str, Assignment] = field(default_factory=dict)

    def __post_init__(self) -> None:
        total = sum(float(v["weight"]) for v in self.variants) or 1.0
        running = 0.0
        self._cumulative = []
        for v in self.variants:
            running += float(v["weight"]) / total
            self._cumulative.append(running)
        # One answer per group, built once: serving only hashes and looks up.
        self._assignments = {HOLDOUT: Assignment(self.name, HOLDOUT, HOLDOUT_STRATEGY, None)}
        for v in self.variants:
            strategy = v.get("strategy")
            if strategy in ("default", "personalised"):
                strategy = None  # the surface's normal behaviour
            self._assignments[str(v["name"])] = Assignment(
                self.name, str(v["name"]), strategy, v.get("params")
            )

    @classmethod
    def from_row(cls, row: Experiment) -> Spec:
        return cls(
            name=row.name,
            surface=row.surface,
            variants=list(row.variants),
            holdout=float(row.holdout or 0.0),
            start=row.start_at.timestamp(),
            end=row.end_at.timestamp() if row.end_at else None,
            stopped=row.stopped_at is not None,
        )

    def active(self, now: float) -> bool:
        return not self.stopped and self.start <= now and (self.end is None or now < self.end)

    def variant_of(self, user_id: str) -> str:
        """The user's group: a variant name or "holdout"."""
        u = bucket(self.name, user_id)
        if u < self.holdout:
            return HOLDOUT
        u = (u - self.holdout) / (1.0 - self.holdout)
        for variant, edge in zip(self.variants, self._cumulative, strict=True):
            if u < edge:
                return str(variant["name"])
        return str(self.variants[-1]["name"])  # rounding at the very top of the range

    def assign(self, user_id: str) -> Assignment:
        return self._assignments[self.variant_of(user_id)]

    def expected_shares(self) -> dict[str, float]:
        """Expected share of users per group (variants in order, then holdout if any)."""
        total = sum(float(v["weight"]) for v in self.variants) or 1.0
        shares = {
            str(v["name"]): (1.0 - self.holdout) * float(v["weight"]) / total for v in self.variants
        }
        if self.holdout > 0:
            shares[HOLDOUT] = self.holdout
        return shares


class RunningExperiments:
    """This process's copy of the experiments table, re-read every few seconds.

    The first read is awaited; later ones run in the background, so a request never waits on
    the database and keeps the last good copy when the database is unreachable.
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self.specs: list[Spec] = []
        self.loaded_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    async def load(self, ctx: AppContext) -> None:
        try:
            async with ctx.sessions() as session:
                rows = (await session.scalars(select(Experiment))).all()
            self.specs = [Spec.from_row(r) for r in rows if r.stopped_at is None]
        except Exception as exc:  # keep serving with what we had
            log.warning("experiments not refreshed", error=type(exc).__name__)
        self.loaded_at = time.monotonic()

    async def ensure_fresh(self, ctx: AppContext) -> None:
        stale = self.loaded_at is None or time.monotonic() - self.loaded_at >= self.every
        if stale and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self.load(ctx))
        if self.loaded_at is None and self._task is not None:
            # A process's first requests wait briefly for the first read, never longer.
            await asyncio.wait({self._task}, timeout=FIRST_LOAD_WAIT)

    def active(self, surface: str, now: float | None = None) -> Spec | None:
        now = time.time() if now is None else now
        for spec in self.specs:
            if spec.surface == surface and spec.active(now):
                return spec
        return None


def running_experiments(ctx: AppContext) -> RunningExperiments:
    cached = ctx.extras.get("experiments")
    if cached is None:
        cached = ctx.extras["experiments"] = RunningExperiments(
            ctx.settings.experiments_refresh_seconds
        )
    assert isinstance(cached, RunningExperiments)
    return cached


async def assignment_for(ctx: AppContext, surface: str, user_id: str) -> Assignment | None:
    """The user's group in the experiment running on `surface` now, if any (no I/O)."""
    running = running_experiments(ctx)
    await running.ensure_fresh(ctx)
    spec = running.active(surface)
    return spec.assign(user_id) if spec is not None else None
