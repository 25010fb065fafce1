"""A worker's list of orders (/tasks): what they hold and what is offered to them. Read-only."""

from __future__ import annotations

from services.names import localized
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import select

from models.lifecycle import OPEN
from models.tables import Case, Category
from models.work import CaseTask, OfferStatus, TaskStatus, WorkOffer
from services.context import ServiceContext
from services.work_common import active_worker


@dataclass(frozen=True)
class OrderLine:
    task_id: int
    offer_id: int | None
    case_number: str
    category_code: str
    category_name: str  # the category's stored name in the worker's language
    case_status: str
    task_status: str
    handle_due_at: datetime | None
    overdue: bool
    address: str | None


@dataclass(frozen=True)
class OrdersView:
    held: list[OrderLine]  # accepted (or awaiting verification), overdue first, then by deadline
    offered: list[OrderLine]  # open offers the worker has not answered


def open_orders(ctx: ServiceContext, *, worker_id: int) -> OrdersView:
    """The worker's orders: held ones (overdue first, then by deadline) and offers not yet answered."""
    with ctx.sessions() as session:
        worker = active_worker(session, worker_id)
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
        names = {c.code: localized(c, worker.locale, c.code) for c in session.exec(select(Category))}

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
