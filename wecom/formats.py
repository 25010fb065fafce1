"""WeCom message formats, with the field names of the WeCom documentation (企业微信 API 文档).

Inbound: the callback's decrypted XML (接收消息 / 接收事件): `ToUserName`, `FromUserName`, `CreateTime`,
`MsgType`, `MsgId`, `AgentID`; text `Content`; image `PicUrl`, `MediaId`; location `Location_X` (latitude),
`Location_Y` (longitude), `Scale`, `Label`; events `Event` and `EventKey` (menu `click`), and for
模板卡片事件 `template_card_event` also `TaskId`, `CardType`, `ResponseCode`.
Outbound: `message/send` bodies (发送应用消息): `touser`, `msgtype`, `agentid` and the msgtype's object:
`text.content`, `image.media_id`, `template_card` of `card_type` `button_interaction` with `main_title`,
`sub_title_text`, `horizontal_content_list` (`keyname`, `value`), `task_id` and `button_list`
(`text`, `style`, `key`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from defusedxml import ElementTree

# Error codes (全局错误码) the client acts on.
ERR_OK = 0
ERR_BUSY = -1  # 系统繁忙: retry
ERR_INVALID_TOKEN = 40014  # 不合法的access_token: fetch a new one
ERR_TOKEN_EXPIRED = 42001  # access_token已过期: fetch a new one
ERR_FREQUENCY = 45009  # 接口调用超过限制: wait, then retry
ERR_INVALID_USER = 81013  # UserID、部门ID、标签ID全部非法或无权限: the recipient is gone
TOKEN_ERRORS = frozenset({ERR_INVALID_TOKEN, ERR_TOKEN_EXPIRED, 40001})
RETRY_ERRORS = frozenset({ERR_BUSY, ERR_FREQUENCY})

MAX_TEXT_BYTES = 2048  # text.content: 最长不超过2048个字节
MAX_BUTTONS = 6  # button_list: 列表长度不超过6
MAX_HORIZONTAL = 6  # horizontal_content_list: 列表长度不超过6


class BadCallback(ValueError):
    """The body is not a WeCom callback we can read."""


@dataclass(frozen=True)
class Inbound:
    """One decrypted callback message or event."""

    to_user: str
    from_user: str
    create_time: int
    msg_type: str  # text | image | location | event | ...
    fields: dict[str, str]

    @property
    def msg_id(self) -> str | None:
        return self.fields.get("MsgId")

    @property
    def event(self) -> str | None:
        return self.fields.get("Event")

    @property
    def event_key(self) -> str:
        return self.fields.get("EventKey", "")

    @property
    def dedup_key(self) -> str:
        """`MsgId` for messages; events carry none, and WeCom documents FromUserName + CreateTime for them."""
        if self.msg_id:
            return self.msg_id
        return f"{self.from_user}:{self.create_time}:{self.event or ''}:{self.event_key}:{self.fields.get('TaskId', '')}"

    def as_payload(self) -> dict[str, Any]:
        return {"ToUserName": self.to_user, "FromUserName": self.from_user, "CreateTime": self.create_time,
                "MsgType": self.msg_type, **self.fields}


def parse_xml(text: str) -> dict[str, str]:
    """A flat WeCom XML document -> {tag: text}; nested elements (e.g. SendLocationInfo) are flattened."""
    try:
        root = ElementTree.fromstring(text)
    except Exception as exc:  # noqa: BLE001 - defusedxml raises several kinds
        raise BadCallback("not XML") from exc
    fields: dict[str, str] = {}
    for element in root.iter():
        if element is not root and len(element) == 0:
            fields[element.tag] = (element.text or "").strip()
    return fields


def inbound_from_xml(text: str) -> Inbound:
    fields = parse_xml(text)
    try:
        return inbound_from_payload(fields)
    except (KeyError, ValueError) as exc:
        raise BadCallback("a callback needs ToUserName, FromUserName, CreateTime and MsgType") from exc


def inbound_from_payload(payload: dict[str, Any]) -> Inbound:
    rest = {k: str(v) for k, v in payload.items()
            if k not in ("ToUserName", "FromUserName", "CreateTime", "MsgType")}
    return Inbound(to_user=str(payload["ToUserName"]), from_user=str(payload["FromUserName"]),
                   create_time=int(payload["CreateTime"]), msg_type=str(payload["MsgType"]), fields=rest)


# -- outbound ------------------------------------------------------------------------------------------


def clip(text: str, max_bytes: int) -> str:
    """Cut `text` to `max_bytes` of UTF-8 without splitting a character."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - 3].decode("utf-8", errors="ignore") + "…"


def text_message(content: str) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": clip(content, MAX_TEXT_BYTES)}}


def image_message(photo_path: str) -> dict[str, Any]:
    """An image the sender uploads (media/upload) first; it then sends `image.media_id`."""
    return {"msgtype": "image", "image": {"photo_path": photo_path}}


@dataclass(frozen=True)
class Button:
    text: str
    key: str  # the action, in the same words as the Telegram keyboard's callback data (e.g. "wo:a:12")
    style: int = 1  # 1 blue, 2 red, 3 white, 4 green


def button_card(*, title: str, desc: str = "", lines: list[tuple[str, ...]] | None = None, sub_title: str = "",
                buttons: list[Button]) -> dict[str, Any]:
    """A 按钮交互型 template card; `task_id` is filled in by the sender (unique per message).

    `lines` are (name, text) rows, or (name, text, url) rows the member taps to open the link (type 1).
    """
    card: dict[str, Any] = {
        "card_type": "button_interaction",
        "main_title": {"title": clip(title, 108), "desc": clip(desc, 132)},
        "button_list": [{"text": clip(b.text, 30), "style": b.style, "key": b.key} for b in buttons[:MAX_BUTTONS]],
    }
    if sub_title:
        card["sub_title_text"] = clip(sub_title, 1000)
    if lines:
        card["horizontal_content_list"] = [_horizontal(*line) for line in lines[:MAX_HORIZONTAL]]
    return {"msgtype": "template_card", "template_card": card}


def _horizontal(keyname: str, value: str, url: str | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"keyname": clip(keyname, 30), "value": clip(value, 90)}
    if url:
        row.update(type=1, url=url)
    return row


def send_body(message: dict[str, Any], *, touser: str, agent_id: int) -> dict[str, Any]:
    """The message/send request body for one recipient."""
    return {"touser": touser, "agentid": agent_id, **message}
