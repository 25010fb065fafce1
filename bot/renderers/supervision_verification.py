"""Telegram renderers of verification and closure: the proof card, its edits once decided, the workers' news.

A proof card is the text with Approve / Reject first, then the proof photos, one per-chat interval apart;
the id of the card's message row is kept on its `VerificationRequest`, so the decision can edit it later.
"""

from __future__ import annotations

from bot.renderers.work_text import local_time
import html
from collections.abc import Callable
from datetime import timedelta

from sqlmodel import Session, select

from bot.renderers.field_text import snapshot_link_line
from bot.worker_ui import Gettext, task_keyboard, verify_keyboard
from models.events.supervision import (
    ClosedBySource,
    ClosureApproved,
    ClosureRejected,
    SourceReportsGone,
    VerificationRequested,
)
from models.tables import Case, Notification, NotificationStatus, Person
from models.work import CaseTask, VerificationRequest
from onegrid.i18n import gettext_for
from services.context import ServiceContext
from services.notify import enqueue, enqueue_text
from services.privacy import mask_text
from services.snapshots import snapshot_photo
from services.proof_checks import MAX_PLAUSIBLE_KMH, SUSPICIONS, ProofSuspicion
from services.verification_card import ProofCard, ProofPart, proof_card


def render_card(card: ProofCard, locale: str, timezone: str) -> str:
    _ = gettext_for(locale)
    lines = [
        _("🔍 Please verify case {number}").format(number=card.number),
        _("Category: {category}").format(category=html.escape(card.category)),
        _("Grid: {grid}").format(grid=html.escape(card.grid)),
    ]
    if card.address:
        lines.append(_("Address: {address}").format(address=html.escape(card.address)))
    if card.description:
        lines.append(_("Description: {description}").format(description=html.escape(mask_text(card.description[:600]))))
    for part in card.parts:
        lines.append("")
        lines.append(_("— {department}: {worker}").format(department=html.escape(part.department),
                                                        worker=html.escape(part.worker_name)))
        lines.append(_("Photos: {count}").format(count=len(part.photo_paths)))
        if part.distance_m is not None:
            kind = _("live location") if part.live else _("static location")
            lines.append(_("Location: {distance} m from the case point ({kind}, accuracy {accuracy})").format(
                distance=round(part.distance_m), kind=kind,
                accuracy=_("±{metres} m").format(metres=round(part.accuracy_m)) if part.accuracy_m is not None
                else _("not reported")))
        if part.time_on_site is not None:
            lines.append(_("Time on site: {minutes} min").format(minutes=int(part.time_on_site.total_seconds() // 60)))
        else:
            lines.append(_("Time on site: not measured (never within the allowed distance)"))
        location_problems = [p for p in part.problems if p not in SUSPICIONS]
        if part.flagged and location_problems:
            lines.append(_("⚠️ Flagged by the worker: {problems}").format(
                problems=", ".join(problem_label(p, part, locale) for p in location_problems)))
        suspicious = [p for p in part.problems if p in SUSPICIONS]
        if suspicious:
            lines.append(_("🚩 Check this proof: {reasons}").format(
                reasons=", ".join(problem_label(p, part, locale) for p in suspicious)))
        lines.append(_("Submitted: {at}").format(at=local_time(part.submitted_at, timezone)))
    return "\n".join(lines)


def problem_label(problem: str, part: ProofPart, locale: str) -> str:
    _ = gettext_for(locale)
    if problem == "too_far":
        return _("{distance} m away, {allowed} m allowed").format(
            distance=round(part.distance_m or 0), allowed=round(part.allowed_m or 0))
    if problem == "low_accuracy":
        return _("accuracy only ±{metres} m").format(metres=round(part.accuracy_m or 0))
    if problem == ProofSuspicion.FAST_TRACK:
        return _("the live location moved faster than {speed} km/h").format(speed=round(MAX_PLAUSIBLE_KMH))
    if problem == ProofSuspicion.REUSED_COORDINATES:
        return _("exactly the same coordinates as another closure")
    if problem == ProofSuspicion.PHOTO_OF_ANOTHER_PROOF:
        return _("a photo looks like another worker's proof")
    return problem


def verification_requested(session: Session, ctx: ServiceContext, event: VerificationRequested) -> None:
    """Send the card, then its photos; remember the card's row on the request."""
    request = session.get(VerificationRequest, event.request_id)
    supervisor = session.get(Person, event.supervisor_id)
    case = session.get(Case, event.case_id)
    now = ctx.clock.now()
    card = proof_card(session, case, supervisor.locale)
    _ = gettext_for(supervisor.locale)
    payload = {"text": render_card(card, supervisor.locale, ctx.timezone), "parse_mode": "HTML",
               "reply_markup": verify_keyboard(_, case.id, event.case_version)}
    snapshot_link = snapshot_link_line(session, case, _)
    if snapshot_link:  # a camera case whose snapshot was not fetched: its links
        payload["text"] += "\n" + snapshot_link
        payload["link_preview_options"] = {"is_disabled": True}
    message = enqueue(session, chat_id=supervisor.telegram_user_id, method="sendMessage", now=now,
                      person_id=supervisor.id, case_id=case.id, payload=payload)
    due = now
    snapshot = snapshot_photo(session, case.id)
    if snapshot is not None and (ctx.settings.data_dir / snapshot.path).is_file():  # the camera's view before
        due += timedelta(seconds=ctx.settings.delivery_chat_interval_s)
        enqueue(session, chat_id=supervisor.telegram_user_id, method="sendPhoto", now=now, person_id=supervisor.id,
                case_id=case.id, payload={"photo_path": snapshot.path, "caption": _(
                    "📷 Camera snapshot · {number}").format(number=case.number)}).next_attempt_at = due
    paths = [(part.department, path) for part in card.parts for path in part.photo_paths]
    for index, (department, path) in enumerate(paths, start=1):
        due += timedelta(seconds=ctx.settings.delivery_chat_interval_s)
        if event.from_queue:
            payload = {"photo_path": path, "caption": _("Proof {index}/{total} · {number}").format(
                index=index, total=len(paths), number=case.number)}
        else:
            payload = {"photo_path": path, "parse_mode": "HTML",
                       "caption": _("Proof {index}/{total} · {number} · {department}").format(
                           index=index, total=len(paths), number=case.number, department=html.escape(department))}
        photo = enqueue(session, chat_id=supervisor.telegram_user_id, method="sendPhoto", now=now,
                        person_id=supervisor.id, case_id=case.id, payload=payload)
        photo.next_attempt_at = due  # one message a second per chat: queue each for when it may go
    session.flush()
    request.notification_id = message.id
    session.add(request)


def _edit_cards(session: Session, ctx: ServiceContext, case_id: int, card_ids: tuple[int, ...],
                notice: Callable[[Gettext], str]) -> None:
    """Edit every decided card to `notice` (which also removes its buttons); an unsent one gets a new message."""
    now = ctx.clock.now()
    for card in (session.get(VerificationRequest, card_id) for card_id in card_ids):
        supervisor = session.get(Person, card.supervisor_id)
        row = session.get(Notification, card.notification_id) if card.notification_id else None
        if supervisor is None or row is None:
            continue
        text = notice(gettext_for(supervisor.locale))
        if row.status == NotificationStatus.SENT and row.telegram_message_id is not None:
            enqueue(session, chat_id=row.chat_id, method="editMessageText", now=now, person_id=supervisor.id,
                    case_id=case_id, payload={"message_id": row.telegram_message_id, "text": text,
                                              "parse_mode": "HTML"})
        elif row.status in (NotificationStatus.PENDING, NotificationStatus.SENDING):
            enqueue(session, chat_id=row.chat_id, method="sendMessage", now=now, person_id=supervisor.id,
                    case_id=case_id, payload={"text": text, "parse_mode": "HTML"})


def _tell_workers(session: Session, ctx: ServiceContext, case_id: int, render: Callable[[Gettext], str], *,
                  keyboard_for_task: bool = False) -> None:
    """Tell each worker of the case once (with their first task's buttons when `keyboard_for_task`)."""
    now = ctx.clock.now()
    tasks = session.exec(select(CaseTask).where(CaseTask.case_id == case_id, CaseTask.assignee_id.is_not(None))).all()
    seen: set[int] = set()
    for task in tasks:
        if task.assignee_id in seen:
            continue
        seen.add(task.assignee_id)
        worker = session.get(Person, task.assignee_id)
        if worker is None or worker.telegram_user_id is None:
            continue
        _ = gettext_for(worker.locale)
        payload: dict = {"text": render(_), "parse_mode": "HTML"}
        if keyboard_for_task:
            payload["reply_markup"] = task_keyboard(_, task.id, can_return=False)
        enqueue(session, chat_id=worker.telegram_user_id, method="sendMessage", payload=payload, now=now,
                person_id=worker.id, case_id=case_id)


def closure_approved(session: Session, ctx: ServiceContext, event: ClosureApproved) -> None:
    supervisor = session.get(Person, event.supervisor_id)
    name = html.escape(supervisor.display_name)
    at = local_time(ctx.clock.now(), ctx.timezone)
    _edit_cards(session, ctx, event.case_id, event.card_ids, lambda _: _(
        "✅ Case {number} approved and closed by {name} ({at}).").format(number=event.case_number, name=name, at=at))
    _tell_workers(session, ctx, event.case_id, lambda _: _(
        "✅ Case {number} was verified and closed. Thank you!").format(number=event.case_number))


def closure_rejected(session: Session, ctx: ServiceContext, event: ClosureRejected) -> None:
    """Edit the cards, tell each worker why (with the Complete button), confirm to the supervisor."""
    supervisor = session.get(Person, event.supervisor_id)
    name, why = html.escape(supervisor.display_name), html.escape(event.reason)
    _edit_cards(session, ctx, event.case_id, event.card_ids, lambda _: _(
        "🔁 Case {number} sent back for rework by {name}: {reason}").format(
        number=event.case_number, name=name, reason=why))
    _tell_workers(session, ctx, event.case_id, lambda _: "\n".join([
        _("🔁 Rework: case {number} was not accepted by the supervisor.").format(number=event.case_number),
        _("Reason: {reason}").format(reason=why),
        _("Fix it, then press Complete and send new photos and your location."),
    ]), keyboard_for_task=True)
    if supervisor.telegram_user_id is not None:
        _ = gettext_for(supervisor.locale)
        enqueue_text(session, chat_id=supervisor.telegram_user_id, now=ctx.clock.now(), person_id=supervisor.id,
                     text=_("Case {number} sent back for rework; the worker was told why.").format(
                         number=event.case_number))


def closed_by_source(session: Session, ctx: ServiceContext, event: ClosedBySource) -> None:
    _edit_cards(session, ctx, event.case_id, event.card_ids, lambda _: _(
        "✅ Case {number} closed: the source reports the problem gone.").format(number=event.case_number))
    _tell_workers(session, ctx, event.case_id, lambda _: _(
        "✅ Case {number} was closed: the source reports the problem gone. Thank you!").format(
        number=event.case_number))


def source_reports_gone(session: Session, ctx: ServiceContext, event: SourceReportsGone) -> None:
    _tell_workers(session, ctx, event.case_id, lambda _: _(
        "ℹ️ The source of case {number} reports the problem gone. Check on site and complete it "
        "if that is so.").format(number=event.case_number))
