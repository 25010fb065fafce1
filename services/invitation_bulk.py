"""Bulk invitations from a staff list (`onegrid invite --csv staff.csv`): all rows or none.

What callers may rely on:
- `read_staff_csv` reads a UTF-8 CSV (an Excel BOM is fine) with the header
  `name,role,area,department,phone` (any order, extra columns ignored) into `StaffRow`s that carry
  their line number in the file (the header is line 1).
- `invite_staff` checks EVERY row first: role (worker or supervisor), the area and department exist,
  a worker has a department, a name, a phone that looks like one and is used by no other row, no
  person and no open invitation. If any row is wrong it raises `BulkInvitationRefused` listing every
  problem with its line, and writes nothing. Otherwise it writes one invitation per row in ONE
  transaction and calls `deliver(issued)` before the commit: if writing the output files fails, the
  invitations are rolled back too, so no link exists that nobody has.
- Problems are data (`RowProblem.kind` and the offending value); the CLI words them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from sqlmodel import select

from models.lifecycle import Role
from models.tables import Area, Department, Invitation, Person
from services.context import ServiceContext
from services.db import transaction
from services.invitations import STAFF_ROLES, IssuedInvitation, issue_in
from services.names import localized

COLUMNS = ("name", "role", "area", "department", "phone")
_NOT_DIGITS = re.compile(r"[\s\-().]")
_PHONE = re.compile(r"\+?\d{5,20}")
_NAME_MAX = 200


class ProblemKind(StrEnum):
    FILE = "file"  # the file as a whole: unreadable, no header, missing columns, no rows
    NO_NAME = "no_name"
    BAD_ROLE = "bad_role"
    UNKNOWN_AREA = "unknown_area"
    NO_DEPARTMENT = "no_department"  # a worker without one: orders are dispatched by department
    UNKNOWN_DEPARTMENT = "unknown_department"
    BAD_PHONE = "bad_phone"
    DUPLICATE_PHONE = "duplicate_phone"  # detail: the earlier line in the file
    PHONE_TAKEN = "phone_taken"  # detail: "person" or "invitation" (an open one)


@dataclass(frozen=True)
class RowProblem:
    line: int  # 1-based line in the file; 1 is the header
    kind: ProblemKind
    value: str = ""
    detail: str = ""


@dataclass(frozen=True)
class StaffRow:
    line: int
    name: str
    role: str
    area: str
    department: str
    phone: str


@dataclass(frozen=True)
class InvitedStaff:
    row: StaffRow
    issued: IssuedInvitation
    area_name: str  # in the locale asked for (data from the store, not wording)
    department_name: str


class BulkInvitationRefused(Exception):
    """Some rows are wrong; nothing was written. `problems` lists every one, by line."""

    def __init__(self, problems: Iterable[RowProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line, p.kind.value))
        super().__init__(f"{len(self.problems)} problem(s)")


def normalize_phone(phone: str) -> str:
    """'138 0013-8000' → '13800138000': the form stored and compared."""
    return _NOT_DIGITS.sub("", phone or "")


def read_staff_csv(source: Path | str) -> list[StaffRow]:
    """The rows of the staff file (a path, or the CSV text itself when it contains a newline)."""
    if isinstance(source, Path) or "\n" not in source:
        try:
            text = Path(source).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise BulkInvitationRefused([RowProblem(1, ProblemKind.FILE, str(source), str(exc))]) from exc
    else:
        text = source.removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise BulkInvitationRefused([RowProblem(1, ProblemKind.FILE, ",".join(missing), "missing columns")])
    where = {c: header.index(c) for c in COLUMNS}
    rows: list[StaffRow] = []
    start = reader.line_num + 1
    for record in reader:  # blank lines come as [] and count; a quoted field may span lines
        values = {c: (record[i] if i < len(record) else "").strip() for c, i in where.items()}
        if any(values.values()):
            rows.append(StaffRow(start, **values))
        start = reader.line_num + 1
    if not rows:
        raise BulkInvitationRefused([RowProblem(1, ProblemKind.FILE, "", "no rows")])
    return rows


def check_rows(ctx: ServiceContext, rows: list[StaffRow], session) -> list[RowProblem]:  # noqa: ANN001
    """Every problem of every row, against the file and the store (read in `session`)."""
    areas = set(session.exec(select(Area.code)).all())
    departments = set(session.exec(select(Department.code)).all())
    now = ctx.clock.now()
    taken: dict[str, str] = {normalize_phone(p): "person"
                             for p in session.exec(select(Person.phone).where(Person.phone.is_not(None))).all()}
    for phone in session.exec(select(Invitation.phone).where(
            Invitation.phone.is_not(None), Invitation.used_at.is_(None), Invitation.expires_at > now)).all():
        taken.setdefault(normalize_phone(phone), "invitation")
    problems: list[RowProblem] = []
    first_line: dict[str, int] = {}
    roles = {r.value for r in STAFF_ROLES}
    for row in rows:
        def add(kind: ProblemKind, value: str = "", detail: str = "", line: int = row.line) -> None:
            problems.append(RowProblem(line, kind, value, detail))

        if not row.name or len(row.name) > _NAME_MAX:
            add(ProblemKind.NO_NAME, row.name[:40])
        if row.role.lower() not in roles:
            add(ProblemKind.BAD_ROLE, row.role)
        if row.area not in areas:
            add(ProblemKind.UNKNOWN_AREA, row.area)
        if row.department and row.department not in departments:
            add(ProblemKind.UNKNOWN_DEPARTMENT, row.department)
        elif not row.department and row.role.lower() == Role.WORKER.value:
            add(ProblemKind.NO_DEPARTMENT)
        phone = normalize_phone(row.phone)
        if not _PHONE.fullmatch(phone):
            add(ProblemKind.BAD_PHONE, row.phone)
        elif phone in first_line:
            add(ProblemKind.DUPLICATE_PHONE, row.phone, str(first_line[phone]))
        elif phone in taken:
            add(ProblemKind.PHONE_TAKEN, row.phone, taken[phone])
        else:
            first_line[phone] = row.line
    return problems


def invite_staff(ctx: ServiceContext, rows: list[StaffRow], *, ttl: timedelta | None = None,
                 deliver: Callable[[list[InvitedStaff]], None] | None = None,
                 created_by_id: int | None = None, locale: str = "zh_CN") -> list[InvitedStaff]:
    """One invitation per row, all in one transaction, or none (`BulkInvitationRefused`)."""
    ttl = ttl or timedelta(hours=ctx.settings.invitation_ttl_hours)
    if ttl <= timedelta(0):
        raise ValueError("an invitation must be valid for some time")
    now = ctx.clock.now()
    with transaction(ctx.sessions) as session:
        problems = check_rows(ctx, rows, session)
        if problems:
            raise BulkInvitationRefused(problems)
        areas = {a.code: a for a in session.exec(select(Area).where(Area.code.in_({r.area for r in rows})))}
        departments = {d.code: d for d in session.exec(select(Department))}
        invited = [
            InvitedStaff(row, issue_in(session, role=Role(row.role.lower()), area_code=row.area,
                                       department_code=row.department or None, expires_at=now + ttl, now=now,
                                       created_by_id=created_by_id, invitee_name=row.name,
                                       phone=normalize_phone(row.phone)),
                         localized(areas.get(row.area), locale, row.area),
                         localized(departments.get(row.department), locale, row.department))
            for row in rows
        ]
        if deliver is not None:
            deliver(invited)  # an exception here rolls every invitation back
        return invited
