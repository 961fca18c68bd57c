"""RFC 9457 problem+json errors, used for every 4xx/5xx the API returns."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.logging import get_logger

log = get_logger(__name__)

PROBLEM_TYPE = "application/problem+json"
# Failures to reach a backing service (refused, timed out, unresolvable, pool exhausted): the
# request may succeed later, so they answer 503 with Retry-After instead of a bare 500.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """An error that becomes a problem+json response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers
        self.extra = extra


def problem_response(
    status: int,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """Render a problem+json body."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_TYPE, headers=headers
    )


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """Dotted field path from a pydantic error location, without the request part."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic errors as [{field, message}] (the index is part of `field` for arrays)."""
    out = []
    for err in errors:
        loc = tuple(err.get("loc", ()))
        out.append({"field": field_name(loc), "message": err.get("msg", "invalid")})
    return out


def install_problem_handlers(app: FastAPI) -> None:
    """Make FastAPI's own errors problem+json too."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(
            exc.status,
            exc.detail,
            instance=request.url.path,
            errors=exc.errors,
            headers=exc.headers,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = validation_errors(list(exc.errors()))
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return problem_response(
            422, f"invalid request: {fields}", instance=request.url.path, errors=errors
        )

    async def _unavailable(request: Request, exc: Exception) -> Response:
        # Only the error type is logged: messages can carry connection strings.
        log.warning("backing service unavailable", error=type(exc).__name__, path=request.url.path)
        return problem_response(
            503,
            "the database or another backing service is unavailable; retry later",
            instance=request.url.path,
            headers={"Retry-After": "1"},
        )

    for error in UNAVAILABLE_ERRORS:
        app.add_exception_handler(error, _unavailable)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> Response:
        # Starlette re-raises after sending this, so the server still logs the traceback;
        # the client gets no internals.
        return problem_response(500, "internal error", instance=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return problem_response(
            exc.status_code,
            str(exc.detail),
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )
