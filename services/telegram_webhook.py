"""Telegram's side of the durable inbox (services/inbox.py): updates are keyed by their update_id.

What callers may rely on:
- `store_update` validates the update_id and stores the raw update in the inbox (channel
  "telegram", key str(update_id)), committed before it returns; a redelivery stores nothing new.
- `telegram_handler(feed)` adapts `dispatcher.feed_raw_update(bot, update)` to the inbox's
  handler signature; `WebhookProcessor(ctx, feed)` is an `InboxProcessor` for Telegram alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from services.context import ServiceContext
from services.inbox import LEASE, Handler, InboxProcessor, InboxTicket, pending_count, store_message, store_messages

CHANNEL = "telegram"

__all__ = ["CHANNEL", "BadUpdate", "chat_key", "WebhookProcessor", "pending_count", "store_update", "store_updates",
           "telegram_handler", "update_key"]


class BadUpdate(ValueError):
    """The body is not a Telegram update (no integer update_id)."""


def update_key(payload: Any) -> str:
    """The inbox key of an update: str(update_id). Raises BadUpdate."""
    update_id = payload.get("update_id") if isinstance(payload, dict) else None
    if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < 0 or update_id >= 2**63:
        raise BadUpdate("an update needs a non-negative integer update_id")
    return str(update_id)


def chat_key(payload: dict[str, Any]) -> str | None:
    """Whose update it is, for per-chat order: the chat's id (a callback: its message's chat), else the
    sender's user id (inline queries, poll answers); None when the update names neither."""
    for name, body in payload.items():
        if name == "update_id" or not isinstance(body, dict):
            continue
        message = body.get("message")
        chat = body.get("chat") or (message.get("chat") if isinstance(message, dict) else None)
        if isinstance(chat, dict) and isinstance(chat.get("id"), int):
            return str(chat["id"])
        user = body.get("from") or body.get("user")
        if isinstance(user, dict) and isinstance(user.get("id"), int):
            return str(user["id"])
    return None


def store_update(ctx: ServiceContext, *, payload: dict[str, Any]) -> bool:
    """Store the update; True when it is new, False for a redelivery. Raises BadUpdate."""
    return store_message(ctx, channel=CHANNEL, key=update_key(payload), payload=payload,
                         chat_key=chat_key(payload))


def store_updates(ctx: ServiceContext, updates: list[dict[str, Any]]) -> int:
    """Store a getUpdates batch in one commit (all or nothing); returns how many were new. Raises BadUpdate."""
    return store_messages(ctx, channel=CHANNEL, messages=[(update_key(u), u) for u in updates], chat_of=chat_key)


def telegram_handler(feed: Callable[[dict[str, Any]], Awaitable[Any]]) -> Handler:
    """The inbox handler for Telegram: feed the raw update to the dispatcher (the ticket rides in context)."""
    async def handle(payload: dict[str, Any], ticket: InboxTicket) -> None:
        await feed(payload)
    return handle


class WebhookProcessor(InboxProcessor):
    """An inbox processor for Telegram updates only (kept for callers of the webhook-only version)."""

    def __init__(self, ctx: ServiceContext, feed: Callable[[dict[str, Any]], Awaitable[Any]], *,
                 lease: timedelta = LEASE) -> None:
        super().__init__(ctx, {CHANNEL: telegram_handler(feed)}, lease=lease)
