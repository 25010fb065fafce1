"""What API clients write and read for warnings and campaigns (api/routes/warnings.py, campaigns.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from models.campaigns import WarningLevel

AreaCode = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
# Some text, and no NUL (the store refuses it).
SHOWN = r"^[^\x00]*[^\x00\s][^\x00]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WarningCreate(_Strict):
    area_code: AreaCode
    level: WarningLevel = Field(description="blue, yellow, orange or red (蓝, 黄, 橙, 红)")
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=SHOWN)]
    drill: bool = Field(default=False, description="An exercise (演练): labelled as a drill in every message")


class WarningPublic(BaseModel):
    id: int
    area_code: str
    level: WarningLevel
    text: str
    drill: bool
    status: str = Field(description="active | ended")
    issued_at: datetime
    recipients: int = Field(description="On-duty workers it was sent to")
    acknowledged: int
    not_acknowledged: int


class CampaignCreate(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=SHOWN)]
    area_code: AreaCode
    checklist: Annotated[list[Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=SHOWN)]],
                         Field(min_length=1, max_length=10)]
    places_geojson: dict[str, Any] | None = Field(default=None, description="A FeatureCollection of Point features "
                                                  "with a `name` (and optional `address`) property")
    places_csv: Annotated[str, StringConstraints(max_length=2_000_000)] | None = Field(
        default=None, description="CSV with a header row: name, lat, lon and optional address")
    category_code: Annotated[str, StringConstraints(max_length=64, pattern=r"^[\x21-\x7e]+$")] | None = Field(
        default=None, description="Category of the case a problem opens (default: ONEGRID_CAMPAIGN_PROBLEM_CATEGORY)")
    ends_at: datetime | None = Field(default=None, description="When it ends by itself (ISO 8601 with a timezone)")
    drill: bool = Field(default=False, description="An exercise (演练): labelled, and its cases out of KPIs and sync")


class CampaignPublic(BaseModel):
    id: int
    name: str
    area_code: str
    drill: bool
    status: str = Field(description="open | ended")
    places: int
    checked: int
    problems: int
    case_numbers: list[str] = Field(description="Cases its problems opened")
