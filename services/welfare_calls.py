"""The welfare-check lookups that dispatch and the escalation sweep need: which case is a listed elder's alarm,
who is on call for it, and telling the street's 居委会 (services/welfare.py has the outcome side).

Kept apart from services/welfare.py so that dispatch and escalation can use them without importing
verification (which imports dispatch).
"""

from __future__ import annotations

from sqlmodel import Session, select

from models.elders import AreaContact, WelfareCheck
from models.events.alarms import WelfareEscalated
from models.tables import Case, Category, Person
from services import duty_roster, elders
from services.areas import area_chain
from services.context import ServiceContext

ELDER_KIND = "elderly_care"  # the category kind whose alarms a listed device turns into welfare checks
COMMITTEE = "committee"  # AreaContact.role of the 居委会


_KNOWN = "welfare_checks"  # session.info: (transaction, {case id: its check or None}) as read in it


def _known(session: Session) -> dict[int, WelfareCheck | None]:
    """What this transaction of `session` has read of welfare checks (a new transaction starts empty)."""
    tx = session.get_transaction()
    held = session.info.get(_KNOWN)
    if held is None or held[0] is not tx:
        held = session.info[_KNOWN] = (tx, {})
    return held[1]


def check_of(session: Session, case_id: int) -> WelfareCheck | None:
    """The case's welfare check, or None. Dispatch and the work order's renderers ask several times per case:
    the answer is remembered for the transaction (a check is only ever added by `open_for_alarm`, which
    updates it)."""
    known = _known(session)
    if case_id not in known:
        known[case_id] = session.exec(select(WelfareCheck).where(WelfareCheck.case_id == case_id)).first()
    return known[case_id]


def note_checks(session: Session, checks: dict[int, WelfareCheck | None]) -> None:
    """The checks of many cases, read by the caller (the dispatcher's batch, with its cases), for `check_of`
    to answer from; None: the case has none."""
    _known(session).update(checks)


def open_for_alarm(session: Session, case: Case, category: Category, device_id: str) -> WelfareCheck | None:
    """Link a new alarm case to the elder whose device raised it (None: not an elder alarm, or not listed)."""
    if category is None or category.kind != ELDER_KIND:
        return None
    found = elders.elder_for_device(session, device_id)
    if found is None:
        return None
    elder, device = found
    check = WelfareCheck(case_id=case.id, elder_id=elder.id, device_id=device.device_id, created_at=case.created_at)
    session.add(check)
    session.flush()
    _known(session)[case.id] = check
    return check


def on_call_for(session: Session, ctx: ServiceContext, case: Case, *, exclude: set[int]) -> list[Person] | None:
    """Who is on call now for a welfare check's case (an offer handed back goes to them again, not to the
    ordinary pool), except `exclude`; None when the case is no welfare check."""
    if case.grid_code is None or check_of(session, case.id) is None:
        return None
    return [p for p in duty_roster.on_call(session, ctx, case.grid_code, ctx.clock.now()) if p.id not in exclude]


def committee_contacts(session: Session, grid_code: str | None) -> list[AreaContact]:
    """The 居委会 contacts of the grid, else of its street (the nearest area up to the street that has any)."""
    for area in area_chain(session, grid_code) if grid_code else []:
        rows = session.exec(select(AreaContact).where(AreaContact.area_code == area.code,
                                                      AreaContact.role == COMMITTEE).order_by(AreaContact.id)).all()
        if rows or area.level == "street":
            return list(rows)
    return []


def escalate_now(session: Session, ctx: ServiceContext, case: Case, reason: str, *, supervisors: bool = True) -> None:
    """Tell the case's 居委会 and (`supervisors`) its street supervisors (see `WelfareEscalated`)."""
    check = check_of(session, case.id)
    if check is None:
        return
    supervisors = duty_roster.street_supervisors(session, case.grid_code) if case.grid_code and supervisors else []
    contacts = committee_contacts(session, case.grid_code)
    ctx.publish(session, WelfareEscalated(case_id=case.id, check_id=check.id, reason=reason,
                                          supervisor_ids=tuple(p.id for p in supervisors),
                                          contact_ids=tuple(c.id for c in contacts)))
