"""A resident's report draft: what they told us so far, kept in the conversation state until submission.

The draft lives in the conversation state (bot/storage.py) as `ReportDraft.to_state()`; nothing of it
reaches the case store until services/reporting.py submits it.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

MAX_PHOTOS = 3
DRAFT_STATE_PREFIX = "ReportFlow:"  # aiogram's name for the report conversation's states


class ReportError(Exception):
    """A refusal the resident can be told about; nothing was written."""


class CategoryUnavailable(ReportError):
    pass


class DraftIncomplete(ReportError):
    pass


class CaseClosedMeanwhile(ReportError):
    """The case the resident wanted to join is no longer open."""


class DescriptionTooLong(ReportError):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"{length} characters, limit {limit}")
        self.length, self.limit = length, limit


# -- the draft ------------------------------------------------------------------------------------

class DraftPhoto(BaseModel):
    file_id: str
    file_unique_id: str


class ReportDraft(BaseModel):
    """What the resident has told us so far; stored as JSON in the conversation state."""

    draft_id: str
    chat_id: int
    touched_at: datetime  # last activity, by the service clock: drafts expire after a quiet spell
    category: str | None = None
    photos: list[DraftPhoto] = Field(default_factory=list)
    photo_skipped: bool = False
    lat: float | None = None
    lon: float | None = None
    accuracy_m: float | None = None
    grid_code: str | None = None
    description: str | None = None
    duplicate_case_id: int | None = None
    editing: bool = False  # changing one field from the summary card; go back to it afterwards
    patrol: bool = False  # a grid worker's patrol report (services/patrol.py): no duplicate step, own Submit

    @classmethod
    def new(cls, *, chat_id: int, now: datetime) -> ReportDraft:
        return cls(draft_id=secrets.token_hex(4), chat_id=chat_id, touched_at=now)

    @classmethod
    def from_state(cls, data: dict) -> ReportDraft | None:
        raw = data.get("draft")
        return cls.model_validate(raw) if raw else None

    def to_state(self) -> dict:
        return {"draft": self.model_dump(mode="json")}

    def expired(self, now: datetime, timeout: timedelta) -> bool:
        return now - self.touched_at > timeout

    @property
    def located(self) -> bool:
        return self.lat is not None and self.lon is not None


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\u3000]+")


def clean_description(text: str | None, *, limit: int) -> str:
    """Trim `text` (ends, repeated spaces, control characters, blank lines); raise
    `DescriptionTooLong` over `limit` characters. It is stored as written; markup in it is
    escaped wherever it is shown."""
    lines = [_SPACES.sub(" ", _CONTROL.sub("", line)).strip() for line in (text or "").splitlines()]
    cleaned = "\n".join(line for line in lines if line)
    if len(cleaned) > limit:
        raise DescriptionTooLong(len(cleaned), limit)
    return cleaned
