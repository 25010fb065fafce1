"""/api/v1/elders: the elder roster (独居老人) for welfare checks; /api/v1/duty-shifts: who is on call where.

Personal data (names, address, phones, chat ids, the precise point) is masked without the `pii` scope, in
every answer, including the answer to the key's own write. Writes need `write` and stay in the key's area.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import V1_PREFIX, ApiError, CtxDep, ReadKey, WriteKey, not_found
from models.api import Scope
from services import duty_roster, elders
from services.api_keys import Principal

router = APIRouter(prefix=V1_PREFIX)
ElderId = Annotated[int, Path(ge=1, le=2_147_483_647)]
ShiftId = Annotated[int, Path(ge=1, le=2_147_483_647)]
Text = Annotated[str, Field(max_length=200, pattern=r"^[^\x00]*$")]
ChatId = Annotated[int, Field(ge=-(10**15), le=10**15, description="Telegram chat id of a contact who uses the bot")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is refused, never silently dropped


class DeviceIn(_Strict):
    device_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\x00]*$",
                                    description="The id the sensor platform reports (machine intake device_id)")]
    type: Literal["door", "water"]


class PersonIn(_Strict):
    name: Text = ""
    phone: Annotated[str, Field(max_length=32, pattern=r"^[^\x00]*$")] = ""


class ContactIn(PersonIn):
    chat_id: ChatId | None = None
    notify: bool = Field(default=False, description="Chose to be told the outcome of each welfare check")


class ConsentIn(_Strict):
    by: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    at: datetime

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or not 1970 <= value.astimezone(UTC).year <= 2200:
            raise ValueError("a time with a timezone, e.g. 2026-11-21T08:00:00+08:00")
        return value


class ElderIn(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
    address: Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00]*$")]
    grid_code: Annotated[str | None, Field(max_length=64, description="Or give lat/lon: the grid is found")] = None
    lat: Annotated[float | None, Field(ge=-90, le=90)] = None
    lon: Annotated[float | None, Field(ge=-180, le=180)] = None
    devices: Annotated[list[DeviceIn], Field(min_length=1, max_length=20)]
    key_holder: PersonIn = PersonIn()
    contacts: Annotated[list[ContactIn], Field(max_length=20)] = []
    consent: ConsentIn


class PersonOut(BaseModel):
    name: str
    phone: str


class ContactOut(PersonOut):
    chat_id: int | None = Field(description="Only with `pii`")
    uses_bot: bool
    notify: bool


class ConsentOut(BaseModel):
    by: str
    at: datetime | None


class DeviceOut(BaseModel):
    device_id: str
    type: str


class ElderPublic(BaseModel):
    id: int
    name: str
    address: str
    grid_code: str
    lat: float | None
    lon: float | None
    devices: list[DeviceOut]
    key_holder: PersonOut
    contacts: list[ContactOut]
    consent: ConsentOut
    created_at: datetime | None
    updated_at: datetime | None
    masked: bool = Field(description="True when personal data is masked (the key lacks `pii`)")


class ShiftIn(_Strict):
    area_code: Annotated[str, Field(min_length=1, max_length=64)]
    person_id: Annotated[int, Field(ge=1, le=2_147_483_647, description="An active grid worker")]
    days: Annotated[str, Field(min_length=1, max_length=40, description="mon-fri, sat,sun, daily or 1-7")]
    start: Annotated[str, Field(pattern=r"^([01]?\d|2[0-3]):[0-5]\d$", description="HH:MM local time")]
    end: Annotated[str, Field(pattern=r"^([01]?\d|2[0-3]):[0-5]\d$|^24:00$",
                              description="HH:MM; at or before start runs past midnight")]


class ShiftPublic(BaseModel):
    id: int
    area_code: str
    person_id: int
    weekdays: list[int] = Field(description="0 = Monday .. 6 = Sunday, of the day the shift starts")
    start: str
    end: str


def _public(row: tuple, principal: Principal) -> ElderPublic:
    elder, devices = row
    return ElderPublic(**elders.elder_view(elder, devices, pii=principal.allows(Scope.PII)))


def _input(body: ElderIn) -> elders.ElderInput:
    return elders.ElderInput(
        name=body.name, address=body.address, consent_by=body.consent.by, consent_at=body.consent.at.astimezone(UTC),
        grid_code=body.grid_code, lat=body.lat, lon=body.lon, devices=[(d.device_id, d.type) for d in body.devices],
        key_holder_name=body.key_holder.name, key_holder_phone=body.key_holder.phone,
        contacts=[elders.Contact(c.name, c.phone, c.chat_id, c.notify) for c in body.contacts])


def _invalid(exc: elders.ElderInvalid) -> ApiError:
    return ApiError(422, "invalid_elder", str(exc)[:4000])


WRITE_ERRORS = {422: {"description": "The record breaks a rule (grid, consent, a device listed twice); "
                                     "nothing stored"}}


@router.get("/elders", tags=["elders"], summary="Current elders on the roster in the key's area")
def list_elders(principal: ReadKey, ctx: CtxDep,
                grid_code: Annotated[str | None, Query(max_length=64)] = None) -> list[ElderPublic]:
    return [_public(row, principal) for row in elders.list_current(ctx, principal=principal, grid_code=grid_code)]


@router.get("/elders/{elder_id}", tags=["elders"], summary="One elder",
            responses={404: {"description": "No such current record in the key's area"}})
def read_elder(elder_id: ElderId, principal: ReadKey, ctx: CtxDep) -> ElderPublic:
    try:
        return _public(elders.read(ctx, principal=principal, elder_id=elder_id), principal)
    except elders.ElderNotFound:
        raise not_found("no such elder") from None


@router.post("/elders", tags=["elders"], summary="Put an elder on the roster", status_code=201,
             responses=WRITE_ERRORS)
async def create_elder(body: ElderIn, principal: WriteKey, ctx: CtxDep) -> ElderPublic:
    try:
        row = await asyncio.to_thread(elders.create, ctx, principal=principal, data=_input(body))
    except elders.ElderInvalid as exc:
        raise _invalid(exc) from None
    return _public(row, principal)


@router.put("/elders/{elder_id}", tags=["elders"], summary="Replace an elder's record (devices too)",
            responses={**WRITE_ERRORS, 404: {"description": "No such current record in the key's area"}})
async def update_elder(elder_id: ElderId, body: ElderIn, principal: WriteKey, ctx: CtxDep) -> ElderPublic:
    try:
        row = await asyncio.to_thread(elders.update, ctx, principal=principal, elder_id=elder_id, data=_input(body))
    except elders.ElderNotFound:
        raise not_found("no such elder") from None
    except elders.ElderInvalid as exc:
        raise _invalid(exc) from None
    return _public(row, principal)


@router.delete("/elders/{elder_id}", tags=["elders"], status_code=204,
               summary="Take an elder off the roster (their devices stop raising checks; data purged by retention)",
               responses={404: {"description": "No such current record in the key's area"}})
async def delete_elder(elder_id: ElderId, principal: WriteKey, ctx: CtxDep) -> Response:
    try:
        await asyncio.to_thread(elders.end, ctx, principal=principal, elder_id=elder_id)
    except elders.ElderNotFound:
        raise not_found("no such elder") from None
    return Response(status_code=204)


def _shift(row) -> ShiftPublic:  # noqa: ANN001
    def hhmm(minute: int) -> str:
        return f"{minute // 60:02d}:{minute % 60:02d}"

    return ShiftPublic(id=row.id, area_code=row.area_code, person_id=row.person_id, weekdays=row.weekdays,
                       start=hhmm(row.start_minute), end=hhmm(row.end_minute))


@router.get("/duty-shifts", tags=["elders"], summary="The round-the-clock duty roster in the key's area")
def list_shifts(principal: ReadKey, ctx: CtxDep,
                area_code: Annotated[str | None, Query(max_length=64)] = None) -> list[ShiftPublic]:
    return [_shift(s) for s in duty_roster.list_shifts(ctx, principal=principal, area_code=area_code)]


@router.post("/duty-shifts", tags=["elders"], status_code=201, summary="Put a worker on the duty roster of an area",
             responses={422: {"description": "Not a street or grid of the key's area, not an active worker, "
                                             "or bad days"}})
async def add_shift(body: ShiftIn, principal: WriteKey, ctx: CtxDep) -> ShiftPublic:
    try:
        days = duty_roster.parse_weekdays(body.days)
        row = await asyncio.to_thread(duty_roster.add_shift, ctx, principal=principal, data=duty_roster.ShiftInput(
            area_code=body.area_code, person_id=body.person_id, weekdays=days, start=body.start, end=body.end))
    except duty_roster.RosterError as exc:
        raise ApiError(422, "invalid_shift", str(exc)) from None
    return _shift(row)


@router.delete("/duty-shifts/{shift_id}", tags=["elders"], status_code=204, summary="Remove a shift",
               responses={404: {"description": "No such shift in the key's area"}})
async def remove_shift(shift_id: ShiftId, principal: WriteKey, ctx: CtxDep) -> Response:
    try:
        await asyncio.to_thread(duty_roster.remove_shift, ctx, principal=principal, shift_id=shift_id)
    except duty_roster.ShiftNotFound:
        raise not_found("no such shift") from None
    return Response(status_code=204)
