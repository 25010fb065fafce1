"""What API clients may write and what they may read, as separate types (the FastAPI-template family).

``CaseBase`` → ``CaseCreate`` / ``CaseUpdate`` (writable; unknown fields are refused, so a client
can never set status, grid, assignee or ids) → the table ``models.tables.Case`` → ``CasePublic``
(readable). Personal data is masked in public types unless the caller's key has the ``pii`` scope
(api/views.py renders them).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from models.lifecycle import Action

CODE = r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$"
Code = Annotated[str, StringConstraints(pattern=CODE, max_length=64)]
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2000)]
Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
Lon = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
Text = Annotated[str, StringConstraints(max_length=4000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MachineSource(StrEnum):
    CAMERA = "camera"
    SENSOR = "sensor"
    HOTLINE = "hotline"


class CaseBase(_Strict):
    """Fields of a case a client may write."""

    category_code: Code
    description: Text = ""
    lat: Lat
    lon: Lon
    address: Annotated[str, StringConstraints(max_length=500)] | None = None
    media_urls: Annotated[list[Url], Field(max_length=10)] = Field(default_factory=list)


class CaseCreate(CaseBase):
    """Machine intake (`POST /api/v1/cases`): a camera, sensor or hotline event."""

    source: MachineSource
    source_event_id: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]
    device_id: Annotated[str, StringConstraints(max_length=90, pattern=r"^[\x21-\x7e]*$")] = ""
    drill: bool = Field(default=False, description="An exercise (演练): handled like any case, labelled as a drill, "
                                                  "left out of KPIs and never relayed upstream")


class CaseUpdate(_Strict):
    """Corrections an operator may make to a case's text; status changes go through actions only."""

    description: Text | None = None
    address: Annotated[str, StringConstraints(max_length=500)] | None = None


class CaseClear(_Strict):
    note: Annotated[str, StringConstraints(max_length=500)] | None = None


class ApiAction(StrEnum):
    """Lifecycle actions an API key may take (accept and complete need a person on site)."""

    REGISTER = Action.REGISTER.value
    DISPATCH = Action.DISPATCH.value
    REASSIGN = Action.REASSIGN.value
    APPROVE = Action.APPROVE.value
    REJECT = Action.REJECT.value
    GRANT_EXTENSION = Action.GRANT_EXTENSION.value
    REFUSE_EXTENSION = Action.REFUSE_EXTENSION.value
    SHELVE = Action.SHELVE.value
    UNSHELVE = Action.UNSHELVE.value
    REOPEN = Action.REOPEN.value
    CANCEL = Action.CANCEL.value
    MERGE = Action.MERGE.value


class CaseActionRequest(_Strict):
    action: ApiAction
    note: Annotated[str, StringConstraints(max_length=2000)] | None = None
    expected_version: Annotated[int, Field(ge=1)] | None = None
    merge_into_id: Annotated[int, Field(ge=1, description="merge: the open case (in the key's area) this "
                                                          "duplicate is merged into")] | None = None


class PersonPublic(BaseModel):
    id: int
    display_name: str
    phone: str | None = None


class EventPublic(BaseModel):
    at: datetime
    action: str
    from_status: str | None
    to_status: str
    actor_role: str
    note: str | None = None


class CasePublic(BaseModel):
    """A case as clients read it."""

    id: int
    number: str
    status: str
    source: str
    category_code: str
    description: str
    lat: float
    lon: float
    address: str | None = None
    media_urls: list[str] = Field(default_factory=list)
    grid_code: str | None = None
    report_count: int
    external_id: str | None = None
    reporter: PersonPublic | None = None
    assignee: PersonPublic | None = None
    accept_due_at: datetime | None = None
    handle_due_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    version: int


class CaseWithTimeline(CasePublic):
    timeline: list[EventPublic]


class CasePage(BaseModel):
    items: list[CasePublic]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last")


class IntakeAnswer(BaseModel):
    outcome: str = Field(description="created | folded (into an open case of the same source) | duplicate")
    case: CasePublic


class ClearAnswer(BaseModel):
    outcome: str = Field(description=(
        "verified (it awaited verification: closed, its proofs approved) | closed (the category's rule is "
        "`close` and nobody had started: closed as cleared at source (自动结案), its offers withdrawn and "
        "tasks cancelled) | pending (a worker is on it, who is told; applied once the work awaits verification) | "
        "recorded (the rule is `ignore`) | already_closed"))
    case: CasePublic


class PhotoPublic(BaseModel):
    id: int
    purpose: str
    width: int
    height: int
    url: str
    created_at: datetime


class AreaPublic(BaseModel):
    code: str
    name: str
    name_en: str
    level: str
    parent_code: str | None


class ImportAnswer(BaseModel):
    created: int
    updated: int
    unchanged: int
    by_level: dict[str, int]
    grid_map_version: int | None = None


class IntakeRulePublic(BaseModel):
    on_clear: str
    fold_window_s: int


class IntakeRuleWrite(_Strict):
    on_clear: Annotated[str, StringConstraints(pattern=r"^(ignore|verify|close)$")]
    fold_window_s: Annotated[int, Field(ge=0, le=604800)]


class QuestionValue(_Strict):
    key: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class QuestionWrite(_Strict):
    code: Code
    datatype: Annotated[str, StringConstraints(
        pattern=r"^(string|number|datetime|text|singlevaluelist|multivaluelist)$")]
    required: bool = False
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    values: Annotated[list[QuestionValue], Field(max_length=50)] = Field(default_factory=list)

    @field_validator("values")
    @classmethod
    def _unique_keys(cls, values: list[QuestionValue]) -> list[QuestionValue]:
        if len({v.key for v in values}) != len(values):
            raise ValueError("value keys must be unique")
        return values


class CategoryPublic(BaseModel):
    code: str
    kind: str
    name: str
    name_en: str
    department_code: str
    extra_departments: list[str]
    accept_sla_minutes: int
    handle_sla_minutes: int
    duplicate_radius_m: int
    photo_required: bool
    active: bool
    intake_rule: IntakeRulePublic
    questions: list[QuestionWrite]


class CategoryPatch(_Strict):
    """Editable category fields (the catalogue file stays the source of truth; see services/catalogue.py)."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    name_en: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    accept_sla_minutes: Annotated[int, Field(ge=1, le=525600)] | None = None
    handle_sla_minutes: Annotated[int, Field(ge=1, le=525600)] | None = None
    duplicate_radius_m: Annotated[int, Field(ge=1, le=10000)] | None = None
    photo_required: bool | None = None
    active: bool | None = None


class KeyPublic(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    area_code: str | None
    acts_as: str
    rate_per_minute: int


class SyncAnswer(BaseModel):
    service_request_id: str
    number: str
    status: str
    duplicate: bool


class PushAnswer(BaseModel):
    outcomes: dict[str, int]


# ---------------------------------------------------------------------------- people and invitations


class PersonRoleFilter(StrEnum):
    STAFF = "staff"  # workers and supervisors
    WORKER = "worker"
    SUPERVISOR = "supervisor"
    RESIDENT = "resident"


class PersonDetail(BaseModel):
    """A person as clients read them. Without the `pii` scope (or `admin`, which implies it): phones are
    masked, Telegram ids and usernames are null, and residents' names are masked (staff names stay)."""

    id: int
    display_name: str
    phone: str | None = None
    telegram_user_id: int | None = None
    username: str | None = None
    roles: list[str]
    area_code: str | None = None
    department_code: str | None = None
    active: bool
    on_duty: bool
    deleted: bool = Field(description="The person deleted their account; personal data was removed")
    created_at: datetime | None = None


class PersonPage(BaseModel):
    items: list[PersonDetail]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last")


class DeactivationAnswer(BaseModel):
    person: PersonDetail
    returned: int = Field(description="Orders the worker held, sent back to dispatch")
    withdrawn: int = Field(description="Open offers to the worker, withdrawn (and offered to others)")


class StaffRole(StrEnum):
    WORKER = "worker"
    SUPERVISOR = "supervisor"


class InvitationCreate(_Strict):
    """A one-time link binding a Telegram account to a staff role in an area (ids and state are the store's)."""

    role: StaffRole
    area_code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    department_code: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = Field(
        None, description="Required for a worker: orders are dispatched by department")
    valid_hours: Annotated[int, Field(ge=1, le=720)] | None = Field(
        None, description="How long the link works; default the setting ONEGRID_INVITATION_TTL_HOURS")


class InvitationPublic(BaseModel):
    id: int
    role: str
    area_code: str
    department_code: str | None = None
    expires_at: datetime
    state: str = Field(description="open | used | expired | revoked")
    created_at: datetime | None = Field(default=None, description="None for invitations made before it was recorded")
    revoked_at: datetime | None = None
    used_at: datetime | None = None
    used_by_id: int | None = None


class InvitationIssued(InvitationPublic):
    link: str = Field(description="The one-time t.me deep link. Shown in this answer only: it is never stored")


class InvitationPage(BaseModel):
    items: list[InvitationPublic]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last")


class ErrorBody(BaseModel):
    detail: Any
    code: str | None = None
