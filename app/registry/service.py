"""The model registry (model_runs) and the job queue (jobs) in the database."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.models import Job, ModelRun

Sessions = async_sessionmaker[AsyncSession]
STALE_JOB = timedelta(hours=1)  # longer than any rebuild; a job running longer was orphaned


def utcnow() -> datetime:
    return datetime.now(UTC)


async def start_run(sessions: Sessions, kind: str, trigger: str) -> int:
    """Record a rebuild as `training`; its id is the version it will publish under."""
    async with sessions() as session:
        run = ModelRun(kind=kind, status="training", trigger=trigger, started_at=utcnow())
        session.add(run)
        await session.commit()
        return run.version


async def finish_run(sessions: Sessions, version: int, status: str, **fields: Any) -> None:
    """Close a run as live, rejected or failed; a new live run retires the previous one."""
    async with sessions() as session:
        if status == "live":
            await session.execute(
                update(ModelRun)
                .where(ModelRun.status == "live", ModelRun.version != version)
                .values(status="retired")
            )
        await session.execute(
            update(ModelRun)
            .where(ModelRun.version == version)
            .values(status=status, finished_at=utcnow(), **fields)
        )
        await session.commit()


async def live_run(sessions: Sessions) -> ModelRun | None:
    """The run currently serving, if any."""
    async with sessions() as session:
        return await session.scalar(
            select(ModelRun).where(ModelRun.status == "live").order_by(ModelRun.version.desc())
        )


async def list_runs(session: AsyncSession, limit: int = 50) -> list[ModelRun]:
    """Newest runs first."""
    rows = await session.scalars(select(ModelRun).order_by(ModelRun.version.desc()).limit(limit))
    return list(rows)


async def get_run(session: AsyncSession, version: int) -> ModelRun | None:
    return await session.get(ModelRun, version)


async def enqueue_job(session: AsyncSession, kind: str) -> Job:
    """Queue work for the worker; answers at once."""
    job = Job(job_id=uuid.uuid4().hex, kind=kind, status="queued", created_at=utcnow())
    session.add(job)
    await session.commit()
    return job


async def get_job(session: AsyncSession, job_id: str) -> Job | None:
    return await session.get(Job, job_id)


async def claim_job(sessions: Sessions, kind: str) -> Job | None:
    """Take the oldest queued job; SKIP LOCKED lets several workers claim different jobs."""
    async with sessions() as session:
        # A worker that died mid-job leaves it `running`: hand such jobs out again.
        await session.execute(
            update(Job)
            .where(Job.status == "running", Job.started_at < utcnow() - STALE_JOB)
            .values(status="queued")
        )
        stmt = (
            select(Job)
            .where(Job.status == "queued", Job.kind == kind)
            .order_by(Job.created_at)
            .limit(1)
        )
        if session.bind.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        job = await session.scalar(stmt)
        if job is None:
            return None
        claimed = await session.execute(
            update(Job)
            .where(Job.job_id == job.job_id, Job.status == "queued")
            .values(status="running", started_at=utcnow())
        )
        await session.commit()
        return job if claimed.rowcount == 1 else None  # type: ignore[attr-defined]


async def finish_job(sessions: Sessions, job_id: str, status: str, result: dict[str, Any]) -> None:
    """Mark a job done (or failed, or re-queued) with its result."""
    async with sessions() as session:
        values: dict[str, Any] = {"status": status, "result": result}
        if status != "queued":
            values["finished_at"] = utcnow()
        await session.execute(update(Job).where(Job.job_id == job_id).values(**values))
        await session.commit()


async def get_run_by_version(sessions: Sessions, version: int) -> ModelRun | None:
    async with sessions() as session:
        return await session.get(ModelRun, version)
