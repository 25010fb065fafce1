"""/api/v1/me: the calling key."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import V1_PREFIX, CurrentKey
from api.schemas import KeyPublic

router = APIRouter(prefix=V1_PREFIX)


@router.get("/me", tags=["keys"], summary="The calling key: scopes, area, role")
def me(principal: CurrentKey) -> KeyPublic:
    return KeyPublic(key_id=principal.key_id, name=principal.name, scopes=sorted(principal.scopes),
                     area_code=principal.area_code, acts_as=principal.acts_as.value,
                     rate_per_minute=principal.rate_per_minute)
