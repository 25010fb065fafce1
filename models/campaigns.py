"""Warnings (预警) and inspection campaigns (专项排查): tables and their small lifecycles.

A warning goes to every on-duty worker of an area, each of whom acknowledges it (`WarningRecipient`);
a campaign is a checklist of places, each checked once by a worker of its grid (`CampaignPlace`).
Either may be a drill (演练): it flows like the real thing and is labelled so; cases it opens are
drills too (`Case.drill`), which keeps them out of the KPIs and of the upstream sync.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from models.state_table import StateTable
from models.tables import _ts


class WarningLevel(StrEnum):
    """The four colours of a Chinese weather / flood warning, mildest first."""

    BLUE = "blue"  # 蓝
    YELLOW = "yellow"  # 黄
    ORANGE = "orange"  # 橙
    RED = "red"  # 红


LEVEL_WORDS = {"蓝": WarningLevel.BLUE, "黄": WarningLevel.YELLOW, "橙": WarningLevel.ORANGE,
               "红": WarningLevel.RED}


class WarningStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class WarningAction(StrEnum):
    END = "end"


class CampaignStatus(StrEnum):
    OPEN = "open"
    ENDED = "ended"


class CampaignAction(StrEnum):
    END = "end"


class PlaceStatus(StrEnum):
    OPEN = "open"  # nobody has started it
    CHECKING = "checking"  # a worker answers its checklist
    CHECKED = "checked"  # answers, photo and on-site location in


class PlaceAction(StrEnum):
    START = "start"
    FINISH = "finish"


WARNINGS: StateTable[WarningStatus, WarningAction] = StateTable("warning", {
    WarningAction.END: (frozenset({WarningStatus.ACTIVE}), WarningStatus.ENDED),
})
CAMPAIGNS: StateTable[CampaignStatus, CampaignAction] = StateTable("campaign", {
    CampaignAction.END: (frozenset({CampaignStatus.OPEN}), CampaignStatus.ENDED),
})
PLACES: StateTable[PlaceStatus, PlaceAction] = StateTable("campaign_place", {
    PlaceAction.START: (frozenset({PlaceStatus.OPEN}), PlaceStatus.CHECKING),
    PlaceAction.FINISH: (frozenset({PlaceStatus.CHECKING}), PlaceStatus.CHECKED),
})


class AreaWarning(SQLModel, table=True):
    """A warning issued to an area: its on-duty workers must acknowledge it."""

    __tablename__ = "area_warning"

    id: int | None = Field(default=None, primary_key=True)
    area_code: str = Field(max_length=64, index=True)
    level: WarningLevel = Field(sa_column=Column(sa.String(16), nullable=False))
    text: str = Field(max_length=2000)
    drill: bool = False
    status: WarningStatus = Field(sa_column=Column(sa.String(16), nullable=False, index=True))
    issued_by_id: int | None = Field(default=None, foreign_key="person.id")  # None: the upstream, by API
    issued_at: datetime | None = _ts()
    next_reminder_at: datetime | None = _ts(nullable=True, index=True)  # NULL: no reminder due
    reminders: int = 0
    ended_at: datetime | None = _ts(nullable=True)


class WarningRecipient(SQLModel, table=True):
    """One worker who was sent a warning, and when they acknowledged it."""

    __tablename__ = "warning_recipient"
    __table_args__ = (sa.UniqueConstraint("warning_id", "worker_id", name="uq_warning_recipient"),)

    id: int | None = Field(default=None, primary_key=True)
    warning_id: int = Field(foreign_key="area_warning.id", index=True)
    worker_id: int = Field(foreign_key="person.id", index=True)
    sent_at: datetime | None = _ts()
    acknowledged_at: datetime | None = _ts(nullable=True)
    reminders: int = 0


class Campaign(SQLModel, table=True):
    """A checklist of places to inspect in an area (e.g. before a typhoon)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    area_code: str = Field(max_length=64, index=True)
    checklist: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    category_code: str = Field(max_length=64)  # of the case a problem opens
    drill: bool = False
    status: CampaignStatus = Field(sa_column=Column(sa.String(16), nullable=False, index=True))
    created_by_id: int | None = Field(default=None, foreign_key="person.id")
    created_at: datetime | None = _ts()
    ends_at: datetime | None = _ts(nullable=True, index=True)
    ended_at: datetime | None = _ts(nullable=True)


class CampaignPlace(SQLModel, table=True):
    """One place of a campaign: the inspection task of its grid's on-duty workers."""

    __tablename__ = "campaign_place"

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    name: str = Field(max_length=200)
    address: str | None = Field(default=None, max_length=500)
    lat: float
    lon: float
    grid_code: str | None = Field(default=None, max_length=64, index=True)
    status: PlaceStatus = Field(sa_column=Column(sa.String(16), nullable=False, index=True))
    inspector_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    answers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # "ok" | "problem" | ""
    photo_path: str | None = Field(default=None, max_length=500)
    photo_phash: str | None = Field(default=None, max_length=64)
    seen_lat: float | None = None
    seen_lon: float | None = None
    seen_at: datetime | None = _ts(nullable=True)
    checked_at: datetime | None = _ts(nullable=True)
    case_id: int | None = Field(default=None, foreign_key="case.id")  # the case a problem opened: the link


class CampaignCard(SQLModel, table=True):
    """A supervisor's live progress card of a campaign: the message edited as answers come in."""

    __tablename__ = "campaign_card"
    __table_args__ = (sa.UniqueConstraint("campaign_id", "person_id", name="uq_campaign_card"),)

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaign.id", index=True)
    person_id: int = Field(foreign_key="person.id")
    notification_id: int | None = Field(default=None, foreign_key="notification.id")


def parse_level(word: str) -> WarningLevel | None:
    """A warning level from its English name or its colour in Chinese (蓝, 蓝色, 蓝色预警); None if neither."""
    word = word.strip().lower()
    try:
        return WarningLevel(word)
    except ValueError:
        pass
    return LEVEL_WORDS.get(word.removesuffix("预警").removesuffix("色"))
