"""GET /dashboard/evaluation (admin): the newest report written by `brandlift evaluate`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from app.deps import ContextDep, api_key_header, authorize
from app.evaluation.report import latest
from app.problems import Problem

router = APIRouter(include_in_schema=False)
COOKIE = "key"  # the dashboard's login cookie
# The report is self-contained: inline styles and SVG, no script, nothing fetched.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@router.get("/dashboard/evaluation")
async def evaluation_report(
    request: Request,
    ctx: ContextDep,
    api_key: Annotated[str | None, Depends(api_key_header)] = None,
) -> HTMLResponse:
    """The latest offline evaluation report; the admin key comes in X-API-Key or the
    dashboard's login cookie."""
    authorize(ctx, request, api_key or request.cookies.get(COOKIE), "admin")
    report = await latest(ctx)
    if report is None:
        raise Problem(404, "no evaluation report yet: run `brandlift evaluate`")
    return HTMLResponse(report.html, headers=HEADERS)
