"""The escalation ladder: the sweep that finds cases past their deadlines and pings up the hierarchy.

What callers may rely on:
- `sweep(ctx)` is the one scheduled job (every few seconds). It claims due cases by the indexed
  `Case.next_escalation_at` (PostgreSQL: `FOR UPDATE SKIP LOCKED`, so two OneGrid processes never
  claim the same case; SQLite: one writer at a time), takes every due step of the policy exactly
  once per case and deadline round (a unique row per step backs this up), and moves
  `next_escalation_at` to the next step. After downtime, each missed step is taken once: there is
  no memory of ticks, only of steps.
- Pings go through the notification queue, in the recipient's language, with the case card
  (lateness, holder, one line per history event) and the buttons Reassign, Grant extension, Take
  over, Acknowledge, Shelve. Several pings to one group chat in a sweep go as one message (the
  delivery queue paces a group at under 20 messages a minute); a group with a forum topic for the
  area gets it there (`message_thread_id`).
- Unacknowledged supervisor pings repeat every `repeat_minutes` of the policy; `acknowledge` stops them.
- Every supervisor action here checks the case lies in the supervisor's area subtree, or refuses
  and writes nothing.
"""

from __future__ import annotations

import html
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.supervision_ui import ping_keyboard
from bot.worker_ui import tasks_list_keyboard, verify_keyboard
from models.events.work import OrderWithdrawn, RetractReason
from models.lifecycle import TERMINAL, Action, Actor, Role, Status
from models.supervision import EscalationStep, Shelving
from models.tables import Area, Case, CaseEvent, Category, Person
from models.work import CaseTask, OfferStatus, TaskStatus, VerificationRequest, VerificationStatus, WorkOffer
from onegrid.i18n import N_, gettext_for
from services import dispatch
from services.areas import area_chain, supervisor_group
from services.cases import CaseNotFound, apply_action_in
from services.context import ServiceContext
from services.db import transaction
from services.notify import enqueue

log = logging.getLogger("onegrid.escalation")

POLICY_FILE = Path(__file__).resolve().parent.parent / "data" / "escalation_policy.json"
LEVELS = ("worker", "grid", "street", "district", "city")
_AREA_LEVEL = {"grid": 0, "street": 1, "district": 2, "city": 3}  # index in area_chain(grid)
# Statuses in which each deadline's clock runs.
ACCEPT_PHASE = frozenset({Status.REGISTERED, Status.DISPATCHED, Status.RETURNED})
HANDLE_PHASE = ACCEPT_PHASE | {Status.IN_PROGRESS, Status.EXTENSION_REQUESTED, Status.REWORK}
HISTORY_LINES = 6


class PolicyError(ValueError):
    """The policy file is wrong; the message says where."""


@dataclass(frozen=True)
class Step:
    code: str
    after: str  # accept_due | handle_due
    offset_minutes: int
    notify: str  # one of LEVELS


@dataclass(frozen=True)
class Ladder:
    steps: tuple[Step, ...]
    repeat_minutes: int = 60


@dataclass(frozen=True)
class Policy:
    default: Ladder
    categories: dict[str, Ladder] = field(default_factory=dict)

    def for_category(self, code: str) -> Ladder:
        return self.categories.get(code, self.default)


def _ladder(raw: dict, where: str) -> Ladder:
    steps = []
    seen = set()
    for i, s in enumerate(raw.get("steps", [])):
        try:
            step = Step(str(s["code"]), str(s["after"]), int(s.get("offset_minutes", 0)), str(s["notify"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise PolicyError(f"{where}.steps[{i}]: needs code, after, notify (and offset_minutes)") from exc
        if step.after not in ("accept_due", "handle_due"):
            raise PolicyError(f"{where}.steps[{i}]: after must be accept_due or handle_due")
        if step.notify not in LEVELS:
            raise PolicyError(f"{where}.steps[{i}]: notify must be one of {', '.join(LEVELS)}")
        if step.offset_minutes < 0 or step.code in seen or len(step.code) > 64:
            raise PolicyError(f"{where}.steps[{i}]: offsets are >= 0 and codes unique (at most 64 characters)")
        seen.add(step.code)
        steps.append(step)
    repeat = int(raw.get("repeat_minutes", 60))
    if repeat < 0:
        raise PolicyError(f"{where}.repeat_minutes must be >= 0")
    return Ladder(tuple(steps), repeat)


def parse_policy(doc: dict) -> Policy:
    if "default" not in doc:
        raise PolicyError("the policy needs a default ladder")
    return Policy(_ladder(doc["default"], "default"),
                  {code: _ladder(raw, f"categories.{code}") for code, raw in doc.get("categories", {}).items()})


@lru_cache(maxsize=8)
def _policy_cached(path: str, mtime: float) -> Policy:
    return parse_policy(json.loads(Path(path).read_text(encoding="utf-8")))


def policy_of(ctx: ServiceContext) -> Policy:
    """The policy file named by ONEGRID_ESCALATION_POLICY_PATH, else data/escalation_policy.json (re-read on change)."""
    path = Path(ctx.settings.escalation_policy_path or POLICY_FILE)
    return _policy_cached(str(path), path.stat().st_mtime)


def step_time(case: Case, step: Step) -> datetime | None:
    base = case.accept_due_at if step.after == "accept_due" else case.handle_due_at
    return None if base is None else base + timedelta(minutes=step.offset_minutes)


def applies(step: Step, status: Status) -> bool:
    return status in (ACCEPT_PHASE if step.after == "accept_due" else HANDLE_PHASE)


# -- the sweep ----------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    claimed: int = 0
    fired: int = 0
    repeated: int = 0
    reviews: int = 0


def claim_due(session: Session, *, now: datetime, limit: int) -> list[int]:
    """Ids of up to `limit` cases whose next escalation is due, locked for this transaction.

    PostgreSQL skips rows another sweep holds, so concurrent sweeps split the work; SQLite has
    one writer at a time (BEGIN IMMEDIATE), so there the whole sweep is serialised.
    """
    query = (select(Case.id).where(Case.next_escalation_at <= now).order_by(Case.next_escalation_at).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return list(session.exec(query).all())


def sweep(ctx: ServiceContext, *, limit: int | None = None) -> SweepResult:
    """Take every due escalation step and repeat every due unacknowledged ping (see module docstring)."""
    result = SweepResult()
    limit = limit or ctx.settings.escalation_batch
    policy = policy_of(ctx)
    while True:  # batches, each its own transaction, until nothing is due
        with transaction(ctx.sessions) as session:
            now = ctx.clock.now()
            ids = claim_due(session, now=now, limit=limit)
            groups: dict[tuple[int, int | None], list[tuple[Case, EscalationStep]]] = {}
            for case_id in ids:
                case = session.get(Case, case_id)
                _process(session, ctx, case, policy, now, result, groups)
            _send_group_pings(session, ctx, groups, now)
            repeated = _repeat_due(session, ctx, policy, now, limit)
            result.claimed += len(ids)
            result.repeated += repeated
        if len(ids) < limit and repeated < limit:
            break
    if result.fired or result.repeated or result.reviews:
        ctx.on_notifications()
    return result


def _process(session: Session, ctx: ServiceContext, case: Case, policy: Policy, now: datetime, result: SweepResult,
             groups: dict) -> None:
    status = Status(case.status)
    if status in TERMINAL or status is Status.AWAITING_VERIFICATION:
        case.next_escalation_at = None  # re-armed by whatever reopens the clock (rework resets nothing here)
        if status is Status.AWAITING_VERIFICATION:
            # Rework puts the case back in the handling phase with the same deadline: look again later.
            case.next_escalation_at = now + timedelta(minutes=30)
        session.add(case)
        return
    if status is Status.SHELVED:
        _review_shelved(session, ctx, case, now, result)
        return
    ladder = policy.for_category(case.category_code)
    taken = set(session.exec(select(EscalationStep.step).where(
        EscalationStep.case_id == case.id, EscalationStep.round == case.escalation_round)).all())
    future: list[datetime] = []
    for step in ladder.steps:
        at = step_time(case, step)
        if at is None or step.code in taken:
            continue
        if at > now:
            future.append(at)
            continue
        if not applies(step, status):
            continue  # e.g. "not accepted" steps of a case a worker already accepted: moot for good
        row = _take_step(session, case, step, at, now)
        if row is None:
            continue  # another process took it first (only possible if claims were bypassed)
        _ping(session, ctx, case, step, row, ladder, now, groups)
        result.fired += 1
    case.next_escalation_at = min(future) if future else None
    session.add(case)


def _take_step(session: Session, case: Case, step: Step, due: datetime, now: datetime) -> EscalationStep | None:
    row = EscalationStep(case_id=case.id, round=case.escalation_round, step=step.code, level=step.notify,
                         due_at=due, fired_at=now)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row


# -- recipients ---------------------------------------------------------------------------------------


def _level_area(session: Session, case: Case, level: str) -> Area | None:
    chain = area_chain(session, case.grid_code) if case.grid_code else []
    index = _AREA_LEVEL[level]
    return chain[index] if index < len(chain) else (chain[-1] if chain else None)


def supervisors_at(session: Session, case: Case, level: str) -> list[Person]:
    """Active supervisors of the case's area at `level`, or the nearest level above that has any."""
    chain = area_chain(session, case.grid_code) if case.grid_code else []
    for area in chain[_AREA_LEVEL[level]:]:
        people = session.exec(select(Person).where(
            Person.area_code == area.code, Person.active.is_(True), Person.telegram_user_id.is_not(None),
            Person.deleted_at.is_(None)).order_by(Person.id)).all()
        found = [p for p in people if p.has_role(Role.SUPERVISOR)]
        if found:
            return found
    return []


def holders(session: Session, case: Case) -> list[Person]:
    """Workers who hold a task of the case, or (nobody holding) who have it on offer."""
    held = session.exec(select(Person).join(CaseTask, CaseTask.assignee_id == Person.id).where(
        CaseTask.case_id == case.id, CaseTask.status == TaskStatus.ACCEPTED)).all()
    if held:
        return list(held)
    return list(session.exec(select(Person).join(WorkOffer, WorkOffer.worker_id == Person.id).where(
        WorkOffer.case_id == case.id, WorkOffer.status == OfferStatus.OPEN)).all())


def _group_target(session: Session, case: Case, level: str) -> tuple[int, int | None] | None:
    area = _level_area(session, case, level)
    return None if area is None else supervisor_group(session, area.code, grid_code=case.grid_code)


# -- the card -----------------------------------------------------------------------------------------


def lateness(delta: timedelta, _) -> str:  # noqa: ANN001
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return _("{days} d {hours} h").format(days=days, hours=hours)
    if hours:
        return _("{hours} h {minutes} min").format(hours=hours, minutes=mins)
    return _("{minutes} min").format(minutes=mins)


def _action_label(action: str, _) -> str:  # noqa: ANN001
    labels = {
        "report": _("reported"), "register": _("registered"), "dispatch": _("dispatched"),
        "reassign": _("reassigned"), "accept": _("accepted"), "return": _("returned"),
        "complete": _("completed"), "approve": _("approved"), "reject": _("rejected for rework"),
        "request_extension": _("extension requested"), "grant_extension": _("extension granted"),
        "refuse_extension": _("extension refused"), "shelve": _("shelved"), "unshelve": _("taken off the shelf"),
        "reopen": _("reopened"), "cancel": _("cancelled"), "merge": _("merged"),
    }
    return labels.get(action, action)


def case_card(session: Session, ctx: ServiceContext, case: Case, locale: str, *, header: str) -> str:
    """The escalation card: header, what and where, deadlines and lateness, holder, history in one line each."""
    _ = gettext_for(locale)
    now = ctx.clock.now()
    category = session.exec(select(Category).where(Category.code == case.category_code)).first()
    grid = session.exec(select(Area).where(Area.code == case.grid_code)).first() if case.grid_code else None
    lines = [header,
             _("Category: {category}").format(category=html.escape(dispatch.localized(category, locale,
                                                                                      case.category_code))),
             _("Grid: {grid}").format(grid=html.escape(dispatch.localized(grid, locale, case.grid_code or "—")))]
    if case.address:
        lines.append(_("Address: {address}").format(address=html.escape(case.address)))
    if case.description:
        lines.append("«" + html.escape(case.description[:200]) + "»")
    for label, due in ((_("Accept by"), case.accept_due_at), (_("Handle by"), case.handle_due_at)):
        if due is None:
            continue
        text = f"{label}: {dispatch.local_time(due, ctx.timezone)}"
        if due < now:
            text += " · " + _("late by {late}").format(late=lateness(now - due, _))
        lines.append(text)
    people = holders(session, case)
    held = session.exec(select(CaseTask.id).where(CaseTask.case_id == case.id,
                                                  CaseTask.status == TaskStatus.ACCEPTED)).first()
    names = ", ".join(html.escape(p.display_name) for p in people)
    if held and names:
        lines.append(_("Held by: {names}").format(names=names))
    elif names:
        lines.append(_("Offered to: {names} (nobody accepted)").format(names=names))
    else:
        lines.append(_("Nobody holds it."))
    events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)
                          .order_by(CaseEvent.id.desc()).limit(HISTORY_LINES)).all()
    if events:
        lines.append(_("History:"))
        for ev in reversed(events):
            line = f"· {dispatch.local_time(ev.at, ctx.timezone)} {_action_label(ev.action, _)}"
            if ev.note:
                line += " — " + html.escape(ev.note[:80])
            lines.append(line)
    return "\n".join(lines)


def _ping_header(case: Case, step: Step, _, *, repeat: int = 0) -> str:  # noqa: ANN001
    if step.after == "accept_due":
        head = _("⏰ Case {number}: not accepted in time").format(number=case.number)
    else:
        head = _("🚨 Case {number}: handling deadline passed").format(number=case.number)
    if repeat:
        head = _("🔁 Reminder {count}: ").format(count=repeat) + head
    return head


def _ping(session: Session, ctx: ServiceContext, case: Case, step: Step, row: EscalationStep, ladder: Ladder,
          now: datetime, groups: dict) -> None:
    if step.notify == "worker":
        people = holders(session, case)
        for person in people:
            if person.telegram_user_id is None:
                continue
            _ = gettext_for(person.locale)
            text = _ping_header(case, step, _) + "\n" + _(
                "Please accept or act on it now, or ask for an extension with /extend {number}.").format(
                number=case.number)
            enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=now, person_id=person.id,
                    case_id=case.id, payload={"text": text, "parse_mode": "HTML"})
        row.notified_person_ids = [p.id for p in people]
        if not people:
            # Nobody to remind: the grid's supervisors must know instead.
            people = supervisors_at(session, case, "grid")
            _send_supervisor_pings(session, ctx, case, step, row, people, now)
        session.add(row)
        return
    people = supervisors_at(session, case, step.notify)
    _send_supervisor_pings(session, ctx, case, step, row, people, now)
    target = _group_target(session, case, step.notify)
    if target is not None:
        groups.setdefault(target, []).append((case, row))
        row.notified_chat_ids = [target[0]]
    if ladder.repeat_minutes:
        row.next_repeat_at = now + timedelta(minutes=ladder.repeat_minutes)
    if not people and target is None:
        log.warning("case %s: step %s has nobody to tell at level %s", case.number, step.code, step.notify)
    session.add(row)


def _send_supervisor_pings(session: Session, ctx: ServiceContext, case: Case, step: Step, row: EscalationStep,
                           people: list[Person], now: datetime, *, repeat: int = 0) -> None:
    for person in people:
        _ = gettext_for(person.locale)
        text = case_card(session, ctx, case, person.locale, header=_ping_header(case, step, _, repeat=repeat))
        enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=now, person_id=person.id,
                case_id=case.id, payload={"text": text, "parse_mode": "HTML",
                                          "link_preview_options": {"is_disabled": True},
                                          "reply_markup": ping_keyboard(_, case.id, row.id or 0)})
    row.notified_person_ids = sorted(set(row.notified_person_ids or []) | {p.id for p in people})


def _send_group_pings(session: Session, ctx: ServiceContext, groups: dict, now: datetime) -> None:
    """One message per group (and topic) per sweep, listing up to `escalation_group_batch` cases each."""
    locale = ctx.settings.default_locale
    _ = gettext_for(locale)
    size = max(1, ctx.settings.escalation_group_batch)
    for (chat_id, thread_id), items in groups.items():
        for start in range(0, len(items), size):
            chunk = items[start:start + size]
            extra = {"message_thread_id": thread_id} if thread_id is not None else {}
            if len(chunk) == 1:
                case, row = chunk[0]
                step = Step(row.step, "accept_due" if row.step.startswith("accept") else "handle_due", 0, row.level)
                text = case_card(session, ctx, case, locale, header=_ping_header(case, step, _, repeat=row.repeats))
                markup = ping_keyboard(_, case.id, row.id)
            else:
                lines = [_("🚨 {count} cases need attention:").format(count=len(chunk))]
                for case, row in chunk:
                    due = case.accept_due_at if row.step.startswith("accept") else case.handle_due_at
                    late = lateness(now - due, _) if due else "—"
                    lines.append(_("· {number} — late by {late}").format(number=case.number, late=late))
                text = "\n".join(lines)
                from bot.supervision_ui import batch_keyboard

                markup = batch_keyboard(_, [(case.id, row.id, case.number) for case, row in chunk])
            enqueue(session, chat_id=chat_id, method="sendMessage", now=now,
                    case_id=chunk[0][0].id if len(chunk) == 1 else None,
                    payload={"text": text, "parse_mode": "HTML", "reply_markup": markup, **extra})


def _repeat_due(session: Session, ctx: ServiceContext, policy: Policy, now: datetime, limit: int) -> int:
    query = (select(EscalationStep).where(EscalationStep.next_repeat_at <= now,
                                          EscalationStep.acknowledged_at.is_(None))
             .order_by(EscalationStep.next_repeat_at).limit(limit))
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = session.exec(query).all()
    groups: dict = {}
    for row in rows:
        case = session.get(Case, row.case_id)
        ladder = policy.for_category(case.category_code)
        step = next((s for s in ladder.steps if s.code == row.step), None)
        status = Status(case.status)
        if (step is None or not ladder.repeat_minutes or row.round != case.escalation_round
                or not applies(step, status)):
            row.next_repeat_at = None  # the reason for the ping is gone
            session.add(row)
            continue
        row.repeats += 1
        # Catch up once: the next reminder counts from now, not from the missed time.
        row.next_repeat_at = now + timedelta(minutes=ladder.repeat_minutes)
        people = [p for p in (session.get(Person, pid) for pid in row.notified_person_ids) if p is not None
                  and p.active and p.telegram_user_id is not None]
        _send_supervisor_pings(session, ctx, case, step, row, people, now, repeat=row.repeats)
        target = _group_target(session, case, row.level)
        if target is not None:
            groups.setdefault(target, []).append((case, row))
        session.add(row)
    _send_group_pings(session, ctx, groups, now)
    return len(rows)


def _review_shelved(session: Session, ctx: ServiceContext, case: Case, now: datetime, result: SweepResult) -> None:
    shelf = session.exec(select(Shelving).where(Shelving.case_id == case.id, Shelving.unshelved_at.is_(None))
                         .order_by(Shelving.id.desc())).first()
    case.next_escalation_at = None
    session.add(case)
    if shelf is None or shelf.review_pinged_at is not None or shelf.review_at > now:
        if shelf is not None and shelf.review_at > now:
            case.next_escalation_at = shelf.review_at
        return
    shelf.review_pinged_at = now
    session.add(shelf)
    from bot.supervision_ui import review_keyboard

    for person in supervisors_at(session, case, "grid"):
        _ = gettext_for(person.locale)
        header = _("📌 Case {number} is on the shelf and due for review today.").format(number=case.number)
        text = case_card(session, ctx, case, person.locale, header=header)
        text += "\n" + _("Shelved because: {reason}").format(reason=html.escape(shelf.reason))
        enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=now, person_id=person.id,
                case_id=case.id, payload={"text": text, "parse_mode": "HTML",
                                          "reply_markup": review_keyboard(_, case.id)})
    result.reviews += 1


# -- acting on a ping ---------------------------------------------------------------------------------


class SupervisionError(Exception):
    """A refusal the supervisor can be told about; nothing was written."""


class NotASupervisor(SupervisionError):
    pass


class OutsideYourArea(SupervisionError):
    pass


class NotNow(SupervisionError):
    """The case is not in a state where this can be done (e.g. closed meanwhile)."""

    def __init__(self, number: str, status: str) -> None:
        super().__init__(f"{number}: {status}")
        self.number, self.status = number, status


class NotAGridWorker(SupervisionError):
    pass


class WrongDepartment(SupervisionError):
    pass


def supervisor_and_case(session: Session, supervisor_id: int, case_id: int) -> tuple[Person, Case]:
    """The acting supervisor and the case, or a refusal: not an active supervisor, or the case is
    outside their area's subtree (a replayed button of another street's case lands here)."""
    supervisor = session.get(Person, supervisor_id)
    if supervisor is None or not supervisor.has_role(Role.SUPERVISOR) or not supervisor.active:
        raise NotASupervisor(str(supervisor_id))
    case = session.get(Case, case_id, with_for_update=session.get_bind().dialect.name == "postgresql")
    if case is None:
        raise CaseNotFound(str(case_id))
    if not dispatch.supervises(session, supervisor, case.grid_code):
        raise OutsideYourArea(case.number)
    return supervisor, case


def acknowledge(ctx: ServiceContext, *, case_id: int, step_id: int, supervisor_id: int) -> str:
    """Stop the repeats of one ping (and of every earlier unacknowledged ping of the case). Returns the case number."""
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        now = ctx.clock.now()
        session.execute(sa.update(EscalationStep).where(
            EscalationStep.case_id == case.id, EscalationStep.id <= step_id,
            EscalationStep.acknowledged_at.is_(None)).values(
            acknowledged_at=now, acknowledged_by_id=supervisor.id, next_repeat_at=None))
        return case.number


@dataclass(frozen=True)
class GridWorker:
    person_id: int
    name: str
    department_code: str | None
    on_duty: bool


def grid_workers(ctx: ServiceContext, *, case_id: int, supervisor_id: int) -> list[GridWorker]:
    """Active workers of the case's grid who could take it (its departments), on duty first."""
    with ctx.sessions() as session:
        _sup, case = supervisor_and_case(session, supervisor_id, case_id)
        departments = set(session.exec(select(CaseTask.department_code).where(CaseTask.case_id == case.id)).all())
        people = session.exec(select(Person).where(Person.area_code == case.grid_code, Person.active.is_(True),
                                                   Person.deleted_at.is_(None)).order_by(Person.id)).all()
        out = [GridWorker(p.id, p.display_name, p.department_code, p.on_duty) for p in people
               if p.has_role(Role.WORKER) and (not departments or p.department_code in departments)]
        out.sort(key=lambda w: (not w.on_duty, w.name))
        return out


_MOVABLE = frozenset({Status.REGISTERED, Status.DISPATCHED, Status.RETURNED, Status.IN_PROGRESS, Status.REWORK})


def _free_task(session: Session, ctx: ServiceContext, case: Case, task: CaseTask, reason: RetractReason) -> None:
    """Take `task` back from whoever has it on offer or holds it; they are told why (`reason`)."""
    from services.work import abandon_drafts

    now = ctx.clock.now()
    for offer in dispatch.open_offers(session, task.id):
        dispatch.retract_offer(session, ctx, offer, status=OfferStatus.WITHDRAWN, reason=reason)
    if task.status == TaskStatus.ACCEPTED and task.assignee_id is not None:
        previous = session.get(Person, task.assignee_id)
        session.execute(sa.update(WorkOffer).where(
            WorkOffer.task_id == task.id, WorkOffer.worker_id == task.assignee_id,
            WorkOffer.status == OfferStatus.ACCEPTED).values(status=OfferStatus.WITHDRAWN, closed_at=now))
        abandon_drafts(session, task.id, task.assignee_id, now)
        if previous is not None:
            ctx.publish(session, OrderWithdrawn(case_id=case.id, case_number=case.number, worker_id=previous.id,
                                                reason=reason))
    task.assignee_id, task.accepted_at, task.updated_at = None, None, now
    task.version += 1


def _unaccept(session: Session, ctx: ServiceContext, case: Case, actor: Actor, note: str) -> None:
    """Bring the case to DISPATCHED (registered/returned: dispatch; in progress/rework: reassign)."""
    status = Status(case.status)
    if status in (Status.REGISTERED, Status.RETURNED):
        apply_action_in(session, ctx, case, action=Action.DISPATCH, actor=actor, note=note)
    elif status in (Status.IN_PROGRESS, Status.REWORK):
        apply_action_in(session, ctx, case, action=Action.REASSIGN, actor=actor, note=note)
    elif status is Status.DISPATCHED:
        apply_action_in(session, ctx, case, action=Action.REASSIGN, actor=actor, note=note)


def reassign(ctx: ServiceContext, *, case_id: int, supervisor_id: int, worker_id: int) -> str:
    """Offer the case's task(s) of the worker's department to that worker of the grid alone; whoever had
    them is told. The worker accepts as with any order. Returns the case number."""
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        if Status(case.status) not in _MOVABLE:
            raise NotNow(case.number, case.status)
        worker = session.get(Person, worker_id)
        if (worker is None or not worker.has_role(Role.WORKER) or not worker.active
                or worker.area_code != case.grid_code or worker.telegram_user_id is None):
            raise NotAGridWorker(str(worker_id))
        tasks = session.exec(select(CaseTask).where(
            CaseTask.case_id == case.id, CaseTask.department_code == worker.department_code,
            CaseTask.status.in_([TaskStatus.WAITING, TaskStatus.OFFERED, TaskStatus.ACCEPTED]))).all()
        if not tasks:
            raise WrongDepartment(case.number)
        actor = Actor(Role.SUPERVISOR, supervisor.id)
        for task in tasks:
            _free_task(session, ctx, case, task, RetractReason.REASSIGNED)
            task.status = TaskStatus.OFFERED
            session.add(task)
            session.flush()
            dispatch._offer(session, ctx, case, task, worker)  # noqa: SLF001 - the same offer message as dispatch
        _unaccept(session, ctx, case, actor, f"reassigned to {worker.display_name}"[:200])
        session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=None))
        number = case.number
    ctx.on_notifications()
    return number


def take_over(ctx: ServiceContext, *, case_id: int, supervisor_id: int) -> str:
    """The supervisor takes the case on themself: they hold its tasks and become its handler, so someone
    else verifies it. They are sent the Complete button(s): they finish it with proof as a worker does
    (services/work.py lets a supervisor complete only the tasks they hold)."""
    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        if Status(case.status) not in _MOVABLE:
            raise NotNow(case.number, case.status)
        actor = Actor(Role.SUPERVISOR, supervisor.id)
        now = ctx.clock.now()
        tasks = session.exec(select(CaseTask).where(
            CaseTask.case_id == case.id,
            CaseTask.status.in_([TaskStatus.WAITING, TaskStatus.OFFERED, TaskStatus.ACCEPTED]))).all()
        for task in tasks:
            _free_task(session, ctx, case, task, RetractReason.TAKEN_OVER)
            task.status, task.assignee_id, task.accepted_at = TaskStatus.ACCEPTED, supervisor.id, now
            session.add(task)
        session.flush()
        if Status(case.status) is not Status.REWORK:
            _unaccept(session, ctx, case, actor, "taken over by the supervisor")
        apply_action_in(session, ctx, case, action=Action.ACCEPT, actor=actor)
        session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=supervisor.id))
        session.execute(sa.update(EscalationStep).where(
            EscalationStep.case_id == case.id, EscalationStep.acknowledged_at.is_(None)).values(
            acknowledged_at=now, acknowledged_by_id=supervisor.id, next_repeat_at=None))
        if supervisor.telegram_user_id is not None and tasks:
            _ = gettext_for(supervisor.locale)
            text = _("🙋 You hold case {number} now. When the work is done, press Complete and send photos and "
                     "your location on site, as a worker does; another supervisor will verify it.").format(
                number=case.number)
            enqueue(session, chat_id=supervisor.telegram_user_id, method="sendMessage", now=now,
                    person_id=supervisor.id, case_id=case.id,
                    payload={"text": text, "parse_mode": "HTML",
                             "reply_markup": tasks_list_keyboard(_, [(t.id, case.number, False) for t in tasks])})
        number = case.number
    ctx.on_notifications()
    return number


# -- the verification queue ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    case_id: int
    number: str
    category_code: str
    waiting_since: datetime | None


def subtree_grids(session: Session, area_code: str) -> list[str]:
    """Codes of `area_code` and every area below it."""
    rows = session.exec(select(Area.code, Area.parent_code)).all()
    children: dict[str | None, list[str]] = {}
    for code, parent in rows:
        children.setdefault(parent, []).append(code)
    out, stack = [], [area_code]
    while stack:
        code = stack.pop()
        out.append(code)
        stack.extend(children.get(code, []))
    return out


def verification_queue(ctx: ServiceContext, *, supervisor_id: int, limit: int = 20) -> list[QueueItem]:
    """Cases awaiting verification in the supervisor's area subtree, oldest first."""
    with ctx.sessions() as session:
        supervisor = session.get(Person, supervisor_id)
        if supervisor is None or not supervisor.has_role(Role.SUPERVISOR) or not supervisor.active \
                or supervisor.area_code is None:
            raise NotASupervisor(str(supervisor_id))
        codes = subtree_grids(session, supervisor.area_code)
        rows = session.exec(select(Case).where(Case.status == Status.AWAITING_VERIFICATION,
                                               Case.grid_code.in_(codes))
                            .order_by(Case.updated_at, Case.id).limit(limit)).all()
        return [QueueItem(c.id, c.number, c.category_code, c.updated_at) for c in rows]


def open_proof_card(ctx: ServiceContext, *, case_id: int, supervisor_id: int) -> str:
    """Send the worker issue's proof card (Approve / Reject, then the photos) of one queued case to the supervisor."""
    from services.verification import OwnWork, handled_by, proof_card, render_card

    with transaction(ctx.sessions) as session:
        supervisor, case = supervisor_and_case(session, supervisor_id, case_id)
        if Status(case.status) is not Status.AWAITING_VERIFICATION:
            raise NotNow(case.number, case.status)
        if supervisor.id in handled_by(session, case):
            raise OwnWork(case.number)
        now = ctx.clock.now()
        card = proof_card(session, case, supervisor.locale)
        _ = gettext_for(supervisor.locale)
        message = enqueue(session, chat_id=supervisor.telegram_user_id, method="sendMessage", now=now,
                          person_id=supervisor.id, case_id=case.id,
                          payload={"text": render_card(card, supervisor.locale, ctx.timezone), "parse_mode": "HTML",
                                   "reply_markup": verify_keyboard(_, case.id, case.version)})
        due = now
        paths = [path for part in card.parts for path in part.photo_paths]
        for index, path in enumerate(paths, start=1):
            due += timedelta(seconds=ctx.settings.delivery_chat_interval_s)
            photo = enqueue(session, chat_id=supervisor.telegram_user_id, method="sendPhoto", now=now,
                            person_id=supervisor.id, case_id=case.id,
                            payload={"photo_path": path, "caption": _("Proof {index}/{total} · {number}").format(
                                index=index, total=len(paths), number=case.number)})
            photo.next_attempt_at = due
        session.flush()
        session.add(VerificationRequest(case_id=case.id, supervisor_id=supervisor.id, case_version=case.version,
                                        status=VerificationStatus.OPEN, notification_id=message.id, created_at=now))
        number = case.number
    ctx.on_notifications()
    return number


def p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]
