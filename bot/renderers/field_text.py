"""How progress notes and camera snapshot links read, for every card that shows them (no imports of cards)."""

from __future__ import annotations

import html

from sqlmodel import Session

from bot.worker_ui import Gettext
from models.field import ProgressKind
from models.tables import Case
from onegrid.i18n import N_
from services.progress import NoteLine
from services.snapshots import snapshot_links

# How a note reads on a staff card and in the worker's confirmation.
STAFF_LABELS: dict[ProgressKind, str] = {
    ProgressKind.ARRIVED: N_("arrived on site"),
    ProgressKind.WAITING_MATERIALS: N_("waiting for materials"),
    ProgressKind.NEEDS_DEPARTMENT: N_("needs another department"),
    ProgressKind.TEXT: N_("note"),
}
# How it reads to a resident: what happens, not who.
RESIDENT_LABELS: dict[ProgressKind, str] = {
    ProgressKind.ARRIVED: N_("a worker is on site"),
    ProgressKind.WAITING_MATERIALS: N_("waiting for materials"),
    ProgressKind.NEEDS_DEPARTMENT: N_("another department is being asked to help"),
    ProgressKind.TEXT: N_("note from the site"),
}
MAX_LINKS = 5


def note_label(note: NoteLine, _: Gettext, *, resident: bool = False) -> str:
    """"label" or "label: masked words" (HTML-escaped)."""
    label = _((RESIDENT_LABELS if resident else STAFF_LABELS)[note.kind])
    return f"{label}: {html.escape(note.text)}" if note.text else label


def snapshot_link_line(session: Session, case: Case, _: Gettext) -> str | None:
    """"📷 Camera snapshot: 1 · 2" with the links not shown as a photo, or None."""
    links = snapshot_links(session, case)[:MAX_LINKS]
    if not links:
        return None
    anchors = " · ".join(f'<a href="{html.escape(url)}">{index}</a>' for index, url in enumerate(links, start=1))
    return _("📷 Camera snapshot: {links}").format(links=anchors)
