"""/my: the resident's cases, a page at a time, and the card of one case with its timeline; from the card the
reporter may withdraw a report nobody has started on (services/case_ending.py `withdraw_report`)."""

from __future__ import annotations

import asyncio
import html

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.renderers.field_text import note_label
from bot.renderers.resident_outbox import Outgoing, send
from bot.renderers.resident_views import EVENT_LABELS, status_label
from bot.resident_ui import MY_CASES_BUTTON, MyCasesCb, button, current_locale, in_every_language, inline
from models.tables import Person
from services.context import ServiceContext
from services import case_ending
from services.cases import CaseNotFound
from services.resident_views import CaseCard, NotFollowed, case_card, local_time, my_cases

CASES_PER_PAGE = 5


def register(router: Router) -> None:
    router.message.register(show_my_cases, Command("my"))
    router.message.register(show_my_cases, F.text.in_(in_every_language(MY_CASES_BUTTON)))
    router.callback_query.register(my_cases_page, MyCasesCb.filter(F.act == "pg"))
    router.callback_query.register(open_case, MyCasesCb.filter(F.act == "open"))
    router.callback_query.register(ask_withdrawal, MyCasesCb.filter(F.act == "wd"))
    router.callback_query.register(withdraw, MyCasesCb.filter(F.act == "wdy"))


async def _send(ctx: ServiceContext, chat_id: int, person: Person | None, *messages: Outgoing) -> None:
    await asyncio.to_thread(send, ctx, chat_id=chat_id, messages=messages, person_id=person.id if person else None)


async def show_my_cases(message: Message, ctx: ServiceContext, person: Person | None) -> None:
    text, keyboard = await _cases_page(ctx, person, 0)
    await _send(ctx, message.chat.id, person, Outgoing(text, keyboard))


async def my_cases_page(query: CallbackQuery, callback_data: MyCasesCb, ctx: ServiceContext,
                        person: Person | None) -> None:
    await query.answer()
    text, keyboard = await _cases_page(ctx, person, callback_data.page)
    await _send(ctx, query.message.chat.id, person,
                Outgoing(text, keyboard, edit_message_id=query.message.message_id))


async def _cases_page(ctx: ServiceContext, person: Person | None, page: int) -> tuple[str, dict | None]:
    if person is None:
        return _("You have no cases yet. Tap “📝 Report a problem” to report one."), None
    locale = current_locale()
    result = await asyncio.to_thread(my_cases, ctx, person_id=person.id, locale=locale, page=page,
                                     per_page=CASES_PER_PAGE)
    if not result.total:
        return _("You have no cases yet. Tap “📝 Report a problem” to report one."), None
    lines = [_("📋 Your cases ({total}), newest first — page {page} of {pages}:").format(
        total=result.total, page=result.page + 1, pages=result.pages)]
    rows = []
    for item in result.items:
        lines.append(_("{number} · {category} · {status} · {when}").format(
            number=item.number, category=html.escape(item.category), status=status_label(item.status, _),
            when=local_time(item.created_at, ctx.timezone, "%m-%d %H:%M")))
        rows.append([button(f"{item.number} · {status_label(item.status, _)}",
                            MyCasesCb(act="open", page=result.page, case=item.case_id))])
    nav = []
    if result.page > 0:
        nav.append(button(_("◀ Newer"), MyCasesCb(act="pg", page=result.page - 1)))
    if result.page < result.pages - 1:
        nav.append(button(_("Older ▶"), MyCasesCb(act="pg", page=result.page + 1)))
    rows.append(nav)
    return "\n".join(lines), inline(rows)


async def open_case(query: CallbackQuery, callback_data: MyCasesCb, ctx: ServiceContext,
                    person: Person | None) -> None:
    if person is None:
        await query.answer(_("This case is not among yours."), show_alert=True)
        return
    try:
        card = await asyncio.to_thread(case_card, ctx, person_id=person.id, case_id=callback_data.case,
                                       locale=current_locale())
    except NotFollowed:
        await query.answer(_("This case is not among yours."), show_alert=True)
        return
    await query.answer()
    rows = [[button(_("⬅ Back to my cases"), MyCasesCb(act="pg", page=callback_data.page))]]
    if card.withdrawable:
        rows.insert(0, [button(_("↩️ Withdraw my report"), MyCasesCb(act="wd", page=callback_data.page,
                                                                    case=card.case_id))])
    await _send(ctx, query.message.chat.id, person,
                Outgoing(_card_text(card, ctx), inline(rows), edit_message_id=query.message.message_id))


async def ask_withdrawal(query: CallbackQuery, callback_data: MyCasesCb, ctx: ServiceContext,
                         person: Person | None) -> None:
    """Ask once more: a withdrawn report cannot be taken back."""
    await query.answer()
    keyboard = inline([[button(_("Yes, withdraw it"), MyCasesCb(act="wdy", page=callback_data.page,
                                                                 case=callback_data.case)),
                        button(_("No, keep it"), MyCasesCb(act="open", page=callback_data.page,
                                                           case=callback_data.case))]])
    await _send(ctx, query.message.chat.id, person,
                Outgoing(_("Withdraw your report? The case will be closed and nobody will be sent to it."), keyboard,
                         edit_message_id=query.message.message_id))


async def withdraw(query: CallbackQuery, callback_data: MyCasesCb, ctx: ServiceContext, person: Person | None) -> None:
    if person is None:
        await query.answer(_("This case is not among yours."), show_alert=True)
        return
    try:  # the reply is queued with the change (ReportWithdrawn)
        await asyncio.to_thread(case_ending.withdraw_report, ctx, case_id=callback_data.case, person_id=person.id)
    except case_ending.AlreadyUnderWay as exc:
        await query.answer(_("Work on case {number} has already started or ended, so it can no longer be "
                             "withdrawn. You will be told how it goes.").format(number=exc.number), show_alert=True)
        return
    except (case_ending.NotYourReport, CaseNotFound):
        await query.answer(_("Only the resident who reported a case can withdraw it."), show_alert=True)
        return
    await query.answer()


def _card_text(card: CaseCard, ctx: ServiceContext) -> str:
    lines = [
        _("Case <b>{number}</b>").format(number=card.number),
        _("Category: {name}").format(name=html.escape(card.category)),
        _("Status: {status}").format(status=status_label(card.status, _)),
        _("Place: {place}").format(place=html.escape(card.place or "—")),
        _("Coordinates: {lat:.5f}, {lon:.5f}").format(lat=card.lat, lon=card.lon),
        _("Photos: {count}").format(count=card.photos),
        _("Description: {text}").format(text=html.escape(card.description or "—")),
    ]
    if card.report_count > 1:
        lines.append(_("Reported by {count} residents").format(count=card.report_count))
    if card.handle_due_at is not None and card.closed_at is None:
        lines.append(_("To be handled by: {due}").format(due=local_time(card.handle_due_at, ctx.timezone)))
    if card.progress:
        lines.append(_("Latest from the site:"))
        lines.extend(f"{local_time(n.at, ctx.timezone, '%m-%d %H:%M')} {note_label(n, _, resident=True)}"
                     for n in card.progress)
    lines.append("")
    lines.append(_("Timeline:"))
    for entry in card.timeline:
        line = f"{local_time(entry.at, ctx.timezone, '%m-%d %H:%M')} {_(EVENT_LABELS[entry.action])}"
        if entry.note:
            line += f" — {html.escape(entry.note)}"
        lines.append(line)
    return "\n".join(lines)
