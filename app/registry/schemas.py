"""Model registry and job responses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class ModelRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: int
    kind: str
    status: str
    trigger: str
    started_at: datetime
    finished_at: datetime | None
    data_start: datetime | None
    data_end: datetime | None
    params: dict[str, Any] | None
    metrics: dict[str, Any] | None
    detail: str | None


class ModelRunList(BaseModel):
    models: list[ModelRunOut]
    live_version: int | None


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    job_id: str
    kind: str
    status: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None
