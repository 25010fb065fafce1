"""Resident handlers: the menu, language, consent, /my with case cards, 回访, account deletion.

The report conversation itself is in handlers/resident_report.py. Order matters: the menu
(commands and reply-keyboard buttons) answers in any conversation state, then the report
flow, then the 回访 follow-ups, then a fallback that points back to the menu.
"""

from __future__ import annotations

import asyncio
import html
import logging

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import BotCommand, CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from bot.resident_ui import (
    CANCEL_BUTTON,
    HELP_BUTTON,
    LANGUAGE_BUTTON,
    MY_CASES_BUTTON,
    PRIVACY_NOTICE,
    AccountCb,
    ConsentCb,
    FeedbackCb,
    LangCb,
    MyCasesCb,
    account_keyboard,
    button,
    comment_keyboard,
    consent_keyboard,
    current_locale,
    in_every_language,
    inline,
    language_keyboard,
    main_keyboard,
    rating_keyboard,
)
from bot.throttle import register_flood_notice
from handlers import resident_report
from handlers.common import help_
from models.lifecycle import Status
from models.tables import Person
from onegrid.i18n import N_, SUPPORTED, gettext_for
from services import feedback, residents
from services.cases import StaleCase
from services.context import ServiceContext
from services.feedback import FeedbackView
from services.resident_views import (
    EVENT_LABELS,
    CaseCard,
    NotFollowed,
    case_card,
    local_time,
    my_cases,
    status_label,
)
from services.residents import Outgoing

log = logging.getLogger(__name__)

CASES_PER_PAGE = 5


class FeedbackFlow(StatesGroup):
    reopen_note = State()  # "not fixed": what is still wrong (the reopening reason)
    comment = State()  # an optional comment after the rating


def build_router() -> Router:
    """A fresh Router each call, so every Dispatcher (and every test) gets its own."""
    root = Router(name="resident")
    root.message.filter(F.chat.type == ChatType.PRIVATE)
    root.callback_query.filter(F.message.chat.type == ChatType.PRIVATE)
    register_flood_notice(root)
    root.startup.register(set_commands)

    menu = Router(name="resident-menu")
    menu.message.register(cancel, Command("cancel"))
    menu.message.register(cancel, F.text.in_(in_every_language(CANCEL_BUTTON)))
    menu.message.register(show_language, Command("lang"))
    menu.message.register(show_language, F.text.in_(in_every_language(LANGUAGE_BUTTON)))
    menu.message.register(show_my_cases, Command("my"))
    menu.message.register(show_my_cases, F.text.in_(in_every_language(MY_CASES_BUTTON)))
    menu.message.register(help_, F.text.in_(in_every_language(HELP_BUTTON)))
    menu.message.register(ask_delete, Command("delete"))
    menu.callback_query.register(choose_language, LangCb.filter())
    menu.callback_query.register(decline_consent, ConsentCb.filter(F.act == "no"))
    menu.callback_query.register(my_cases_page, MyCasesCb.filter(F.act == "pg"))
    menu.callback_query.register(open_case, MyCasesCb.filter(F.act == "open"))
    menu.callback_query.register(answer_fixed, FeedbackCb.filter(F.act.in_({"y", "n"})))
    menu.callback_query.register(rate, FeedbackCb.filter(F.act == "r"))
    menu.callback_query.register(skip_comment, FeedbackCb.filter(F.act == "skip"))
    menu.callback_query.register(account, AccountCb.filter())
    root.include_router(menu)

    root.include_router(resident_report.build_router())

    follow_ups = Router(name="resident-feedback")
    follow_ups.message.register(reopen_note, FeedbackFlow.reopen_note, F.text, ~F.text.startswith("/"))
    follow_ups.message.register(comment, FeedbackFlow.comment, F.text, ~F.text.startswith("/"))
    follow_ups.message.register(fallback)
    root.include_router(follow_ups)
    return root


async def _send(ctx: ServiceContext, chat_id: int, person: Person | None, *messages: Outgoing) -> None:
    await asyncio.to_thread(residents.send, ctx, chat_id=chat_id, messages=messages,
                            person_id=person.id if person else None)


# -- startup --------------------------------------------------------------------------------------

_COMMANDS = (
    ("report", N_("report a problem")),
    ("my", N_("my cases")),
    ("lang", N_("language: 中文 / English")),
    ("help", N_("what I can do")),
    ("cancel", N_("stop the current step")),
    ("delete", N_("delete my data")),
)


async def set_commands(bot: Bot) -> None:
    """The command menu in both languages (Chinese for zh clients, English for everyone else)."""
    for locale in SUPPORTED:
        _ = gettext_for(locale)
        commands = [BotCommand(command=name, description=_(description)) for name, description in _COMMANDS]
        try:
            await bot.set_my_commands(commands, language_code="zh" if locale == "zh_CN" else None)
        except Exception:  # noqa: BLE001 - a missing menu must not stop the bot; the next start retries
            log.warning("could not set the bot's command menu for %s", locale, exc_info=True)


# -- cancel, language, consent --------------------------------------------------------------------

async def cancel(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None) -> None:
    current = await state.get_state()
    await state.clear()
    if current and current.startswith("ReportFlow:"):
        text = resident_report.cancelled_text()
    elif current:
        text = _("Stopped.")
    else:
        text = _("There is nothing to cancel.")
    await _send(ctx, message.chat.id, person, Outgoing(text, main_keyboard(_)))


async def show_language(message: Message, ctx: ServiceContext, person: Person | None) -> None:
    await _send(ctx, message.chat.id, person, Outgoing(_("Choose your language:"), language_keyboard()))


async def choose_language(query: CallbackQuery, callback_data: LangCb, ctx: ServiceContext,
                          person: Person | None) -> None:
    locale = callback_data.locale if callback_data.locale in SUPPORTED else "en"
    _ = gettext_for(locale)
    chat_id = query.message.chat.id
    messages = [Outgoing(_("Language set: English."), main_keyboard(_))]
    if person is None or person.consented_at is None:
        # Asked from the first greeting: repeat the consent question in the new language.
        messages.append(Outgoing(_(PRIVACY_NOTICE), consent_keyboard(_, locale=locale)))
    await asyncio.to_thread(residents.set_language, ctx, telegram_user_id=query.from_user.id, locale=locale,
                            chat_id=chat_id, messages=messages)
    await query.answer()


async def decline_consent(query: CallbackQuery, ctx: ServiceContext, person: Person | None) -> None:
    await query.answer()
    await _send(ctx, query.message.chat.id, person,
                Outgoing(None, edit_message_id=query.message.message_id),
                Outgoing(_("Understood: nothing about you is stored. You can read /help, and agree later "
                           "when you want to report a problem."), main_keyboard(_)))


# -- /my --------------------------------------------------------------------------------------------

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
    keyboard = inline([[button(_("⬅ Back to my cases"), MyCasesCb(act="pg", page=callback_data.page))]])
    await _send(ctx, query.message.chat.id, person,
                Outgoing(_card_text(card, ctx), keyboard, edit_message_id=query.message.message_id))


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
    lines.append("")
    lines.append(_("Timeline:"))
    for entry in card.timeline:
        line = f"{local_time(entry.at, ctx.timezone, '%m-%d %H:%M')} {_(EVENT_LABELS[entry.action])}"
        if entry.note:
            line += f" — {html.escape(entry.note)}"
        lines.append(line)
    return "\n".join(lines)


# -- 回访 ---------------------------------------------------------------------------------------------

def _rating_prompt(_, view: FeedbackView) -> str:  # noqa: ANN001 - a gettext function
    return _("How satisfied are you with how case {number} was handled? 1 = not at all, 5 = very.").format(
        number=view.number)


async def answer_fixed(query: CallbackQuery, callback_data: FeedbackCb, state: FSMContext, ctx: ServiceContext,
                       person: Person | None) -> None:
    if person is None:
        await query.answer(_("This question is not for you."), show_alert=True)
        return
    fixed = callback_data.act == "y"
    message_id = query.message.message_id
    if not fixed and _reporting(await state.get_state()):
        await query.answer(_("Please finish or cancel the report in progress first, then tap again."),
                           show_alert=True)
        return

    def render(view: FeedbackView, locale: str) -> list[Outgoing]:
        _ = gettext_for(locale)
        if fixed:
            return [Outgoing(_("Glad it is fixed!") + "\n" + _rating_prompt(_, view), rating_keyboard(view.feedback_id),
                             edit_message_id=message_id)]
        if view.can_reopen:
            return [Outgoing(_("Sorry to hear that. What is still wrong? Send a short note and I will reopen "
                               "case {number} for rework.").format(number=view.number), edit_message_id=message_id)]
        return [Outgoing(_not_reopenable(_, view) + "\n" + _rating_prompt(_, view), rating_keyboard(view.feedback_id),
                         edit_message_id=message_id)]

    try:
        view = await asyncio.to_thread(feedback.answer_fixed, ctx, feedback_id=callback_data.fid,
                                       person_id=person.id, fixed=fixed, chat_id=query.message.chat.id,
                                       render=render)
    except feedback.FeedbackNotFound:
        await query.answer(_("This question is not for you."), show_alert=True)
        return
    except feedback.AlreadyAnswered:
        await query.answer(_("You have already answered this question. Thank you!"), show_alert=True)
        return
    await query.answer()
    if not fixed and view.can_reopen:
        await state.set_state(FeedbackFlow.reopen_note)
        await state.set_data({"feedback_id": view.feedback_id, "message_id": message_id})


def _not_reopenable(_, view: FeedbackView) -> str:  # noqa: ANN001 - a gettext function
    if view.case_status is not Status.CLOSED:
        return _("Thank you. Case {number} has already been reopened for rework.").format(number=view.number)
    if view.blocker is feedback.ReopenBlocker.NOT_CLOSED:  # closed again since this question was asked
        return _("Thank you, your answer is noted. Case {number} was handled again since this question; "
                 "a newer question about it has reached you.").format(number=view.number)
    return _("Thank you for telling us. Case {number} was closed more than {days} days ago, so it cannot be "
             "reopened; please report the problem again with /report.").format(number=view.number,
                                                                                days=view.window_days)


async def reopen_note(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None) -> None:
    data = await state.get_data()
    feedback_id = data.get("feedback_id")
    note = (message.text or "").strip()
    if person is None or not feedback_id:
        await state.clear()
        return await fallback(message, ctx, person)
    if not note:
        await _send(ctx, message.chat.id, person, Outgoing(_("Please write a few words about what is still wrong.")))
        return

    def render(view: FeedbackView, locale: str) -> list[Outgoing]:
        _ = gettext_for(locale)
        return [
            Outgoing(_("↩️ Case {number} is reopened for rework with your note. I will keep you posted.").format(
                number=view.number), main_keyboard(_)),
            Outgoing(_rating_prompt(_, view), rating_keyboard(view.feedback_id)),
        ]

    try:
        await asyncio.to_thread(feedback.reopen, ctx, feedback_id=feedback_id, person_id=person.id, note=note,
                                chat_id=message.chat.id, render=render)
    except feedback.ReopenRefused as exc:
        await state.clear()
        if exc.blocker is feedback.ReopenBlocker.NOT_CLOSED:
            text = _("Thank you. The case has already been reopened for rework.")
        else:
            text = _("Sorry, the case was closed more than {days} days ago and cannot be reopened; "
                     "please report the problem again with /report.").format(days=exc.days)
        await _send(ctx, message.chat.id, person, Outgoing(text, main_keyboard(_)))
        return
    except (feedback.FeedbackNotFound, feedback.AlreadyAnswered):
        await state.clear()
        await _send(ctx, message.chat.id, person, Outgoing(_("You have already answered this question. Thank you!"),
                                                           main_keyboard(_)))
        return
    except StaleCase:  # someone changed the case at the same moment; nothing was written
        await _send(ctx, message.chat.id, person, Outgoing(_("The case changed just now; please send your note again.")))
        return
    await state.clear()


async def rate(query: CallbackQuery, callback_data: FeedbackCb, state: FSMContext, ctx: ServiceContext,
               person: Person | None) -> None:
    if person is None or not 1 <= callback_data.rating <= 5:
        await query.answer(_("This question is not for you."), show_alert=True)
        return
    message_id = query.message.message_id
    ask_comment = not _reporting(await state.get_state())  # never overwrite a report in progress

    def render(view: FeedbackView, locale: str) -> list[Outgoing]:
        _ = gettext_for(locale)
        thanks = _("You rated case {number}: {stars}. Thank you!").format(number=view.number,
                                                                          stars="⭐" * (view.rating or 0))
        if not ask_comment:
            return [Outgoing(thanks, edit_message_id=message_id)]
        return [Outgoing(thanks + "\n" + _("Anything to add? Send a comment now, or tap “No comment”."),
                         comment_keyboard(_, view.feedback_id), edit_message_id=message_id)]

    try:
        view = await asyncio.to_thread(feedback.rate, ctx, feedback_id=callback_data.fid, person_id=person.id,
                                       rating=callback_data.rating, chat_id=query.message.chat.id, render=render)
    except feedback.FeedbackNotFound:
        await query.answer(_("This question is not for you."), show_alert=True)
        return
    await query.answer()
    if ask_comment:
        await state.set_state(FeedbackFlow.comment)
        await state.set_data({"feedback_id": view.feedback_id, "message_id": message_id})


def _reporting(raw_state: str | None) -> bool:
    return bool(raw_state and raw_state.startswith("ReportFlow:"))


async def comment(message: Message, state: FSMContext, ctx: ServiceContext, person: Person | None) -> None:
    data = await state.get_data()
    await state.clear()
    if person is None or not data.get("feedback_id"):
        return await fallback(message, ctx, person)
    message_id = data.get("message_id")

    def render(view: FeedbackView, locale: str) -> list[Outgoing]:
        _ = gettext_for(locale)
        out = [Outgoing(_("📝 Your comment on case {number} is noted. Thank you!").format(number=view.number),
                        main_keyboard(_))]
        if message_id:
            out.insert(0, Outgoing(None, edit_message_id=message_id))  # the "No comment" button is done
        return out

    try:
        await asyncio.to_thread(feedback.add_comment, ctx, feedback_id=data["feedback_id"], person_id=person.id,
                                comment=message.text or "", chat_id=message.chat.id, render=render)
    except feedback.FeedbackNotFound:
        await fallback(message, ctx, person)


async def skip_comment(query: CallbackQuery, callback_data: FeedbackCb, state: FSMContext, ctx: ServiceContext,
                       person: Person | None) -> None:
    if person is None:
        await query.answer(_("This question is not for you."), show_alert=True)
        return
    message_id = query.message.message_id

    def render(view: FeedbackView, locale: str) -> list[Outgoing]:
        _ = gettext_for(locale)
        return [Outgoing(_("You rated case {number}: {stars}. Thank you!").format(
            number=view.number, stars="⭐" * (view.rating or 0)), edit_message_id=message_id)]

    try:
        await asyncio.to_thread(feedback.reply_only, ctx, feedback_id=callback_data.fid, person_id=person.id,
                                chat_id=query.message.chat.id, render=render)
    except feedback.FeedbackNotFound:
        await query.answer(_("This question is not for you."), show_alert=True)
        return
    if (await state.get_state()) == FeedbackFlow.comment.state:
        await state.clear()
    await query.answer()


# -- account --------------------------------------------------------------------------------------

async def ask_delete(message: Message, ctx: ServiceContext, person: Person | None) -> None:
    if person is None:
        await _send(ctx, message.chat.id, person, Outgoing(_("We store nothing about you.")))
        return
    if residents.is_staff(person):
        await _send(ctx, message.chat.id, person, Outgoing(_(
            "Staff accounts are managed by your supervisor; please ask them.")))
        return
    await _send(ctx, message.chat.id, person, Outgoing(_(
        "Delete your data? Your name, Telegram account and comments are removed, and you stop receiving "
        "updates. The cases you reported stay in the city's record without your name."), account_keyboard(_)))


async def account(query: CallbackQuery, callback_data: AccountCb, state: FSMContext, ctx: ServiceContext,
                  person: Person | None) -> None:
    chat_id = query.message.chat.id
    done = Outgoing(None, edit_message_id=query.message.message_id)
    if callback_data.act != "delete":
        await query.answer()
        await _send(ctx, chat_id, person, done, Outgoing(_("Nothing was deleted."), main_keyboard(_)))
        return
    if person is None:
        await query.answer(_("We store nothing about you."), show_alert=True)
        return
    await state.clear()
    bye = Outgoing(_("Your data has been deleted. Thank you for helping the city. Send /start if you ever want "
                     "to come back."), {"remove_keyboard": True})
    try:
        await asyncio.to_thread(residents.delete_account, ctx, person_id=person.id, chat_id=chat_id,
                                messages=[done, bye])
    except residents.StaffAccount:
        await query.answer(_("Staff accounts are managed by your supervisor; please ask them."), show_alert=True)
        return
    await query.answer()


# -- anything else ---------------------------------------------------------------------------------

async def fallback(message: Message, ctx: ServiceContext, person: Person | None) -> None:
    await _send(ctx, message.chat.id, person, Outgoing(
        _("I did not understand that. Use the buttons below, or /help for what I can do."), main_keyboard(_)))
