"""FastAPI dependencies: the process context, a DB session, the cache and API-key scopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import APIKeyHeader
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import Route

from app.cache import Cache
from app.config import Settings
from app.context import AppContext
from app.logging import get_logger
from app.problems import Problem
from app.security import Principal, fingerprint

log = get_logger(__name__)

# auto_error=False: we answer 401 as problem+json ourselves; the scheme still shows in OpenAPI.
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


async def get_context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


ContextDep = Annotated[AppContext, Depends(get_context)]


async def get_session(ctx: ContextDep) -> AsyncIterator[AsyncSession]:
    async with ctx.sessions() as session:
        yield session


async def get_cache(ctx: ContextDep) -> Cache:
    return ctx.cache


async def get_settings_dep(ctx: ContextDep) -> Settings:
    return ctx.settings


SessionDep = Annotated[AsyncSession, Depends(get_session)]
CacheDep = Annotated[Cache, Depends(get_cache)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency factory: 401 for a missing/unknown key, 403 for a key without `scope`.

    Dependencies here are `async def` on purpose: FastAPI runs plain `def` dependencies in
    a thread pool, which cost more than the whole recommendation lookup on the hot path.
    """

    async def dependency(
        request: Request,
        ctx: ContextDep,
        api_key: Annotated[str | None, Depends(api_key_header)],
    ) -> Principal:
        return authorize(ctx, request, api_key, scope)

    return dependency


def authorize(ctx: AppContext, request: Request, api_key: str | None, scope: str) -> Principal:
    """The key's principal if it may use `scope`; otherwise a 401 or 403 problem."""
    principal = ctx.keys.authenticate(api_key)
    if principal is None:
        # Only a fingerprint is logged: enough to spot a misconfigured client, not the key.
        log.info(
            "api key rejected",
            reason="unknown" if api_key else "missing",
            key=fingerprint(api_key) if api_key else None,
            path=request.url.path,
        )
        raise Problem(
            401,
            "missing or unknown API key (send it in the X-API-Key header)",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    if not principal.allows(scope):
        log.info(
            "api key lacks scope", key=principal.fingerprint, scope=scope, path=request.url.path
        )
        raise Problem(403, f"this API key lacks the '{scope}' scope")
    return principal


IngestKey = Annotated[Principal, Depends(require_scope("ingest"))]
ReadKey = Annotated[Principal, Depends(require_scope("read"))]
AdminKey = Annotated[Principal, Depends(require_scope("admin"))]
ApiKeyDep = ReadKey


def add_plain_get(
    router: APIRouter, path: str, endpoint: Callable[[Request], Awaitable[Response]]
) -> None:
    """Serve GET `path` from a plain Starlette route that skips FastAPI's dependency solving
    (for the hottest read paths); register it before the documented FastAPI route of the same
    path, which keeps the OpenAPI contract. Metrics still see the path template."""

    async def labelled(request: Request) -> Response:
        request.scope["route"] = route  # MetricsMiddleware labels requests by route.path
        return await endpoint(request)

    route = Route(path, labelled, methods=["GET"], include_in_schema=False)
    router.routes.append(route)
