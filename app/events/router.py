"""POST /v1/events: batches of behaviour events."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from app.batch import parse_batch, read_body_limited
from app.deps import ContextDep, IngestKey, SessionDep, SettingsDep
from app.events import service
from app.events.schemas import EventIn, IngestResult
from app.metrics import EVENTS_DUPLICATES, EVENTS_INGESTED, EVENTS_REJECTED
from app.problems import Problem
from app.promotions.store import record_impressions
from app.realtime.queue import mark_dirty, mark_dirty_in_database
from app.recommendations.live_view import get_live_view

router = APIRouter(prefix="/v1", tags=["events"])

BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/EventIn"}}
            }
        },
    }
}


@router.post(
    "/events",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestResult,
    openapi_extra=BATCH_BODY,
    summary="Ingest a batch of up to 5000 events (all or nothing, idempotent by event_id)",
)
async def ingest_events(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    ctx: ContextDep,
    _key: IngestKey,
) -> IngestResult:
    try:
        body = await read_body_limited(request, settings.max_body_bytes)
        events = parse_batch(body, EventIn, settings.max_events_per_batch)
    except Problem as problem:
        EVENTS_REJECTED.labels(str(problem.status)).inc()
        raise
    accepted, by_type = await service.store_events(session, events)
    if accepted and ctx.settings.realtime_enabled:
        # Shoppers whose lists are now stale; the worker republishes them within a second.
        stale = sorted({e.user_id for e in events if e.item_id is not None})
        if not await mark_dirty(ctx.cache, stale, ctx.settings.realtime_queue_max):
            await mark_dirty_in_database(ctx.sessions, stale)
    if by_type.get("rec_impression"):
        # Frequency caps count sponsored impressions in the cache, shared by every process.
        promos = get_live_view(ctx).promotions
        windows = {p.campaign_id: p.cap_hours for p in promos if p.cap is not None}
        await record_impressions(ctx.cache, events, windows)
    for event_type, count in by_type.items():
        EVENTS_INGESTED.labels(event_type).inc(count)
    duplicates = len(events) - accepted
    if duplicates:
        EVENTS_DUPLICATES.inc(duplicates)
    return IngestResult(accepted=accepted, duplicates=duplicates)
