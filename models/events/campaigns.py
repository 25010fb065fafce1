"""Events of warnings (预警) and inspection campaigns (专项排查); see models/campaigns.py.

Each carries `drill` where its messages must be labelled as a drill (演练).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from models.campaigns import WarningLevel
from models.events import Event


@dataclass(frozen=True, kw_only=True)
class WarningIssued(Event):
    """A warning went out: each recipient gets it with an Acknowledge button; the area's supervisors hear
    how many were told."""

    warning_id: int
    area_code: str
    level: WarningLevel
    drill: bool
    recipient_ids: tuple[int, ...]  # WarningRecipient ids


@dataclass(frozen=True, kw_only=True)
class WarningAcknowledged(Event):
    warning_id: int
    recipient_id: int
    worker_id: int
    message_id: int | None  # the message whose button was pressed (edited to say so)
    drill: bool


@dataclass(frozen=True, kw_only=True)
class WarningReminderDue(Event):
    """Some recipients have not acknowledged: they are reminded, and the supervisors get the list."""

    warning_id: int
    area_code: str
    drill: bool
    pending_recipient_ids: tuple[int, ...]
    acknowledged: int
    total: int


class EvidenceKind(StrEnum):
    PHOTO = "photo"
    LOCATION = "location"


class EvidenceProblem(StrEnum):
    """Why a photo or location for an inspection was refused (the work-proof and spot-check rules)."""

    FORWARDED = "forwarded"
    AS_FILE = "as_file"
    STALE = "stale"
    UNREADABLE = "unreadable"
    VENUE = "venue"
    VIA_BOT = "via_bot"
    LOW_ACCURACY = "low_accuracy"
    TOO_FAR = "too_far"


@dataclass(frozen=True, kw_only=True)
class CampaignStarted(Event):
    """A campaign was imported: supervisors get a live progress card; each place's on-duty grid workers
    get its inspection task (`offers`: place id → worker ids)."""

    campaign_id: int
    drill: bool
    offers: tuple[tuple[int, tuple[int, ...]], ...]


@dataclass(frozen=True, kw_only=True)
class PlaceItemAnswered(Event):
    """A worker answered a checklist item of a place (the task message is redrawn)."""

    place_id: int
    worker_id: int
    message_id: int | None
    drill: bool


@dataclass(frozen=True, kw_only=True)
class PlaceEvidenceJudged(Event):
    """A photo or a location for the place being checked was judged; the place is not checked yet."""

    place_id: int
    worker_id: int
    kind: EvidenceKind
    problems: tuple[EvidenceProblem, ...]
    distance_m: float
    drill: bool


@dataclass(frozen=True, kw_only=True)
class PlaceChecked(Event):
    """A place is checked: its answers, photo and location are in (and a problem opened `case_id`)."""

    place_id: int
    campaign_id: int
    worker_id: int
    case_id: int | None
    drill: bool


@dataclass(frozen=True, kw_only=True)
class CampaignEnded(Event):
    """The campaign ended (by command, API or its end time): the summary goes to the supervisors."""

    campaign_id: int
    drill: bool
