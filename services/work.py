"""Handling (处置): a worker accepts, returns or completes work orders; on/off duty.

What callers may rely on:
- Every function is one transaction; a refusal raises a `WorkError` subclass and writes nothing
  (except where noted: a location refused for distance or accuracy is kept on the draft so it
  can be submitted flagged without being sent again).
- Accept: the first Accept wins by a conditional update of the task (status and version) and of
  the case (version, via services.cases); the other workers' copies of the offer are edited to say
  it was taken, or taken out of the queue when not sent yet. The same worker pressing twice
  accepts once (`AcceptOutcome.ALREADY_YOURS`).
- Return (退单) needs a reason; the task goes back to dispatch without the workers who handed it
  back; when no department is left working on the case, the case itself is RETURNED, then
  dispatched again.
- Completion: 1..`proof_max_photos` photos, each cleaned by services.photos and refused when it
  is the same picture as the resident's, an earlier proof of the case or one of the worker's
  recent proofs elsewhere; then a location judged by `judge_location`. When every task of the
  case is done the case moves to AWAITING_VERIFICATION and supervisors get the proof card.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from geopy.distance import geodesic
from sqlmodel import Session, select

from bot.worker_ui import task_keyboard
from models.events.work import RetractReason
from models.lifecycle import OPEN, Action, Actor, Role, Status
from models.tables import Case, CaseEvent, Category, Person, Photo, Proof
from models.work import (
    CaseTask,
    Completion,
    CompletionStatus,
    OfferStatus,
    TaskStatus,
    WorkOffer,
)
from onegrid.i18n import gettext_for
from services import dispatch, verification
from services.cases import StaleCase, apply_action_in
from services.context import ServiceContext
from services.db import transaction
from services.notify import enqueue
from services.photos import MAX_BYTES, PhotoProblem, PhotoRejected, clean_photo, is_same_picture, save_photo

MAX_REASON = 500
RECENT_PROOFS = timedelta(days=90)  # a worker's own proofs elsewhere that a new photo must not repeat
FUTURE_TOLERANCE_S = 60  # Telegram's clock and ours may disagree a little


# -- refusals -------------------------------------------------------------------------------------


class WorkError(Exception):
    """A refusal the worker can be told about; nothing was written."""


class NotAWorker(WorkError):
    pass


class WorkerInactive(WorkError):
    pass


class NotYourOrder(WorkError):
    pass


class OfferUnavailable(WorkError):
    """The offer was taken by someone else, withdrawn, or already handed back."""

    def __init__(self, number: str, why: OfferStatus) -> None:
        super().__init__(f"{number}: {why.value}")
        self.number, self.why = number, why


class TaskNotOpen(WorkError):
    """The task or its case is not in a state where this can be done (e.g. already submitted)."""

    def __init__(self, number: str, status: str) -> None:
        super().__init__(f"{number}: {status}")
        self.number, self.status = number, status


class ReasonRequired(WorkError):
    pass


class ReturnNotAllowed(WorkError):
    """Rework and pending extensions cannot be handed back by the worker; a supervisor reassigns them."""

    def __init__(self, number: str) -> None:
        super().__init__(number)
        self.number = number


class ProofPhotoRefused(WorkError):
    def __init__(self, problem: PhotoProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class SamePicture(WorkError):
    """The photo repeats the resident's photo ("report") or an earlier proof ("proof")."""

    def __init__(self, earlier: str) -> None:
        super().__init__(earlier)
        self.earlier = earlier


class TooManyPhotos(WorkError):
    def __init__(self, limit: int) -> None:
        super().__init__(str(limit))
        self.limit = limit


class PhotosMissing(WorkError):
    pass


class LocationMissing(WorkError):
    pass


class LocationRefused(WorkError):
    """A location that proves nothing (forwarded, a venue, via a bot, not sent just now)."""

    def __init__(self, judgement: LocationJudgement) -> None:
        super().__init__(", ".join(p.value for p in judgement.problems))
        self.judgement = judgement


# -- location rules (pure) -------------------------------------------------------------------------


class LocationProblem(StrEnum):
    FORWARDED = "forwarded"
    VENUE = "venue"
    VIA_BOT = "via_bot"
    STALE = "stale"
    LOW_ACCURACY = "low_accuracy"
    TOO_FAR = "too_far"


# Problems no supervisor can overlook: the fix says nothing about where the worker is now.
REFUSING = frozenset({LocationProblem.FORWARDED, LocationProblem.VENUE, LocationProblem.VIA_BOT,
                      LocationProblem.STALE})


@dataclass(frozen=True)
class LocationFix:
    """A location as Telegram delivered it."""

    lat: float
    lon: float
    sent_at: datetime  # the message date (or edit date for a live update), aware UTC
    accuracy_m: float | None = None
    live_period: int | None = None
    forwarded: bool = False
    venue: bool = False
    via_bot: bool = False
    message_id: int | None = None

    @property
    def live(self) -> bool:
        return bool(self.live_period)


@dataclass(frozen=True)
class LocationJudgement:
    distance_m: float
    allowed_m: float
    age_s: float
    problems: tuple[LocationProblem, ...]
    accuracy_m: float = 0.0

    @property
    def accepted(self) -> bool:
        return not self.problems

    @property
    def refused_outright(self) -> bool:
        return any(p in REFUSING for p in self.problems)


def judge_location(fix: LocationFix, *, case_lat: float, case_lon: float, radius_m: float, now: datetime,
                   max_age_s: float, max_accuracy_m: float) -> LocationJudgement:
    """Whether `fix` proves presence at the case point.

    Accepted exactly when it is the worker's own position (not forwarded, not a venue, not via a
    bot), sent no more than `max_age_s` ago, with a reported accuracy of at most `max_accuracy_m`,
    and its geodesic distance to the case point is at most `radius_m` plus that accuracy.
    """
    distance = geodesic((fix.lat, fix.lon), (case_lat, case_lon)).meters
    accuracy = max(fix.accuracy_m or 0.0, 0.0)
    allowed = radius_m + min(accuracy, max_accuracy_m)
    age = (now - fix.sent_at).total_seconds()
    problems: list[LocationProblem] = []
    if fix.forwarded:
        problems.append(LocationProblem.FORWARDED)
    if fix.venue:
        problems.append(LocationProblem.VENUE)
    if fix.via_bot:
        problems.append(LocationProblem.VIA_BOT)
    if age > max_age_s or age < -FUTURE_TOLERANCE_S:
        problems.append(LocationProblem.STALE)
    if accuracy > max_accuracy_m:
        problems.append(LocationProblem.LOW_ACCURACY)
    if distance > allowed:
        problems.append(LocationProblem.TOO_FAR)
    return LocationJudgement(distance, allowed, age, tuple(problems), accuracy)


# -- results --------------------------------------------------------------------------------------


class AcceptOutcome(StrEnum):
    ACCEPTED = "accepted"
    ALREADY_YOURS = "already_yours"
    CASE_ENDED = "case_ended"  # the case was closed or cancelled meanwhile; the offer is withdrawn


@dataclass(frozen=True)
class AcceptResult:
    outcome: AcceptOutcome
    case_number: str
    task_id: int


@dataclass(frozen=True)
class ReturnResult:
    case_number: str
    reoffered: int  # workers the task was offered to again
    still_offered: bool  # other workers still hold open offers of it (nothing re-dispatched)


@dataclass(frozen=True)
class DutyResult:
    on_duty: bool
    picked_up: int  # waiting orders offered now that the worker is on duty
    withdrawn: int  # open offers taken back as the worker went off duty


@dataclass(frozen=True)
class OrderLine:
    task_id: int
    offer_id: int | None
    case_number: str
    category_code: str
    category_name: str
    case_status: str
    task_status: str
    handle_due_at: datetime | None
    overdue: bool
    address: str | None


@dataclass(frozen=True)
class OrdersView:
    held: list[OrderLine]  # accepted (or awaiting verification), overdue first, then by deadline
    offered: list[OrderLine]  # open offers the worker has not answered


@dataclass(frozen=True)
class CompletionView:
    completion_id: int
    case_number: str
    photos: int
    max_photos: int
    has_location: bool


class LocationOutcome(StrEnum):
    SUBMITTED = "submitted"
    NEEDS_DECISION = "needs_decision"  # outside radius or too vague: send again, or submit flagged


@dataclass(frozen=True)
class LocationResult:
    outcome: LocationOutcome
    case_number: str
    judgement: LocationJudgement
    live: bool
    case_status: str
    waiting_for: list[str] = field(default_factory=list)  # departments not done yet (joint cases)


# -- helpers ----------------------------------------------------------------------------------------


def _worker(session: Session, worker_id: int) -> Person:
    person = session.get(Person, worker_id)
    if person is None or not person.has_role(Role.WORKER):
        raise NotAWorker(str(worker_id))
    if not person.active:
        raise WorkerInactive(str(worker_id))
    return person


def _holder(session: Session, person_id: int) -> Person:
    """Who may complete a task: an active worker, or an active supervisor (only a task they hold, which
    they get by taking the case over: `_task_for_completion` checks the task's assignee for everyone)."""
    person = session.get(Person, person_id)
    if person is None or not (person.has_role(Role.WORKER) or person.has_role(Role.SUPERVISOR)):
        raise NotAWorker(str(person_id))
    if not person.active:
        raise WorkerInactive(str(person_id))
    return person


def _completing_role(person: Person) -> Role:
    return Role.WORKER if person.has_role(Role.WORKER) else Role.SUPERVISOR


def _clean_reason(reason: str | None) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise ReasonRequired()
    return text[:MAX_REASON]


def note_event(session: Session, ctx: ServiceContext, case: Case, action: Action, actor: Actor, note: str) -> None:
    """An audit event that changes no status (a department's part of a joint case, a declined offer)."""
    status = Status(case.status)
    session.add(CaseEvent(case_id=case.id, actor_id=actor.person_id, actor_role=actor.role, action=action,
                          from_status=status, to_status=status, note=note[:2000], at=ctx.clock.now()))


def _edit_own_message(session: Session, ctx: ServiceContext, worker: Person, case: Case, message_id: int | None,
                      text: str, reply_markup: dict | None = None) -> None:
    """Edit the message the worker pressed a button on (its id comes with the button press)."""
    if message_id is None or worker.telegram_user_id is None:
        return
    payload: dict = {"message_id": message_id, "text": text, "parse_mode": "HTML",
                     "link_preview_options": {"is_disabled": True}}
    if reply_markup is not None:
        payload["reply_markup"] = reply_markup
    enqueue(session, chat_id=worker.telegram_user_id, method="editMessageText", payload=payload,
            now=ctx.clock.now(), person_id=worker.id, case_id=case.id)


def _offer_message_id(session: Session, offer: WorkOffer | None) -> int | None:
    from models.tables import Notification

    if offer is None or offer.message_notification_id is None:
        return None
    row = session.get(Notification, offer.message_notification_id)
    return row.telegram_message_id if row is not None else None


# -- accept -----------------------------------------------------------------------------------------


def accept_offer(ctx: ServiceContext, *, offer_id: int, worker_id: int, message_id: int | None = None) -> AcceptResult:
    """Accept an offered work order. Raises OfferUnavailable when another worker was first.

    `message_id` is the offer message the worker pressed Accept on; it is edited to the accepted view.
    """
    for attempt in range(3):
        try:
            result = _accept_once(ctx, offer_id=offer_id, worker_id=worker_id, message_id=message_id)
        except StaleCase:
            # Another department's worker moved the same case on first; judge again on fresh rows.
            if attempt == 2:
                raise
            continue
        ctx.on_notifications()
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def _accept_once(ctx: ServiceContext, *, offer_id: int, worker_id: int, message_id: int | None) -> AcceptResult:
    with transaction(ctx.sessions) as session:
        worker = _worker(session, worker_id)
        offer = session.get(WorkOffer, offer_id)
        if offer is None or offer.worker_id != worker_id:
            raise NotYourOrder(str(offer_id))
        case = session.get(Case, offer.case_id)
        task = session.get(CaseTask, offer.task_id)
        if offer.status == OfferStatus.ACCEPTED:
            return AcceptResult(AcceptOutcome.ALREADY_YOURS, case.number, task.id)
        if offer.status != OfferStatus.OPEN:
            raise OfferUnavailable(case.number, OfferStatus(offer.status))
        if Status(case.status) not in OPEN:
            dispatch.retract_offer(session, ctx, offer, status=OfferStatus.WITHDRAWN, reason=RetractReason.CASE_ENDED)
            return AcceptResult(AcceptOutcome.CASE_ENDED, case.number, task.id)
        now = ctx.clock.now()
        won = session.execute(
            sa.update(CaseTask)
            .where(CaseTask.id == task.id, CaseTask.status == TaskStatus.OFFERED, CaseTask.version == task.version)
            .values(status=TaskStatus.ACCEPTED, assignee_id=worker.id, accepted_at=now, updated_at=now,
                    version=task.version + 1)
        ).rowcount
        if won != 1:
            fresh = session.get(CaseTask, task.id, populate_existing=True)
            if fresh is not None and fresh.assignee_id == worker.id:
                return AcceptResult(AcceptOutcome.ALREADY_YOURS, case.number, task.id)
            raise OfferUnavailable(case.number, OfferStatus.TAKEN)
        session.refresh(task)
        actor = Actor(Role.WORKER, worker.id)
        if Status(case.status) is Status.DISPATCHED:
            apply_action_in(session, ctx, case, action=Action.ACCEPT, actor=actor)
            session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=worker.id))
        else:
            # A joint case another department already started: this department's part begins now.
            note_event(session, ctx, case, Action.ACCEPT, actor, f"{task.department_code}: accepted")
        offer.status, offer.closed_at = OfferStatus.ACCEPTED, now
        session.add(offer)
        for other in dispatch.open_offers(session, task.id):
            if other.id != offer.id:
                dispatch.retract_offer(session, ctx, other, status=OfferStatus.TAKEN, reason=RetractReason.TAKEN)
        _ = gettext_for(worker.locale)
        text = dispatch.order_text(session, ctx, case, task, worker.locale,
                                   header=_("✅ You accepted work order {number}").format(number=case.number))
        text += "\n\n" + _("When the problem is solved, press Complete and send photos and your location.")
        _edit_own_message(session, ctx, worker, case, message_id or _offer_message_id(session, offer), text,
                          task_keyboard(_, task.id))
        return AcceptResult(AcceptOutcome.ACCEPTED, case.number, task.id)


# -- return (退单) -----------------------------------------------------------------------------------


def return_order(ctx: ServiceContext, *, worker_id: int, reason: str, offer_id: int | None = None,
                 task_id: int | None = None, message_id: int | None = None) -> ReturnResult:
    """Hand an offered or accepted order back to dispatch, with a reason (退单).

    Give `offer_id` (an offer, answered or not) or `task_id` (a task the worker holds).
    """
    note = _clean_reason(reason)
    for attempt in range(3):
        try:
            result = _return_once(ctx, worker_id=worker_id, note=note, offer_id=offer_id, task_id=task_id,
                                  message_id=message_id)
        except StaleCase:
            if attempt == 2:
                raise
            continue
        ctx.on_notifications()
        return result
    raise AssertionError("unreachable")  # pragma: no cover


def _return_once(ctx: ServiceContext, *, worker_id: int, note: str, offer_id: int | None, task_id: int | None,
                 message_id: int | None) -> ReturnResult:
    with transaction(ctx.sessions) as session:
        worker = _worker(session, worker_id)
        offer: WorkOffer | None = None
        if offer_id is not None:
            offer = session.get(WorkOffer, offer_id)
            if offer is None or offer.worker_id != worker.id:
                raise NotYourOrder(str(offer_id))
            task = session.get(CaseTask, offer.task_id)
        else:
            task = session.get(CaseTask, task_id) if task_id is not None else None
            if task is None or task.assignee_id != worker.id:
                raise NotYourOrder(str(task_id))
            offer = session.exec(select(WorkOffer).where(
                WorkOffer.task_id == task.id, WorkOffer.worker_id == worker.id,
                WorkOffer.status == OfferStatus.ACCEPTED)).first()
        case = session.get(Case, task.case_id)
        now = ctx.clock.now()
        _ = gettext_for(worker.locale)
        accepted = task.status == TaskStatus.ACCEPTED and task.assignee_id == worker.id
        if offer is not None and offer.status == OfferStatus.OPEN and not accepted:
            # Conditional: an Accept by someone else committing meanwhile closes this offer first.
            declined = session.execute(
                sa.update(WorkOffer).where(WorkOffer.id == offer.id, WorkOffer.status == OfferStatus.OPEN)
                .values(status=OfferStatus.DECLINED, note=note, closed_at=now)
            ).rowcount
            if declined != 1:
                raise StaleCase(case.number)
            session.refresh(offer)
            session.refresh(task)
        elif accepted:
            if Status(case.status) not in (Status.DISPATCHED, Status.IN_PROGRESS):
                raise ReturnNotAllowed(case.number)
            moved = session.execute(
                sa.update(CaseTask)
                .where(CaseTask.id == task.id, CaseTask.version == task.version,
                       CaseTask.status == TaskStatus.ACCEPTED, CaseTask.assignee_id == worker.id)
                .values(status=TaskStatus.WAITING, assignee_id=None, accepted_at=None, updated_at=now,
                        version=task.version + 1)
            ).rowcount
            if moved != 1:
                raise StaleCase(case.number)
            session.refresh(task)
            if offer is None:  # a patrol case or an assignment without an offer row
                offer = WorkOffer(case_id=case.id, task_id=task.id, worker_id=worker.id, status=OfferStatus.RETURNED,
                                  created_at=now)
            offer.status, offer.note, offer.closed_at = OfferStatus.RETURNED, note, now
            session.add(offer)
            abandon_drafts(session, task.id, worker.id, now)
        else:
            status = OfferStatus(offer.status) if offer is not None else OfferStatus.WITHDRAWN
            raise OfferUnavailable(case.number, status)
        _edit_own_message(session, ctx, worker, case, message_id or _offer_message_id(session, offer),
                          _("↩️ You returned work order {number}.").format(number=case.number) + "\n"
                          + _("Reason: {reason}").format(reason=html.escape(note)))
        still_open = [o for o in dispatch.open_offers(session, task.id) if o.id != (offer.id if offer else None)]
        if not accepted and (still_open or task.status != TaskStatus.OFFERED):
            # Others may still accept it (or one already has): nothing goes back to dispatch.
            note_event(session, ctx, case, Action.RETURN, Actor(Role.WORKER, worker.id),
                       f"{task.department_code}: {note}")
            return ReturnResult(case.number, 0, bool(still_open))
        others_working = session.exec(select(CaseTask.id).where(
            CaseTask.case_id == case.id, CaseTask.id != task.id,
            CaseTask.status.in_([TaskStatus.ACCEPTED, TaskStatus.DONE]))).first()
        if others_working is None and Status(case.status) in (Status.DISPATCHED, Status.IN_PROGRESS):
            apply_action_in(session, ctx, case, action=Action.RETURN, actor=Actor(Role.WORKER, worker.id), note=note)
            session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=None))
        else:
            note_event(session, ctx, case, Action.RETURN, Actor(Role.WORKER, worker.id),
                       f"{task.department_code}: {note}")
        offers = dispatch.offer_task(session, ctx, case, task)
        dispatch.ensure_dispatched(session, ctx, case)
        return ReturnResult(case.number, len(offers), False)


def abandon_drafts(session: Session, task_id: int, worker_id: int, now: datetime) -> None:
    session.execute(sa.update(Completion).where(
        Completion.task_id == task_id, Completion.worker_id == worker_id,
        Completion.status == CompletionStatus.DRAFT).values(status=CompletionStatus.ABANDONED, decided_at=now))


# -- duty and the list of orders ----------------------------------------------------------------------


def set_duty(ctx: ServiceContext, *, person_id: int, on_duty: bool | None = None) -> DutyResult:
    """Go on or off duty (None: toggle), and tell the worker.

    On duty: the confirmation is queued first, then waiting orders of the worker's department and
    area are offered (so they arrive after it). Off duty: open offers are withdrawn (and passed on
    to others); orders already accepted stay the worker's.
    """
    with transaction(ctx.sessions) as session:
        worker = _worker(session, person_id)
        now = ctx.clock.now()
        _ = gettext_for(worker.locale)
        new = (not worker.on_duty) if on_duty is None else on_duty
        worker.on_duty = new
        worker.blocked_bot_at = None  # they are talking to the bot, so it can reach them
        session.add(worker)
        session.flush()
        picked = withdrawn = 0
        if new:
            _tell(session, worker, now, _("🟢 You are on duty. New work orders of your area will come here."))
            picked = dispatch.pick_up_waiting(session, ctx, worker)
        else:
            offers = session.exec(select(WorkOffer).where(
                WorkOffer.worker_id == worker.id, WorkOffer.status == OfferStatus.OPEN)).all()
            for offer in offers:
                case = session.get(Case, offer.case_id)
                dispatch.retract_offer(session, ctx, offer, status=OfferStatus.WITHDRAWN, reason=RetractReason.OFF_DUTY)
                withdrawn += 1
                task = session.get(CaseTask, offer.task_id)
                if task.status == TaskStatus.OFFERED and not dispatch.open_offers(session, task.id):
                    dispatch.offer_task(session, ctx, case, task)
                    dispatch.ensure_dispatched(session, ctx, case)
            text = _("⚪ You are off duty and will get no new work orders. Orders you hold stay yours.")
            if withdrawn:
                text += "\n" + _("Offers passed on to others: {count}.").format(count=withdrawn)
            _tell(session, worker, now, text)
    ctx.on_notifications()
    return DutyResult(new, picked, withdrawn)


def _tell(session: Session, person: Person, now: datetime, text: str) -> None:
    if person.telegram_user_id is not None:
        enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=now, person_id=person.id,
                payload={"text": text, "parse_mode": "HTML"})


def open_orders(ctx: ServiceContext, *, worker_id: int) -> OrdersView:
    """The worker's orders: held ones (overdue first, then by deadline) and offers not yet answered."""
    with ctx.sessions() as session:
        worker = _worker(session, worker_id)
        now = ctx.clock.now()
        held_rows = session.exec(
            select(CaseTask, Case).join(Case, Case.id == CaseTask.case_id).where(
                CaseTask.assignee_id == worker.id,
                CaseTask.status.in_([TaskStatus.ACCEPTED, TaskStatus.DONE]),
                Case.status.in_([s.value for s in OPEN]),
            )
        ).all()
        offered_rows = session.exec(
            select(CaseTask, Case, WorkOffer).join(Case, Case.id == CaseTask.case_id)
            .join(WorkOffer, WorkOffer.task_id == CaseTask.id).where(
                WorkOffer.worker_id == worker.id, WorkOffer.status == OfferStatus.OPEN,
                Case.status.in_([s.value for s in OPEN]),
            )
        ).all()
        names = {c.code: dispatch.localized(c, worker.locale, c.code) for c in session.exec(select(Category))}

        def line(task: CaseTask, case: Case, offer_id: int | None) -> OrderLine:
            due = case.handle_due_at
            return OrderLine(task.id, offer_id, case.number, case.category_code,
                             names.get(case.category_code, case.category_code), case.status, task.status, due,
                             bool(due and due < now and task.status == TaskStatus.ACCEPTED), case.address)

        held = [line(t, c, None) for t, c in held_rows]
        far = datetime.max.replace(tzinfo=now.tzinfo)
        held.sort(key=lambda o: (not o.overdue, o.task_status == TaskStatus.DONE, o.handle_due_at or far, o.case_number))
        offered = sorted((line(t, c, o.id) for t, c, o in offered_rows), key=lambda o: (o.handle_due_at or far))
        return OrdersView(held, offered)


# -- completion ---------------------------------------------------------------------------------------


def _task_for_completion(session: Session, task_id: int, worker: Person) -> tuple[CaseTask, Case]:
    task = session.get(CaseTask, task_id)
    if task is None or task.assignee_id != worker.id:
        raise NotYourOrder(str(task_id))
    case = session.get(Case, task.case_id)
    if task.status == TaskStatus.DONE:
        raise TaskNotOpen(case.number, Status.AWAITING_VERIFICATION.value
                          if case.status == Status.AWAITING_VERIFICATION else "done")
    if task.status != TaskStatus.ACCEPTED or Status(case.status) not in (Status.IN_PROGRESS, Status.REWORK):
        raise TaskNotOpen(case.number, case.status)
    return task, case


def _view(case: Case, draft: Completion, ctx: ServiceContext) -> CompletionView:
    return CompletionView(draft.id, case.number, len(draft.photo_ids), ctx.settings.proof_max_photos,
                          draft.lat is not None)


def start_completion(ctx: ServiceContext, *, task_id: int, worker_id: int) -> CompletionView:
    """Open (or resume: nothing sent before is lost) the worker's proof for a task they hold."""
    with transaction(ctx.sessions) as session:
        worker = _holder(session, worker_id)
        task, case = _task_for_completion(session, task_id, worker)
        draft = session.exec(select(Completion).where(
            Completion.task_id == task.id, Completion.worker_id == worker.id,
            Completion.status == CompletionStatus.DRAFT).order_by(Completion.id.desc())).first()
        if draft is None:
            draft = Completion(case_id=case.id, task_id=task.id, worker_id=worker.id, status=CompletionStatus.DRAFT,
                               started_at=ctx.clock.now())
            session.add(draft)
            session.flush()
        return _view(case, draft, ctx)


def _draft(session: Session, completion_id: int, worker: Person) -> tuple[Completion, CaseTask, Case]:
    draft = session.exec(select(Completion).where(Completion.id == completion_id).with_for_update()).first()
    if draft is None or draft.worker_id != worker.id:
        raise NotYourOrder(str(completion_id))
    task, case = _task_for_completion(session, draft.task_id, worker)
    if draft.status != CompletionStatus.DRAFT:
        raise TaskNotOpen(case.number, draft.status)
    return draft, task, case


def completion_view(ctx: ServiceContext, *, completion_id: int, worker_id: int) -> CompletionView:
    with ctx.sessions() as session:
        worker = _holder(session, worker_id)
        draft, _task, case = _draft(session, completion_id, worker)
        return _view(case, draft, ctx)


def add_proof_photo(ctx: ServiceContext, *, completion_id: int, worker_id: int, data: bytes,
                    file_unique_id: str | None = None, file_id: str | None = None) -> CompletionView:
    """Check, clean and attach one proof photo. Raises ProofPhotoRefused, SamePicture or TooManyPhotos."""
    completion_view(ctx, completion_id=completion_id, worker_id=worker_id)  # refuse early, before decoding
    try:
        clean = clean_photo(data, max_bytes=MAX_BYTES)
    except PhotoRejected as exc:
        raise ProofPhotoRefused(exc.problem) from exc
    # Content-addressed, so writing before the commit is harmless: a refused photo's file is just unused.
    path, _original = save_photo(ctx.settings.data_dir, clean)
    with transaction(ctx.sessions) as session:
        worker = _holder(session, worker_id)
        draft, _task, case = _draft(session, completion_id, worker)
        if len(draft.photo_ids) >= ctx.settings.proof_max_photos:
            raise TooManyPhotos(ctx.settings.proof_max_photos)
        _refuse_repeats(session, ctx, case, worker, clean.phash, file_unique_id)
        photo = Photo(case_id=case.id, uploader_id=worker.id, purpose="proof", telegram_file_id=file_id,
                      telegram_file_unique_id=file_unique_id, path=path, phash=clean.phash, width=clean.width,
                      height=clean.height, created_at=ctx.clock.now())
        session.add(photo)
        session.flush()
        draft.photo_ids = [*draft.photo_ids, photo.id]
        session.add(draft)
        return _view(case, draft, ctx)


def _refuse_repeats(session: Session, ctx: ServiceContext, case: Case, worker: Person, phash: str,
                    file_unique_id: str | None) -> None:
    since = ctx.clock.now() - RECENT_PROOFS
    earlier = session.exec(select(Photo).where(
        sa.or_(Photo.case_id == case.id,
               sa.and_(Photo.uploader_id == worker.id, Photo.purpose == "proof", Photo.created_at >= since)),
    ).order_by(Photo.id.desc()).limit(2000)).all()
    for photo in earlier:
        kind = "report" if photo.purpose == "report" else "proof"
        if file_unique_id and photo.telegram_file_unique_id == file_unique_id:
            raise SamePicture(kind)
        if photo.phash and is_same_picture(phash, [photo.phash]):
            raise SamePicture(kind)


def clear_proof_photos(ctx: ServiceContext, *, completion_id: int, worker_id: int) -> CompletionView:
    """Drop the draft's photos so the worker can take them again."""
    with transaction(ctx.sessions) as session:
        worker = _holder(session, worker_id)
        draft, _task, case = _draft(session, completion_id, worker)
        if draft.photo_ids:
            session.execute(sa.delete(Photo).where(Photo.id.in_(draft.photo_ids), Photo.uploader_id == worker.id,
                                                   Photo.purpose == "proof"))
        draft.photo_ids = []
        session.add(draft)
        return _view(case, draft, ctx)


def submit_location(ctx: ServiceContext, *, completion_id: int, worker_id: int, fix: LocationFix) -> LocationResult:
    """Judge a location proof; when accepted the proof is submitted.

    Raises LocationRefused (nothing kept) for a forwarded, venue, via-bot or stale location, and
    PhotosMissing before any photo. Outside the radius or too vague: kept on the draft and
    returned as NEEDS_DECISION (send again, or `submit_flagged`).
    """
    with transaction(ctx.sessions) as session:
        worker = _holder(session, worker_id)
        draft, task, case = _draft(session, completion_id, worker)
        if not draft.photo_ids:
            raise PhotosMissing()
        judgement = _judge(session, ctx, case, fix)
        if judgement.refused_outright:
            raise LocationRefused(judgement)
        _keep_fix(draft, fix, judgement)
        if not judgement.accepted:
            session.add(draft)
            return LocationResult(LocationOutcome.NEEDS_DECISION, case.number, judgement, fix.live, case.status)
        result = _submit(session, ctx, draft, task, case, worker, judgement, flagged=False)
    ctx.on_notifications()
    return result


def submit_flagged(ctx: ServiceContext, *, completion_id: int, worker_id: int) -> LocationResult:
    """Submit with the last location kept, although it was outside what is accepted; the supervisor judges."""
    with transaction(ctx.sessions) as session:
        worker = _holder(session, worker_id)
        draft, task, case = _draft(session, completion_id, worker)
        if not draft.photo_ids:
            raise PhotosMissing()
        if draft.lat is None or draft.distance_m is None:
            raise LocationMissing()
        judgement = LocationJudgement(draft.distance_m, draft.allowed_m or 0.0, 0.0,
                                      tuple(LocationProblem(p) for p in draft.problems), draft.accuracy_m or 0.0)
        result = _submit(session, ctx, draft, task, case, worker, judgement, flagged=bool(draft.problems))
    ctx.on_notifications()
    return result


def track_live_location(ctx: ServiceContext, *, worker_id: int, fix: LocationFix) -> LocationResult | None:
    """A live location moved. Extends the time on site; a draft held back only for distance or
    accuracy is submitted as soon as the live position is good. Returns the result when it submitted."""
    if fix.message_id is None:
        return None
    with transaction(ctx.sessions) as session:
        worker = session.get(Person, worker_id)
        if worker is None or not worker.active:
            return None
        draft = session.exec(select(Completion).where(
            Completion.worker_id == worker.id, Completion.location_message_id == fix.message_id,
            Completion.status.in_([CompletionStatus.DRAFT, CompletionStatus.SUBMITTED]),
        ).order_by(Completion.id.desc()).with_for_update()).first()
        if draft is None:
            return None
        case = session.get(Case, draft.case_id)
        judgement = _judge(session, ctx, case, fix)
        if judgement.accepted:
            draft.last_seen_at = max(filter(None, [draft.last_seen_at, fix.sent_at]))
        session.add(draft)
        if draft.status != CompletionStatus.DRAFT or not judgement.accepted or not draft.photo_ids:
            return None
        task = session.get(CaseTask, draft.task_id)
        if task.status != TaskStatus.ACCEPTED or Status(case.status) not in (Status.IN_PROGRESS, Status.REWORK):
            return None
        _keep_fix(draft, fix, judgement)
        result = _submit(session, ctx, draft, task, case, worker, judgement, flagged=False)
    ctx.on_notifications()
    return result


def _judge(session: Session, ctx: ServiceContext, case: Case, fix: LocationFix) -> LocationJudgement:
    category = session.exec(select(Category).where(Category.code == case.category_code)).first()
    radius = category.proof_radius_m if category is not None else 100
    return judge_location(fix, case_lat=case.lat, case_lon=case.lon, radius_m=radius, now=ctx.clock.now(),
                          max_age_s=ctx.settings.proof_location_max_age_s,
                          max_accuracy_m=ctx.settings.proof_location_max_accuracy_m)


def _keep_fix(draft: Completion, fix: LocationFix, judgement: LocationJudgement) -> None:
    draft.lat, draft.lon, draft.accuracy_m, draft.live = fix.lat, fix.lon, fix.accuracy_m, fix.live
    draft.distance_m, draft.allowed_m = judgement.distance_m, judgement.allowed_m
    draft.location_at, draft.location_message_id = fix.sent_at, fix.message_id
    draft.problems = [p.value for p in judgement.problems]
    if judgement.accepted:
        draft.last_seen_at = fix.sent_at


def _submit(session: Session, ctx: ServiceContext, draft: Completion, task: CaseTask, case: Case, worker: Person,
            judgement: LocationJudgement, *, flagged: bool) -> LocationResult:
    now = ctx.clock.now()
    done = session.execute(
        sa.update(CaseTask)
        .where(CaseTask.id == task.id, CaseTask.version == task.version, CaseTask.status == TaskStatus.ACCEPTED,
               CaseTask.assignee_id == worker.id)
        .values(status=TaskStatus.DONE, done_at=now, updated_at=now, version=task.version + 1)
    ).rowcount
    if done != 1:
        raise TaskNotOpen(case.number, case.status)
    proof = Proof(case_id=case.id, worker_id=worker.id, lat=draft.lat, lon=draft.lon, accuracy_m=draft.accuracy_m,
                  live=draft.live, distance_m=draft.distance_m, flagged=flagged, created_at=now)
    session.add(proof)
    session.flush()
    draft.status, draft.submitted_at, draft.proof_id, draft.flagged = CompletionStatus.SUBMITTED, now, proof.id, flagged
    session.add(draft)
    session.flush()
    pending = session.exec(select(CaseTask).where(
        CaseTask.case_id == case.id, CaseTask.id != task.id,
        CaseTask.status.not_in([TaskStatus.DONE, TaskStatus.CANCELLED]))).all()
    if pending:
        note_event(session, ctx, case, Action.COMPLETE, Actor(_completing_role(worker), worker.id),
                   f"{task.department_code}: done" + (" (flagged)" if flagged else ""))
        names = [dispatch.department_name(session, t.department_code, worker.locale) for t in pending]
        return LocationResult(LocationOutcome.SUBMITTED, case.number, judgement, draft.live, case.status, names)
    apply_action_in(session, ctx, case, action=Action.COMPLETE, actor=Actor(_completing_role(worker), worker.id),
                    note="flagged: " + ", ".join(draft.problems) if flagged else None)
    verification.request_verification(session, ctx, case)
    return LocationResult(LocationOutcome.SUBMITTED, case.number, judgement, draft.live, case.status)


__all__ = [
    "AcceptOutcome",
    "LocationFix",
    "LocationProblem",
    "WorkError",
    "accept_offer",
    "add_proof_photo",
    "judge_location",
    "open_orders",
    "return_order",
    "set_duty",
    "start_completion",
    "submit_flagged",
    "submit_location",
]
