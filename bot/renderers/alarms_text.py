"""Words of welfare checks shared with the work order (bot/renderers/work_text.py): the elder's details.

Staff handling the check see the address, key holder and family contacts whole: they must go and
ring; everyone else sees the roster masked (services/elders.py).
"""

from __future__ import annotations

import html

from sqlmodel import Session

from bot.worker_ui import Gettext
from models.elders import Elder
from models.tables import Case
from services import welfare_calls


def welfare_lines(session: Session, case: Case, _: Gettext) -> list[str]:
    """The lines a welfare check adds to its work order; none for any other case."""
    check = welfare_calls.check_of(session, case.id)
    elder = session.get(Elder, check.elder_id) if check is not None else None
    if elder is None:
        return []
    lines = [_("🚨 Welfare check: {name}, living alone (device {device})").format(
        name=html.escape(elder.name or "—"), device=html.escape(check.device_id))]
    lines.append(_("Home: {address}").format(address=html.escape(elder.address or "—")))
    if elder.key_holder_name or elder.key_holder_phone:
        lines.append(_("Key holder: {name} {phone}").format(name=html.escape(elder.key_holder_name),
                                                            phone=html.escape(elder.key_holder_phone)))
    for contact in elder.contacts or []:
        lines.append(_("Family: {name} {phone}").format(name=html.escape(contact.get("name", "")),
                                                        phone=html.escape(contact.get("phone", ""))))
    return lines
