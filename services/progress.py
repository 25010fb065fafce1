"""Progress notes: the holder of a task says how it goes ("arrived", "waiting for materials", "needs
another department", or their own words).

What callers may rely on:
- Only the worker (or supervisor) holding the task, while it is accepted and its case open, may post;
  anyone else gets `NotYourOrder` / `TaskNotOpen` and nothing is written.
- One transaction: the `ProgressNote` row (the worker's words as written), an audit `CaseEvent`
  (action PROGRESS, status unchanged, the words masked) and `ProgressNoted`, whose renderers confirm
  to the worker and, for "needs another department", tell the case's supervisors.
- Readers (`recent_notes`) get the text masked (`services.privacy.mask_text`) and no worker identity:
  the resident's /my and the staff cards show the same note.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from models.events.field import ProgressNoted
from models.field import ProgressKind, ProgressNote
from models.lifecycle import OPEN, Action, Actor, Status
from models.tables import Case
from models.work import CaseTask, TaskStatus
from services.context import ServiceContext
from services.db import transaction
from services.privacy import mask_text
from services.work_common import NotYourOrder, TaskNotOpen, completing_role, note_event, task_holder

MAX_NOTE = 500


class NoteRequired(Exception):
    """A free-text note with no text in it; nothing was written."""


@dataclass(frozen=True)
class ProgressResult:
    case_number: str
    kind: ProgressKind


@dataclass(frozen=True)
class NoteLine:
    at: datetime
    kind: ProgressKind
    text: str  # masked; "" for the quick kinds


def clean_note(text: str | None) -> str:
    """The note on one line, at most MAX_NOTE characters; NoteRequired when empty."""
    cleaned = " ".join((text or "").split())
    if not cleaned:
        raise NoteRequired()
    return cleaned[:MAX_NOTE]


def post_progress(ctx: ServiceContext, *, worker_id: int, task_id: int, kind: ProgressKind,
                  text: str | None = None) -> ProgressResult:
    """Record a progress note on a task the worker holds (see the module docstring)."""
    words = clean_note(text) if kind is ProgressKind.TEXT else None
    with transaction(ctx.sessions) as session:
        person = task_holder(session, worker_id)
        task = session.get(CaseTask, task_id)
        if task is None or task.assignee_id != person.id:
            raise NotYourOrder(str(task_id))
        case = session.get(Case, task.case_id)
        if task.status != TaskStatus.ACCEPTED or Status(case.status) not in OPEN:
            raise TaskNotOpen(case.number, task.status)
        note = ProgressNote(case_id=case.id, task_id=task.id, worker_id=person.id, kind=kind, text=words,
                            created_at=ctx.clock.now())
        session.add(note)
        session.flush()
        audit = f"{task.department_code}: {kind.value}" + (f": {mask_text(words)}" if words else "")
        note_event(session, ctx, case, Action.PROGRESS, Actor(completing_role(person), person.id), audit)
        ctx.publish(session, ProgressNoted(note_id=note.id, case_id=case.id, task_id=task.id, worker_id=person.id,
                                           kind=kind.value))
        number = case.number
    ctx.on_notifications()
    return ProgressResult(number, kind)


def recent_notes(session: Session, case_id: int, *, limit: int = 3) -> list[NoteLine]:
    """The case's latest progress notes, oldest of them first, text masked, without who wrote them."""
    rows = session.exec(select(ProgressNote).where(ProgressNote.case_id == case_id)
                        .order_by(ProgressNote.id.desc()).limit(limit)).all()
    return [NoteLine(r.created_at, ProgressKind(r.kind), mask_text(r.text)) for r in reversed(rows)]
