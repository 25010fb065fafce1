"""The drill label (演练): what every message about a drill starts with.

Warnings and campaigns label their own messages (their events carry `drill`). Messages about a drill
CASE come from every case renderer; `labelled` wraps those renderers (onegrid/wiring.py) and puts the
label in front of the text or caption of each row they queued for a drill case.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session, select

from models.tables import Case, Notification, Person
from onegrid.i18n import N_, gettext_for
from services.bus import Renderer
from services.context import ServiceContext
from services.notify import collected

DRILL = N_("🧪 [DRILL]")
Gettext = Callable[[str], str]


def drill_prefix(_: Gettext, drill: bool) -> str:
    """The label and a line break for a drill, else nothing."""
    return _(DRILL) + "\n" if drill else ""


def _label_row(session: Session, ctx: ServiceContext, row: Notification) -> None:
    person = session.get(Person, row.person_id) if row.person_id else None
    label = gettext_for(person.locale if person else ctx.settings.default_locale)(DRILL)
    payload = dict(row.payload)
    for key in ("text", "caption"):
        value = payload.get(key)
        if isinstance(value, str) and not value.startswith(label):
            payload[key] = f"{label}\n{value}"
    row.payload = payload  # a new dict: the JSON column sees the change


def _drill_cases(session: Session, ids: set[int]) -> set[int]:
    """Which of `ids` are drills: from the cases the session holds (the renderer loaded them), else one query."""
    known = {i: session.identity_map.get(session.identity_key(Case, i)) for i in ids}
    drills = {i for i, case in known.items() if case is not None and case.drill}
    missing = [i for i, case in known.items() if case is None]
    if missing:
        drills |= set(session.exec(select(Case.id).where(Case.id.in_(missing), Case.drill.is_(True))).all())
    return drills


def labelled(render: Renderer) -> Renderer:
    """`render`, with the drill label added to what it queued about a drill case."""
    def run(session: Session, ctx: ServiceContext, event: Any) -> None:
        with collected() as rows:
            render(session, ctx, event)
        if not rows:
            return
        event_case = getattr(event, "case_id", None)
        ids = {row.case_id or event_case for row in rows} - {None}
        if not ids:
            return
        drills = _drill_cases(session, ids)
        for row in rows:
            if (row.case_id or event_case) in drills:
                _label_row(session, ctx, row)

    run.__name__ = getattr(render, "__name__", "renderer")
    return run
