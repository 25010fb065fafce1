"""The web console of sandbox mode: chat with the bot as demo people, in the browser.

Routes under /console exist only in sandbox mode (api/app.py includes them only then). The page
is plain HTML/CSS/JS from api/static/console/; it talks to the JSON routes below and follows the
chats live over server-sent events (`/console/api/events`).

What callers may rely on:
- Every action (text, button press, location, photo, contact) is made by the persona's fake
  Telegram user in the emulator, exactly as a Telegram app would make it (bot/sandbox.py).
- A chat is described as the emulator holds it: message text comes with its Telegram entities
  and is never HTML here (the page renders entities as DOM nodes, so bot text can't inject markup).
- The console answers only requests addressed to a loopback host name (or the configured API
  host when ONEGRID_ALLOW_NON_LOOPBACK_SANDBOX is set), so a web page elsewhere cannot reach it
  through DNS rebinding; changes need the `X-OneGrid-Console` header, which a cross-site form or
  a simple cross-origin request cannot send.
- Errors answer JSON `{"code": ..., "detail": ...}`; `code` is stable, the page translates it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from api.console_strings import catalogues
from api.deps import ApiError
from bot.sandbox import (
    BOT_USERNAME,
    MAX_UPLOAD_BYTES,
    PersonaError,
    PersonaNotFound,
    Sandbox,
)

PREFIX = "/console"
PHOTO_PATH = f"{PREFIX}/api/photo"
CONSOLE_HEADER = "X-OneGrid-Console"
STATIC_DIR = Path(__file__).resolve().parent / "static" / "console"
STATIC_TYPES = {"console.js": "text/javascript", "console.css": "text/css", "map.js": "text/javascript",
                "render.js": "text/javascript"}
# api/app.py lets photo uploads through its request-size limit up to this.
BODY_LIMITS = {PHOTO_PATH: MAX_UPLOAD_BYTES + 64 * 1024}
STATE_POLL_S = 1.0  # how often a live stream looks at the store for case events and people
KEEPALIVE_S = 15.0

# ------------------------------------------------------------------------------------ rendering


def _photo_size(sizes: list[dict[str, Any]], max_side: int = 800) -> dict[str, Any]:
    """The largest PhotoSize no wider or taller than `max_side` (else the smallest)."""
    fitting = [s for s in sizes if max(s.get("width") or 0, s.get("height") or 0) <= max_side]
    chosen = fitting[-1] if fitting else sizes[0]
    return {"file_id": chosen["file_id"], "width": chosen.get("width"), "height": chosen.get("height")}


def _inline_button(button: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {"text": button.get("text", "")}
    for key in ("callback_data", "url"):
        if key in button:
            shown[key] = button[key]
    if len(shown) == 1:
        shown["unsupported"] = True  # web apps, switch-inline, games: Telegram-only
    return shown


def render_message(message: dict[str, Any], persona_id: int) -> dict[str, Any]:
    """One stored Bot API Message as the page shows it."""
    shown: dict[str, Any] = {
        "id": message["message_id"],
        "mine": message.get("from", {}).get("id") == persona_id,
        "date": message.get("date"),
        "edited": "edit_date" in message,
    }
    if "text" in message:
        shown["text"], shown["entities"] = message["text"], message.get("entities", [])
    if "caption" in message:
        shown["caption"], shown["caption_entities"] = message["caption"], message.get("caption_entities", [])
    if message.get("photo"):
        shown["photo"] = _photo_size(message["photo"])
    if "venue" in message:
        venue = message["venue"]
        shown["venue"] = {"title": venue.get("title", ""), "address": venue.get("address", "")}
    if "location" in message:
        location = message["location"]
        shown["location"] = {
            "latitude": location["latitude"],
            "longitude": location["longitude"],
            "live": "live_period" in location,
            "accuracy": location.get("horizontal_accuracy"),
        }
    if "contact" in message:
        contact = message["contact"]
        shown["contact"] = {"phone_number": contact.get("phone_number", ""),
                            "first_name": contact.get("first_name", "")}
    if "document" in message:
        document = message["document"]
        shown["document"] = {"file_id": document["file_id"], "file_name": document.get("file_name", "")}
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    if rows:
        shown["inline_keyboard"] = [[_inline_button(b) for b in row] for row in rows]
    if not any(key in shown for key in ("text", "caption", "photo", "location", "contact", "document")):
        shown["unsupported"] = next((k for k in message if k not in ("message_id", "from", "chat", "date")), "")
    return shown


def render_chat(chat: dict[str, Any], persona_id: int) -> dict[str, Any]:
    """A persona's chat (see `Sandbox.chat`) as the page shows it."""
    keyboard = chat.get("reply_keyboard")
    reply_keyboard = None
    if keyboard:
        reply_keyboard = {
            "rows": [[{"text": b.get("text", ""), "request_location": bool(b.get("request_location")),
                       "request_contact": bool(b.get("request_contact"))} for b in row]
                     for row in keyboard.get("keyboard", [])],
            "one_time": bool(keyboard.get("one_time_keyboard")),
            "placeholder": keyboard.get("input_field_placeholder"),
        }
    return {
        "channel": "telegram",
        "messages": [render_message(m, persona_id) for m in chat["messages"]],
        "reply_keyboard": reply_keyboard,
        "toasts": [{"id": a["callback_query_id"], "text": a["text"], "alert": bool(a["show_alert"])}
                   for a in chat["callback_answers"]],
        "commands": chat["commands"],
    }


def chat_view(sandbox: Sandbox, persona_id: int) -> dict[str, Any]:
    """What a persona's pane shows: their Telegram chat, or their chat on the sandbox's other messenger
    (WeCom / 政务微信, already in this shape). Raises PersonaNotFound."""
    if sandbox.pane_channel is not None and sandbox.on_pane_channel(persona_id):
        return sandbox.pane_channel.chat(persona_id)
    return render_chat(sandbox.chat(persona_id), persona_id)


# ------------------------------------------------------------------------------------ requests


class TextIn(BaseModel):
    text: str = Field(min_length=1, max_length=4096)


class PressIn(BaseModel):
    message_id: int = Field(ge=1)
    callback_data: str = Field(min_length=1, max_length=64)


class LocationIn(BaseModel):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    live: bool = False


class ResidentIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    locale: str = Field(default="zh_CN", pattern=r"^(zh_CN|en)$")


def _refusal(status: int, code: str, detail: str) -> JSONResponse:
    return JSONResponse({"code": code, "detail": detail}, status_code=status)


def _is_loopback_name(host: str) -> bool:
    """A Host header naming loopback literally. Never resolved: a rebinding domain may resolve there."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):  # [::1]:8000
        return host_header[1:].split("]", 1)[0].lower()
    return host_header.rsplit(":", 1)[0].lower() if host_header.count(":") == 1 else host_header.lower()


def build_router(sandbox: Sandbox) -> APIRouter:
    """The /console routes for one sandbox. Include it only in sandbox mode."""
    def guard(request: Request) -> None:
        host = _host_name(request.headers.get("host", ""))
        if not (_is_loopback_name(host) or sandbox.settings.allow_non_loopback_sandbox):
            raise ApiError(403, "host", "the console answers only on a loopback address")
        if request.method not in ("GET", "HEAD") and request.headers.get(CONSOLE_HEADER) != "1":
            raise ApiError(403, "header", f"changes need the {CONSOLE_HEADER}: 1 header")

    router = APIRouter(prefix=PREFIX, include_in_schema=False, dependencies=[Depends(guard)])

    async def act(coro: Any) -> JSONResponse:
        try:
            update = await coro
        except PersonaNotFound as exc:
            return _refusal(404, exc.code, str(exc))
        except PersonaError as exc:
            return _refusal(422 if exc.code != "button_gone" else 409, exc.code, str(exc))
        return JSONResponse({"ok": True, "update_id": update.get("update_id")})

    @router.get("")
    @router.get("/")
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache"})

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        media_type = STATIC_TYPES.get(name)
        if media_type is None:  # only the listed files: no path ever reaches the file system
            return _refusal(404, "not_found", "no such file")
        return FileResponse(STATIC_DIR / name, media_type=media_type, headers={"Cache-Control": "no-cache"})

    @router.get("/api/session")
    async def session() -> dict[str, Any]:
        people = await asyncio.to_thread(sandbox.people)
        return {"bot": {"username": BOT_USERNAME}, "people": people, "strings": catalogues()}

    @router.get("/api/personas/{persona_id}/chat")
    async def chat(persona_id: int) -> Response:
        try:
            return JSONResponse(chat_view(sandbox, persona_id))
        except PersonaNotFound as exc:
            return _refusal(404, exc.code, str(exc))

    @router.post("/api/personas")
    async def add_resident(body: ResidentIn) -> Response:
        try:
            persona = sandbox.add_resident(body.name.strip() or "Resident", body.locale)
        except PersonaError as exc:
            return _refusal(422, exc.code, str(exc))
        return JSONResponse({"ok": True, "id": persona.user.id, "key": persona.key}, status_code=201)

    @router.post("/api/personas/{persona_id}/text")
    async def text(persona_id: int, body: TextIn) -> Response:
        return await act(sandbox.send_text(persona_id, body.text))

    @router.post("/api/personas/{persona_id}/press")
    async def press(persona_id: int, body: PressIn) -> Response:
        return await act(sandbox.press(persona_id, body.message_id, body.callback_data))

    @router.post("/api/personas/{persona_id}/location")
    async def location(persona_id: int, body: LocationIn) -> Response:
        return await act(sandbox.send_location(persona_id, body.latitude, body.longitude, live=body.live))

    @router.post("/api/personas/{persona_id}/contact")
    async def contact(persona_id: int) -> Response:
        return await act(sandbox.share_contact(persona_id))

    @router.post("/api/photo")
    async def photo(persona: Annotated[int, Form()], file: Annotated[UploadFile, File()],
                    caption: Annotated[str, Form(max_length=1024)] = "") -> Response:
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        return await act(sandbox.send_photo(persona, data, caption))

    @router.get("/api/files/{file_id}")
    async def file(file_id: str) -> Response:
        data = sandbox.file(file_id)
        if data is None:
            return _refusal(404, "not_found", "no such file")
        media_type = _media_type(data)
        headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
        if not media_type.startswith("image/"):  # anything else is downloaded, never shown by the browser
            headers["Content-Disposition"] = "attachment"
        return Response(data, media_type=media_type, headers=headers)

    @router.get("/api/map")
    async def map_(area: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
        return await asyncio.to_thread(sandbox.map_features, area)

    @router.get("/api/cases")
    async def cases() -> dict[str, Any]:
        return {"cases": await asyncio.to_thread(sandbox.recent_cases)}

    @router.get("/api/cases/{number}")
    async def case(number: str) -> Response:
        found = await asyncio.to_thread(sandbox.case_timeline, number)
        if found is None:
            return _refusal(404, "not_found", f"no case {number}")
        return JSONResponse(found)

    @router.get("/api/events")
    async def events() -> StreamingResponse:
        return StreamingResponse(_stream(sandbox), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router


def _media_type(data: bytes) -> str:
    """The type of a stored file by its first bytes (files in the emulator carry no trusted type)."""
    for magic, media_type in ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
                              (b"GIF8", "image/gif")):
        if data.startswith(magic):
            return media_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"


async def _stream(sandbox: Sandbox) -> AsyncIterator[str]:
    """Snapshots of every chat, then each chat again whenever it changes; people and case events
    whenever the store says they changed. Ends when the sandbox stops or the server shuts down."""
    loop = asyncio.get_running_loop()
    with sandbox.emulator.watch() as feed:
        yield "retry: 2000\n\n"
        people = await asyncio.to_thread(sandbox.people)
        yield _sse("people", people)
        for persona_id in list(sandbox.personas):
            yield _sse("chat", {"persona": persona_id, "chat": chat_view(sandbox, persona_id)})
        latest = await asyncio.to_thread(sandbox.latest_event_id)
        yield _sse("cases", {"latest_event": latest})
        last_sent = last_polled = loop.time()
        while not feed.closed and not sandbox.shutting_down():
            changed = await feed.next(timeout=STATE_POLL_S)
            for persona_id in sorted(changed & set(sandbox.personas)):
                yield _sse("chat", {"persona": persona_id,
                                    "chat": chat_view(sandbox, persona_id)})
                last_sent = loop.time()
            if loop.time() - last_polled >= STATE_POLL_S / 2:
                last_polled = loop.time()
                now_people = await asyncio.to_thread(sandbox.people)
                if now_people != people:
                    people = now_people
                    yield _sse("people", people)
                    last_sent = loop.time()
                now_latest = await asyncio.to_thread(sandbox.latest_event_id)
                if now_latest != latest:
                    latest = now_latest
                    yield _sse("cases", {"latest_event": latest})
                    last_sent = loop.time()
            if loop.time() - last_sent >= KEEPALIVE_S:
                yield ": keepalive\n\n"
                last_sent = loop.time()
