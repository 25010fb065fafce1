"""Answers to a campaign's inspection task: checklist items, a photo, the on-site location (see services/campaigns.py).

Every answer is judged and published in its own transaction; the channel words it for the worker.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, select

from models.campaigns import PLACES, Campaign, CampaignPlace, CampaignStatus, PlaceAction, PlaceStatus
from models.events.campaigns import (
    EvidenceKind,
    EvidenceProblem,
    PlaceChecked,
    PlaceEvidenceJudged,
    PlaceItemAnswered,
)
from models.lifecycle import Actor, Role
from models.tables import Case, CaseSource, Person, Photo
from services import cases, dispatcher, reference
from services.context import ServiceContext
from services.db import transaction
from services.escalation import subtree_grids
from services.photos import MAX_BYTES, PhotoRejected, clean_photo, save_photo
from services.work_rules import LocationFix, LocationProblem, judge_location

OK, PROBLEM = "ok", "problem"
FUTURE_TOLERANCE_S = 30


class AnswerOutcome(StrEnum):
    ANSWERED = "answered"
    CHECKED = "checked"  # this answer completed the place
    TAKEN = "taken"  # another worker is checking it
    DONE_ALREADY = "done_already"
    ENDED = "ended"
    NOT_YOURS = "not_yours"  # not a worker of the place's grid
    NO_PLACE = "no_place"  # no place being checked (photo, location)
    REFUSED = "refused"  # the photo or location did not count
    ACCEPTED = "accepted"  # it counts; something else is still missing


def checking_place_id(ctx: ServiceContext, *, worker_id: int) -> int | None:
    """The place the worker is checking in an open campaign, if any (what the bot's filter asks)."""
    with ctx.sessions() as session:
        return session.exec(select(CampaignPlace.id).join(Campaign, Campaign.id == CampaignPlace.campaign_id).where(
            CampaignPlace.inspector_id == worker_id, CampaignPlace.status == PlaceStatus.CHECKING,
            Campaign.status == CampaignStatus.OPEN).order_by(CampaignPlace.id.desc())).first()


# -- answering ----------------------------------------------------------------------------------------------


def answer_item(ctx: ServiceContext, *, worker_id: int, place_id: int, index: int, ok: bool,
                message_id: int | None = None) -> AnswerOutcome:
    """Record one checklist answer of the worker for the place (see the module docstring)."""
    opened: Case | None = None
    with transaction(ctx.sessions) as session:
        place = session.get(CampaignPlace, place_id, with_for_update=True)
        campaign = session.get(Campaign, place.campaign_id) if place else None
        worker = session.get(Person, worker_id)
        if place is None or campaign is None or worker is None or not 0 <= index < len(campaign.checklist):
            return AnswerOutcome.NOT_YOURS
        if campaign.status != CampaignStatus.OPEN:
            return AnswerOutcome.ENDED
        if place.status == PlaceStatus.CHECKED:
            return AnswerOutcome.DONE_ALREADY
        if not worker.area_code or place.grid_code not in subtree_grids(session, worker.area_code):
            return AnswerOutcome.NOT_YOURS
        if place.status == PlaceStatus.CHECKING and place.inspector_id != worker_id:
            return AnswerOutcome.TAKEN
        if place.status == PlaceStatus.OPEN:
            place.status = PLACES.step(PlaceStatus.OPEN, PlaceAction.START)
            place.inspector_id = worker_id
        answers = list(place.answers or [""] * len(campaign.checklist))
        answers[index] = OK if ok else PROBLEM
        place.answers = answers  # a new list: the JSON column sees the change
        session.add(place)
        session.flush()
        ctx.publish(session, PlaceItemAnswered(place_id=place.id, worker_id=worker_id, message_id=message_id,
                                               drill=campaign.drill))
        opened = _finish_if_complete(session, ctx, place, campaign)
        outcome = AnswerOutcome.CHECKED if place.status == PlaceStatus.CHECKED else AnswerOutcome.ANSWERED
    _after(ctx, opened)
    return outcome


def _locked_place(session: Session, worker_id: int) -> tuple[CampaignPlace, Campaign] | None:
    row = session.exec(select(CampaignPlace).join(Campaign, Campaign.id == CampaignPlace.campaign_id).where(
        CampaignPlace.inspector_id == worker_id, CampaignPlace.status == PlaceStatus.CHECKING,
        Campaign.status == CampaignStatus.OPEN).order_by(CampaignPlace.id.desc()).with_for_update()).first()
    return (row, session.get(Campaign, row.campaign_id)) if row is not None else None


def record_photo(ctx: ServiceContext, *, worker_id: int, data: bytes | None, message_date: datetime,
                 forwarded: bool = False, as_file: bool = False) -> AnswerOutcome:
    """Judge a photo for the place the worker is checking: their own, taken now, a picture we can read."""
    now = ctx.clock.now()
    age = (now - message_date).total_seconds()
    problem = clean = path = None
    if forwarded:
        problem = EvidenceProblem.FORWARDED
    elif as_file or not data:
        problem = EvidenceProblem.AS_FILE
    elif age > ctx.settings.proof_location_max_age_s or age < -FUTURE_TOLERANCE_S:
        problem = EvidenceProblem.STALE
    else:
        try:
            clean = clean_photo(data, max_bytes=MAX_BYTES)
        except PhotoRejected:
            problem = EvidenceProblem.UNREADABLE
        else:  # content-addressed: a file written before the commit is harmless
            path, _original = save_photo(ctx.settings.data_dir, clean)
    opened = None
    with transaction(ctx.sessions) as session:
        found = _locked_place(session, worker_id)
        if found is None:
            return AnswerOutcome.NO_PLACE
        place, campaign = found
        if problem is None:
            place.photo_path, place.photo_phash = path, clean.phash
            session.add(place)
            session.flush()
        opened = _judged(session, ctx, place, campaign, EvidenceKind.PHOTO, (problem,) if problem else (), 0.0)
        outcome = _outcome(place, problem is not None)
    _after(ctx, opened)
    return outcome


_LOCATION_PROBLEMS = {LocationProblem.FORWARDED: EvidenceProblem.FORWARDED, LocationProblem.VENUE: EvidenceProblem.VENUE,
                      LocationProblem.VIA_BOT: EvidenceProblem.VIA_BOT, LocationProblem.STALE: EvidenceProblem.STALE,
                      LocationProblem.LOW_ACCURACY: EvidenceProblem.LOW_ACCURACY,
                      LocationProblem.TOO_FAR: EvidenceProblem.TOO_FAR,
                      LocationProblem.CLEARLY_FAR: EvidenceProblem.TOO_FAR}


def record_location(ctx: ServiceContext, *, worker_id: int, fix: LocationFix) -> AnswerOutcome:
    """Judge the worker's location for the place being checked: the work-proof rules, at the place's point."""
    opened = None
    with transaction(ctx.sessions) as session:
        found = _locked_place(session, worker_id)
        if found is None:
            return AnswerOutcome.NO_PLACE
        place, campaign = found
        judgement = judge_location(fix, case_lat=place.lat, case_lon=place.lon,
                                   radius_m=ctx.settings.campaign_place_radius_m, now=ctx.clock.now(),
                                   max_age_s=ctx.settings.proof_location_max_age_s,
                                   max_accuracy_m=ctx.settings.proof_location_max_accuracy_m)
        problems = tuple(dict.fromkeys(_LOCATION_PROBLEMS[p] for p in judgement.problems))
        if not problems:
            place.seen_lat, place.seen_lon, place.seen_at = fix.lat, fix.lon, fix.sent_at
            session.add(place)
            session.flush()
        opened = _judged(session, ctx, place, campaign, EvidenceKind.LOCATION, problems, judgement.distance_m)
        outcome = _outcome(place, bool(problems))
    _after(ctx, opened)
    return outcome


def _outcome(place: CampaignPlace, refused: bool) -> AnswerOutcome:
    if refused:
        return AnswerOutcome.REFUSED
    return AnswerOutcome.CHECKED if place.status == PlaceStatus.CHECKED else AnswerOutcome.ACCEPTED


def _judged(session: Session, ctx: ServiceContext, place: CampaignPlace, campaign: Campaign, kind: EvidenceKind,
            problems: tuple[EvidenceProblem, ...], distance_m: float) -> Case | None:
    opened = None if problems else _finish_if_complete(session, ctx, place, campaign)
    if place.status != PlaceStatus.CHECKED:
        ctx.publish(session, PlaceEvidenceJudged(place_id=place.id, worker_id=place.inspector_id, kind=kind,
                                                 problems=problems, distance_m=distance_m, drill=campaign.drill))
    return opened


def _finish_if_complete(session: Session, ctx: ServiceContext, place: CampaignPlace, campaign: Campaign
                        ) -> Case | None:
    """CHECKED once every item is answered and photo and location are in; a problem opens a case."""
    if "" in (place.answers or [""]) or place.photo_path is None or place.seen_at is None:
        return None
    now = ctx.clock.now()
    place.status = PLACES.step(PlaceStatus(place.status), PlaceAction.FINISH)
    place.checked_at = now
    case = None
    problems = [item for item, answer in zip(campaign.checklist, place.answers, strict=False) if answer == PROBLEM]
    if problems:
        category = reference.category(session, campaign.category_code)
        where = f"{place.name} ({place.address})" if place.address else place.name
        case = cases.register_in(
            session, ctx, actor=Actor(Role.WORKER, place.inspector_id), source=CaseSource.PATROL, category=category,
            grid_code=place.grid_code, lat=place.lat, lon=place.lon,
            description=f"{campaign.name} · {where}: {'; '.join(problems)}"[:4000], address=place.address,
            source_event_id=f"campaign:{campaign.id}:place:{place.id}", now=now, drill=campaign.drill)
        session.add(Photo(case_id=case.id, uploader_id=place.inspector_id, purpose="report", path=place.photo_path,
                          phash=place.photo_phash, created_at=now))
        dispatcher.enqueue(session, case_id=case.id, now=now)
        place.case_id = case.id
    session.add(place)
    session.flush()
    ctx.publish(session, PlaceChecked(place_id=place.id, campaign_id=campaign.id, worker_id=place.inspector_id,
                                      case_id=case.id if case else None, drill=campaign.drill))
    return case


def _after(ctx: ServiceContext, opened: Case | None) -> None:
    """After the commit: wake the sender, and dispatch a case a problem opened."""
    if opened is not None:
        cases.registered(ctx, opened)
    else:
        ctx.on_notifications()


