"""Admin endpoints: model registry and on-demand rebuilds."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from app.deps import AdminKey, SessionDep
from app.problems import Problem
from app.registry import service
from app.registry.schemas import JobOut, ModelRunList, ModelRunOut

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=ModelRunList)
async def list_models(
    session: SessionDep,
    _key: AdminKey,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> ModelRunList:
    """Model runs, newest first, with their status, data window, params and metrics."""
    runs = await service.list_runs(session, limit)
    live = next((r.version for r in runs if r.status == "live"), None)
    return ModelRunList(models=[ModelRunOut.model_validate(r) for r in runs], live_version=live)


@router.get("/models/{version}", response_model=ModelRunOut)
async def get_model(
    session: SessionDep, _key: AdminKey, version: Annotated[int, Path(ge=1)]
) -> ModelRunOut:
    run = await service.get_run(session, version)
    if run is None:
        raise Problem(404, f"model version {version} not found")
    return ModelRunOut.model_validate(run)


@router.post("/admin/rebuild", response_model=JobOut, status_code=status.HTTP_202_ACCEPTED)
async def request_rebuild(session: SessionDep, _key: AdminKey) -> JobOut:
    """Queue a full rebuild; a worker picks it up within a second. Poll the job for the result."""
    return JobOut.model_validate(await service.enqueue_job(session, "rebuild"))


@router.get("/admin/jobs/{job_id}", response_model=JobOut)
async def get_job(
    session: SessionDep, _key: AdminKey, job_id: Annotated[str, Path(max_length=64)]
) -> JobOut:
    job = await service.get_job(session, job_id)
    if job is None:
        raise Problem(404, f"job '{job_id}' not found")
    return JobOut.model_validate(job)
