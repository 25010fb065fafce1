"""A resident's report, from draft to case: categories, photos, place, duplicates, submission.

The draft lives in the conversation state (bot/storage.py) as `ReportDraft.to_state()`; nothing
of it reaches the case store until `submit_report` or `follow_case`, each one transaction.

What callers may rely on:
- `submit_report` opens at most one case per (person, draft): a second Submit, concurrent or
  after a crash, returns the case of the first (`Submitted.created` False). The case, its
  photos, the reporter's follow, the receipt and the "registered" message commit together,
  before dispatch runs in the same transaction.
- Photos are validated and re-encoded without EXIF (services/photos.py) before anything is
  written; originals are kept only when `photo_original_retention_days` is above zero.
- A point outside every grid, an inactive category, a report over the hourly limit, or a
  resident without consent is refused and nothing is written.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from geopy.distance import geodesic
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.lifecycle import OPEN, Actor, Role, Status
from models.resident import CaseFollower, FollowKind, ReportKind, ReportReceipt
from models.tables import Case, CaseSource, Category, FsmState, OutboxItem, Person, Photo
from bot.resident_ui import main_keyboard
from onegrid.i18n import N_, gettext_for
from services import cases
from services.context import ServiceContext
from services.db import transaction
from services.photos import CleanPhoto, clean_photo, save_photo
from services.resident_views import place_name
from services.residents import ConsentRequired, Outgoing, check_report_limit, queue_messages

log = logging.getLogger(__name__)

MAX_PHOTOS = 3
DRAFT_STATE_PREFIX = "ReportFlow:"  # aiogram's name for the report conversation's states
_METRES_PER_DEGREE = 111_320.0


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


# -- categories -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CategoryChoice:
    code: str
    kind: str
    name: str
    name_en: str
    photo_required: bool
    handle_sla_minutes: int
    duplicate_radius_m: int

    def label(self, locale: str) -> str:
        return self.name if locale == "zh_CN" else (self.name_en or self.name)


def _choice(c: Category) -> CategoryChoice:
    return CategoryChoice(c.code, c.kind, c.name, c.name_en, c.photo_required, c.handle_sla_minutes,
                          c.duplicate_radius_m)


def active_categories(ctx: ServiceContext) -> list[CategoryChoice]:
    """Active categories in catalogue order (kinds appear in the order of their first category)."""
    with ctx.sessions() as session:
        rows = session.exec(select(Category).where(Category.active).order_by(Category.id)).all()
    return [_choice(c) for c in rows]


def recent_categories(ctx: ServiceContext, *, person_id: int, limit: int = 3) -> list[CategoryChoice]:
    """The person's most recently reported active categories, newest first (a shortcut in the menu)."""
    with ctx.sessions() as session:
        rows = session.exec(
            select(Case.category_code, sa.func.max(Case.created_at).label("last"))
            .join(ReportReceipt, ReportReceipt.case_id == Case.id)
            .where(ReportReceipt.person_id == person_id)
            .group_by(Case.category_code)
            .order_by(sa.desc("last"))
            .limit(limit * 2)
        ).all()
        codes = [code for code, _ in rows]
        found = {c.code: c for c in session.exec(select(Category).where(Category.code.in_(codes), Category.active))}
    return [_choice(found[code]) for code in codes if code in found][:limit]


def get_category(ctx: ServiceContext, code: str) -> CategoryChoice:
    with ctx.sessions() as session:
        row = session.exec(select(Category).where(Category.code == code)).first()
    if row is None or not row.active:
        raise CategoryUnavailable(code)
    return _choice(row)


# -- photos and place -----------------------------------------------------------------------------

def inspect_photo(data: bytes) -> CleanPhoto:
    """Validate one picture now, so the resident hears at once what is wrong (PhotoRejected)."""
    return clean_photo(data)


@dataclass(frozen=True)
class Place:
    grid_code: str
    name: str  # grid, street, district in the resident's language


def locate(ctx: ServiceContext, *, lat: float, lon: float, locale: str) -> Place:
    """The grid covering the point; `cases.OutsideGrid` when no grid does."""
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or ctx.grid_map is None:
        raise cases.OutsideGrid(f"{lat},{lon}")
    code = ctx.grid_map.lookup(lon, lat)
    if code is None:
        raise cases.OutsideGrid(f"{lat:.6f},{lon:.6f}")
    with ctx.sessions() as session:
        return Place(code, place_name(session, code, locale) or code)


def place_label(ctx: ServiceContext, *, grid_code: str | None, locale: str) -> str:
    with ctx.sessions() as session:
        return place_name(session, grid_code, locale)


# -- duplicates -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Duplicate:
    case_id: int
    number: str
    status: Status
    distance_m: float
    created_at: datetime
    description: str
    report_count: int
    already_following: bool


def find_duplicate(ctx: ServiceContext, *, category_code: str, lat: float, lon: float,
                   person_id: int | None) -> Duplicate | None:
    """The nearest open case of the category within its duplicate radius, or None."""
    with ctx.sessions() as session:
        category = session.exec(select(Category).where(Category.code == category_code)).first()
        radius = category.duplicate_radius_m if category else 50
        # A bounding box in SQL narrows the candidates; the geodesic distance decides.
        dlat = radius / _METRES_PER_DEGREE
        dlon = radius / (_METRES_PER_DEGREE * max(math.cos(math.radians(lat)), 0.01))
        candidates = session.exec(
            select(Case).where(
                Case.category_code == category_code,
                Case.status.in_([s.value for s in OPEN]),
                Case.lat.between(lat - dlat, lat + dlat),
                Case.lon.between(lon - dlon, lon + dlon),
            )
        ).all()
        best: tuple[float, Case] | None = None
        for case in candidates:
            distance = geodesic((lat, lon), (case.lat, case.lon)).meters
            if distance <= radius and (best is None or distance < best[0]):
                best = (distance, case)
        if best is None:
            return None
        distance, case = best
        following = person_id is not None and session.exec(select(CaseFollower.id).where(
            CaseFollower.case_id == case.id, CaseFollower.person_id == person_id)).first() is not None
        return Duplicate(case.id, case.number, Status(case.status), distance, case.created_at,
                         case.description, case.report_count, following)


# -- submission -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Submitted:
    case_id: int
    number: str
    created: bool  # False: this draft had already been submitted; nothing new was written
    kind: ReportKind
    handle_due_at: datetime | None


def receipt_for(ctx: ServiceContext, *, person_id: int, draft_id: str) -> Submitted | None:
    """What an already submitted draft became, or None."""
    with ctx.sessions() as session:
        return _receipt(session, person_id, draft_id)


def _receipt(session: Session, person_id: int, draft_id: str) -> Submitted | None:
    row = session.exec(select(ReportReceipt, Case).join(Case, Case.id == ReportReceipt.case_id).where(
        ReportReceipt.person_id == person_id, ReportReceipt.draft_id == draft_id)).first()
    if row is None:
        return None
    receipt, case = row
    return Submitted(case.id, case.number, False, ReportKind(receipt.kind), case.handle_due_at)


def _resident(session: Session, person_id: int) -> Person:
    person = session.get(Person, person_id)
    if person is None or person.consented_at is None or person.deleted_at is not None:
        raise ConsentRequired(str(person_id))
    return person


def _clean_all(ctx: ServiceContext, photos: Sequence[bytes]) -> list[tuple[CleanPhoto, str, str | None]]:
    """Clean and store each picture (content-addressed, so a retry rewrites the same files)."""
    keep = ctx.settings.photo_original_retention_days > 0
    stored = []
    for data in photos:
        clean = clean_photo(data)
        path, original = save_photo(ctx.settings.data_dir, clean, original=data if keep else None)
        stored.append((clean, path, original))
    return stored


def _forget_originals(ctx: ServiceContext, stored: Sequence[tuple[CleanPhoto, str, str | None]]) -> None:
    """After a refused submission: an original (EXIF, GPS and all) that no photo row names is deleted.

    Clean copies may stay (they carry nothing personal, and another case may use the same file).
    """
    paths = [original for _clean, _path, original in stored if original]
    if not paths:
        return
    with ctx.sessions() as session:
        named = set(session.exec(select(Photo.original_path).where(Photo.original_path.in_(paths))).all())
    for rel in set(paths) - named:
        (ctx.settings.data_dir / rel).unlink(missing_ok=True)


def _add_photos(session: Session, *, case_id: int, person_id: int, draft: ReportDraft,
                stored: Sequence[tuple[CleanPhoto, str, str | None]], now: datetime) -> None:
    for meta, (clean, path, original) in zip(draft.photos, stored, strict=True):
        session.add(Photo(case_id=case_id, uploader_id=person_id, purpose="report", telegram_file_id=meta.file_id,
                          telegram_file_unique_id=meta.file_unique_id, path=path, original_path=original,
                          phash=clean.phash, width=clean.width, height=clean.height, created_at=now))


RenderSubmitted = Callable[[Submitted, str], Sequence[Outgoing]]


def submit_report(ctx: ServiceContext, *, person_id: int, draft: ReportDraft, photos: Sequence[bytes],
                  render: RenderSubmitted) -> Submitted:
    """Register the draft as a new case (立案) and hand it to dispatch; see the module docstring.

    `photos` are the draft's pictures' bytes, in draft order. `render(outcome, locale)` gives the
    messages to queue for the resident (e.g. the case number and the expected handling time),
    written in the same transaction as the case.
    """
    if draft.category is None or not draft.located:
        raise DraftIncomplete(draft.draft_id)
    if len(photos) != len(draft.photos):
        raise ValueError("one picture per draft photo is needed")
    existing = receipt_for(ctx, person_id=person_id, draft_id=draft.draft_id)
    if existing is not None:
        return existing
    stored = _clean_all(ctx, photos)
    outcome: list[Submitted] = []

    def attach(session: Session, case: Case) -> None:
        person = _resident(session, person_id)
        category = session.exec(select(Category).where(Category.code == case.category_code)).one()
        if category.photo_required and not draft.photos:
            raise DraftIncomplete(f"{draft.draft_id}: {category.code} needs a photo")
        check_report_limit(session, ctx, person_id=person_id)
        now = ctx.clock.now()
        session.add(ReportReceipt(person_id=person_id, draft_id=draft.draft_id, case_id=case.id,
                                  kind=ReportKind.NEW_CASE, created_at=now))
        session.add(CaseFollower(case_id=case.id, person_id=person_id, kind=FollowKind.REPORTER, created_at=now))
        _add_photos(session, case_id=case.id, person_id=person_id, draft=draft, stored=stored, now=now)
        # The unique (person, draft) receipt stops a concurrent second Submit here, before dispatch.
        session.flush()
        result = Submitted(case.id, case.number, True, ReportKind.NEW_CASE, case.handle_due_at)
        queue_messages(session, ctx, chat_id=draft.chat_id, person_id=person_id,
                       messages=render(result, person.locale), case_id=case.id)
        outcome.append(result)

    try:
        cases.report_case(
            ctx, actor=Actor(Role.RESIDENT, person_id), source=CaseSource.RESIDENT, category_code=draft.category,
            lat=draft.lat, lon=draft.lon, description=draft.description or "", before_dispatch=attach,
        )
    except IntegrityError:
        again = receipt_for(ctx, person_id=person_id, draft_id=draft.draft_id)
        if again is None:
            _forget_originals(ctx, stored)
            raise
        return again
    except cases.UnknownCategory as exc:
        _forget_originals(ctx, stored)
        raise CategoryUnavailable(draft.category) from exc
    except Exception:
        _forget_originals(ctx, stored)
        raise
    return outcome[0]


def follow_case(ctx: ServiceContext, *, person_id: int, draft: ReportDraft, case_id: int,
                photos: Sequence[bytes], render: RenderSubmitted) -> Submitted:
    """"The same problem": the resident follows `case_id`, its report count goes up, their photos join it.

    Idempotent per draft like `submit_report`. Raises `CaseClosedMeanwhile` when the case is no
    longer open, and `ReportLimitReached` over the hourly limit (following counts as a report).
    """
    if len(photos) != len(draft.photos):
        raise ValueError("one picture per draft photo is needed")
    existing = receipt_for(ctx, person_id=person_id, draft_id=draft.draft_id)
    if existing is not None:
        return existing
    stored = _clean_all(ctx, photos)
    try:
        with transaction(ctx.sessions) as session:
            person = _resident(session, person_id)
            check_report_limit(session, ctx, person_id=person_id)
            case = session.get(Case, case_id)
            if case is None or Status(case.status) not in OPEN:
                raise CaseClosedMeanwhile(str(case_id))
            now = ctx.clock.now()
            session.add(ReportReceipt(person_id=person_id, draft_id=draft.draft_id, case_id=case.id,
                                      kind=ReportKind.FOLLOW, created_at=now))
            already = session.exec(select(CaseFollower).where(CaseFollower.case_id == case_id,
                                                              CaseFollower.person_id == person_id)).first()
            _add_photos(session, case_id=case_id, person_id=person_id, draft=draft, stored=stored, now=now)
            if already is None:
                session.add(CaseFollower(case_id=case_id, person_id=person_id, kind=FollowKind.FOLLOWER,
                                         created_at=now))
                # Counted in SQL, so concurrent followers never overwrite each other's increment; a
                # resident reporting their own case again adds photos but is not a second reporter.
                session.execute(sa.update(Case).where(Case.id == case_id)
                                .values(report_count=Case.report_count + 1))
            session.flush()
            session.refresh(case)
            session.add(OutboxItem(case_id=case.id, topic="case.reported_again",
                                   payload={"number": case.number, "report_count": case.report_count,
                                            "at": now.isoformat()},
                                   next_attempt_at=now, created_at=now))
            result = Submitted(case.id, case.number, True, ReportKind.FOLLOW, case.handle_due_at)
            queue_messages(session, ctx, chat_id=draft.chat_id, person_id=person_id,
                           messages=render(result, person.locale), case_id=case.id)
    except IntegrityError:
        again = receipt_for(ctx, person_id=person_id, draft_id=draft.draft_id)
        if again is None:
            _forget_originals(ctx, stored)
            raise
        return again
    except Exception:
        _forget_originals(ctx, stored)
        raise
    ctx.on_notifications()
    return result


# -- expiry -----------------------------------------------------------------------------------------

DRAFT_EXPIRED = N_("Your unfinished report expired after {minutes} minutes without activity; nothing was "
                   "stored. Send /report to start again.")


def expire_drafts(ctx: ServiceContext) -> int:
    """Forget report drafts untouched for `report_draft_timeout_minutes` (drafts kept in the store).

    Each owner is told, in their language, in the same transaction that drops the draft. Drafts
    in Redis are expired when their owner next writes (see handlers/resident_report.py).
    Returns how many drafts were dropped.
    """
    minutes = ctx.settings.report_draft_timeout_minutes
    now = ctx.clock.now()
    dropped = 0
    with transaction(ctx.sessions) as session:
        rows = session.exec(select(FsmState).where(FsmState.state.startswith(DRAFT_STATE_PREFIX))).all()
        for row in rows:
            try:
                draft = ReportDraft.from_state(row.data or {})
            except ValueError:
                draft = None
            if draft is not None and not draft.expired(now, timedelta(minutes=minutes)):
                continue
            session.delete(row)
            dropped += 1
            if draft is None:
                continue
            person = session.exec(select(Person).where(Person.telegram_user_id == draft.chat_id)).first()
            _ = gettext_for(person.locale if person else ctx.settings.default_locale)
            queue_messages(session, ctx, chat_id=draft.chat_id, person_id=person.id if person else None,
                           messages=[Outgoing(_(DRAFT_EXPIRED).format(minutes=minutes), main_keyboard(_))])
    if dropped:
        ctx.on_notifications()
    return dropped


def sweep(ctx: ServiceContext) -> dict[str, int]:
    """The periodic job of the resident side: expire quiet drafts, purge photo originals past retention."""
    return {"drafts_expired": expire_drafts(ctx), "originals_purged": purge_originals(ctx)}


def purge_originals(ctx: ServiceContext) -> int:
    """Delete photo originals older than the retention setting; returns how many were removed."""
    days = ctx.settings.photo_original_retention_days
    cutoff = ctx.clock.now() - timedelta(days=days)
    removed: list[str] = []
    with transaction(ctx.sessions) as session:
        # Only residents' report photos: proof photos follow the work-order side's own rules.
        query = select(Photo).where(Photo.original_path.is_not(None), Photo.purpose == "report")
        if days > 0:
            query = query.where(Photo.created_at < cutoff)
        for photo in session.exec(query.limit(1000)):
            removed.append(photo.original_path)
            photo.original_path = None
    for rel in removed:
        (ctx.settings.data_dir / rel).unlink(missing_ok=True)
    return len(removed)
