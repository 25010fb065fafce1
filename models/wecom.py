"""The WeCom outbox: one `message/send` (or media upload + send) to make, written with the change that caused it.

The WeCom sender (wecom/sender.py) reads committed rows and marks them sent after WeCom accepted them,
the same at-least-once guarantee as Telegram's `Notification` rows.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from models.tables import NotificationStatus, Priority, UTCDateTime


def _ts(*, nullable: bool = False) -> datetime | None:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


class WecomMessage(SQLModel, table=True):
    """`payload` is the message/send body without `touser` and `agentid` (msgtype and its object);
    an image to upload first is named by `payload["image"]["photo_path"]` (a file under DATA_DIR)."""

    __tablename__ = "wecom_message"

    id: int | None = Field(default=None, primary_key=True)
    touser: str = Field(sa_column=Column(sa.String(64), nullable=False, index=True))
    person_id: int | None = Field(default=None, foreign_key="person.id")
    case_id: int | None = Field(default=None, foreign_key="case.id")
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: NotificationStatus = Field(
        default=NotificationStatus.PENDING, sa_column=Column(sa.String(16), nullable=False))
    priority: int = Field(default=Priority.REPLY, sa_column=Column(sa.SmallInteger, nullable=False))
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    last_error: str | None = Field(default=None, max_length=2000)
    msgid: str | None = Field(default=None, max_length=128)  # WeCom's id of the sent message
    created_at: datetime | None = _ts()
    sent_at: datetime | None = _ts(nullable=True)

    __table_args__ = (sa.Index("ix_wecom_message_due", "status", "next_attempt_at"),)
