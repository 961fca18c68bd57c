"""Experiments: create, list, stop, and results from the per-user roll-up."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Float, case, cast, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.analytics.service import catch_up, request_budget
from app.context import AppContext
from app.experiments import stats
from app.experiments.assignment import Spec, running_experiments
from app.experiments.schemas import ExperimentIn
from app.models import Experiment, ExperimentUser
from app.problems import Problem

FAR_FUTURE = datetime.max.replace(tzinfo=UTC)


def status_of(row: Experiment, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    if row.stopped_at is not None:
        return "stopped"
    if now < row.start_at:
        return "scheduled"
    if row.end_at is not None and now >= row.end_at:
        return "ended"
    return "running"


def describe(row: Experiment) -> dict[str, Any]:
    return {
        "name": row.name,
        "surface": row.surface,
        "status": status_of(row),
        "variants": row.variants,
        "holdout": row.holdout,
        "primary_metric": row.primary_metric,
        "start": row.start_at,
        "end": row.end_at,
        "stopped_at": row.stopped_at,
        "created_at": row.created_at,
    }


async def _overlapping(session: AsyncSession, body: ExperimentIn, start: datetime) -> str | None:
    """Name of a live experiment on the same surface whose window meets the new one."""
    end = body.end or FAR_FUTURE
    rows = await session.scalars(
        select(Experiment).where(
            Experiment.surface == body.surface, Experiment.stopped_at.is_(None)
        )
    )
    for row in rows:
        if row.start_at < end and start < (row.end_at or FAR_FUTURE):
            return row.name
    return None


async def create(ctx: AppContext, body: ExperimentIn) -> dict[str, Any]:
    """Store a new experiment; one experiment at a time per surface."""
    start = body.start or datetime.now(UTC)
    if body.end is not None and body.end <= start:
        raise Problem(422, "end must be after start", errors=[{"field": "end", "message":
                                                               "not after start"}])  # fmt: skip
    async with ctx.sessions() as session:
        if await session.get(Experiment, body.name) is not None:
            raise Problem(409, f"experiment '{body.name}' already exists")
        other = await _overlapping(session, body, start)
        if other is not None:
            raise Problem(
                409,
                f"experiment '{other}' already runs on the {body.surface} surface in that "
                "window; stop it first",
            )
        row = Experiment(
            name=body.name,
            surface=body.surface,
            variants=[v.model_dump(exclude_none=True) for v in body.variants],
            holdout=body.holdout,
            primary_metric=body.primary_metric,
            start_at=start,
            end_at=body.end,
            created_at=datetime.now(UTC),
        )
        session.add(row)
        try:
            await session.commit()
        except IntegrityError:
            raise Problem(409, f"experiment '{body.name}' already exists") from None
    await running_experiments(ctx).load(ctx)  # this process assigns at once
    return describe(row)


async def get_row(session: AsyncSession, name: str) -> Experiment:
    row = await session.get(Experiment, name)
    if row is None:
        raise Problem(404, f"experiment '{name}' not found")
    return row


async def list_all(ctx: AppContext) -> list[dict[str, Any]]:
    async with ctx.sessions() as session:
        rows = await session.scalars(select(Experiment).order_by(Experiment.created_at.desc()))
        return [describe(r) for r in rows]


async def stop(ctx: AppContext, name: str) -> dict[str, Any]:
    """Stop assigning (idempotent); results stay available."""
    async with ctx.sessions() as session:
        row = await get_row(session, name)
        if row.stopped_at is None:
            row.stopped_at = datetime.now(UTC)
            await session.commit()
    await running_experiments(ctx).load(ctx)
    return describe(row)


async def arms(session: AsyncSession, spec: Spec) -> list[stats.Arm]:
    """Per-group totals from experiment_users: variants in order (control first), holdout last."""
    revenue = ExperimentUser.revenue
    # As floats: the squares of a heavy user's int4 counts may not fit an int4.
    imp, clk = cast(ExperimentUser.impressions, Float), cast(ExperimentUser.clicks, Float)
    stmt = (
        select(
            ExperimentUser.variant,
            func.count(),
            func.sum(ExperimentUser.impressions),
            func.sum(ExperimentUser.clicks),
            func.sum(case((ExperimentUser.conversions > 0, 1), else_=0)),
            func.sum(revenue),
            func.sum(revenue * revenue),
            func.sum(imp * imp),
            func.sum(clk * clk),
            func.sum(imp * clk),
        )
        .where(ExperimentUser.experiment == spec.name)
        .group_by(ExperimentUser.variant)
    )
    found = {
        row[0]: stats.Arm(
            name=row[0],
            users=int(row[1]),
            impressions=int(row[2] or 0),
            clicks=int(row[3] or 0),
            converters=int(row[4] or 0),
            revenue=float(row[5] or 0.0),
            revenue_sq=float(row[6] or 0.0),
            impressions_sq=float(row[7] or 0.0),
            clicks_sq=float(row[8] or 0.0),
            impressions_clicks=float(row[9] or 0.0),
        )
        for row in await session.execute(stmt)
    }
    names = list(spec.expected_shares())
    return [found.get(n) or stats.Arm(name=n) for n in names]


async def results(ctx: AppContext, name: str, *, refresh: bool = True) -> dict[str, Any]:
    """Per-variant figures with intervals, tests against the control, SRM and a verdict."""
    up_to_date = True
    if refresh:
        up_to_date = bool((await catch_up(ctx, budget=request_budget(ctx)))["up_to_date"])
    async with ctx.sessions() as session:
        row = await get_row(session, name)
        spec = Spec.from_row(row)
        groups = await arms(session, spec)
    shares = list(spec.expected_shares().values())
    analysis = stats.analyse(groups, shares, row.primary_metric)
    return {
        "experiment": row.name,
        "status": status_of(row),
        "surface": row.surface,
        "primary_metric": row.primary_metric,
        **analysis,
        "expected_shares": {k: round(v, 6) for k, v in spec.expected_shares().items()},
        "holdout": spec.holdout,
        "up_to_date": up_to_date,
    }
