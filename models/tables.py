"""The case store: SQLModel tables.

Times are stored as timezone-aware UTC (`UTCDateTime`); on SQLite they come back aware too.
Polygons are stored as GeoJSON text so the store needs no spatial extension; the
point → grid index is built in memory from them (services/gridmap.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import JSON, Column, Field, SQLModel

from models.lifecycle import Action, Role, Status


class UTCDateTime(TypeDecorator):
    """A DateTime that always stores and returns aware UTC datetimes, on SQLite too."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


class AreaLevel(StrEnum):
    CITY = "city"
    DISTRICT = "district"
    STREET = "street"
    GRID = "grid"


AREA_LEVEL_ORDER = [AreaLevel.CITY, AreaLevel.DISTRICT, AreaLevel.STREET, AreaLevel.GRID]


class CaseSource(StrEnum):
    RESIDENT = "resident"
    PATROL = "patrol"  # a grid worker found it on patrol
    CAMERA = "camera"
    SENSOR = "sensor"
    HOTLINE = "hotline"  # 12345
    UPSTREAM = "upstream"  # the platform of record


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    BLOCKED = "blocked"  # the recipient blocked the bot (403)
    FAILED = "failed"  # permanent error or attempts exhausted; kept for the record


class Priority(IntEnum):
    """How urgent a notification is; the sender always takes the most urgent due rows first (1 = most)."""

    LIFE_SAFETY = 1  # life-safety alarms, escalations at their last step
    WORK_ORDER = 2  # work orders and offers
    SUPERVISION = 3  # escalation pings, verification cards
    REPLY = 4  # replies to the person who just acted
    RESIDENT_UPDATE = 5  # progress updates to residents
    HOUSEKEEPING = 6  # command menus, digests, edits of old cards


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    DEAD = "dead"  # tries exhausted or refused for good; kept, and blocks later events of its case


class Area(SQLModel, table=True):
    """City, district, street or grid; grids carry the polygon used for point lookup."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    name_en: str = Field(default="", max_length=200)
    level: AreaLevel = Field(sa_column=Column(sa.String(16), nullable=False, index=True))
    parent_code: str | None = Field(default=None, max_length=64, index=True)
    geometry: str | None = Field(default=None, sa_column=Column(sa.Text, nullable=True))  # GeoJSON
    supervisor_chat_id: int | None = Field(default=None, sa_column=Column(sa.BigInteger, nullable=True))
    created_at: datetime | None = _ts()


class MapRevision(SQLModel, table=True):
    """One row: goes up by one whenever an import changes grids, so every process can tell its
    in-memory grid index is stale (services/areas.refresh_grid_map) and rebuild it."""

    __tablename__ = "map_revision"

    id: int = Field(default=1, primary_key=True)
    revision: int = 0
    changed_at: datetime | None = _ts(nullable=True)


class Department(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, index=True)
    name: str = Field(max_length=200)
    name_en: str = Field(default="", max_length=200)


class Category(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, index=True)
    kind: str = Field(max_length=64, index=True)  # grouping for menus: environment, traffic, safety...
    name: str = Field(max_length=200)
    name_en: str = Field(max_length=200)
    department_code: str = Field(max_length=64)  # default department
    # Further departments for joint handling (联勤联动): a JSON list of department codes.
    extra_departments: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    accept_sla_minutes: int = Field(default=30, ge=1)
    handle_sla_minutes: int = Field(default=240, ge=1)
    proof_radius_m: int = Field(default=100, ge=1)
    duplicate_radius_m: int = Field(default=50, ge=1)
    photo_required: bool = True
    active: bool = True
    # Unit of accept_sla_minutes / handle_sla_minutes (the names predate units): "minutes" and "hours"
    # count working time, "days" working days (services/working_time.py); "clock_minutes", the default
    # for a catalogue that does not say, counts around the clock as before units existed.
    accept_sla_unit: str = Field(default="clock_minutes", sa_column=Column(sa.String(16), nullable=False,
                                                                           server_default="clock_minutes"))
    handle_sla_unit: str = Field(default="clock_minutes", sa_column=Column(sa.String(16), nullable=False,
                                                                           server_default="clock_minutes"))


class Person(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    telegram_user_id: int | None = Field(
        default=None, sa_column=Column(sa.BigInteger, unique=True, index=True, nullable=True)
    )
    display_name: str = Field(default="", max_length=200)
    phone: str | None = Field(default=None, max_length=32)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    area_code: str | None = Field(default=None, max_length=64, index=True)  # scope for staff
    department_code: str | None = Field(default=None, max_length=64)
    username: str | None = Field(default=None, max_length=64)
    locale: str = Field(default="zh_CN", max_length=16)
    # Set by /lang; otherwise the Telegram language is followed.
    locale_chosen: bool = False
    consented_at: datetime | None = _ts(nullable=True)  # PIPL consent to store reports (photo, location)
    deleted_at: datetime | None = _ts(nullable=True)  # personal data removed; cases stay anonymised
    on_duty: bool = False
    active: bool = True
    blocked_bot_at: datetime | None = _ts(nullable=True)
    # A digest of the command menu last queued for this person's chat: a restart re-queues only changes.
    menu_digest: str | None = Field(default=None, max_length=64)
    # WeCom / 政务微信 member id (wecom/): a person may have it beside a Telegram account.
    wecom_userid: str | None = Field(default=None, sa_column=Column(sa.String(64), unique=True, nullable=True))
    # The channel this person's notifications go to: "telegram" or "wecom" (set when they bind the latter).
    channel: str = Field(default="telegram", sa_column=Column(sa.String(16), nullable=False,
                                                              server_default="telegram"))
    created_at: datetime | None = _ts()

    def has_role(self, role: Role) -> bool:
        return role.value in self.roles


class Case(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    number: str = Field(max_length=32, unique=True, index=True)  # SH-20261121-000123
    source: CaseSource = Field(sa_column=Column(sa.String(16), nullable=False))
    source_event_id: str | None = Field(default=None, max_length=200, index=True)
    category_code: str = Field(max_length=64, index=True)
    description: str = Field(default="", max_length=4000)
    lat: float
    lon: float
    address: str | None = Field(default=None, max_length=500)
    media_urls: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    external_id: str | None = Field(default=None, max_length=200, index=True)  # id at the platform of record
    grid_code: str | None = Field(default=None, max_length=64, index=True)
    status: Status = Field(sa_column=Column(sa.String(32), nullable=False, index=True))
    reporter_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    assignee_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    handler_id: int | None = Field(default=None, foreign_key="person.id")
    verifier_id: int | None = Field(default=None, foreign_key="person.id")
    merged_into_id: int | None = Field(default=None, foreign_key="case.id")
    report_count: int = 1
    accept_due_at: datetime | None = _ts(nullable=True, index=True)
    handle_due_at: datetime | None = _ts(nullable=True, index=True)
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()
    closed_at: datetime | None = _ts(nullable=True)
    version: int = 1  # optimistic concurrency: every status change bumps it
    # Escalation bookkeeping (services/escalation.py): when the sweep must next look at this case
    # (NULL: never), and the deadline round steps belong to (bumped when a deadline is reset).
    next_escalation_at: datetime | None = _ts(nullable=True, index=True)
    escalation_round: int = Field(default=0, sa_column=Column(sa.Integer, nullable=False, server_default="0"))
    # Retention (services/retention.py): when the points of this finished case were rounded to about 100 m.
    coarsened_at: datetime | None = _ts(nullable=True)
    # A drill (演练, models/campaigns.py): handled like any case, labelled so, left out of KPIs and upstream sync.
    drill: bool = Field(default=False, sa_column=Column(sa.Boolean, nullable=False, server_default=sa.false()))


class CaseEvent(SQLModel, table=True):
    """Append-only audit log: one row per status change (and per notable non-status event)."""

    __tablename__ = "case_event"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    actor_id: int | None = Field(default=None, foreign_key="person.id")
    actor_role: Role = Field(sa_column=Column(sa.String(16), nullable=False))
    action: Action = Field(sa_column=Column(sa.String(32), nullable=False))
    from_status: Status | None = Field(default=None, sa_column=Column(sa.String(32), nullable=True))
    to_status: Status = Field(sa_column=Column(sa.String(32), nullable=False))
    note: str | None = Field(default=None, max_length=2000)
    at: datetime | None = _ts()


class Photo(SQLModel, table=True):
    """A photo attached to a case: by the reporter, or as proof by the handler."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    uploader_id: int | None = Field(default=None, foreign_key="person.id")
    purpose: str = Field(max_length=16)  # report | proof
    telegram_file_id: str | None = Field(default=None, max_length=255)
    telegram_file_unique_id: str | None = Field(default=None, max_length=128, index=True)
    path: str = Field(max_length=500)  # re-encoded, EXIF-free copy under DATA_DIR
    original_path: str | None = Field(default=None, max_length=500)  # kept only where retention allows
    phash: str | None = Field(default=None, max_length=64)
    width: int = 0
    height: int = 0
    created_at: datetime | None = _ts()


class Proof(SQLModel, table=True):
    """Location proof given when a worker completes a case."""

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="case.id", index=True)
    worker_id: int = Field(foreign_key="person.id")
    lat: float
    lon: float
    accuracy_m: float | None = None
    live: bool = False
    distance_m: float
    flagged: bool = False  # outside the radius, left to the supervisor to judge
    created_at: datetime | None = _ts()


class Invitation(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=128, unique=True, index=True)
    role: Role = Field(sa_column=Column(sa.String(16), nullable=False))
    area_code: str = Field(max_length=64)
    department_code: str | None = Field(default=None, max_length=64)
    created_by_id: int | None = Field(default=None, foreign_key="person.id")
    expires_at: datetime | None = _ts()
    used_by_id: int | None = Field(default=None, foreign_key="person.id")
    used_at: datetime | None = _ts(nullable=True)
    created_at: datetime | None = _ts(nullable=True)  # NULL for invitations made before it was recorded
    revoked_at: datetime | None = _ts(nullable=True)  # revoking also ends `expires_at`, so the link is refused
    # Who the office meant the link for (bulk invitations, `onegrid invite --csv`); the phone is checked for
    # duplicates and copied to the person who redeems the link.
    invitee_name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=32)


class OutboxItem(SQLModel, table=True):
    """An event for the upstream platform of record, written in the transaction that caused it."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    topic: str = Field(max_length=64)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: OutboxStatus = Field(
        default=OutboxStatus.PENDING, sa_column=Column(sa.String(16), nullable=False, index=True)
    )
    attempts: int = 0
    next_attempt_at: datetime | None = _ts(index=True)
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime | None = _ts()
    sent_at: datetime | None = _ts(nullable=True)


class Notification(SQLModel, table=True):
    """One Bot API call to make: written with the change that caused it, sent by the delivery queue.

    `method` is a Bot API method (sendMessage, sendPhoto, sendLocation, sendVenue,
    editMessageText, editMessageReplyMarkup); `payload` holds its parameters except
    `chat_id`. A photo to upload is named by `payload["photo_path"]` (a file under DATA_DIR).
    """

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = Field(sa_column=Column(sa.BigInteger, nullable=False, index=True))
    person_id: int | None = Field(default=None, foreign_key="person.id")
    case_id: int | None = Field(default=None, foreign_key="case.id", index=True)
    method: str = Field(max_length=64)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: NotificationStatus = Field(
        default=NotificationStatus.PENDING, sa_column=Column(sa.String(16), nullable=False)
    )
    priority: int = Field(default=Priority.REPLY,
                          sa_column=Column(sa.SmallInteger, nullable=False, server_default=str(int(Priority.REPLY))))
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    lease_until: datetime | None = _ts(nullable=True)
    last_error: str | None = Field(default=None, max_length=2000)
    telegram_message_id: int | None = Field(default=None, sa_column=Column(sa.BigInteger, nullable=True))
    created_at: datetime | None = _ts()
    sent_at: datetime | None = _ts(nullable=True)

    __table_args__ = (
        sa.Index("ix_notification_due", "status", "next_attempt_at"),
        # The sender ranks each chat by its most urgent waiting row.
        sa.Index("ix_notification_chat_queue", "chat_id", "status", "priority"),
        # A sender taking over keeps the pace of the chats its predecessor just wrote to (bot/delivery_queue.py).
        sa.Index("ix_notification_sent_at", "sent_at"),
    )


class CaseCounter(SQLModel, table=True):
    """Per-day sequence behind human case numbers; incremented atomically with an upsert."""

    __tablename__ = "case_counter"

    day: str = Field(primary_key=True, max_length=8)  # YYYYMMDD in the city's timezone
    value: int = 0


class FsmState(SQLModel, table=True):
    """aiogram conversation state kept in the store, so a restart mid-conversation loses nothing."""

    __tablename__ = "fsm_state"

    key: str = Field(primary_key=True, max_length=200)
    state: str | None = Field(default=None, max_length=200)
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime | None = _ts()


def reachable() -> Any:
    """SQL: the person has an account on some channel (Telegram or WeCom) to be sent work on."""
    return sa.or_(Person.telegram_user_id.is_not(None), Person.wecom_userid.is_not(None))


def is_reachable(person: Person) -> bool:
    return person.telegram_user_id is not None or bool(person.wecom_userid)
