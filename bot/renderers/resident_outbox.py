"""Queueing Telegram messages to the resident acting now: new messages, edits of a card, keyboard-only edits.

Renderers queue inside the transaction of the change they report; `send` is for replies that change
nothing (a menu, a prompt, a refusal) and commits on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from models.events.resident import ReplyTo
from services.context import ServiceContext
from services.db import transaction
from services.notify import enqueue, enqueue_text


@dataclass(frozen=True)
class Outgoing:
    """One message to the chat of the person acting now.

    A new message (`edit_message_id` None) or an edit of one of the bot's messages: its text,
    or only its inline keyboard when `text` is None. `reply_markup` is Bot API JSON.
    """

    text: str | None
    reply_markup: dict[str, Any] | None = None
    edit_message_id: int | None = None


def queue(session: Session, ctx: ServiceContext, *, chat_id: int, messages: Sequence[Outgoing],
          person_id: int | None = None, case_id: int | None = None) -> None:
    """Queue `messages` to `chat_id` inside `session`'s transaction, in order."""
    now = ctx.clock.now()
    for m in messages:
        if m.edit_message_id is None:
            if m.text is None:
                raise ValueError("a new message needs text")
            enqueue_text(session, chat_id=chat_id, text=m.text, now=now, reply_markup=m.reply_markup,
                         person_id=person_id, case_id=case_id)
            continue
        payload: dict[str, Any] = {"message_id": m.edit_message_id}
        if m.reply_markup is not None:
            payload["reply_markup"] = m.reply_markup
        if m.text is None:
            method = "editMessageReplyMarkup"
        else:
            method = "editMessageText"
            payload.update(text=m.text, parse_mode="HTML")
        enqueue(session, chat_id=chat_id, method=method, payload=payload, now=now, person_id=person_id,
                case_id=case_id)


def card_done(reply_to: ReplyTo) -> list[Outgoing]:
    """The pressed card loses its buttons (nothing when the action came without a card)."""
    return [] if reply_to.message_id is None else [Outgoing(None, edit_message_id=reply_to.message_id)]


def send(ctx: ServiceContext, *, chat_id: int, messages: Sequence[Outgoing], person_id: int | None = None) -> None:
    """Queue replies that change nothing else (a menu, a prompt), in their own transaction."""
    if not messages:
        return
    with transaction(ctx.sessions) as session:
        queue(session, ctx, chat_id=chat_id, messages=messages, person_id=person_id)
    ctx.on_notifications()
