"""GET /dashboard (admin key in an HttpOnly cookie, set by the login form) and its login."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from app.dashboard import charts
from app.dashboard.formats import FORMATS, fact, status_class
from app.deps import ContextDep
from app.logging import get_logger
from app.ops.service import readiness
from app.ops.status import collect_status
from app.problems import UNAVAILABLE_ERRORS

log = get_logger(__name__)
HERE = Path(__file__).parent
COOKIE = "key"
COOKIE_MAX_AGE = 12 * 3600
MAX_FORM_BYTES = 4096
# The page runs no script and loads only its own stylesheet.
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}

router = APIRouter(include_in_schema=False)
static = StaticFiles(directory=HERE / "static")
templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.globals.update(fact=fact, status_class=status_class, bar=charts.bar)
templates.filters.update({f"fmt_{name}": fn for name, fn in FORMATS.items()})


def _page(request: Request, name: str, status_code: int = 200, **values: Any) -> Response:
    base = request.scope.get("root_path", "")
    html = templates.get_template(name).render(base=base, **values)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def _login_page(request: Request, status_code: int, message: str | None = None) -> Response:
    return _page(request, "login.html", status_code, message=message)


def _charts(status: dict[str, Any]) -> dict[str, Any]:
    ingest = status["ingest"]
    palette = charts.colors(list(ingest["by_type"]))
    cache = status["cache"]
    return {
        "palette": palette,
        "ingest": charts.line_chart(ingest["buckets"], ingest["by_type"], palette),
        "cache": charts.split_bar(
            [
                ("hits", cache["hits"], "#16a34a"),
                ("misses", cache["misses"], "#ca8a04"),
                ("fallbacks", cache["fallbacks"], "#dc2626"),
            ]
        ),
    }


@router.get("/dashboard", name="dashboard")
async def dashboard(request: Request, ctx: ContextDep) -> Response:
    """The operator's page; without a valid admin cookie, the login form (401)."""
    principal = ctx.keys.authenticate(request.cookies.get(COOKIE))
    if principal is None:
        stale = "your key is not valid any more" if request.cookies.get(COOKIE) else None
        return _login_page(request, 401, stale)
    if not principal.allows("admin"):
        return _login_page(request, 403, "the dashboard needs a key with the admin scope")
    refresh = ctx.settings.dashboard_refresh_seconds
    try:
        status = await collect_status(ctx)
    except UNAVAILABLE_ERRORS:
        # The database is gone: say so (and keep refreshing) rather than answer a bare 503.
        _, ready = await readiness(ctx)
        return _page(request, "unavailable.html", 503, ready=ready, refresh=refresh)
    return _page(request, "dashboard.html", status=status, charts=_charts(status), refresh=refresh)


@router.post("/dashboard/login")
async def login(request: Request, ctx: ContextDep) -> Response:
    """Check the posted key; an admin key goes into an HttpOnly cookie for this path only."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return _login_page(request, 413, "that form was too large")
    form = parse_qs(body.decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    principal = ctx.keys.authenticate(key)
    if principal is None:
        log.info("dashboard login refused", reason="unknown key" if key else "no key")
        return _login_page(request, 401, "unknown API key")
    if not principal.allows("admin"):
        log.info("dashboard login refused", reason="not admin", key=principal.fingerprint)
        return _login_page(request, 403, "the dashboard needs a key with the admin scope")
    log.info("dashboard login", key=principal.fingerprint)
    base = request.scope.get("root_path", "")
    response = RedirectResponse(f"{base}/dashboard", status_code=303)
    response.set_cookie(
        COOKIE,
        key,
        max_age=COOKIE_MAX_AGE,
        path=f"{base}/dashboard",
        httponly=True,
        samesite="strict",
        secure=_is_https(request),
    )
    return response


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    base = request.scope.get("root_path", "")
    response = RedirectResponse(f"{base}/dashboard", status_code=303)
    response.delete_cookie(COOKIE, path=f"{base}/dashboard")
    return response


def _is_https(request: Request) -> bool:
    # Behind a TLS-terminating proxy the scheme arrives in X-Forwarded-Proto.
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip() == "https"
