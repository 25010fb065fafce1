"""Tables of the case-store API: keys, idempotency records, the inbound inbox, machine intake and sync.

Every table here belongs to the edges of OneGrid (HTTP clients, machines, the upstream platform,
Telegram's webhook); the case itself stays in models/tables.py and changes only through
services/cases.py.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import JSON, Column, Field, SQLModel

from models.tables import _ts


class Scope(StrEnum):
    READ = "read"  # list, read and export cases, areas, categories
    WRITE = "write"  # lifecycle actions, case edits, Open311 POST
    INTAKE = "intake"  # machine intake, clear, downstream sync events
    ADMIN = "admin"  # area import, category settings; implies every other scope
    PII = "pii"  # see personal data (reporter names, phones, Open311 contact fields) unmasked


class ClearRule(StrEnum):
    """What `POST /api/v1/cases/{id}/clear` from the source does, per category (自动结案)."""

    IGNORE = "ignore"  # recorded only; people decide
    VERIFY = "verify"  # the clear verifies a worker's fix: awaiting verification → closed
    CLOSE = "close"  # VERIFY, and a case nobody has started on is closed as resolved at source


class ApiKey(SQLModel, table=True):
    """A client of the API. The secret is stored only as a SHA-256 hash; `key_id` is public."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    key_id: str = Field(max_length=32, unique=True, index=True)
    secret_hash: str = Field(max_length=64)
    name: str = Field(max_length=200)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # The subtree the key may see and touch; None = the whole store.
    area_code: str | None = Field(default=None, max_length=64)
    # The lifecycle role of the key's actions (dispatcher or supervisor).
    acts_as: str = Field(default="dispatcher", max_length=16)
    rate_per_minute: int = 600
    created_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts(nullable=True)
    last_used_at: datetime | None = _ts(nullable=True)


class IdempotencyRecord(SQLModel, table=True):
    """One Idempotency-Key of one API key: in flight, or done with the response to replay."""

    __tablename__ = "idempotency_record"
    __table_args__ = (sa.UniqueConstraint("api_key_id", "idem_key", name="uq_idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    api_key_id: int = Field(foreign_key="api_key.id")
    idem_key: str = Field(max_length=255)
    fingerprint: str = Field(max_length=64)  # sha256 of method, path and body
    state: str = Field(max_length=16)  # in_flight | done
    status_code: int | None = None
    response_body: str | None = Field(default=None, sa_column=Column(sa.Text, nullable=True))
    content_type: str | None = Field(default=None, max_length=100)
    created_at: datetime | None = _ts()
    expires_at: datetime | None = _ts(index=True)
    # A request that died in flight stops blocking its key after this.
    locked_until: datetime | None = _ts(nullable=True)


class InboxMessage(SQLModel, table=True):
    """A raw inbound message (a Telegram update, a WeCom callback), stored before it is confirmed and
    handled once per (channel, dedup_key), in arrival order per channel (services/inbox.py)."""

    __tablename__ = "inbox_message"
    __table_args__ = (
        sa.UniqueConstraint("channel", "dedup_key", name="uq_inbox_message_key"),
        sa.Index("ix_inbox_message_queue", "channel", "state", "seq", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(default="telegram", sa_column=Column(sa.String(32), nullable=False,
                                                              server_default="telegram"))
    # Telegram: str(update_id); WeCom: its MsgId or event key.
    dedup_key: str = Field(sa_column=Column(sa.String(255), nullable=False))
    # The platform's own order where it has one (Telegram's update_id); NULL orders by arrival (id).
    seq: int | None = Field(default=None, sa_column=Column(sa.BigInteger, nullable=True))
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(default="pending", sa_column=Column(sa.String(16), nullable=False, index=True))
    attempts: int = 0
    received_at: datetime | None = _ts()
    lease_until: datetime | None = _ts(nullable=True)
    processed_at: datetime | None = _ts(nullable=True)
    last_error: str | None = Field(default=None, max_length=2000)
    # Whose updates these are (Telegram: the chat, else the sender; WeCom: the user): one chat's messages
    # are handled one at a time, in order, by one process at a time (services/inbox.py).
    chat_key: str | None = Field(default=None, sa_column=Column(sa.String(64), nullable=True))
    # The process (InboxProcessor) that holds the message while it is `processing`.
    holder: str | None = Field(default=None, sa_column=Column(sa.String(64), nullable=True))


# The inbox began as Telegram's webhook store; readers that only count states may keep the old name.
WebhookUpdate = InboxMessage


class SyncCursor(SQLModel, table=True):
    """Where polling the upstream got to (its `updated_datetime`), per named feed."""

    __tablename__ = "sync_cursor"

    name: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=64)
    updated_at: datetime | None = _ts()


class SyncLink(SQLModel, table=True):
    """A case mirrored from a downstream OneGrid: its number there, and the last event applied here."""

    __tablename__ = "sync_link"
    __table_args__ = (sa.UniqueConstraint("origin", "origin_number", name="uq_sync_link_origin"),)

    id: int | None = Field(default=None, primary_key=True)
    origin: str = Field(max_length=64)
    origin_number: str = Field(max_length=64)
    case_id: int = Field(foreign_key="case.id", index=True)
    api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    last_seq: int = 0
    updated_at: datetime | None = _ts()


class IntakeClaim(SQLModel, table=True):
    """Exactly-once guard for an event from outside (a machine's event id, an upstream request id).

    Machine intake writes it in the transaction that opens or folds the case, so its unique key
    decides between concurrent deliveries; upstream sync claims first, in its own short transaction,
    and a claim whose holder died is taken over once its lease has passed.
    """

    __tablename__ = "intake_claim"
    __table_args__ = (sa.UniqueConstraint("source", "source_ref", "kind", name="uq_intake_claim"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=16)
    source_ref: str = Field(max_length=255)
    kind: str = Field(max_length=16)  # report | upstream
    api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    case_id: int | None = Field(default=None, foreign_key="case.id")
    outcome: str = Field(default="claimed", max_length=16)  # claimed | created | folded
    lease_until: datetime | None = _ts(nullable=True)
    created_at: datetime | None = _ts()


class MachineCase(SQLModel, table=True):
    """A case opened by a machine source: what repeated events fold into, and its clear."""

    __tablename__ = "machine_case"
    __table_args__ = (sa.Index("ix_machine_case_series", "api_key_id", "source", "device_id", "category_code"),)

    case_id: int = Field(foreign_key="case.id", primary_key=True)
    api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    source: str = Field(max_length=16)
    device_id: str = Field(default="", max_length=100)
    category_code: str = Field(max_length=64)
    lat: float
    lon: float
    events: int = 1
    first_seen_at: datetime | None = _ts()
    last_seen_at: datetime | None = _ts()
    cleared_at: datetime | None = _ts(nullable=True)
    # A clear that could not act yet (the case was being handled); applied when it can.
    clear_pending: bool = Field(default=False, sa_column=Column(sa.Boolean, nullable=False, index=True))


class IntakeRule(SQLModel, table=True):
    """Per-category machine-intake rule: what a clear does and how long repeats fold."""

    __tablename__ = "intake_rule"

    category_code: str = Field(primary_key=True, max_length=64)
    on_clear: str = Field(default=ClearRule.VERIFY.value, max_length=16)
    fold_window_s: int = 3600
    updated_at: datetime | None = _ts()


class ServiceQuestion(SQLModel, table=True):
    """A question asked for a category; published as an Open311 service-definition attribute."""

    __tablename__ = "service_question"
    __table_args__ = (sa.UniqueConstraint("category_code", "code", name="uq_service_question"),)

    id: int | None = Field(default=None, primary_key=True)
    category_code: str = Field(max_length=64, index=True)
    code: str = Field(max_length=64)
    datatype: str = Field(max_length=16)  # string number datetime text singlevaluelist multivaluelist
    required: bool = False
    description: str = Field(default="", max_length=500)
    values: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    position: int = 0


class CaseSubmission(SQLModel, table=True):
    """What an API client sent with a case beyond the case itself: Open311 contact and attributes."""

    __tablename__ = "case_submission"

    case_id: int = Field(foreign_key="case.id", primary_key=True)
    api_key_id: int | None = Field(default=None, foreign_key="api_key.id")
    address_string: str | None = Field(default=None, max_length=500)
    address_id: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=200)
    first_name: str | None = Field(default=None, max_length=100)
    last_name: str | None = Field(default=None, max_length=100)
    phone: str | None = Field(default=None, max_length=50)
    device_id: str | None = Field(default=None, max_length=200)
    account_id: str | None = Field(default=None, max_length=200)
    attributes: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime | None = _ts()
