"""Verification (核查) and closure (结案): the proof card, approve, reject for rework, and clears from the source.

What callers may rely on:
- When a case awaits verification, the nearest supervisors of its area who did not handle any
  of its tasks each get a proof card (the text with Approve / Reject first, then the proof
  photos); with no such supervisor an `Escalation` (NO_VERIFIER) is recorded.
- `approve` / `reject` are one transaction each and refuse (nothing written) anyone who is not an
  active supervisor of the case's area, anyone who handled a task of the case (never verify your
  own work), and a card made for an earlier round (`expected_version`).
- Approve closes the case; reject sends it back for rework (返工) with the reason: every task
  goes back to the worker who did it, who is told why. Every open card of the case is edited to
  say who decided what, so no two supervisors decide the same round.
- `close_from_source`: a case opened by a camera or sensor may be closed by its source. The rule:
  awaiting verification → approved by the system (closed); nobody has accepted it yet → closed as
  cleared at source (自动结案; offers withdrawn); a worker is on it → kept, the worker is told.
  `clear_at_source_in` is the same rule inside the caller's transaction (machine intake's clear).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session, func, select

from bot.worker_ui import task_keyboard, verify_keyboard
from models.events.work import RetractReason
from models.lifecycle import TERMINAL, Action, Actor, Role, SelfVerification, Status
from models.tables import Area, Case, CaseSource, Category, Notification, NotificationStatus, Person, Photo
from models.work import (
    CaseTask,
    Completion,
    CompletionStatus,
    Escalation,
    EscalationReason,
    OfferStatus,
    TaskStatus,
    VerificationRequest,
    VerificationStatus,
    WorkOffer,
)
from onegrid.i18n import gettext_for
from services import dispatch
from services.cases import CaseNotFound, StaleCase, apply_action_in
from services.context import ServiceContext
from services.db import transaction
from services.notify import enqueue

MAX_REASON = 500


class VerificationError(Exception):
    """A refusal the supervisor can be told about; nothing was written."""


class NotASupervisor(VerificationError):
    pass


class OutsideYourArea(VerificationError):
    pass


class OwnWork(VerificationError):
    """The supervisor handled a task of this case; someone else must verify it."""


class CardOutdated(VerificationError):
    """The case changed since the card was made (decided already, or a new round)."""

    def __init__(self, number: str, status: str) -> None:
        super().__init__(f"{number}: {status}")
        self.number, self.status = number, status


class ReasonRequired(VerificationError):
    pass


class NotMachineSource(VerificationError):
    pass


# -- the card's data -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProofPart:
    """One department's proof in the current round."""

    department: str
    worker_name: str
    photo_paths: list[str]
    distance_m: float | None
    allowed_m: float | None
    accuracy_m: float | None
    live: bool
    flagged: bool
    problems: list[str]
    time_on_site: timedelta | None  # first proof photo → last good location (None: never within the radius)
    submitted_at: datetime | None


@dataclass(frozen=True)
class ProofCard:
    case_id: int
    number: str
    version: int
    category: str
    grid: str
    address: str | None
    description: str
    parts: list[ProofPart]


def proof_card(session: Session, case: Case, locale: str) -> ProofCard:
    """What a supervisor needs to judge the current round of `case`, names in `locale`."""
    category = session.exec(select(Category).where(Category.code == case.category_code)).first()
    grid = session.exec(select(Area).where(Area.code == case.grid_code)).first() if case.grid_code else None
    parts = []
    tasks = session.exec(select(CaseTask).where(CaseTask.case_id == case.id).order_by(CaseTask.id)).all()
    for task in tasks:
        completion = session.exec(select(Completion).where(
            Completion.task_id == task.id, Completion.status == CompletionStatus.SUBMITTED,
        ).order_by(Completion.id.desc())).first()
        if completion is None:
            continue
        worker = session.get(Person, completion.worker_id)
        photos = session.exec(select(Photo).where(Photo.id.in_(completion.photo_ids)).order_by(Photo.id)).all() \
            if completion.photo_ids else []
        parts.append(ProofPart(
            department=dispatch.department_name(session, task.department_code, locale),
            worker_name=worker.display_name if worker else "—",
            photo_paths=[p.path for p in photos],
            distance_m=completion.distance_m,
            allowed_m=completion.allowed_m,
            accuracy_m=completion.accuracy_m,
            live=completion.live,
            flagged=completion.flagged,
            problems=list(completion.problems),
            time_on_site=_time_on_site(completion, photos),
            submitted_at=completion.submitted_at,
        ))
    return ProofCard(case.id, case.number, case.version, dispatch.localized(category, locale, case.category_code),
                     dispatch.localized(grid, locale, case.grid_code or "—"), case.address, case.description, parts)


def _time_on_site(completion: Completion, photos: list[Photo]) -> timedelta | None:
    if completion.last_seen_at is None or not photos:
        return None
    since = min(p.created_at for p in photos if p.created_at is not None)
    until = max(filter(None, [completion.location_at, completion.last_seen_at]))
    return max(until - since, timedelta(0))


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
        lines.append(_("Description: {description}").format(description=html.escape(card.description[:600])))
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
        if part.flagged:
            lines.append(_("⚠️ Flagged by the worker: {problems}").format(
                problems=", ".join(problem_label(p, part, locale) for p in part.problems)))
        lines.append(_("Submitted: {at}").format(at=dispatch.local_time(part.submitted_at, timezone)))
    return "\n".join(lines)


def problem_label(problem: str, part: ProofPart, locale: str) -> str:
    _ = gettext_for(locale)
    if problem == "too_far":
        return _("{distance} m away, {allowed} m allowed").format(
            distance=round(part.distance_m or 0), allowed=round(part.allowed_m or 0))
    if problem == "low_accuracy":
        return _("accuracy only ±{metres} m").format(metres=round(part.accuracy_m or 0))
    return problem


# -- sending cards ------------------------------------------------------------------------------------


def handled_by(session: Session, case: Case) -> set[int]:
    """Everyone who handled a part of the case in any round: none of them may verify it."""
    people = set(session.exec(select(CaseTask.assignee_id).where(
        CaseTask.case_id == case.id, CaseTask.assignee_id.is_not(None))).all())
    people |= set(session.exec(select(Completion.worker_id).where(
        Completion.case_id == case.id, Completion.status != CompletionStatus.ABANDONED)).all())
    if case.handler_id is not None:
        people.add(case.handler_id)
    return people


def request_verification(session: Session, ctx: ServiceContext, case: Case) -> list[VerificationRequest]:
    """Send the proof card of `case` (now awaiting verification) to the supervisors who may verify it."""
    handlers = handled_by(session, case)
    supervisors = dispatch.supervisors_of(session, case.grid_code, exclude=handlers)
    if not supervisors:
        dispatch.escalate(session, ctx, case, None, EscalationReason.NO_VERIFIER, exclude=handlers)
        return []
    now = ctx.clock.now()
    step = timedelta(seconds=ctx.settings.delivery_chat_interval_s)
    requests = []
    for supervisor in supervisors:
        card = proof_card(session, case, supervisor.locale)
        _ = gettext_for(supervisor.locale)
        message = enqueue(session, chat_id=supervisor.telegram_user_id, method="sendMessage", now=now,
                          person_id=supervisor.id, case_id=case.id,
                          payload={"text": render_card(card, supervisor.locale, ctx.timezone), "parse_mode": "HTML",
                                   "reply_markup": verify_keyboard(_, case.id, case.version)})
        due = now
        paths = [(part.department, path) for part in card.parts for path in part.photo_paths]
        for index, (department, path) in enumerate(paths, start=1):
            due += step
            photo = enqueue(session, chat_id=supervisor.telegram_user_id, method="sendPhoto", now=now,
                            person_id=supervisor.id, case_id=case.id,
                            payload={"photo_path": path, "parse_mode": "HTML",
                                     "caption": _("Proof {index}/{total} · {number} · {department}").format(
                                         index=index, total=len(paths), number=case.number,
                                         department=html.escape(department))})
            photo.next_attempt_at = due  # one message a second per chat: queue each for when it may go
        session.flush()
        request = VerificationRequest(case_id=case.id, supervisor_id=supervisor.id, case_version=case.version,
                                      status=VerificationStatus.OPEN, notification_id=message.id, created_at=now)
        session.add(request)
        requests.append(request)
    return requests


def _close_cards(session: Session, ctx: ServiceContext, case: Case, notice) -> None:  # noqa: ANN001
    """Mark every open card of the case decided and edit it to `notice(gettext)` (buttons removed)."""
    now = ctx.clock.now()
    cards = session.exec(select(VerificationRequest).where(
        VerificationRequest.case_id == case.id, VerificationRequest.status == VerificationStatus.OPEN)).all()
    for card in cards:
        card.status, card.closed_at = VerificationStatus.DECIDED, now
        session.add(card)
        supervisor = session.get(Person, card.supervisor_id)
        row = session.get(Notification, card.notification_id) if card.notification_id else None
        if supervisor is None or row is None:
            continue
        text = notice(gettext_for(supervisor.locale))
        if row.status == NotificationStatus.SENT and row.telegram_message_id is not None:
            enqueue(session, chat_id=row.chat_id, method="editMessageText", now=now, person_id=supervisor.id,
                    case_id=case.id, payload={"message_id": row.telegram_message_id, "text": text,
                                              "parse_mode": "HTML"})
        elif row.status in (NotificationStatus.PENDING, NotificationStatus.SENDING):
            enqueue(session, chat_id=row.chat_id, method="sendMessage", now=now, person_id=supervisor.id,
                    case_id=case.id, payload={"text": text, "parse_mode": "HTML"})


def _tell_workers(session: Session, ctx: ServiceContext, case: Case, render, *, keyboard_for_task: bool = False) -> None:  # noqa: ANN001
    now = ctx.clock.now()
    tasks = session.exec(select(CaseTask).where(CaseTask.case_id == case.id, CaseTask.assignee_id.is_not(None))).all()
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
                person_id=worker.id, case_id=case.id)


# -- deciding -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    case_number: str
    status: str


def _judge_rights(session: Session, supervisor_id: int, case_id: int) -> tuple[Person, Case]:
    supervisor = session.get(Person, supervisor_id)
    if supervisor is None or not supervisor.has_role(Role.SUPERVISOR) or not supervisor.active:
        raise NotASupervisor(str(supervisor_id))
    case = session.get(Case, case_id)
    if case is None:
        raise CaseNotFound(str(case_id))
    if not dispatch.supervises(session, supervisor, case.grid_code):
        raise OutsideYourArea(case.number)
    if supervisor.id in handled_by(session, case):
        raise OwnWork(case.number)
    return supervisor, case


def approve(ctx: ServiceContext, *, case_id: int, supervisor_id: int, expected_version: int) -> Decision:
    """Approve the proofs and close the case (结案)."""
    with transaction(ctx.sessions) as session:
        supervisor, case = _judge_rights(session, supervisor_id, case_id)
        if case.version != expected_version or case.status != Status.AWAITING_VERIFICATION:
            raise CardOutdated(case.number, case.status)
        try:
            apply_action_in(session, ctx, case, action=Action.APPROVE, actor=Actor(Role.SUPERVISOR, supervisor.id))
        except SelfVerification as exc:
            raise OwnWork(case.number) from exc
        except StaleCase as exc:
            raise CardOutdated(case.number, "changed") from exc
        _decide_completions(session, ctx, case, CompletionStatus.APPROVED, supervisor.id, None)
        name = html.escape(supervisor.display_name)
        at = dispatch.local_time(ctx.clock.now(), ctx.timezone)
        _close_cards(session, ctx, case, lambda _: _("✅ Case {number} approved and closed by {name} ({at}).").format(
            number=case.number, name=name, at=at))
        _tell_workers(session, ctx, case, lambda _: _("✅ Case {number} was verified and closed. Thank you!").format(
            number=case.number))
        result = Decision(case.number, case.status)
    ctx.on_notifications()
    return result


def reject(ctx: ServiceContext, *, case_id: int, supervisor_id: int, reason: str, expected_version: int) -> Decision:
    """Send the case back for rework (返工) with a reason; each task returns to the worker who did it."""
    note = " ".join((reason or "").split())[:MAX_REASON]
    if not note:
        raise ReasonRequired()
    with transaction(ctx.sessions) as session:
        supervisor, case = _judge_rights(session, supervisor_id, case_id)
        if case.version != expected_version or case.status != Status.AWAITING_VERIFICATION:
            raise CardOutdated(case.number, case.status)
        try:
            apply_action_in(session, ctx, case, action=Action.REJECT, actor=Actor(Role.SUPERVISOR, supervisor.id),
                            note=note)
        except StaleCase as exc:
            raise CardOutdated(case.number, "changed") from exc
        now = ctx.clock.now()
        _decide_completions(session, ctx, case, CompletionStatus.REJECTED, supervisor.id, note)
        session.execute(sa.update(CaseTask).where(
            CaseTask.case_id == case.id, CaseTask.status == TaskStatus.DONE, CaseTask.assignee_id.is_not(None),
        ).values(status=TaskStatus.ACCEPTED, done_at=None, updated_at=now, version=CaseTask.version + 1))
        name, why = html.escape(supervisor.display_name), html.escape(note)
        _close_cards(session, ctx, case, lambda _: _("🔁 Case {number} sent back for rework by {name}: {reason}").format(
            number=case.number, name=name, reason=why))
        _tell_workers(session, ctx, case, lambda _: "\n".join([
            _("🔁 Rework: case {number} was not accepted by the supervisor.").format(number=case.number),
            _("Reason: {reason}").format(reason=why),
            _("Fix it, then press Complete and send new photos and your location."),
        ]), keyboard_for_task=True)
        result = Decision(case.number, case.status)
    ctx.on_notifications()
    return result


def _decide_completions(session: Session, ctx: ServiceContext, case: Case, status: CompletionStatus,
                        supervisor_id: int | None, note: str | None) -> None:
    session.execute(sa.update(Completion).where(
        Completion.case_id == case.id, Completion.status == CompletionStatus.SUBMITTED,
    ).values(status=status, decided_at=ctx.clock.now(), decided_by_id=supervisor_id, decision_note=note))


# -- cleared at source ---------------------------------------------------------------------------------


class SourceClear(StrEnum):
    CLOSED = "closed"  # it awaited verification: the source's word verifies it
    RESOLVED = "resolved"  # nobody had started: closed as cleared at source (自动结案)
    KEPT = "kept"  # a worker is on it: they are told and decide
    WAITING = "waiting"  # nobody had started, and the caller's rule does not cancel: left as it is
    ALREADY_ENDED = "already_ended"


# A case in these statuses is in a worker's hands even when no task row says so (an office accept).
_HANDLING = frozenset({Status.IN_PROGRESS, Status.EXTENSION_REQUESTED, Status.REWORK})


def clear_reason(note: str | None) -> str:
    """The audit note of a clear from the source: "Cleared at source", with the source's note if any."""
    return ("Cleared at source" + (f": {note.strip()}" if note and note.strip() else ""))[:MAX_REASON]


def close_from_source(ctx: ServiceContext, *, case_id: int, note: str | None = None) -> SourceClear:
    """A camera or sensor reports the problem of `case_id` gone: apply the rule in the module docstring.

    Raises NotMachineSource for cases that no machine opened, CaseNotFound for unknown ids.
    """
    reason = clear_reason(note)
    for attempt in range(3):
        try:
            with transaction(ctx.sessions) as session:
                case = session.get(Case, case_id)
                if case is None:
                    raise CaseNotFound(str(case_id))
                if CaseSource(case.source) not in (CaseSource.CAMERA, CaseSource.SENSOR):
                    raise NotMachineSource(case.number)
                outcome = clear_at_source_in(session, ctx, case, reason=reason)
        except StaleCase:
            if attempt == 2:
                raise
            continue
        ctx.on_notifications()
        return outcome
    raise AssertionError("unreachable")  # pragma: no cover


def clear_at_source_in(session: Session, ctx: ServiceContext, case: Case, *, reason: str,
                       close_unstarted: bool = True, tell_workers: bool = True) -> SourceClear:
    """`close_from_source`'s rule on `case` inside the caller's transaction (machine intake's clear uses it).

    Awaiting verification → approved by the system: completions approved, supervisors' cards
    edited, workers told (CLOSED). A worker on it → KEPT, and told when `tell_workers`. Nobody
    started → closed as cleared at source with its offers withdrawn and tasks cancelled (RESOLVED),
    or, when not `close_unstarted`, left as it is (WAITING). Terminal or shelved → ALREADY_ENDED, nothing written.
    Raises StaleCase when another writer changed the case first (the caller's transaction rolls back).
    """
    status = Status(case.status)
    system = Actor(Role.SYSTEM)
    if status in TERMINAL or status is Status.SHELVED:
        return SourceClear.ALREADY_ENDED
    if status is Status.AWAITING_VERIFICATION:
        apply_action_in(session, ctx, case, action=Action.APPROVE, actor=system, note=reason)
        _decide_completions(session, ctx, case, CompletionStatus.APPROVED, None, reason)
        _close_cards(session, ctx, case, lambda _: _(
            "✅ Case {number} closed: the source reports the problem gone.").format(number=case.number))
        _tell_workers(session, ctx, case, lambda _: _(
            "✅ Case {number} was closed: the source reports the problem gone. Thank you!").format(
            number=case.number))
        return SourceClear.CLOSED
    accepted = session.exec(select(func.count()).select_from(CaseTask).where(
        CaseTask.case_id == case.id, CaseTask.status.in_([TaskStatus.ACCEPTED, TaskStatus.DONE]))).one()
    if accepted or status in _HANDLING:
        if tell_workers:
            _tell_workers(session, ctx, case, lambda _: _(
                "ℹ️ The source of case {number} reports the problem gone. Check on site and complete it "
                "if that is so.").format(number=case.number))
        return SourceClear.KEPT
    if not close_unstarted:
        return SourceClear.WAITING
    apply_action_in(session, ctx, case, action=Action.CLEAR_AT_SOURCE, actor=system, note=reason)
    end_work(session, ctx, case)
    return SourceClear.RESOLVED


def end_work(session: Session, ctx: ServiceContext, case: Case) -> None:
    """The case ended before its work was done: withdraw open offers, cancel open tasks, settle escalations."""
    now = ctx.clock.now()
    offers = session.exec(select(WorkOffer).where(WorkOffer.case_id == case.id,
                                                  WorkOffer.status == OfferStatus.OPEN)).all()
    for offer in offers:
        dispatch.retract_offer(session, ctx, offer, status=OfferStatus.WITHDRAWN, reason=RetractReason.CASE_ENDED)
    session.execute(sa.update(CaseTask).where(
        CaseTask.case_id == case.id, CaseTask.status.in_([TaskStatus.WAITING, TaskStatus.OFFERED, TaskStatus.ACCEPTED]),
    ).values(status=TaskStatus.CANCELLED, updated_at=now, version=CaseTask.version + 1))
    session.execute(sa.update(Escalation).where(Escalation.case_id == case.id, Escalation.resolved_at.is_(None))
                    .values(resolved_at=now))


__all__ = [
    "CardOutdated",
    "NotASupervisor",
    "OutsideYourArea",
    "OwnWork",
    "ProofCard",
    "SourceClear",
    "VerificationError",
    "approve",
    "clear_at_source_in",
    "clear_reason",
    "close_from_source",
    "end_work",
    "handled_by",
    "proof_card",
    "reject",
    "render_card",
    "request_verification",
]
