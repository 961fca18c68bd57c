"""Reading and validating JSON array batches (events, items, users, campaigns) in one pass."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from app.problems import Problem, field_name

M = TypeVar("M", bound=BaseModel)
MAX_LISTED_ERRORS = 1000


async def read_body_limited(request: Request, max_bytes: int) -> bytes:
    """The raw body, or 413 as soon as it grows past `max_bytes` (also for chunked uploads)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise Problem(413, f"request body over the {max_bytes} byte limit", field="body")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise Problem(413, f"request body over the {max_bytes} byte limit", field="body")
        chunks.append(chunk)
    return b"".join(chunks)


@lru_cache(maxsize=32)
def batch_adapter(model: type[BaseModel], max_items: int) -> TypeAdapter[list[Any]]:
    """A cached validator for `list[model]` with at most `max_items` entries."""
    shape: Any = Annotated[list[model], Field(max_length=max_items)]  # type: ignore[valid-type]
    return TypeAdapter(shape)


def parse_batch(body: bytes, model: type[M], max_items: int) -> list[M]:
    """Parse and validate a JSON array body; the whole batch passes or none of it does."""
    if not body.strip():
        raise Problem(400, "request body is empty; send a JSON array", field="body")
    try:
        batch: list[M] = batch_adapter(model, max_items).validate_json(body)
    except ValidationError as exc:
        raise _batch_problem(exc, max_items) from None
    return batch


def _batch_problem(exc: ValidationError, max_items: int) -> Problem:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return Problem(400, f"body is not valid JSON: {first['msg']}", field="body")
    if first["type"] == "too_long" and not first["loc"]:
        return Problem(413, f"batch holds more than {max_items} entries", field="body")
    if first["type"] == "list_type" and not first["loc"]:
        return Problem(
            422,
            "body must be a JSON array",
            errors=[{"index": None, "field": "body", "message": "expected a JSON array"}],
        )
    listed = []
    for err in errors[:MAX_LISTED_ERRORS]:
        loc = tuple(err["loc"])
        index = loc[0] if loc and isinstance(loc[0], int) else None
        rest = loc[1:] if index is not None else loc
        listed.append({"index": index, "field": field_name(rest), "message": err["msg"]})
    bad = sorted({e["index"] for e in listed if e["index"] is not None})
    return Problem(
        422,
        f"{len(bad)} invalid entr{'y' if len(bad) == 1 else 'ies'}; nothing was stored",
        errors=listed,
        error_count=len(errors),
    )
