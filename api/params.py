"""Parameters shared by the /api/v1 routes: path ids, the case filter's query parameters, UTC times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Path, Query

from api.deps import ApiError
from services.case_queries import MAX_PAGE, CaseFilter

CaseId = Annotated[int, Path(ge=1, le=2_147_483_647)]  # the store's integer ids
PhotoId = Annotated[int, Path(ge=1, le=2_147_483_647)]
PersonId = Annotated[int, Path(ge=1, le=2_147_483_647)]
StoreId = Annotated[int, Path(ge=1, le=2_147_483_647)]  # a warning, a campaign
InvitationId = Annotated[int, Path(ge=1, le=2_147_483_647)]

StatusQ = Annotated[list[str] | None, Query(description="Repeat for several statuses")]
CategoryQ = Annotated[str | None, Query(max_length=64)]
AreaQ = Annotated[str | None, Query(max_length=64, description="Cases in this area's subtree")]
SourceQ = Annotated[str | None, Query(max_length=16)]
TimeQ = Annotated[datetime | None, Query()]
PageLimit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Cursor = Annotated[str | None, Query(max_length=200)]


def utc(name: str, stamp: datetime | None) -> datetime | None:
    """A query time as UTC; 422 without a timezone or outside the representable range."""
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        raise ApiError(422, "bad_time", f"{name} needs a timezone, e.g. 2026-11-21T08:00:00+08:00")
    try:
        return stamp.astimezone(UTC)
    except OverflowError:
        raise ApiError(422, "bad_time", f"{name} is out of range") from None


def case_filter(status: list[str] | None, category_code: str | None, area_code: str | None, source: str | None,
                created_from: datetime | None, created_to: datetime | None,
                updated_after: datetime | None) -> CaseFilter:
    """The case filter of a list or export; 422 for a time without a timezone."""
    created_from, created_to = utc("created_from", created_from), utc("created_to", created_to)
    updated_after = utc("updated_after", updated_after)
    return CaseFilter(statuses=tuple(status or ()), category_code=category_code, area_code=area_code,
                      source=source, created_from=created_from, created_to=created_to, updated_after=updated_after)
