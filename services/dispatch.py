"""Dispatch (派遣): choosing who handles a registered case, and offering it to them.

`dispatch_new_case` runs inside the registering transaction (services/cases.py), so a case,
its tasks, its offers and the work-order messages commit together or not at all.

What callers may rely on:
- A case gets one `CaseTask` per department of its category (the category's own department
  first, then `extra_departments`: 联勤联动); each task is dispatched on its own.
- A task is offered to the on-duty, active workers of its department whose area is the case's
  grid, least open orders first (ties: fewer open offers, then the longest-serving), at most
  `settings.dispatch_offer_limit` of them. With nobody there, the parent area's pool (workers
  whose area is the grid's street) is tried; with nobody there either, the task waits and the
  nearest supervisors of the area are told (an `Escalation` row records whom).
- A patrol case (source PATROL) reported by an active worker is assigned to that worker at
  once (dispatched and accepted in the same transaction); other departments are offered as usual.
- The case moves REGISTERED/RETURNED → DISPATCHED as soon as any task is offered.
- A work order is a text message with the buttons (sent at once), then the resident's photo and
  the location as a Telegram venue or location, each queued two per-chat intervals later: Telegram
  allows one message a second per chat anyway, and the sender should not wait on a chat's pace.
- Reporter details in a work order are masked (`mask_name`, `mask_phone`); a username never appears.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, func, select

from bot.worker_ui import Gettext, offer_keyboard, task_keyboard
from models.lifecycle import OPEN, Action, Actor, Role, Status
from models.tables import (
    Area,
    AreaLevel,
    Case,
    CaseSource,
    Category,
    Department,
    Notification,
    NotificationStatus,
    Person,
    Photo,
)
from models.events.work import OfferRetracted, RetractReason
from models.work import CaseTask, Escalation, EscalationReason, OfferStatus, TaskStatus, WorkOffer
from onegrid.i18n import gettext_for
from services.areas import area_chain, supervisor_group
from services.context import ServiceContext
from services.notify import enqueue
from services.privacy import mask_name, mask_phone

log = logging.getLogger(__name__)

_NO_PREVIEW = {"is_disabled": True}


# -- names in the reader's language -------------------------------------------------------------


def localized(row: Area | Category | Department | None, locale: str, fallback: str = "") -> str:
    """The Chinese name for zh_CN readers, the English one (when there is one) for everybody else."""
    if row is None:
        return fallback
    if locale.startswith("zh") or not row.name_en:
        return row.name
    return row.name_en


def _department(session: Session, code: str) -> Department | None:
    return session.exec(select(Department).where(Department.code == code)).first()


def department_name(session: Session, code: str, locale: str) -> str:
    return localized(_department(session, code), locale, code)


def local_time(at: datetime | None, timezone: str) -> str:
    """`11-21 10:30` in the city's time zone (deadlines are read by people in the city)."""
    if at is None:
        return "—"
    return at.astimezone(ZoneInfo(timezone)).strftime("%m-%d %H:%M")


# -- masking ------------------------------------------------------------------------------------


# -- links --------------------------------------------------------------------------------------


def navigation_links(lat: float, lon: float, label: str) -> list[tuple[str, str]]:
    """(name, url) pairs that open turn-by-turn navigation to the point (WGS-84 coordinates)."""
    from urllib.parse import quote

    return [
        ("amap", f"https://uri.amap.com/marker?position={lon:.6f},{lat:.6f}&name={quote(label)}"
                 "&coordinate=wgs84&callnative=1"),
        ("google", f"https://www.google.com/maps/search/?api=1&query={lat:.6f},{lon:.6f}"),
    ]


# -- the work-order text --------------------------------------------------------------------------


def order_text(session: Session, ctx: ServiceContext, case: Case, task: CaseTask, locale: str, *,
               header: str) -> str:
    """The work order as a worker reads it, in `locale`; `header` is its first line (already translated)."""
    _ = gettext_for(locale)
    category = session.exec(select(Category).where(Category.code == case.category_code)).first()
    grid = session.exec(select(Area).where(Area.code == case.grid_code)).first() if case.grid_code else None
    others = session.exec(
        select(CaseTask.department_code).where(CaseTask.case_id == case.id, CaseTask.id != task.id)
        .order_by(CaseTask.id)
    ).all()
    lines = [
        header,
        _("Category: {category}").format(category=html.escape(localized(category, locale, case.category_code))),
        _("Department: {department}").format(department=html.escape(department_name(session, task.department_code,
                                                                                    locale))),
    ]
    if others:
        names = ", ".join(html.escape(department_name(session, code, locale)) for code in others)
        lines.append(_("Joint handling with: {departments}").format(departments=names))
    lines.append(_("Grid: {grid}").format(grid=html.escape(localized(grid, locale, case.grid_code or "—"))))
    if case.address:
        lines.append(_("Address: {address}").format(address=html.escape(case.address)))
    if case.description:
        lines.append(_("Description: {description}").format(description=html.escape(case.description[:1500])))
    lines.append(_("Accept by: {accept} · Handle by: {handle}").format(
        accept=local_time(case.accept_due_at, ctx.timezone), handle=local_time(case.handle_due_at, ctx.timezone)))
    lines.append(_reporter_line(session, case, _))
    links = dict(navigation_links(case.lat, case.lon, case.number))
    amap, google = _("Amap"), _("Google Maps")
    lines.append(_("Navigate: {amap} · {google}").format(
        amap=f'<a href="{html.escape(links["amap"])}">{amap}</a>',
        google=f'<a href="{html.escape(links["google"])}">{google}</a>'))
    return "\n".join(lines)


def _reporter_line(session: Session, case: Case, _: Gettext) -> str:
    if case.source != CaseSource.RESIDENT:
        sources = {
            CaseSource.PATROL: _("patrol"),
            CaseSource.CAMERA: _("camera"),
            CaseSource.SENSOR: _("sensor"),
            CaseSource.HOTLINE: _("12345 hotline"),
            CaseSource.UPSTREAM: _("city platform"),
        }
        return _("Source: {source}").format(source=sources.get(CaseSource(case.source), case.source))
    reporter = session.get(Person, case.reporter_id) if case.reporter_id else None
    if reporter is None or reporter.deleted_at is not None:
        return _("Reporter: anonymous")
    details = mask_name(reporter.display_name) or "—"
    if reporter.phone:
        details += " · " + mask_phone(reporter.phone)
    return _("Reporter: {reporter}").format(reporter=html.escape(details))


# -- who can take a task ------------------------------------------------------------------------


def find_workers(session: Session, *, area_code: str, department_code: str, exclude: Iterable[int] = (),
                 limit: int | None = None) -> list[Person]:
    """On-duty, active, reachable workers of `department_code` in `area_code`, least loaded first."""
    excluded = set(exclude)
    rows = session.exec(
        select(Person).where(
            Person.area_code == area_code,
            Person.department_code == department_code,
            Person.on_duty.is_(True),
            Person.active.is_(True),
            Person.telegram_user_id.is_not(None),
            Person.deleted_at.is_(None),
            Person.blocked_bot_at.is_(None),
        )
    ).all()
    workers = [p for p in rows if p.has_role(Role.WORKER) and p.id not in excluded]
    if not workers:
        return []
    ids = [w.id for w in workers]
    open_case = Case.status.in_([s.value for s in OPEN])  # a case ended elsewhere is nobody's load
    held = dict(session.exec(
        select(CaseTask.assignee_id, func.count()).join(Case, Case.id == CaseTask.case_id)
        .where(CaseTask.assignee_id.in_(ids), CaseTask.status == TaskStatus.ACCEPTED, open_case)
        .group_by(CaseTask.assignee_id)
    ).all())
    offered = dict(session.exec(
        select(WorkOffer.worker_id, func.count()).join(Case, Case.id == WorkOffer.case_id)
        .where(WorkOffer.worker_id.in_(ids), WorkOffer.status == OfferStatus.OPEN, open_case)
        .group_by(WorkOffer.worker_id)
    ).all())
    workers.sort(key=lambda w: (held.get(w.id, 0), offered.get(w.id, 0), w.id))
    return workers if limit is None else workers[:limit]


def handed_back_by(session: Session, task_id: int) -> set[int]:
    """Workers who returned this task (before or after accepting); it is not offered to them again."""
    return set(session.exec(
        select(WorkOffer.worker_id).where(
            WorkOffer.task_id == task_id, WorkOffer.status.in_([OfferStatus.DECLINED, OfferStatus.RETURNED])
        )
    ).all())


def supervisors_of(session: Session, area_code: str | None, *, exclude: Iterable[int] = ()) -> list[Person]:
    """Active supervisors of the nearest level of `area_code`'s chain (grid → street → district → city) that has any."""
    if area_code is None:
        return []
    excluded = set(exclude)
    for area in area_chain(session, area_code):
        people = session.exec(
            select(Person).where(
                Person.area_code == area.code,
                Person.active.is_(True),
                Person.telegram_user_id.is_not(None),
                Person.deleted_at.is_(None),
            ).order_by(Person.id)
        ).all()
        found = [p for p in people if p.has_role(Role.SUPERVISOR) and p.id not in excluded]
        if found:
            return found
    return []


def supervises(session: Session, supervisor: Person, area_code: str | None) -> bool:
    """Whether `supervisor`'s area is `area_code` or one of its ancestors."""
    if not supervisor.has_role(Role.SUPERVISOR) or not supervisor.active or supervisor.area_code is None:
        return False
    if area_code is None:
        return False
    return any(a.code == supervisor.area_code for a in area_chain(session, area_code))


# -- offering -----------------------------------------------------------------------------------


def dispatch_new_case(session: Session, ctx: ServiceContext, case: Case) -> None:
    """Create the case's tasks and offer them (or assign a patrol case to its reporter) within `session`."""
    if case.grid_code is None:
        return  # no grid map was loaded: the case waits, registered, for a dispatcher
    category = session.exec(select(Category).where(Category.code == case.category_code)).one()
    now = ctx.clock.now()
    tasks = [
        CaseTask(case_id=case.id, department_code=code, lead=index == 0, status=TaskStatus.WAITING,
                 created_at=now, updated_at=now)
        for index, code in enumerate(departments_for(category))
    ]
    session.add_all(tasks)
    session.flush()
    remaining = tasks
    if case.source == CaseSource.PATROL and _assign_to_reporter(session, ctx, case, tasks[0]):
        remaining = tasks[1:]
    for task in remaining:
        offer_task(session, ctx, case, task)
    ensure_dispatched(session, ctx, case)


def departments_for(category: Category) -> list[str]:
    """The category's department, then its joint-handling departments, each once."""
    seen: list[str] = []
    for code in [category.department_code, *(category.extra_departments or [])]:
        if code and code not in seen:
            seen.append(code)
    return seen


def offer_task(session: Session, ctx: ServiceContext, case: Case, task: CaseTask, *,
               escalate_when_nobody: bool = True) -> list[WorkOffer]:
    """Offer `task` to the best workers (grid first, then the parent area's pool), or let it wait and escalate.

    Workers who handed this task back are skipped. Returns the offers made (empty when it waits).
    """
    exclude = handed_back_by(session, task.id)
    limit = max(1, ctx.settings.dispatch_offer_limit)
    workers = find_workers(session, area_code=case.grid_code, department_code=task.department_code,
                           exclude=exclude, limit=limit)
    if not workers:
        parent = _parent_code(session, case.grid_code)
        if parent is not None:
            workers = find_workers(session, area_code=parent, department_code=task.department_code,
                                   exclude=exclude, limit=limit)
    now = ctx.clock.now()
    task.updated_at = now
    task.version += 1
    if not workers:
        task.status = TaskStatus.WAITING
        session.add(task)
        if escalate_when_nobody:
            escalate(session, ctx, case, task, EscalationReason.NO_WORKER)
        return []
    task.status = TaskStatus.OFFERED
    session.add(task)
    return [_offer(session, ctx, case, task, worker) for worker in workers]


def _parent_code(session: Session, area_code: str | None) -> str | None:
    if area_code is None:
        return None
    return session.exec(select(Area.parent_code).where(Area.code == area_code)).first()


def _offer(session: Session, ctx: ServiceContext, case: Case, task: CaseTask, worker: Person) -> WorkOffer:
    now = ctx.clock.now()
    offer = WorkOffer(case_id=case.id, task_id=task.id, worker_id=worker.id, status=OfferStatus.OPEN,
                      created_at=now)
    session.add(offer)
    session.flush()
    _ = gettext_for(worker.locale)
    text = order_text(session, ctx, case, task, worker.locale,
                      header=_("🆕 Work order {number}").format(number=case.number))
    message = enqueue(session, chat_id=worker.telegram_user_id, method="sendMessage", now=now,
                      person_id=worker.id, case_id=case.id,
                      payload={"text": text, "parse_mode": "HTML", "link_preview_options": _NO_PREVIEW,
                               "reply_markup": offer_keyboard(_, offer.id)})
    follow_ups = work_order_attachments(session, ctx, case, worker, first_at=now)
    session.flush()
    offer.message_notification_id = message.id
    offer.follow_up_notification_ids = [n.id for n in follow_ups]
    session.add(offer)
    return offer


def work_order_attachments(session: Session, ctx: ServiceContext, case: Case, worker: Person, *,
                           first_at: datetime) -> list[Notification]:
    """Queue the resident's photo and the case location for `worker`, two per-chat intervals apart.

    Telegram takes one message a second per chat; the work order itself may leave the queue up to
    a second after `first_at`, so each follow-up is queued two intervals after the one before: it is
    then sent when due instead of holding the sender back on the chat's pace.
    """
    _ = gettext_for(worker.locale)
    step = timedelta(seconds=2 * ctx.settings.delivery_chat_interval_s)
    due = first_at
    queued: list[Notification] = []

    def add(method: str, payload: dict) -> None:
        nonlocal due
        due += step
        row = enqueue(session, chat_id=worker.telegram_user_id, method=method, payload=payload, now=first_at,
                      person_id=worker.id, case_id=case.id)
        row.next_attempt_at = due  # Telegram takes one message a second per chat: queue it for then
        queued.append(row)

    photo = report_photo(session, ctx, case)
    if photo is not None:
        add("sendPhoto", {"photo_path": photo.path, "parse_mode": "HTML",
                          "caption": _("Resident's photo · {number}").format(number=case.number)})
    category = session.exec(select(Category).where(Category.code == case.category_code)).first()
    title = f"{case.number} · {localized(category, worker.locale, case.category_code)}"[:128]
    if case.address:
        add("sendVenue", {"latitude": case.lat, "longitude": case.lon, "title": title,
                          "address": case.address[:256]})
    else:
        add("sendLocation", {"latitude": case.lat, "longitude": case.lon})
    return queued


def report_photo(session: Session, ctx: ServiceContext, case: Case) -> Photo | None:
    """The reporter's first photo whose cleaned copy is on disk (only that copy is ever sent on)."""
    photos = session.exec(
        select(Photo).where(Photo.case_id == case.id, Photo.purpose == "report").order_by(Photo.id)
    ).all()
    for photo in photos:
        if (ctx.settings.data_dir / photo.path).is_file():
            return photo
    return None


def ensure_dispatched(session: Session, ctx: ServiceContext, case: Case) -> None:
    """Move a registered or returned case to DISPATCHED once any of its tasks is offered or held."""
    from services.cases import apply_action_in

    if Status(case.status) not in (Status.REGISTERED, Status.RETURNED):
        return
    active = session.exec(
        select(func.count()).select_from(CaseTask).where(
            CaseTask.case_id == case.id, CaseTask.status.in_([TaskStatus.OFFERED, TaskStatus.ACCEPTED])
        )
    ).one()
    if active:
        apply_action_in(session, ctx, case, action=Action.DISPATCH, actor=Actor(Role.SYSTEM))


def _assign_to_reporter(session: Session, ctx: ServiceContext, case: Case, task: CaseTask) -> bool:
    """A worker's own patrol report: theirs at once, no offers. False when the reporter is not an active worker."""
    from services.cases import apply_action_in

    reporter = session.get(Person, case.reporter_id) if case.reporter_id else None
    if reporter is None or not reporter.active or not reporter.has_role(Role.WORKER):
        return False
    now = ctx.clock.now()
    apply_action_in(session, ctx, case, action=Action.DISPATCH, actor=Actor(Role.SYSTEM))
    apply_action_in(session, ctx, case, action=Action.ACCEPT, actor=Actor(Role.WORKER, reporter.id))
    session.execute(sa.update(Case).where(Case.id == case.id).values(assignee_id=reporter.id))
    task.status, task.assignee_id, task.accepted_at, task.updated_at = TaskStatus.ACCEPTED, reporter.id, now, now
    task.version += 1
    session.add(task)
    session.add(WorkOffer(case_id=case.id, task_id=task.id, worker_id=reporter.id, status=OfferStatus.ACCEPTED,
                          created_at=now, closed_at=now))
    if reporter.telegram_user_id is not None:
        _ = gettext_for(reporter.locale)
        text = order_text(session, ctx, case, task, reporter.locale,
                          header=_("📋 Your patrol report is case {number}, assigned to you.").format(
                              number=case.number))
        text += "\n\n" + _("Press Complete when the problem is solved.")
        enqueue(session, chat_id=reporter.telegram_user_id, method="sendMessage", now=now, person_id=reporter.id,
                case_id=case.id, payload={"text": text, "parse_mode": "HTML", "link_preview_options": _NO_PREVIEW,
                                          "reply_markup": task_keyboard(_, task.id)})
    return True


# -- taking offers back ---------------------------------------------------------------------------


def retract_offer(session: Session, ctx: ServiceContext, offer: WorkOffer, *, status: OfferStatus,
                  reason: RetractReason, note: str | None = None) -> None:
    """Close `offer` with `status` and publish `OfferRetracted`, whose renderers correct the worker's copy."""
    offer.status, offer.closed_at = status, ctx.clock.now()
    if note is not None:
        offer.note = note
    session.add(offer)
    case = session.get(Case, offer.case_id)
    ctx.publish(session, OfferRetracted(offer_id=offer.id, case_id=offer.case_id, case_number=case.number,
                                        worker_id=offer.worker_id, reason=reason))


def open_offers(session: Session, task_id: int) -> list[WorkOffer]:
    return list(session.exec(
        select(WorkOffer).where(WorkOffer.task_id == task_id, WorkOffer.status == OfferStatus.OPEN)
        .order_by(WorkOffer.id)
    ).all())


# -- escalation and picking up waiting work ---------------------------------------------------------


def escalate(session: Session, ctx: ServiceContext, case: Case, task: CaseTask | None,
             reason: EscalationReason, *, exclude: Iterable[int] = ()) -> Escalation:
    """Record that nobody could be found for `case` and tell the nearest supervisors (and the area's group)."""
    now = ctx.clock.now()
    people = supervisors_of(session, case.grid_code, exclude=exclude)
    group = supervisor_group(session, case.grid_code, grid_code=case.grid_code) if case.grid_code else None
    chat_ids = [group[0]] if group else []
    row = Escalation(case_id=case.id, task_id=task.id if task else None, area_code=case.grid_code, reason=reason,
                     notified_person_ids=[p.id for p in people], notified_chat_ids=chat_ids, created_at=now)
    session.add(row)
    for person in people:
        enqueue(session, chat_id=person.telegram_user_id, method="sendMessage", now=now, person_id=person.id,
                case_id=case.id, payload={"text": _escalation_text(session, case, task, reason, person.locale),
                                          "parse_mode": "HTML"})
    if group is not None:
        payload = {"text": _escalation_text(session, case, task, reason, ctx.settings.default_locale),
                   "parse_mode": "HTML"}
        if group[1] is not None:  # the forum topic bound to the case's grid or an area above it
            payload["message_thread_id"] = group[1]
        enqueue(session, chat_id=group[0], method="sendMessage", now=now, case_id=case.id, payload=payload)
    if not people and not chat_ids:
        log.warning("case %s: %s and no supervisor to tell in %s", case.number, reason.value, case.grid_code)
    return row


def _escalation_text(session: Session, case: Case, task: CaseTask | None, reason: EscalationReason,
                     locale: str) -> str:
    _ = gettext_for(locale)
    category = session.exec(select(Category).where(Category.code == case.category_code)).first()
    grid = session.exec(select(Area).where(Area.code == case.grid_code)).first()
    lines = []
    if reason is EscalationReason.NO_WORKER:
        lines.append(_("⚠️ No worker available for case {number}").format(number=case.number))
        lines.append(_("Category: {category}").format(category=html.escape(localized(category, locale,
                                                                                    case.category_code))))
        if task is not None:
            lines.append(_("Department: {department}").format(
                department=html.escape(department_name(session, task.department_code, locale))))
        lines.append(_("Grid: {grid}").format(grid=html.escape(localized(grid, locale, case.grid_code or "—"))))
        lines.append(_("Nobody of this department is on duty in the grid or its street. The order goes to the "
                       "first such worker who comes on duty; call someone in if it cannot wait."))
    else:
        lines.append(_("⚠️ Case {number} awaits verification, but no supervisor of the area can verify it "
                       "(the only ones handled it).").format(number=case.number))
    return "\n".join(lines)


def pick_up_waiting(session: Session, ctx: ServiceContext, worker: Person, *, limit: int = 20) -> int:
    """Offer waiting tasks of `worker`'s department and area to the workers now available; returns how many."""
    if worker.area_code is None or worker.department_code is None:
        return 0
    grids = [worker.area_code, *session.exec(
        select(Area.code).where(Area.parent_code == worker.area_code, Area.level == AreaLevel.GRID)
    ).all()]
    rows = session.exec(
        select(CaseTask, Case).join(Case, Case.id == CaseTask.case_id).where(
            CaseTask.status == TaskStatus.WAITING,
            CaseTask.department_code == worker.department_code,
            Case.grid_code.in_(grids),
            Case.status.in_([s.value for s in OPEN]),
        ).order_by(Case.created_at, CaseTask.id).limit(limit)
    ).all()
    picked = 0
    now = ctx.clock.now()
    for task, case in rows:
        if offer_task(session, ctx, case, task, escalate_when_nobody=False):
            picked += 1
            session.execute(sa.update(Escalation).where(
                Escalation.task_id == task.id, Escalation.resolved_at.is_(None)).values(resolved_at=now))
            ensure_dispatched(session, ctx, case)
    return picked


__all__ = [
    "departments_for",
    "dispatch_new_case",
    "ensure_dispatched",
    "escalate",
    "find_workers",
    "offer_task",
    "order_text",
    "pick_up_waiting",
    "retract_offer",
    "supervises",
    "supervisors_of",
]
