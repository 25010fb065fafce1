"""Patrol reports (巡查上报): a grid worker on duty files a problem they found, as a case that is theirs at once.

The draft is the resident's report draft (services/report_draft.py, `patrol` set), filled in by the same
conversation steps, so the photos, the grid lookup and the location checks are the resident's; only the
start and the submission differ. Submission reuses the resident's photo cleaning and idempotent receipt
(services/reporting.py).

What callers may rely on:
- `submit_patrol_report` opens at most one case per (worker, draft), like `reporting.submit_report`:
  a second press returns the first case (`Submitted.created` False).
- The case has source PATROL and the worker as its reporter. There is no consent to give and no
  follower row, so no 回访 question ever reaches the worker (services/followers.py asks followers).
- Kept (the default): dispatch (services/dispatch.py `assign_to_reporter`) makes it the worker's
  accepted order, in progress, offered to nobody. Handed to dispatch: it is offered to the pool like any
  case, never to its finder. Either way `PatrolReportFiled` answers the worker in the same transaction.
- Only an active worker on duty files one (NotAWorker, WorkerInactive, OffDuty); nothing is written then.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.events.patrol import PatrolReportFiled
from models.events.resident import ReplyTo
from models.lifecycle import Actor, Role
from models.patrol import PatrolReport
from models.resident import ReportKind, ReportReceipt
from models.tables import Case, CaseSource, Category, Person
from services import cases, reporting
from services.context import ServiceContext
from services.report_draft import CategoryUnavailable, DraftIncomplete, ReportDraft
from services.reporting import Submitted
from services.work_common import WorkError, active_worker


class OffDuty(WorkError):
    """Patrol reports are filed on duty: the worker should send /duty first."""


def _patroller(session: Session, worker_id: int) -> Person:
    worker = active_worker(session, worker_id)
    if not worker.on_duty:
        raise OffDuty(str(worker_id))
    return worker


def patrol_allowed(ctx: ServiceContext, *, worker_id: int) -> None:
    """Raise NotAWorker, WorkerInactive or OffDuty unless `worker_id` may file a patrol report now."""
    with ctx.sessions() as session:
        _patroller(session, worker_id)


def submit_patrol_report(ctx: ServiceContext, *, worker_id: int, draft: ReportDraft, photos: Sequence[bytes],
                         hand_to_dispatch: bool = False, reply_to: ReplyTo | None = None) -> Submitted:
    """Register the patrol draft as a case (立案) and queue it for dispatch; see the module docstring.

    `photos` are the draft's pictures' bytes, in draft order. Refusals raise before anything is
    written: DraftIncomplete, CategoryUnavailable, `cases.OutsideGrid`, PhotoRejected, or a WorkError.
    """
    reply_to = reply_to or ReplyTo(draft.chat_id)
    if draft.category is None or not draft.located:
        raise DraftIncomplete(draft.draft_id)
    if len(photos) != len(draft.photos):
        raise ValueError("one picture per draft photo is needed")
    existing = reporting.receipt_for(ctx, person_id=worker_id, draft_id=draft.draft_id)
    if existing is not None:
        return existing
    patrol_allowed(ctx, worker_id=worker_id)  # before cleaning photos: an off-duty press costs nothing
    stored = reporting.clean_all(ctx, photos)
    outcome: list[Submitted] = []

    def attach(session: Session, case: Case) -> None:
        _patroller(session, worker_id)  # again in the transaction: /duty may have come meanwhile
        category = session.exec(select(Category).where(Category.code == case.category_code)).one()
        if category.photo_required and not draft.photos:
            raise DraftIncomplete(f"{draft.draft_id}: {category.code} needs a photo")
        now = ctx.clock.now()
        session.add(ReportReceipt(person_id=worker_id, draft_id=draft.draft_id, case_id=case.id,
                                  kind=ReportKind.NEW_CASE, created_at=now))
        session.add(PatrolReport(case_id=case.id, finder_id=worker_id, handed_to_dispatch=hand_to_dispatch,
                                 created_at=now))
        reporting.add_photos(session, case_id=case.id, person_id=worker_id, draft=draft, stored=stored, now=now)
        session.flush()  # the unique (person, draft) receipt stops a concurrent second press here
        ctx.publish(session, PatrolReportFiled(case_id=case.id, number=case.number, worker_id=worker_id,
                                               handed_to_dispatch=hand_to_dispatch, reply_to=reply_to))
        outcome.append(Submitted(case.id, case.number, True, ReportKind.NEW_CASE, case.handle_due_at))

    try:
        cases.report_case(
            ctx, actor=Actor(Role.WORKER, worker_id), source=CaseSource.PATROL, category_code=draft.category,
            lat=draft.lat, lon=draft.lon, description=draft.description or "", before_dispatch=attach,
        )
    except IntegrityError:
        again = reporting.receipt_for(ctx, person_id=worker_id, draft_id=draft.draft_id)
        if again is None:
            reporting.forget_originals(ctx, stored)
            raise
        return again
    except cases.UnknownCategory as exc:
        reporting.forget_originals(ctx, stored)
        raise CategoryUnavailable(draft.category) from exc
    except Exception:
        reporting.forget_originals(ctx, stored)
        raise
    return outcome[0]


__all__ = ["OffDuty", "patrol_allowed", "submit_patrol_report"]
