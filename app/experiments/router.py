"""Experiment endpoints: admin creates and stops; read scope sees definitions and results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from app.deps import AdminKey, ContextDep, ReadKey
from app.experiments import service
from app.experiments.schemas import (
    ExperimentIn,
    ExperimentList,
    ExperimentOut,
    ExperimentResults,
)

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])
Name = Annotated[str, Path(min_length=1, max_length=128)]


@router.post("", response_model=ExperimentOut, status_code=201)
async def create_experiment(ctx: ContextDep, _key: AdminKey, body: ExperimentIn) -> Any:
    """Start (or schedule) an experiment; users are assigned by hashing (experiment, user)."""
    return await service.create(ctx, body)


@router.get("", response_model=ExperimentList)
async def list_experiments(ctx: ContextDep, _key: ReadKey) -> Any:
    """Every experiment, newest first, with its status."""
    return {"experiments": await service.list_all(ctx)}


@router.get("/{name}", response_model=ExperimentOut)
async def get_experiment(ctx: ContextDep, _key: ReadKey, name: Name) -> Any:
    async with ctx.sessions() as session:
        return service.describe(await service.get_row(session, name))


@router.post("/{name}/stop", response_model=ExperimentOut)
async def stop_experiment(ctx: ContextDep, _key: AdminKey, name: Name) -> Any:
    """Stop assigning users; every process stops within EXPERIMENTS_REFRESH_SECONDS."""
    return await service.stop(ctx, name)


@router.get("/{name}/results", response_model=ExperimentResults)
async def experiment_results(ctx: ContextDep, _key: ReadKey, name: Name) -> Any:
    """Per-variant users, impressions, clicks, CTR, conversions, revenue per user with 95%
    intervals; lift and two-sided p-value against the first variant; SRM check; verdict."""
    return await service.results(ctx, name)
