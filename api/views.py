"""Service results rendered as the API's Public models, with personal data masked without the `pii` scope.

One place says what a key may read: `person_public` (people named on a case) and `person_detail`
(a person read directly; staff names stay readable) decide masking by the key's scopes; `case_public`
masks the free text (`privacy.mask_text`) and rounds the coordinates to ~100 m (`privacy.coarsen`)
for a key without `pii`, in answers and exports alike.
"""

from __future__ import annotations

from datetime import datetime

from api.schemas import (
    AreaPublic,
    CasePublic,
    CaseWithTimeline,
    CategoryPublic,
    EventPublic,
    IntakeRulePublic,
    InvitationPublic,
    PersonDetail,
    PersonPublic,
    PhotoPublic,
    QuestionWrite,
)
from api.schemas_kpis import KpiGrid, KpiPatrolGrid, KpiPatrolWorker, KpiReport
from models.api import Scope, ServiceQuestion
from models.lifecycle import Role
from models.tables import Area, Invitation, Person, Photo
from services import privacy
from services.api_keys import Principal
from services.case_queries import CaseCard, CaseView
from services.category_queries import CategoryView
from services.invitations import invitation_state
from services.kpi import Kpis


def mask_phone(phone: str | None) -> str | None:
    """138****1234 (services/privacy.py); None stays None."""
    return privacy.mask_phone(phone) if phone else phone


def mask_name(name: str | None) -> str | None:
    """李** / J** (services/privacy.py); None stays None."""
    return privacy.mask_name(name) if name else name


def person_public(person: Person | None, principal: Principal) -> PersonPublic | None:
    if person is None:
        return None
    if principal.allows(Scope.PII):
        return PersonPublic(id=person.id, display_name=person.display_name, phone=person.phone)
    return PersonPublic(id=person.id, display_name=mask_name(person.display_name) or "",
                        phone=mask_phone(person.phone))


def case_public(view: CaseView, principal: Principal) -> CasePublic:
    case = view.case
    pii = principal.allows(Scope.PII)
    return CasePublic(
        id=case.id, number=case.number, status=str(case.status), source=str(case.source),
        category_code=case.category_code,
        description=case.description if pii or case.description is None else privacy.mask_text(case.description),
        lat=case.lat if pii else privacy.coarsen(case.lat), lon=case.lon if pii else privacy.coarsen(case.lon),
        address=case.address, media_urls=list(case.media_urls or []), grid_code=case.grid_code,
        report_count=case.report_count, external_id=case.external_id,
        reporter=person_public(view.reporter, principal), assignee=person_public(view.assignee, principal),
        accept_due_at=case.accept_due_at, handle_due_at=case.handle_due_at, created_at=case.created_at,
        updated_at=case.updated_at, closed_at=case.closed_at, version=case.version,
    )


def case_with_timeline(card: CaseCard, principal: Principal) -> CaseWithTimeline:
    base = case_public(card.view, principal)
    pii = principal.allows(Scope.PII)
    return CaseWithTimeline(**base.model_dump(), timeline=[
        EventPublic(at=e.at, action=str(e.action), from_status=str(e.from_status) if e.from_status else None,
                    to_status=str(e.to_status), actor_role=str(e.actor_role),
                    note=e.note if pii or e.note is None else privacy.mask_text(e.note)) for e in card.timeline])


def photo_public(photo: Photo) -> PhotoPublic:
    return PhotoPublic(id=photo.id, purpose=photo.purpose, width=photo.width, height=photo.height,
                       created_at=photo.created_at, url=f"/api/v1/cases/{photo.case_id}/photos/{photo.id}")


def person_detail(person: Person, principal: Principal) -> PersonDetail:
    """The person as the key may see them (see `PersonDetail` for what is masked)."""
    pii = principal.allows(Scope.PII)
    staff = person.has_role(Role.WORKER) or person.has_role(Role.SUPERVISOR)
    return PersonDetail(
        id=person.id, display_name=person.display_name if pii or staff else (mask_name(person.display_name) or ""),
        phone=person.phone if pii else mask_phone(person.phone),
        telegram_user_id=person.telegram_user_id if pii else None, username=person.username if pii else None,
        roles=sorted(person.roles or []), area_code=person.area_code, department_code=person.department_code,
        active=person.active, on_duty=person.on_duty, deleted=person.deleted_at is not None,
        created_at=person.created_at,
    )


def area_public(area: Area) -> AreaPublic:
    return AreaPublic(code=area.code, name=area.name, name_en=area.name_en, level=str(area.level),
                      parent_code=area.parent_code)


def question_public(q: ServiceQuestion) -> QuestionWrite:
    return QuestionWrite(code=q.code, datatype=q.datatype, required=q.required, description=q.description,
                         values=q.values)


def category_public(view: CategoryView) -> CategoryPublic:
    row = view.category
    return CategoryPublic(
        code=row.code, kind=row.kind, name=row.name, name_en=row.name_en, department_code=row.department_code,
        extra_departments=list(row.extra_departments or []), accept_sla_minutes=row.accept_sla_minutes,
        handle_sla_minutes=row.handle_sla_minutes, duplicate_radius_m=row.duplicate_radius_m,
        photo_required=row.photo_required, active=row.active,
        intake_rule=IntakeRulePublic(on_clear=view.on_clear, fold_window_s=view.fold_window_s),
        questions=[question_public(q) for q in view.questions])


def invitation_public(row: Invitation, now: datetime) -> InvitationPublic:
    return InvitationPublic(id=row.id, role=str(row.role), area_code=row.area_code,
                            department_code=row.department_code, expires_at=row.expires_at,
                            state=invitation_state(row, now).value, created_at=row.created_at,
                            revoked_at=row.revoked_at, used_at=row.used_at, used_by_id=row.used_by_id)


def kpi_report(k: Kpis) -> KpiReport:
    return KpiReport(
        area_code=k.area_code, start=k.start, end=k.end, registered=k.registered, closed=k.closed, due=k.due,
        closed_of_due=k.closed_of_due, closure_rate=k.closure_rate, closed_on_time=k.closed_on_time,
        on_time_rate=k.on_time_rate, reworked=k.reworked, rework_rate=k.rework_rate, extended=k.extended,
        extension_rate=k.extension_rate, accept_mean_h=k.accept_mean_h, accept_p90_h=k.accept_p90_h,
        close_mean_h=k.close_mean_h, close_p90_h=k.close_p90_h, ratings=len(k.ratings),
        satisfaction_mean=k.satisfaction_mean, answers=k.answers, dissatisfied=k.dissatisfied,
        dissatisfaction_rate=k.dissatisfaction_rate,
        worst_grids=[KpiGrid(grid_code=g.grid_code, open_overdue=g.open_overdue, due=g.due,
                             closed_of_due=g.closed_of_due, closure_rate=g.closure_rate) for g in k.worst_grids],
        patrol=k.patrol, patrol_share=k.patrol_share,
        patrol_by_grid=[KpiPatrolGrid(grid_code=g.grid_code, registered=g.registered, patrol=g.patrol,
                                      patrol_share=g.share) for g in k.patrol_grids],
        patrol_by_worker=[KpiPatrolWorker(person_id=w.person_id, name=w.name, found=w.found, cases=w.cases,
                                          patrol_share=w.share) for w in k.patrol_workers])
