"""Bot API methods about messages: sending, forwarding, copying, editing and deleting them.

Results have the JSON shape Telegram returns, so aiogram parses them into its types; texts and
captions are parsed (`formatting`) and held to Telegram's limits.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from bot.emulator.errors import bad_request
from bot.emulator.formatting import format_text, utf16_len
from bot.emulator.registry import method
from bot.emulator.spec import MAX_CAPTION_LENGTH, UploadedFile
from bot.emulator.store import CONTENT_FIELDS, MEDIA_FIELDS, ChatState

if TYPE_CHECKING:
    from bot.emulator.server import BotApiEmulator

MAX_TEXT_LENGTH = 4096
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)
_CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note", "upload_video_note",
})


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
