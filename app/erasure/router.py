"""DELETE /v1/users/{user_id} (admin): erasure on a shopper's request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status

from app.deps import AdminKey, ContextDep
from app.erasure.service import erase_user
from app.models import ID_LENGTH

router = APIRouter(prefix="/v1", tags=["erasure"])


@router.delete("/users/{user_id}", status_code=status.HTTP_202_ACCEPTED)
async def delete_user(
    ctx: ContextDep,
    _key: AdminKey,
    user_id: Annotated[str, Path(min_length=1, max_length=ID_LENGTH)],
) -> dict[str, Any]:
    """Forget a shopper: events, profile, predictions and every cache entry naming them.

    Rows are deleted before the answer; cache entries too, unless the cache is down
    (`cache: pending`), in which case a follow-up in this process removes them when it is
    back. The answer carries a hash of the id, never the id.
    """
    return await erase_user(ctx, user_id)
