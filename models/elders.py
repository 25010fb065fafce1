"""Tables of life-safety alarms: the elder roster (独居老人), the round-the-clock duty roster per area,
the street's neighbourhood-committee (居委会) contacts, welfare checks and what the family was told.

An `Elder` holds personal data (name, address, key holder, family contacts): it is masked for readers
without `pii` (services/elders.py) and emptied by the retention sweep some days after it ends.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from models.tables import _ts


class DeviceKind(StrEnum):
    DOOR = "door"  # door sensor (门磁)
    WATER = "water"  # water meter (水表)


class WelfareOutcome(StrEnum):
    SAFE = "safe"  # the person is safe
    NEEDS_HELP = "needs_help"  # needs help: 120 was called
    NOT_HOME = "not_home"  # not at home: the family was reached
    NO_ANSWER = "no_answer"  # nobody answers: escalate at once


class Elder(SQLModel, table=True):
    """One elder living alone, with the contacts a welfare check needs (consent recorded)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(default="", max_length=200)
    address: str = Field(default="", max_length=500)
    grid_code: str = Field(max_length=64, index=True)
    lat: float | None = None
    lon: float | None = None
    key_holder_name: str = Field(default="", max_length=200)
    key_holder_phone: str = Field(default="", max_length=32)
    # [{"name", "phone", "chat_id" (Telegram chat of a contact who uses the bot, or null), "notify"}]
    contacts: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    consent_by: str = Field(default="", max_length=200)  # who gave consent (the elder, a guardian ...)
    consent_at: datetime | None = _ts(nullable=True)
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    ended_at: datetime | None = _ts(nullable=True, index=True)  # removed from the roster (record kept until purged)
    purged_at: datetime | None = _ts(nullable=True)  # personal data emptied by retention


class ElderDevice(SQLModel, table=True):
    """A sensor of an elder's home, by the device id the sensor platform reports."""

    __tablename__ = "elder_device"

    id: int | None = Field(default=None, primary_key=True)
    elder_id: int = Field(foreign_key="elder.id", index=True)
    device_id: str = Field(max_length=128, unique=True, index=True)
    kind: str = Field(max_length=16)  # DeviceKind


class DutyShift(SQLModel, table=True):
    """Who covers an area (street or grid) when, around the clock: weekdays and a time range.

    Minutes are local time (ONEGRID_TIMEZONE) after midnight; an end at or before the start runs past
    midnight into the next day. `weekdays` are 0 (Monday) .. 6 (Sunday) of the day the shift starts.
    """

    __tablename__ = "duty_shift"

    id: int | None = Field(default=None, primary_key=True)
    area_code: str = Field(max_length=64, index=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    weekdays: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    start_minute: int = 0
    end_minute: int = 0
    created_at: datetime | None = _ts()


class AreaContact(SQLModel, table=True):
    """A contact of an area in a role, e.g. the 居委会 (neighbourhood committee) of a street."""

    __tablename__ = "area_contact"

    id: int | None = Field(default=None, primary_key=True)
    area_code: str = Field(max_length=64, index=True)
    role: str = Field(default="committee", max_length=32)
    name: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=32)
    chat_id: int | None = Field(default=None, sa_column=Column(sa.BigInteger, nullable=True))
    locale: str = Field(default="zh_CN", max_length=16)
    created_at: datetime | None = _ts()


class CoverageGap(SQLModel, table=True):
    """A stretch of time nobody on the area's duty roster covers; the supervisor is told once per gap."""

    __tablename__ = "coverage_gap"
    __table_args__ = (sa.UniqueConstraint("area_code", "starts_at", name="uq_coverage_gap_start"),)

    id: int | None = Field(default=None, primary_key=True)
    area_code: str = Field(max_length=64, index=True)
    starts_at: datetime | None = _ts()
    ends_at: datetime | None = _ts()
    alerted_at: datetime | None = _ts()


class WelfareCheck(SQLModel, table=True):
    """The welfare check a listed device's alarm became (one per case), and the outcome on site."""

    __tablename__ = "welfare_check"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", unique=True, index=True)
    elder_id: int = Field(foreign_key="elder.id", index=True)
    device_id: str = Field(default="", max_length=128)
    outcome: str | None = Field(default=None, max_length=16)  # WelfareOutcome
    outcome_at: datetime | None = _ts(nullable=True)
    worker_id: int | None = Field(default=None, foreign_key="person.id")
    lat: float | None = None
    lon: float | None = None
    distance_m: float | None = None
    created_at: datetime | None = _ts()


class FamilyNotice(SQLModel, table=True):
    """A family contact told (or to be told) a welfare check's outcome."""

    __tablename__ = "family_notice"

    id: int | None = Field(default=None, primary_key=True)
    check_id: int = Field(foreign_key="welfare_check.id", index=True)
    contact_name: str = Field(default="", max_length=200)
    channel: str = Field(max_length=16)  # telegram | sms
    status: str = Field(max_length=32)  # queued | sms_not_configured
    chat_id: int | None = Field(default=None, sa_column=Column(sa.BigInteger, nullable=True))
    created_at: datetime | None = _ts()
