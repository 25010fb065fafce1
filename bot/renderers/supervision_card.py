"""The escalation card in Telegram: a case's lateness, holder and recent history, under a header.

Pings, extension requests and shelf reviews all show it (bot/renderers/supervision_escalation.py).
"""

from __future__ import annotations

from bot.renderers.field_text import note_label, snapshot_link_line
from bot.renderers.work_text import local_time
from services.names import localized
import html
from datetime import timedelta

from sqlmodel import Session, select

from models.tables import Area, Case, CaseEvent, Category
from models.work import CaseTask, TaskStatus
from onegrid.i18n import gettext_for
from services.context import ServiceContext
from services.escalation import holders
from services.privacy import mask_text
from services.progress import recent_notes

HISTORY_LINES = 6


def lateness(delta: timedelta, _) -> str:  # noqa: ANN001
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return _("{days} d {hours} h").format(days=days, hours=hours)
    if hours:
        return _("{hours} h {minutes} min").format(hours=hours, minutes=mins)
    return _("{minutes} min").format(minutes=mins)


def action_label(action: str, _) -> str:  # noqa: ANN001
    labels = {
        "report": _("reported"), "register": _("registered"), "dispatch": _("dispatched"),
        "reassign": _("reassigned"), "accept": _("accepted"), "return": _("returned"),
        "complete": _("completed"), "approve": _("approved"), "reject": _("rejected for rework"),
        "request_extension": _("extension requested"), "grant_extension": _("extension granted"),
        "refuse_extension": _("extension refused"), "shelve": _("shelved"), "unshelve": _("taken off the shelf"),
        "reopen": _("reopened"), "cancel": _("cancelled"), "merge": _("merged"),
    }
    return labels.get(action, action)


def case_card(session: Session, ctx: ServiceContext, case: Case, locale: str, *, header: str) -> str:
    """The escalation card: header, what and where, deadlines and lateness, holder, history in one line each."""
    _ = gettext_for(locale)
    now = ctx.clock.now()
    category = session.exec(select(Category).where(Category.code == case.category_code)).first()
    grid = session.exec(select(Area).where(Area.code == case.grid_code)).first() if case.grid_code else None
    lines = [header,
             _("Category: {category}").format(category=html.escape(localized(category, locale,
                                                                                      case.category_code))),
             _("Grid: {grid}").format(grid=html.escape(localized(grid, locale, case.grid_code or "—")))]
    if case.address:
        lines.append(_("Address: {address}").format(address=html.escape(case.address)))
    if case.description:
        lines.append("«" + html.escape(mask_text(case.description[:200])) + "»")
    for label, due in ((_("Accept by"), case.accept_due_at), (_("Handle by"), case.handle_due_at)):
        if due is None:
            continue
        text = f"{label}: {local_time(due, ctx.timezone)}"
        if due < now:
            text += " · " + _("late by {late}").format(late=lateness(now - due, _))
        lines.append(text)
    snapshot = snapshot_link_line(session, case, _)
    if snapshot:
        lines.append(snapshot)
    notes = recent_notes(session, case.id)
    if notes:
        lines.append(_("Progress:"))
        lines.extend(f"· {local_time(n.at, ctx.timezone)} {note_label(n, _)}" for n in notes)
    people = holders(session, case)
    held = session.exec(select(CaseTask.id).where(CaseTask.case_id == case.id,
                                                  CaseTask.status == TaskStatus.ACCEPTED)).first()
    names = ", ".join(html.escape(p.display_name) for p in people)
    if held and names:
        lines.append(_("Held by: {names}").format(names=names))
    elif names:
        lines.append(_("Offered to: {names} (nobody accepted)").format(names=names))
    else:
        lines.append(_("Nobody holds it."))
    events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.action != "progress")
                          .order_by(CaseEvent.id.desc()).limit(HISTORY_LINES)).all()
    if events:
        lines.append(_("History:"))
        for ev in reversed(events):
            line = f"· {local_time(ev.at, ctx.timezone)} {action_label(ev.action, _)}"
            if ev.note:
                line += " — " + html.escape(ev.note[:80])
            lines.append(line)
    return "\n".join(lines)


def ping_header(number: str, after: str, _, *, repeat: int = 0) -> str:  # noqa: ANN001
    if after == "accept_due":
        head = _("⏰ Case {number}: not accepted in time").format(number=number)
    else:
        head = _("🚨 Case {number}: handling deadline passed").format(number=number)
    if repeat:
        head = _("🔁 Reminder {count}: ").format(count=repeat) + head
    return head

