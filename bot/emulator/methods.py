"""The Bot API methods the emulator implements, one function each.

Each handler gets the emulator and the validated parameters (see `spec.ApiSpec.validate`) and
returns the `result` of a successful answer, or raises `ApiError`. Results have the JSON shape
Telegram returns, so aiogram parses them into its types. Methods not listed in `HANDLERS`
answer `true` when the spec says they return True, else 501 (see `server`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.emulator.errors import ApiError, bad_request
from bot.emulator.formatting import format_text, utf16_len
from bot.emulator.spec import MAX_CAPTION_LENGTH, UploadedFile
from bot.emulator.store import CONTENT_FIELDS, MEDIA_FIELDS, ChatState
from bot.emulator.webhook import WebhookConfig

if TYPE_CHECKING:
    from bot.emulator.server import BotApiEmulator

Handler = Callable[["BotApiEmulator", dict[str, Any]], Any | Awaitable[Any]]
HANDLERS: dict[str, Handler] = {}

MAX_TEXT_LENGTH = 4096
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
_CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def method(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[name] = handler
        return handler

    return register


# -- shared helpers -----------------------------------------------------------------------


def _text_content(p: dict[str, Any]) -> dict[str, Any]:
    formatted = format_text(p.get("text", ""), p.get("parse_mode"), p.get("entities"))
    if not formatted.text:
        raise bad_request("message text is empty")
    if utf16_len(formatted.text) > MAX_TEXT_LENGTH:
        raise bad_request("message is too long")
    content: dict[str, Any] = {"text": formatted.text}
    if formatted.entities:
        content["entities"] = formatted.entities
    if p.get("link_preview_options"):
        content["link_preview_options"] = p["link_preview_options"]
    return content


def _caption_content(p: dict[str, Any]) -> dict[str, Any]:
    if not p.get("caption"):
        return {}
    formatted = format_text(p["caption"], p.get("parse_mode"), p.get("caption_entities"))
    if utf16_len(formatted.text) > MAX_CAPTION_LENGTH:
        raise bad_request("message caption is too long")
    content: dict[str, Any] = {"caption": formatted.text} if formatted.text else {}
    if formatted.entities:
        content["caption_entities"] = formatted.entities
    if p.get("show_caption_above_media"):
        content["show_caption_above_media"] = True
    return content


def _reply_target(emu: BotApiEmulator, state: ChatState, p: dict[str, Any]) -> dict[str, Any] | None:
    reply = dict(p.get("reply_parameters") or {})
    if "reply_to_message_id" in p:  # the legacy spelling
        reply.setdefault("message_id", p["reply_to_message_id"])
        reply.setdefault("allow_sending_without_reply", p.get("allow_sending_without_reply", False))
    if not reply:
        return None
    chat_id = emu.store.resolve(reply.get("chat_id", state.chat["id"]))
    target = emu.store.get(chat_id, reply["message_id"])
    if target is None and not reply.get("allow_sending_without_reply"):
        raise bad_request("message to be replied not found")
    return target


def _send(emu: BotApiEmulator, p: dict[str, Any], content: dict[str, Any]) -> dict[str, Any]:
    """Store a message from the bot in the request's chat and return its JSON."""
    state = emu.store.chat(p["chat_id"])
    reply_to = _reply_target(emu, state, p)
    if p.get("protect_content"):
        content["has_protected_content"] = True
    markup = p.get("reply_markup")
    if markup and "inline_keyboard" in markup:
        content["reply_markup"] = markup  # only inline keyboards belong to the message
    elif markup and "keyboard" in markup:
        state.reply_keyboard = markup
    elif markup and markup.get("remove_keyboard"):
        state.reply_keyboard = None
    message = emu.store.add_message(
        state, emu.bot_user, content, thread_id=p.get("message_thread_id"), reply_to=reply_to
    )
    return copy.deepcopy(message)


def _photo_sizes(emu: BotApiEmulator, photo: UploadedFile | str) -> list[dict[str, Any]]:
    if isinstance(photo, UploadedFile):
        return emu.files.add_photo(photo.data)
    known = emu.files.get(photo)
    if known is not None:
        if known.kind not in ("photo", "url"):
            raise bad_request(f"type of file mismatch: can't use file of type {known.kind.title()} as Photo")
        return [known.as_photo_size()]
    if photo.startswith(("http://", "https://")):
        return emu.files.add_photo(None)  # Telegram would fetch it; the emulator does not
    raise bad_request("wrong file identifier/HTTP URL specified")


def _editable(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    """The stored bot message an edit* request names."""
    if p.get("inline_message_id") is not None:
        raise bad_request("MESSAGE_ID_INVALID")  # inline messages are not emulated
    if p.get("chat_id") is None:
        raise bad_request("chat_id is empty")
    if p.get("message_id") is None:
        raise bad_request("message identifier is not specified")
    message = emu.store.get(p["chat_id"], p["message_id"])
    if message is None:
        raise bad_request("message to edit not found")
    if message.get("from", {}).get("id") != emu.bot_id:
        raise bad_request("message can't be edited")
    return message


def _apply_edit(emu: BotApiEmulator, message: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Set (value) or remove (None) fields; 400 'not modified' when nothing changes."""
    if all(message.get(key) == value for key, value in changes.items()):
        raise bad_request(NOT_MODIFIED)
    for key, value in changes.items():
        if value is None:
            message.pop(key, None)
        else:
            message[key] = value
    message["edit_date"] = emu.store.now()
    return copy.deepcopy(message)


def _inline_markup(p: dict[str, Any]) -> dict[str, Any] | None:
    markup = p.get("reply_markup")
    return markup if markup and markup.get("inline_keyboard") else None


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


# -- sending ------------------------------------------------------------------------------


@method("sendMessage")
def send_message(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    return _send(emu, p, _text_content(p))


@method("sendPhoto")
def send_photo(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = {"photo": _photo_sizes(emu, p["photo"]), **_caption_content(p)}
    if p.get("has_spoiler"):
        content["has_media_spoiler"] = True
    return _send(emu, p, content)


@method("sendDocument")
def send_document(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    document = p["document"]
    if isinstance(document, UploadedFile):
        stored = emu.files.add_document(document.data, document.filename, document.content_type)
    elif (known := emu.files.get(document)) is not None:
        stored = known
    elif document.startswith(("http://", "https://")):
        stored = emu.files.add(None, "document", file_name=document.rsplit("/", 1)[-1] or "file")
    else:
        raise bad_request("wrong file identifier/HTTP URL specified")
    return _send(emu, p, {"document": stored.as_document(), **_caption_content(p)})


def _location_from(p: dict[str, Any]) -> dict[str, Any]:
    if not -90 <= p["latitude"] <= 90 or not -180 <= p["longitude"] <= 180:
        raise bad_request("wrong latitude or longitude specified")
    location: dict[str, Any] = {"latitude": p["latitude"], "longitude": p["longitude"]}
    for key in ("horizontal_accuracy", "live_period", "heading", "proximity_alert_radius"):
        if p.get(key) is not None:
            location[key] = p[key]
    live_period = location.get("live_period")
    if live_period is not None and not (60 <= live_period <= 86400 or live_period == 0x7FFFFFFF):
        raise bad_request("wrong live period specified")
    return location


@method("sendLocation")
def send_location(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    return _send(emu, p, {"location": _location_from(p)})


@method("sendVenue")
def send_venue(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    location = _location_from(p)
    venue = {"location": location, "title": p["title"], "address": p["address"]}
    for key in ("foursquare_id", "foursquare_type", "google_place_id", "google_place_type"):
        if p.get(key) is not None:
            venue[key] = p[key]
    return _send(emu, p, {"venue": venue, "location": dict(location)})


@method("sendChatAction")
def send_chat_action(emu: BotApiEmulator, p: dict[str, Any]) -> bool:
    emu.store.chat(p["chat_id"])
    if p["action"] not in _CHAT_ACTIONS:
        raise bad_request("wrong parameter action in request")
    return True


@method("forwardMessage")
def forward_message(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    original = emu.store.get(p["from_chat_id"], p["message_id"])
    if original is None:
        raise bad_request("message to forward not found")
    if original["chat"]["type"] == "channel":
        origin = {"type": "channel", "chat": original["chat"], "message_id": original["message_id"]}
    else:
        origin = {"type": "user", "sender_user": original["from"]}
    content = {k: copy.deepcopy(v) for k, v in original.items() if k in CONTENT_FIELDS}
    content["forward_origin"] = {**origin, "date": original["date"]}
    return _send(emu, p, content)


@method("copyMessage")
def copy_message(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    original = emu.store.get(p["from_chat_id"], p["message_id"])
    if original is None:
        raise bad_request("message to copy not found")
    content = {k: copy.deepcopy(v) for k, v in original.items() if k in CONTENT_FIELDS}
    if "caption" in p:
        content.pop("caption", None)
        content.pop("caption_entities", None)
        content.update(_caption_content(p))
    message = _send(emu, p, content)
    return {"message_id": message["message_id"]}


# -- editing and deleting -----------------------------------------------------------------


@method("editMessageText")
def edit_message_text(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    message = _editable(emu, p)
    if "text" not in message:
        raise bad_request("there is no text in the message to edit")
    content = _text_content(p)
    return _apply_edit(
        emu,
        message,
        {"text": content["text"], "entities": content.get("entities"), "reply_markup": _inline_markup(p)},
    )


@method("editMessageCaption")
def edit_message_caption(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    message = _editable(emu, p)
    if not any(key in message for key in MEDIA_FIELDS):
        raise bad_request("there is no caption in the message to edit")
    content = _caption_content(p)
    return _apply_edit(
        emu,
        message,
        {
            "caption": content.get("caption"),
            "caption_entities": content.get("caption_entities"),
            "reply_markup": _inline_markup(p),
        },
    )


@method("editMessageReplyMarkup")
def edit_message_reply_markup(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    message = _editable(emu, p)
    return _apply_edit(emu, message, {"reply_markup": _inline_markup(p)})


@method("editMessageLiveLocation")
def edit_message_live_location(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    message = _editable(emu, p)
    location = message.get("location")
    if not location or "live_period" not in location or _live_key(message) in emu.stopped_live_locations:
        raise bad_request("message can't be edited")
    new_location = _location_from({**p, "live_period": p.get("live_period", location["live_period"])})
    return _apply_edit(emu, message, {"location": new_location, "reply_markup": _inline_markup(p)})


@method("stopMessageLiveLocation")
def stop_message_live_location(emu: BotApiEmulator, p: dict[str, Any]) -> dict[str, Any]:
    message = _editable(emu, p)
    location = message.get("location")
    if not location or "live_period" not in location or _live_key(message) in emu.stopped_live_locations:
        raise bad_request("message can't be edited")
    emu.stopped_live_locations.add(_live_key(message))
    if _inline_markup(p):
        message["reply_markup"] = _inline_markup(p)
    message["edit_date"] = emu.store.now()
    return copy.deepcopy(message)


def _live_key(message: dict[str, Any]) -> tuple[int, int]:
    return (message["chat"]["id"], message["message_id"])


@method("deleteMessage")
def delete_message(emu: BotApiEmulator, p: dict[str, Any]) -> bool:
    message = emu.store.get(p["chat_id"], p["message_id"])
    if message is None:
        raise bad_request("message to delete not found")
    from_bot = message.get("from", {}).get("id") == emu.bot_id
    if not from_bot and message["chat"]["type"] != "private":
        raise bad_request("message can't be deleted")
    emu.store.delete(p["chat_id"], p["message_id"])
    return True


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
