"""Telegram renderers of campaigns (专项排查): the inspection task to each grid worker, the redrawn checklist,
the verdicts on photo and location, the supervisors' live progress card (edited in place) and the summary."""

from __future__ import annotations

import html
from collections.abc import Callable

from sqlmodel import Session, select

from bot.campaign_ui import checklist_keyboard
from bot.renderers.drill import drill_prefix
from bot.renderers.warnings import area_label
from bot.renderers.work_text import local_time
from models.campaigns import Campaign, CampaignCard, CampaignPlace, PlaceStatus
from models.events.campaigns import (
    CampaignEnded,
    CampaignStarted,
    EvidenceKind,
    EvidenceProblem,
    PlaceChecked,
    PlaceEvidenceJudged,
    PlaceItemAnswered,
)
from models.tables import Case, Notification, NotificationStatus, Person, Priority
from onegrid.i18n import N_, gettext_for
from services.bus import EventTable
from services.campaigns import progress
from services.context import ServiceContext
from services.notify import enqueue

Gettext = Callable[[str], str]

PROBLEMS = {
    EvidenceProblem.FORWARDED: N_("it was forwarded"),
    EvidenceProblem.AS_FILE: N_("send the picture as a photo taken now, not as a file"),
    EvidenceProblem.STALE: N_("it was not sent just now"),
    EvidenceProblem.UNREADABLE: N_("it is not a picture we can read"),
    EvidenceProblem.VENUE: N_("it is a place picked on the map, not your position"),
    EvidenceProblem.VIA_BOT: N_("it came through another bot"),
    EvidenceProblem.LOW_ACCURACY: N_("it is too vague; wait for a better GPS fix"),
    EvidenceProblem.TOO_FAR: N_("it is {distance} m from the place"),
}


def _tell(session: Session, ctx: ServiceContext, person: Person | None, text: Callable[[Gettext, str], str], *,
          markup: dict | None = None, priority: int | None = None) -> Notification | None:
    if person is None or person.telegram_user_id is None:
        return None
    _ = gettext_for(person.locale)
    payload: dict = {"text": text(_, person.locale), "parse_mode": "HTML"}
    if markup is not None:
        payload["reply_markup"] = markup
    return enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=ctx.clock.now(),
                   person_id=person.id, payload=payload, priority=priority)


def task_text(session: Session, campaign: Campaign, place: CampaignPlace, _: Gettext, locale: str) -> str:
    """The inspection task as the worker reads it, with the answers so far."""
    marks = {"ok": "✅", "problem": "⚠️"}
    lines = [drill_prefix(_, campaign.drill) + _("🔍 Campaign «{name}»: check {place}").format(
        name=html.escape(campaign.name), place=html.escape(place.name))]
    if place.address:
        lines.append(_("Address: {address}").format(address=html.escape(place.address)))
    lines.append(_("Grid: {grid}").format(grid=area_label(session, place.grid_code or "—", locale)))
    lines.append(_("Checklist:"))
    answers = place.answers or []
    for index, item in enumerate(campaign.checklist):
        mark = marks.get(answers[index] if index < len(answers) else "", "▫️")
        lines.append(f"{mark} {index + 1}. {html.escape(item)}")
    lines.append(_("Answer each item (✅ ok or ⚠️ problem), then send a photo taken now and your location "
                   "(📎 → Location) from the place."))
    return "\n".join(lines)


def card_text(session: Session, ctx: ServiceContext, campaign: Campaign, _: Gettext, locale: str) -> str:
    counts = progress(session, campaign.id)
    lines = [drill_prefix(_, campaign.drill) + _("📋 Campaign «{name}» in {area}").format(
        name=html.escape(campaign.name), area=area_label(session, campaign.area_code, locale)),
        _("{checked} of {total} checked, {problems} with problems").format(
            checked=counts.checked, total=counts.total, problems=counts.problems)]
    if campaign.ended_at is not None:
        lines.append(_("Ended at {time}.").format(time=local_time(campaign.ended_at, ctx.timezone)))
    elif campaign.ends_at is not None:
        lines.append(_("Ends at {time}.").format(time=local_time(campaign.ends_at, ctx.timezone)))
    return "\n".join(lines)


def campaign_started(session: Session, ctx: ServiceContext, event: CampaignStarted) -> None:
    campaign = session.get(Campaign, event.campaign_id)
    for card in session.exec(select(CampaignCard).where(CampaignCard.campaign_id == campaign.id)).all():
        row = _tell(session, ctx, session.get(Person, card.person_id),
                    lambda _, locale: card_text(session, ctx, campaign, _, locale), priority=Priority.SUPERVISION)
        if row is not None and row in session:  # saved (a WeCom-only supervisor's row is not)
            session.flush()
            card.notification_id = row.id
        session.add(card)
    for place_id, worker_ids in event.offers:
        place = session.get(CampaignPlace, place_id)
        for worker_id in worker_ids:
            person = session.get(Person, worker_id)
            _tell(session, ctx, person, lambda _, locale: task_text(session, campaign, place, _, locale),
                  markup=checklist_keyboard(gettext_for(person.locale), place.id, campaign.checklist, place.answers))


def place_item_answered(session: Session, ctx: ServiceContext, event: PlaceItemAnswered) -> None:
    """Redraw the pressed task message with the answers so far (a new one if it is not known)."""
    place = session.get(CampaignPlace, event.place_id)
    campaign = session.get(Campaign, place.campaign_id)
    worker = session.get(Person, event.worker_id)
    if worker is None or worker.telegram_user_id is None or place.status == PlaceStatus.CHECKED:
        return  # a checked place is answered by place_checked
    _ = gettext_for(worker.locale)
    payload = {"text": task_text(session, campaign, place, _, worker.locale), "parse_mode": "HTML",
               "reply_markup": checklist_keyboard(_, place.id, campaign.checklist, place.answers)}
    method = "sendMessage"
    if event.message_id is not None:
        method, payload["message_id"] = "editMessageText", event.message_id
    enqueue(session, chat_id=worker.telegram_user_id, method=method, now=ctx.clock.now(), person_id=worker.id,
            payload=payload)


def _missing(place: CampaignPlace, _: Gettext) -> str:
    parts = []
    if "" in (place.answers or [""]):
        parts.append(_("the checklist answers"))
    if place.photo_path is None:
        parts.append(_("a photo"))
    if place.seen_at is None:
        parts.append(_("your location at the place"))
    return ", ".join(parts)


def place_evidence_judged(session: Session, ctx: ServiceContext, event: PlaceEvidenceJudged) -> None:
    place = session.get(CampaignPlace, event.place_id)

    def text(_: Gettext, locale: str) -> str:
        head = drill_prefix(_, event.drill)
        what = _("Photo") if event.kind is EvidenceKind.PHOTO else _("Location")
        if event.problems:
            reasons = ", ".join(_(PROBLEMS[p]).format(distance=round(event.distance_m)) for p in event.problems)
            head += _("❌ {what} for {place} not accepted: {reasons}.").format(
                what=what, place=html.escape(place.name), reasons=reasons)
        else:
            head += _("✅ {what} for {place} received.").format(what=what, place=html.escape(place.name))
        return head + "\n" + _("Still needed: {missing}.").format(missing=_missing(place, _))

    _tell(session, ctx, session.get(Person, event.worker_id), text)  # published only while something is missing


def _edit_cards(session: Session, ctx: ServiceContext, campaign: Campaign) -> None:
    """Edit each supervisor's progress card in place (an unsent card gets its new text before it goes)."""
    for card in session.exec(select(CampaignCard).where(CampaignCard.campaign_id == campaign.id)).all():
        person = session.get(Person, card.person_id)
        row = session.get(Notification, card.notification_id) if card.notification_id else None
        if person is None or row is None:
            continue
        _ = gettext_for(person.locale)
        text = card_text(session, ctx, campaign, _, person.locale)
        if row.status == NotificationStatus.SENT and row.telegram_message_id is not None:
            enqueue(session, chat_id=row.chat_id, method="editMessageText", now=ctx.clock.now(), person_id=person.id,
                    payload={"message_id": row.telegram_message_id, "text": text, "parse_mode": "HTML"},
                    priority=Priority.SUPERVISION)
        elif row.status == NotificationStatus.PENDING:
            row.payload = {**row.payload, "text": text}  # not sent yet: it goes with the latest count
            session.add(row)
        elif row.status == NotificationStatus.SENDING:  # its message id is not known yet: a fresh card
            fresh = enqueue(session, chat_id=row.chat_id, method="sendMessage", now=ctx.clock.now(),
                            person_id=person.id, payload={"text": text, "parse_mode": "HTML"},
                            priority=Priority.SUPERVISION)
            session.flush()
            card.notification_id = fresh.id
            session.add(card)


def place_checked(session: Session, ctx: ServiceContext, event: PlaceChecked) -> None:
    place = session.get(CampaignPlace, event.place_id)
    campaign = session.get(Campaign, event.campaign_id)
    case = session.get(Case, event.case_id) if event.case_id else None

    def text(_: Gettext, locale: str) -> str:
        out = drill_prefix(_, event.drill) + _("✅ {place} checked. Thank you!").format(place=html.escape(place.name))
        if case is not None:
            out += "\n" + _("Case {number} was opened for the problem.").format(number=case.number)
        return out

    _tell(session, ctx, session.get(Person, event.worker_id), text)
    _edit_cards(session, ctx, campaign)


def campaign_ended(session: Session, ctx: ServiceContext, event: CampaignEnded) -> None:
    campaign = session.get(Campaign, event.campaign_id)
    _edit_cards(session, ctx, campaign)
    unchecked = session.exec(select(CampaignPlace.name).where(
        CampaignPlace.campaign_id == campaign.id, CampaignPlace.status != PlaceStatus.CHECKED)
        .order_by(CampaignPlace.id)).all()
    numbers = session.exec(select(Case.number).join(CampaignPlace, CampaignPlace.case_id == Case.id).where(
        CampaignPlace.campaign_id == campaign.id).order_by(Case.id)).all()
    counts = progress(session, campaign.id)

    def summary(_: Gettext, locale: str) -> str:
        lines = [drill_prefix(_, event.drill) + _("🏁 Campaign «{name}» ended: {checked} of {total} checked, "
                                                 "{problems} with problems.").format(
            name=html.escape(campaign.name), checked=counts.checked, total=counts.total, problems=counts.problems)]
        if numbers:
            lines.append(_("Cases opened: {numbers}").format(numbers=", ".join(numbers)))
        if unchecked:
            shown = ", ".join(html.escape(n) for n in unchecked[:20])
            more = len(unchecked) - 20
            lines.append(_("Not checked: {places}").format(places=shown + (f" (+{more})" if more > 0 else "")))
        return "\n".join(lines)

    for card in session.exec(select(CampaignCard).where(CampaignCard.campaign_id == campaign.id)).all():
        _tell(session, ctx, session.get(Person, card.person_id), summary, priority=Priority.SUPERVISION)


RENDERERS: EventTable = {
    CampaignStarted: [campaign_started],
    PlaceItemAnswered: [place_item_answered],
    PlaceEvidenceJudged: [place_evidence_judged],
    PlaceChecked: [place_checked],
    CampaignEnded: [campaign_ended],
}
