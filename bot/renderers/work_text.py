"""The work order as a worker reads it, and the names and times in it, in the reader's language."""

from __future__ import annotations

import html
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session

from bot.renderers.field_text import snapshot_link_line
from bot.renderers.alarms_text import welfare_lines
from bot.renderers.resident_views import reporter_label
from bot.worker_ui import Gettext
from models.tables import Case, CaseSource, Person
from models.work import CaseTask
from onegrid.i18n import gettext_for
from services import batch_reads, reference
from services.context import ServiceContext
from services.navigation import navigation_links
from services.notify import enqueue_text
from services.names import department_name, localized
from services.intake_open311 import case_answers
from services.privacy import mask_text

NO_PREVIEW = {"is_disabled": True}
CAPTION_MAX = 1024  # Telegram's limit on a photo's caption, in UTF-16 units after the markup is parsed
DESCRIPTION_MAX = 1500  # of a text order (Telegram takes 4096 in a text message)
_TAG = re.compile(r"<[^>]*>")


def category_name(session: Session, code: str, locale: str) -> str:
    return localized(reference.category(session, code), locale, code)


def grid_name(session: Session, code: str | None, locale: str) -> str:
    return localized(reference.area(session, code) if code else None, locale, code or "—")


def local_time(at: datetime | None, timezone: str) -> str:
    """`11-21 10:30` in the city's time zone (deadlines are read by people in the city)."""
    if at is None:
        return "—"
    return at.astimezone(ZoneInfo(timezone)).strftime("%m-%d %H:%M")


def order_text(session: Session, ctx: ServiceContext, case: Case, task: CaseTask, locale: str, *,
               header: str, description_max: int | None = None) -> str:
    """The work order as a worker reads it, in `locale`; `header` is its first line (already translated).

    The reporter is shown by the one staff rule (`reporter_label`); phone and ID numbers typed into the
    description are masked (`mask_text`): a worker is neither its owner nor a `pii` reader. The masked
    description is cut to `description_max` UTF-16 units ending in "…" when given, else to DESCRIPTION_MAX
    characters.
    """
    _ = gettext_for(locale)
    others = batch_reads.other_departments(session, case.id, task.id)
    lines = [
        header,
        _("Category: {category}").format(category=html.escape(category_name(session, case.category_code, locale))),
        _("Department: {department}").format(department=html.escape(department_name(session, task.department_code,
                                                                                    locale))),
    ]
    if others:
        names = ", ".join(html.escape(department_name(session, code, locale)) for code in others)
        lines.append(_("Joint handling with: {departments}").format(departments=names))
    lines.append(_("Grid: {grid}").format(grid=html.escape(grid_name(session, case.grid_code, locale))))
    lines.extend(welfare_lines(session, case, _))  # a listed elder's alarm: who lives there, keys, family
    if case.address:
        lines.append(_("Address: {address}").format(address=html.escape(case.address)))
    if case.description:
        masked = mask_text(case.description)
        shown = masked[:DESCRIPTION_MAX] if description_max is None else shorten(masked, description_max)
        lines.append(_("Description: {description}").format(description=html.escape(shown)))
    # Answers to the category's questions: only a resident's report through an Open311 client has them.
    for question, answer in case_answers(session, case.id) if case.source == CaseSource.RESIDENT else ():
        lines.append(f"{html.escape(question)}: {html.escape(mask_text(answer))}")
    lines.append(_("Accept by: {accept} · Handle by: {handle}").format(
        accept=local_time(case.accept_due_at, ctx.timezone), handle=local_time(case.handle_due_at, ctx.timezone)))
    lines.append(reporter_line(session, case, _))
    snapshot = snapshot_link_line(session, case, _)
    if snapshot:  # a camera's snapshot not fetched (fetching off, host not allowed, failed): its link
        lines.append(snapshot)
    links = dict(navigation_links(case.lat, case.lon, case.number))
    amap, google = _("Amap"), _("Google Maps")
    lines.append(_("Navigate: {amap} · {google}").format(
        amap=f'<a href="{html.escape(links["amap"])}">{amap}</a>',
        google=f'<a href="{html.escape(links["google"])}">{google}</a>'))
    return "\n".join(lines)


def order_caption(session: Session, ctx: ServiceContext, case: Case, task: CaseTask, locale: str, *,
                  header: str, footer: str = "") -> str:
    """`order_text` (then `footer`) as the caption of the site photo: within CAPTION_MAX, valid HTML.

    Only as much of the description is cut as the limit needs (it ends in "…"); the same case always
    gives the same caption. Should the rest alone be too long, the whole is cut as plain text (`fit_caption`).
    """
    text = order_text(session, ctx, case, task, locale, header=header) + footer
    excess = visible_length(text) - CAPTION_MAX
    if excess <= 0:
        return text
    shown = utf16_len(case.description[:DESCRIPTION_MAX]) if case.description else 0
    if shown - excess >= 2:  # room for at least one character of it and the "…"
        text = order_text(session, ctx, case, task, locale, header=header, description_max=shown - excess) + footer
    return fit_caption(text)


def fit_caption(text: str) -> str:
    """`text` (HTML) unchanged when it fits a caption; else its visible text cut to CAPTION_MAX, links dropped.

    Never cuts inside a tag or an entity: the cut is made on the parsed text, which is escaped again.
    """
    if visible_length(text) <= CAPTION_MAX:
        return text
    return html.escape(shorten(html.unescape(_TAG.sub("", text)).strip(), CAPTION_MAX), quote=False)


def visible_length(text: str) -> int:
    """Length of `text` (HTML we made: escaped values and our own tags) as Telegram counts it, in UTF-16 units."""
    return utf16_len(html.unescape(_TAG.sub("", text)).strip())


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def shorten(text: str, limit: int) -> str:
    """`text` when it has at most `limit` UTF-16 units; else its start and "…", `limit` units in all."""
    if utf16_len(text) <= limit:
        return text
    kept, used = [], 1  # the "…"
    for char in text:
        used += utf16_len(char)
        if used > limit:
            break
        kept.append(char)
    return "".join(kept).rstrip() + "…"


def reporter_line(session: Session, case: Case, _: Gettext) -> str:
    if case.source != CaseSource.RESIDENT:
        sources = {
            CaseSource.PATROL: _("patrol"),
            CaseSource.CAMERA: _("camera"),
            CaseSource.SENSOR: _("sensor"),
            CaseSource.HOTLINE: _("12345 hotline"),
            CaseSource.UPSTREAM: _("city platform"),
        }
        return _("Source: {source}").format(source=sources.get(CaseSource(case.source), case.source))
    reporter = session.get(Person, case.reporter_id) if case.reporter_id else None
    return _("Reporter: {reporter}").format(reporter=html.escape(reporter_label(reporter, _)))


def tell(session: Session, ctx: ServiceContext, person: Person, text: str, reply_markup: dict | None = None) -> None:
    """A message to `person` in their private chat (the reply to what they just did, or news for them)."""
    if person.telegram_user_id is not None:
        enqueue_text(session, chat_id=person.telegram_user_id, text=text, now=ctx.clock.now(),
                     reply_markup=reply_markup, person_id=person.id)
