"""Inspection campaigns (专项排查): a checklist of places, each a light inspection task of its grid's workers.

What callers may rely on:
- `create_campaign` refuses, storing nothing, an unknown area or category, an empty name or checklist
  (1–10 items of at most 40 characters: each is a button), or any place outside every grid or outside
  the area (naming them all). Otherwise it stores the campaign, its places (grid found with the shared
  point → grid index) and a progress card row per supervisor of the area, and publishes
  `CampaignStarted` with each place's on-duty grid workers, in one transaction.
- A worker answers each checklist item ok / problem (`answer_item`); the first answer claims the place
  (`PlaceAction.START`), so two workers never check the same place. Then a photo taken now
  (`record_photo`, the spot-check photo rules) and their own location within `campaign_place_radius_m`
  of the place (`record_location`, the work-proof location rules). With all three in, the place is
  CHECKED (`PlaceChecked`); if any item is a problem, an ordinary case is opened in the same
  transaction (its photo attached, the campaign's category, a drill if the campaign is) and dispatched
  normally; `CampaignPlace.case_id` links it to the campaign.
- `end_campaign` (command, API) and `end_due` (the scheduled job, at `ends_at`) end it once and publish
  `CampaignEnded` (the summary); an ended campaign takes no more answers.
- `progress` counts what the supervisor's card shows. Answers live in services/campaign_answers.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from models.campaigns import (
    CAMPAIGNS,
    PLACES,
    Campaign,
    CampaignAction,
    CampaignCard,
    CampaignPlace,
    CampaignStatus,
    PlaceStatus,
)
from models.events.campaigns import (
    CampaignEnded,
    CampaignStarted,
)
from models.tables import Area, Case, Person
from services import reference
from services.campaign_import import PlaceIn
from services.context import ServiceContext
from services.db import transaction
from services.dispatch_pool import supervisors_of
from services.escalation import subtree_grids
from services.warnings import in_scope, on_duty_workers, remind_due

MAX_ITEMS, MAX_ITEM_CHARS = 10, 40
PROBLEM = "problem"


class CampaignError(Exception):
    """Refused; nothing was stored. `problems` lists what was wrong."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems[:20]))
        self.problems = list(problems)


class CampaignNotFound(CampaignError):
    pass


@dataclass(frozen=True)
class Progress:
    total: int
    checked: int
    problems: int


@dataclass(frozen=True)
class CampaignSummary:
    id: int
    name: str
    area_code: str
    drill: bool
    status: CampaignStatus
    progress: Progress
    case_numbers: tuple[str, ...]


def _checklist(items: list[str]) -> list[str]:
    clean = [item.strip() for item in items if item.strip()]
    if not clean or len(clean) > MAX_ITEMS or any(len(item) > MAX_ITEM_CHARS for item in clean):
        raise CampaignError(f"the checklist needs 1-{MAX_ITEMS} items of at most {MAX_ITEM_CHARS} characters")
    return clean


def create_campaign(ctx: ServiceContext, *, name: str, area_code: str, checklist: list[str], places: list[PlaceIn],
                    drill: bool = False, ends_at: datetime | None = None, category_code: str | None = None,
                    created_by_id: int | None = None) -> CampaignSummary:
    """Store and start a campaign (see the module docstring)."""
    name = name.strip()[:200]
    if not name:
        raise CampaignError("the campaign needs a name")
    items = _checklist(checklist)
    category_code = category_code or ctx.settings.campaign_problem_category
    now = ctx.clock.now()
    if ends_at is not None and ends_at <= now:
        raise CampaignError("the end time has passed")
    with transaction(ctx.sessions) as session:
        if session.exec(select(Area.id).where(Area.code == area_code)).first() is None:
            raise CampaignError(f"unknown area {area_code}")
        if created_by_id is not None and not in_scope(session, created_by_id, area_code):
            raise CampaignError(f"area {area_code} is not yours")
        category = reference.category(session, category_code)
        if category is None or not category.active:
            raise CampaignError(f"unknown category {category_code}")
        inside = set(subtree_grids(session, area_code))
        grids = [ctx.grid_map.lookup(p.lon, p.lat) if ctx.grid_map is not None else None for p in places]
        outside = [p.name for p, grid in zip(places, grids, strict=True) if grid is None or grid not in inside]
        if outside:
            raise CampaignError(*(f"{place}: outside area {area_code}" for place in outside))
        campaign = Campaign(name=name, area_code=area_code, checklist=items, category_code=category.code, drill=drill,
                            status=CampaignStatus.OPEN, created_by_id=created_by_id, created_at=now, ends_at=ends_at)
        session.add(campaign)
        session.flush()
        rows = [CampaignPlace(campaign_id=campaign.id, name=p.name, address=p.address, lat=p.lat, lon=p.lon,
                              grid_code=grid, status=PlaceStatus.OPEN, answers=[""] * len(items))
                for p, grid in zip(places, grids, strict=True)]
        session.add_all(rows)
        for supervisor in supervisors_of(session, area_code):
            session.add(CampaignCard(campaign_id=campaign.id, person_id=supervisor.id))
        session.flush()
        workers: dict[str, tuple[int, ...]] = {}
        offers = []
        for place in rows:
            if place.grid_code not in workers:
                workers[place.grid_code] = tuple(w.id for w in on_duty_workers(session, place.grid_code))
            offers.append((place.id, workers[place.grid_code]))
        ctx.publish(session, CampaignStarted(campaign_id=campaign.id, drill=drill, offers=tuple(offers)))
        summary = _summary(session, campaign)
    ctx.on_notifications()
    return summary


# -- reading ----------------------------------------------------------------------------------------------


def progress(session: Session, campaign_id: int) -> Progress:
    """Places in all, checked, and checked with at least one problem."""
    rows = session.exec(select(CampaignPlace.status, CampaignPlace.answers)
                        .where(CampaignPlace.campaign_id == campaign_id)).all()
    checked = [answers for status, answers in rows if status == PlaceStatus.CHECKED]
    return Progress(len(rows), len(checked), sum(1 for answers in checked if PROBLEM in (answers or [])))


def _summary(session: Session, campaign: Campaign) -> CampaignSummary:
    numbers = session.exec(select(Case.number).join(CampaignPlace, CampaignPlace.case_id == Case.id)
                           .where(CampaignPlace.campaign_id == campaign.id).order_by(Case.id)).all()
    return CampaignSummary(campaign.id, campaign.name, campaign.area_code, campaign.drill,
                           CampaignStatus(campaign.status), progress(session, campaign.id), tuple(numbers))


def campaign_summary(ctx: ServiceContext, *, campaign_id: int) -> CampaignSummary:
    with ctx.sessions() as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise CampaignNotFound(f"no campaign {campaign_id}")
        return _summary(session, campaign)


def open_campaigns(ctx: ServiceContext, *, supervisor_id: int) -> list[CampaignSummary]:
    """Open campaigns of the supervisor's area (and below), newest first."""
    with ctx.sessions() as session:
        person = session.get(Person, supervisor_id)
        if person is None or not person.area_code:
            return []
        codes = subtree_grids(session, person.area_code)
        rows = session.exec(select(Campaign).where(Campaign.status == CampaignStatus.OPEN,
                                                   Campaign.area_code.in_(codes))
                            .order_by(Campaign.id.desc()).limit(20)).all()
        return [_summary(session, c) for c in rows]


# -- ending -----------------------------------------------------------------------------------------------


def _end(session: Session, ctx: ServiceContext, campaign: Campaign) -> bool:
    if not CAMPAIGNS.allowed(CampaignStatus(campaign.status), CampaignAction.END):
        return False
    done = session.execute(sa.update(Campaign).where(Campaign.id == campaign.id,
                                                     Campaign.status == CampaignStatus.OPEN.value).values(
        status=CAMPAIGNS.step(CampaignStatus.OPEN, CampaignAction.END), ended_at=ctx.clock.now())).rowcount
    if done != 1:
        return False  # another process ended it first
    session.refresh(campaign)
    ctx.publish(session, CampaignEnded(campaign_id=campaign.id, drill=campaign.drill))
    return True


def end_campaign(ctx: ServiceContext, *, campaign_id: int, supervisor_id: int | None = None) -> CampaignSummary:
    """End the campaign (once; ending an ended one changes nothing) and send the summary."""
    with transaction(ctx.sessions) as session:
        campaign = session.get(Campaign, campaign_id)
        if campaign is None:
            raise CampaignNotFound(f"no campaign {campaign_id}")
        if supervisor_id is not None and not in_scope(session, supervisor_id, campaign.area_code):
            raise CampaignError(f"area {campaign.area_code} is not yours")
        _end(session, ctx, campaign)
        summary = _summary(session, campaign)
    ctx.on_notifications()
    return summary


def end_due(ctx: ServiceContext) -> int:
    """End every open campaign whose end time has come (the scheduled job); how many."""
    with transaction(ctx.sessions) as session:
        due = session.exec(select(Campaign).where(Campaign.status == CampaignStatus.OPEN,
                                                  Campaign.ends_at.is_not(None),
                                                  Campaign.ends_at <= ctx.clock.now())).all()
        ended = sum(1 for campaign in due if _end(session, ctx, campaign))
    if ended:
        ctx.on_notifications()
    return ended


def tick(ctx: ServiceContext) -> int:
    """The one scheduled job of warnings and campaigns: reminders due, campaigns past their end time."""
    return remind_due(ctx) + end_due(ctx)
