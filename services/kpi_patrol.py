"""主动发现 (cases found on patrol) in the KPIs: the patrol share of an area, of each grid and of each worker.

Over the cases registered in the period (cancelled and merged ones never count, as in services/kpi.py):
- an area's or a grid's patrol share = cases with source PATROL ÷ cases registered;
- a worker's patrol share = the cases they found on patrol (reporter of a PATROL case, kept or handed to
  dispatch) ÷ their cases: those they found or handle (`Case.handler_id`), each case once. A worker who
  only waits for dispatch has 0; one who files everything they handle has 1.
Only people with the worker role are listed per worker; shares are None when the denominator is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session, select

from models.lifecycle import Role
from models.tables import Case, CaseSource, Person


@dataclass(frozen=True)
class PatrolGrid:
    grid_code: str
    registered: int
    patrol: int

    @property
    def share(self) -> float | None:
        return self.patrol / self.registered if self.registered else None


@dataclass(frozen=True)
class PatrolWorker:
    person_id: int
    name: str
    found: int  # cases registered in the period that this worker found on patrol
    cases: int  # cases registered in the period this worker found or handles, each once

    @property
    def share(self) -> float | None:
        return self.found / self.cases if self.cases else None


def is_patrol(case: Case) -> bool:
    return case.source == CaseSource.PATROL


def by_grid(registered: Sequence[Case]) -> list[PatrolGrid]:
    """One row per grid with cases registered in the period: most patrol cases first, then by code."""
    counts: dict[str, list[int]] = {}
    for case in registered:
        if case.grid_code is None:
            continue
        row = counts.setdefault(case.grid_code, [0, 0])
        row[0] += 1
        row[1] += is_patrol(case)
    rows = [PatrolGrid(code, n, p) for code, (n, p) in counts.items()]
    return sorted(rows, key=lambda g: (-g.patrol, -(g.share or 0.0), g.grid_code))


def by_worker(session: Session, registered: Sequence[Case]) -> list[PatrolWorker]:
    """One row per worker with a case in the period: most found first, then the higher share, then by name."""
    found: dict[int, set[int]] = {}
    theirs: dict[int, set[int]] = {}
    for case in registered:
        if is_patrol(case) and case.reporter_id is not None:
            found.setdefault(case.reporter_id, set()).add(case.id)
            theirs.setdefault(case.reporter_id, set()).add(case.id)
        if case.handler_id is not None:
            theirs.setdefault(case.handler_id, set()).add(case.id)
    if not theirs:
        return []
    people = session.exec(select(Person).where(Person.id.in_(list(theirs)))).all()
    rows = [PatrolWorker(p.id, p.display_name, len(found.get(p.id, ())), len(theirs[p.id]))
            for p in people if p.has_role(Role.WORKER)]
    return sorted(rows, key=lambda w: (-w.found, -(w.share or 0.0), w.name, w.person_id))
