"""Open311 clients: residents' reports made through third-party apps, and the category questions.

What callers may rely on: `submit_service_request` registers a case like any resident report
(source ``resident``) and keeps the client's contact and checked attributes with it, in the case's
own transaction (the work order already shows the answers); nothing is stored when the request is
refused. `case_answers` gives those answers as a worker reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from models.api import CaseSubmission, ServiceQuestion
from models.lifecycle import Actor, Role
from models.tables import Case, CaseSource, Category
from services import batch_reads, cases
from services.api_keys import Principal, area_in_scope
from services.cases import CaseError, CaseNotFound, OutsideGrid, UnknownCategory
from services.context import ServiceContext
from services.db import transaction
from services.intake_machine import OutsideArea


@dataclass(frozen=True)
class ServiceRequest:
    """An Open311 POST requests: a resident's report made through a third-party app."""

    service_code: str
    lat: float
    lon: float
    description: str = ""
    address_string: str | None = None
    address_id: str | None = None
    media_url: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    device_id: str | None = None
    account_id: str | None = None


class BadAttributes(CaseError):
    """Attributes missing, unknown or outside their value lists; the message names them."""


def service_questions(session: Session, category_code: str) -> list[ServiceQuestion]:
    """The questions of a category in their published order."""
    return list(session.exec(select(ServiceQuestion).where(ServiceQuestion.category_code == category_code)
                             .order_by(ServiceQuestion.position, ServiceQuestion.id)))


def _check_attributes(questions: list[ServiceQuestion], given: dict[str, Any]) -> dict[str, Any]:
    by_code = {q.code: q for q in questions}
    problems = [f"unknown attribute {code!r}" for code in given if code not in by_code]
    clean: dict[str, Any] = {}
    for q in questions:
        value = given.get(q.code)
        if value in (None, "", []):
            if q.required:
                problems.append(f"attribute {q.code!r} is required")
            continue
        keys = {v["key"] for v in q.values}
        values = value if isinstance(value, list) else [value]
        if q.datatype == "multivaluelist":
            bad = [v for v in values if str(v) not in keys]
            clean[q.code] = [str(v) for v in values]
        elif q.datatype == "singlevaluelist":
            bad = [v for v in values[:1] if str(v) not in keys] + (values[1:] and ["more than one value"])
            clean[q.code] = str(values[0])
        elif q.datatype == "number":
            try:
                clean[q.code] = float(values[0])
                bad = [] if math.isfinite(clean[q.code]) else [values[0]]
            except (TypeError, ValueError):
                bad = [values[0]]
        elif q.datatype == "datetime":
            try:
                datetime.fromisoformat(str(values[0]).replace("Z", "+00:00"))
                bad, clean[q.code] = [], str(values[0])
            except ValueError:
                bad = [values[0]]
        else:
            bad, clean[q.code] = [], str(values[0])[:2000]
        if bad:
            problems.append(f"attribute {q.code!r}: invalid value")
    if problems:
        raise BadAttributes("; ".join(problems))
    return clean


def submit_service_request(ctx: ServiceContext, *, principal: Principal, request: ServiceRequest) -> Case:
    """Register a case from an Open311 client (source ``resident``), keeping its contact and attributes.

    Raises UnknownCategory, OutsideGrid, OutsideArea or BadAttributes; nothing is stored then.
    """
    grid_code = ctx.grid_map.lookup(request.lon, request.lat) if ctx.grid_map is not None else None
    with ctx.sessions() as session:
        if ctx.grid_map is not None and grid_code is None:
            raise OutsideGrid(f"{request.lat:.6f},{request.lon:.6f}")
        if not area_in_scope(session, principal, grid_code):
            raise OutsideArea(grid_code or "")
        attributes = _check_attributes(service_questions(session, request.service_code), request.attributes)
    now = ctx.clock.now()

    def keep_submission(session: Session, case: Case) -> None:
        # In the case's own transaction, before dispatch: the work order already shows the answers.
        if request.media_url:
            session.execute(sa.update(Case).where(Case.id == case.id).values(media_urls=[request.media_url]))
            session.refresh(case)
        session.add(CaseSubmission(
            case_id=case.id, api_key_id=principal.id, address_string=request.address_string,
            address_id=request.address_id, email=request.email, first_name=request.first_name,
            last_name=request.last_name, phone=request.phone, device_id=request.device_id,
            account_id=request.account_id, attributes=attributes, created_at=now))
        session.flush()

    case = cases.report_case(ctx, actor=Actor(Role.RESIDENT), source=CaseSource.RESIDENT,
                             category_code=request.service_code, lat=request.lat, lon=request.lon,
                             description=request.description, address=request.address_string,
                             before_dispatch=keep_submission)
    with ctx.sessions() as session:
        return session.get(Case, case.id)


def case_answers(session: Session, case_id: int) -> list[tuple[str, str]]:
    """(question, answer) of the attributes an Open311 client answered for the case, in the questions'
    order: the question's description (else its code), list answers by their value names."""
    submission = batch_reads.submission(session, case_id)  # a dispatcher's batch read them all at once
    if submission is None or not submission.attributes:
        return []
    case = session.get(Case, case_id)
    questions = {q.code: q for q in service_questions(session, case.category_code)} if case else {}
    ordered = sorted(submission.attributes.items(),
                     key=lambda kv: (questions[kv[0]].position if kv[0] in questions else 1 << 30, kv[0]))
    out = []
    for code, value in ordered:
        question = questions.get(code)
        names = {v["key"]: v["name"] for v in question.values} if question else {}
        values = value if isinstance(value, list) else [value]
        shown = ", ".join(names.get(str(v), str(v)) for v in values)
        out.append(((question.description if question and question.description else code), shown))
    return out


def set_service_questions(ctx: ServiceContext, *, category_code: str,
                          questions: list[dict[str, Any]]) -> list[ServiceQuestion]:
    """Replace the questions of a category (published as Open311 attributes). Raises UnknownCategory."""
    with transaction(ctx.sessions) as session:
        if session.exec(select(Category.id).where(Category.code == category_code)).first() is None:
            raise UnknownCategory(category_code)
        session.execute(sa.delete(ServiceQuestion).where(ServiceQuestion.category_code == category_code))
        rows = [ServiceQuestion(category_code=category_code, position=i + 1, **q) for i, q in enumerate(questions)]
        session.add_all(rows)
    return rows


def update_case_details(ctx: ServiceContext, *, principal: Principal, case_id: int,
                        description: str | None = None, address: str | None = None) -> Case:
    """Correct a case's description or address text. Raises CaseNotFound (also outside the key's area)."""
    with transaction(ctx.sessions) as session:
        case = session.get(Case, case_id)
        if case is None or not area_in_scope(session, principal, case.grid_code):
            raise CaseNotFound(str(case_id))
        values: dict[str, Any] = {}
        if description is not None:
            values["description"] = description
        if address is not None:
            values["address"] = address or None
        if values:
            session.execute(sa.update(Case).where(Case.id == case_id, Case.version == case.version).values(**values))
        session.refresh(case)
    return case

