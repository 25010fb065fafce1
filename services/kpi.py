"""KPIs (综合评价) for an area subtree and a period [start, end).

Definitions callers may rely on (cancelled and merged cases never count):
- registered: cases created in the period.
- closed: cases whose (latest) closure falls in the period.
- due: cases whose handling deadline falls in the period; closure rate (结案率) = due cases closed
  by the end of the period ÷ due cases.
- on-time closure rate (按期结案率): closed cases closed no later than their handling deadline ÷ closed.
- rework rate (返工率): closed cases that were ever rejected at verification or reopened ÷ closed.
- extension rate (延期率): closed cases with a granted extension ÷ closed.
- time to accept: first ACCEPT event − creation, for cases registered in the period and accepted;
  time to close: closure − creation for closed cases; mean and p90 (nearest rank), in hours.
- satisfaction: residents' ratings (1–5) given in the period: mean; dissatisfaction rate (回访不满意率)
  = answers in the period saying "not fixed" or rating ≤ 2 ÷ answers in the period.
- worst grids: grids of the subtree by overdue open cases now, then by lowest closure rate.
- patrol (主动发现): cases registered in the period that a grid worker found on patrol; the patrol share
  of the area, of each grid and of each worker (services/kpi_patrol.py says how).
Rates are None when their denominator is 0. Drills (`Case.drill`, 演练) count nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from models.lifecycle import OPEN, Action, Role, Status
from models.resident import CaseFeedback
from models.supervision import Extension, ExtensionStatus
from models.tables import Case, CaseEvent, Person
from services.context import ServiceContext
from services import kpi_patrol
from services.escalation import NotASupervisor, p90, subtree_grids

EXCLUDED = (Status.CANCELLED, Status.MERGED)
PERIODS = ("today", "7d", "30d")


@dataclass(frozen=True)
class GridRow:
    grid_code: str
    open_overdue: int
    due: int
    closed_of_due: int

    @property
    def closure_rate(self) -> float | None:
        return self.closed_of_due / self.due if self.due else None


@dataclass
class Kpis:
    area_code: str
    start: datetime
    end: datetime
    registered: int = 0
    closed: int = 0
    due: int = 0
    closed_of_due: int = 0
    closed_on_time: int = 0
    reworked: int = 0
    extended: int = 0
    accept_hours: list[float] = field(default_factory=list)
    close_hours: list[float] = field(default_factory=list)
    ratings: list[int] = field(default_factory=list)
    answers: int = 0
    dissatisfied: int = 0
    worst_grids: list[GridRow] = field(default_factory=list)
    patrol: int = 0
    patrol_grids: list[kpi_patrol.PatrolGrid] = field(default_factory=list)
    patrol_workers: list[kpi_patrol.PatrolWorker] = field(default_factory=list)

    @staticmethod
    def _rate(a: int, b: int) -> float | None:
        return a / b if b else None

    @property
    def closure_rate(self) -> float | None:
        return self._rate(self.closed_of_due, self.due)

    @property
    def patrol_share(self) -> float | None:
        return self._rate(self.patrol, self.registered)

    @property
    def on_time_rate(self) -> float | None:
        return self._rate(self.closed_on_time, self.closed)

    @property
    def rework_rate(self) -> float | None:
        return self._rate(self.reworked, self.closed)

    @property
    def extension_rate(self) -> float | None:
        return self._rate(self.extended, self.closed)

    @property
    def dissatisfaction_rate(self) -> float | None:
        return self._rate(self.dissatisfied, self.answers)

    @property
    def satisfaction_mean(self) -> float | None:
        return sum(self.ratings) / len(self.ratings) if self.ratings else None

    @property
    def accept_mean_h(self) -> float | None:
        return sum(self.accept_hours) / len(self.accept_hours) if self.accept_hours else None

    @property
    def accept_p90_h(self) -> float | None:
        return p90(self.accept_hours)

    @property
    def close_mean_h(self) -> float | None:
        return sum(self.close_hours) / len(self.close_hours) if self.close_hours else None

    @property
    def close_p90_h(self) -> float | None:
        return p90(self.close_hours)


def period_bounds(period: str, now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """today: local midnight → now; 7d / 30d: the last 7 / 30 days up to now."""
    if period == "today":
        local = now.astimezone(ZoneInfo(timezone))
        return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(now.tzinfo), now
    days = {"7d": 7, "30d": 30}.get(period)
    if days is None:
        raise ValueError(f"unknown period {period!r}")
    return now - timedelta(days=days), now


def compute(session: Session, *, area_code: str, start: datetime, end: datetime, now: datetime,
            worst: int = 5) -> Kpis:
    """The KPIs of `area_code`'s subtree over [start, end) (see the module docstring)."""
    codes = subtree_grids(session, area_code)
    k = Kpis(area_code, start, end)
    in_area = sa.and_(Case.grid_code.in_(codes), Case.drill.is_(False))  # drills never count
    alive = Case.status.not_in(list(EXCLUDED))
    registered = session.exec(select(Case).where(in_area, alive, Case.created_at >= start,
                                                 Case.created_at < end)).all()
    k.registered = len(registered)
    k.patrol = sum(1 for c in registered if kpi_patrol.is_patrol(c))
    k.patrol_grids = kpi_patrol.by_grid(registered)
    k.patrol_workers = kpi_patrol.by_worker(session, registered)
    closed = session.exec(select(Case).where(in_area, Case.status == Status.CLOSED, Case.closed_at >= start,
                                             Case.closed_at < end)).all()
    k.closed = len(closed)
    closed_ids = [c.id for c in closed]
    for c in closed:
        if c.handle_due_at is None or c.closed_at <= c.handle_due_at:
            k.closed_on_time += 1
        k.close_hours.append((c.closed_at - c.created_at).total_seconds() / 3600)
    if closed_ids:
        k.reworked = len(set(session.exec(select(CaseEvent.case_id).where(
            CaseEvent.case_id.in_(closed_ids), CaseEvent.action.in_([Action.REJECT, Action.REOPEN]))).all()))
        k.extended = len(set(session.exec(select(Extension.case_id).where(
            Extension.case_id.in_(closed_ids), Extension.status == ExtensionStatus.GRANTED)).all()))
    due = session.exec(select(Case).where(in_area, alive, Case.handle_due_at >= start,
                                          Case.handle_due_at < end)).all()
    k.due = len(due)
    k.closed_of_due = sum(1 for c in due if c.status == Status.CLOSED and c.closed_at is not None
                          and c.closed_at < end)
    reg_ids = [c.id for c in registered]
    if reg_ids:
        first_accept: dict[int, datetime] = {}
        for case_id, at in session.exec(select(CaseEvent.case_id, CaseEvent.at).where(
                CaseEvent.case_id.in_(reg_ids), CaseEvent.action == Action.ACCEPT).order_by(CaseEvent.at)).all():
            first_accept.setdefault(case_id, at)
        created = {c.id: c.created_at for c in registered}
        k.accept_hours = [(at - created[cid]).total_seconds() / 3600 for cid, at in first_accept.items()]
    feedback = session.exec(select(CaseFeedback).join(Case, Case.id == CaseFeedback.case_id).where(in_area)).all()
    for fb in feedback:
        if fb.rating is not None and fb.rated_at is not None and start <= fb.rated_at < end:
            k.ratings.append(fb.rating)
        answered = fb.answered_at or fb.rated_at
        if answered is not None and start <= answered < end and (fb.fixed is not None or fb.rating is not None):
            k.answers += 1
            if fb.fixed is False or (fb.rating is not None and fb.rating <= 2):
                k.dissatisfied += 1
    rows: dict[str, list[int]] = {}
    open_now = session.exec(select(Case.grid_code, Case.handle_due_at).where(
        in_area, Case.status.in_([s.value for s in OPEN]))).all()
    for grid, handle_due in open_now:
        if handle_due is not None and handle_due < now:
            rows.setdefault(grid, [0, 0, 0])[0] += 1
    for c in due:
        r = rows.setdefault(c.grid_code, [0, 0, 0])
        r[1] += 1
        if c.status == Status.CLOSED and c.closed_at is not None and c.closed_at < end:
            r[2] += 1
    grid_rows = [GridRow(code, *vals) for code, vals in rows.items() if code is not None]
    grid_rows.sort(key=lambda g: (-g.open_overdue, g.closure_rate if g.closure_rate is not None else 2.0, g.grid_code))
    k.worst_grids = grid_rows[:worst]
    return k


def supervisor_kpis(ctx: ServiceContext, *, supervisor_id: int, period: str) -> Kpis:
    """The KPIs of the supervisor's own area for `period` (today, 7d, 30d)."""
    with ctx.sessions() as session:
        person = session.get(Person, supervisor_id)
        if person is None or not person.has_role(Role.SUPERVISOR) or not person.active or not person.area_code:
            raise NotASupervisor(str(supervisor_id))
        now = ctx.clock.now()
        start, end = period_bounds(period, now, ctx.timezone)
        return compute(session, area_code=person.area_code, start=start, end=end, now=now)
