"""The drill label (演练) on WeCom: every message about a drill case starts with it, as on Telegram.

bot/renderers/drill.py labels the Telegram rows; this labels the rows WeCom renderers queue (the same
msgid, so the same words): a text's content, a card's title. `labelled` wraps each WeCom renderer
(wecom/renderers.py).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from models.tables import Case, Person
from models.wecom import WecomMessage
from onegrid.i18n import N_, gettext_for
from services.bus import Renderer
from services.context import ServiceContext
from wecom.formats import MAX_TEXT_BYTES, clip
from wecom.outbox import collected

DRILL = N_("🧪 [DRILL]")
TITLE_BYTES = 108  # wecom/formats.py button_card's limit on main_title.title


def _label_row(session: Session, ctx: ServiceContext, row: WecomMessage) -> None:
    person = session.get(Person, row.person_id) if row.person_id else None
    label = gettext_for(person.locale if person else ctx.settings.default_locale)(DRILL)
    payload = dict(row.payload)
    if payload.get("msgtype") == "text":
        content = payload["text"]["content"]
        if not content.startswith(label):
            payload["text"] = {**payload["text"], "content": clip(f"{label}\n{content}", MAX_TEXT_BYTES)}
    elif payload.get("msgtype") == "template_card":
        card = payload["template_card"]
        title = card["main_title"].get("title", "")
        if not title.startswith(label):
            card = {**card, "main_title": {**card["main_title"], "title": clip(f"{label} {title}", TITLE_BYTES)}}
            payload["template_card"] = card
    row.payload = payload  # a new dict: the JSON column sees the change


def labelled(render: Renderer) -> Renderer:
    """`render`, with the drill label added to what it queued on WeCom about a drill case."""
    def run(session: Session, ctx: ServiceContext, event: Any) -> None:
        with collected() as rows:
            render(session, ctx, event)
        event_case = getattr(event, "case_id", None)
        for row in rows:
            case_id = row.case_id or event_case
            case = session.get(Case, case_id) if case_id is not None else None
            if case is not None and case.drill:
                _label_row(session, ctx, row)

    run.__name__ = getattr(render, "__name__", "renderer")
    return run
