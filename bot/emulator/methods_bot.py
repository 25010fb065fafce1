"""Bot API methods about the bot itself: getMe, updates and webhooks, callback answers, files,
commands and the menu button. Results have the JSON shape Telegram returns.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bot.emulator.errors import ApiError, bad_request
from bot.emulator.registry import method
from bot.emulator.webhook import WebhookConfig

if TYPE_CHECKING:
    from bot.emulator.server import BotApiEmulator

_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


# -- the bot itself -----------------------------------------------------------------------


@method("getMe")
def get_me(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    return {
        **emu.bot_user,
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@method("close")
def close(emu: BotApiEmulator, p: dict[str, Any]) -> bool:
    return True


@method("logOut")
def log_out(emu: BotApiEmulator, p: dict[str, Any]) -> bool:
    return True


# -- getting updates ----------------------------------------------------------------------


@method("getUpdates")
async def get_updates(emu: BotApiEmulator, p: dict[str, Any]) -> list[dict[str, Any]]:
    if emu.webhook.config is not None:
        raise ApiError(
            409,
            "Conflict: can't use getUpdates method while webhook is active; "
            "use deleteWebhook to delete the webhook first",
        )
    emu.queue.set_allowed(p.get("allowed_updates"))
    limit = min(max(p.get("limit", 100), 1), 100)
    timeout = max(p.get("timeout", 0), 0)
    return await emu.queue.poll(p.get("offset"), limit, timeout)


@method("setWebhook")
def set_webhook(emu: BotApiEmulator, p: dict[str, Any]) -> bool:
    url = p["url"]
    if url == "":
        return delete_webhook(emu, p)
    if not re.match(r"^https?://[^\s/]+", url):
        raise bad_request("invalid webhook URL specified")
    secret = p.get("secret_token")
    if secret is not None and not _SECRET_RE.match(secret):
        raise bad_request("secret token contains unallowed characters")
    if p.get("drop_pending_updates"):
        emu.queue.drop_pending()
    emu.queue.set_allowed(p.get("allowed_updates"))
    emu.queue.terminate_polls("Conflict: terminated by setWebhook request")
    emu.webhook.configure(
        WebhookConfig(
            url=url,
            secret_token=secret,
            max_connections=p.get("max_connections", 40),
            allowed_updates=p.get("allowed_updates"),
            ip_address=p.get("ip_address"),
            has_custom_certificate="certificate" in p,
        )
    )
    return True


@method("deleteWebhook")
def delete_webhook(emu: BotApiEmulator, p: dict[str, Any]) -> bool:
    if p.get("drop_pending_updates"):
        emu.queue.drop_pending()
    emu.webhook.configure(None)
    return True


@method("getWebhookInfo")
def get_webhook_info(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    return emu.webhook.info()


# -- callback queries, files, commands, menu ----------------------------------------------


@method("answerCallbackQuery")
def answer_callback_query(emu: BotApiEmulator, p: dict[str, Any]) -> bool:
    query = emu.callback_queries.get(p["callback_query_id"])
    if query is None or query["answered"]:
        raise bad_request("query is too old and response timeout expired or query ID is invalid")
    if len(p.get("text", "")) > 200:
        raise bad_request("MESSAGE_TOO_LONG")
    query["answered"] = True
    emu.callback_answers.append(
        {
            "callback_query_id": p["callback_query_id"],
            "user_id": query["user_id"],
            "data": query["data"],
            "chat_id": query["chat_id"],
            "message_id": query["message_id"],
            "text": p.get("text"),
            "show_alert": p.get("show_alert", False),
            "url": p.get("url"),
            "cache_time": p.get("cache_time", 0),
        }
    )
    return True


@method("getFile")
def get_file(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    stored = emu.files.get(p["file_id"])
    if stored is None:
        raise bad_request("invalid file_id")
    if stored.file_size is not None and stored.file_size > 20 * 1024 * 1024:
        raise bad_request("file is too big")
    return stored.as_file()


def _commands_key(p: dict[str, Any]) -> tuple[str, str]:
    scope = p.get("scope") or {"type": "default"}
    return (repr(sorted(scope.items())), p.get("language_code", ""))


@method("setMyCommands")
def set_my_commands(emu: BotApiEmulator, p: dict[str, Any]) -> bool:
    commands = p["commands"]
    if len(commands) > 100:
        raise bad_request("too many commands")
    for command in commands:
        if not _COMMAND_RE.match(command["command"]):
            raise bad_request("BOT_COMMAND_INVALID")
        if not 1 <= len(command["description"]) <= 256:
            raise bad_request("BOT_COMMAND_DESCRIPTION_INVALID")
    emu.commands[_commands_key(p)] = [dict(c) for c in commands]
    return True


@method("getMyCommands")
def get_my_commands(emu: BotApiEmulator, p: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(c) for c in emu.commands.get(_commands_key(p), [])]


@method("deleteMyCommands")
def delete_my_commands(emu: BotApiEmulator, p: dict[str, Any]) -> bool:
    emu.commands.pop(_commands_key(p), None)
    return True


@method("setChatMenuButton")
def set_chat_menu_button(emu: BotApiEmulator, p: dict[str, Any]) -> bool:
    emu.menu_buttons[p.get("chat_id")] = p.get("menu_button") or {"type": "default"}
    return True


@method("getChatMenuButton")
def get_chat_menu_button(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    chat_id = p.get("chat_id")
    return dict(emu.menu_buttons.get(chat_id) or emu.menu_buttons.get(None) or {"type": "default"})
