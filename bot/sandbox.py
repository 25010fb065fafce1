"""Sandbox mode: OneGrid without Telegram, on the built-in Bot API emulator.

When no ONEGRID_BOT_TOKEN is set (and ONEGRID_SANDBOX is not "off"), `onegrid serve` starts the
emulator of bot/emulator on loopback, builds the real bot against it with a generated token,
seeds demo people and serves the web console (api/console.py), where one chats as those people.

What callers may rely on:
- `Sandbox.start()` refuses (SandboxRefused, nothing started) when the API would listen on an
  address that is not loopback, unless ONEGRID_ALLOW_NON_LOOPBACK_SANDBOX is set. The emulator
  itself always listens on 127.0.0.1 only.
- `seed_demo_people` is idempotent: a demo person already in the store (matched by Telegram id)
  is left exactly as it is, so changes made while trying the demo (/duty, /lang) survive restarts.
- Every persona action goes through the emulator as a Telegram client would do it (a message,
  a callback query, a shared location) and reaches the bot by long polling; nothing here calls
  OneGrid's handlers or services to play a part of the bot.

Its parts: `bot.sandbox_safety` (loopback only), `bot.sandbox_demo` (the demo people and their
seeding), `bot.sandbox_views` (what the console reads from the store); this module holds the
`Sandbox` itself and the personas one acts as. A persona's pane may run on another messenger
(`pane_channel`, bot/sandbox_channel.py: WeCom / 政务微信 with ONEGRID_SANDBOX_WECOM=on); its actions
then go through that messenger's emulator instead.
"""

from __future__ import annotations

import asyncio
import io
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlmodel import select

from bot import sandbox_views
from bot.emulator import BotApiEmulator, FakeUser
from bot.sandbox_channel import PaneChannel
from bot.sandbox_demo import DEMO_PEOPLE, DEMO_STREET, DemoPerson, back_to_telegram, seed_demo_people
from bot.sandbox_safety import SandboxRefused, check_binding, is_loopback_host
from models.lifecycle import Role
from models.tables import Area, Person
from onegrid.i18n import normalize_locale
from onegrid.settings import Settings
from services.context import ServiceContext

__all__ = [  # the demo and safety names stay importable from here for the console, the app and tests
    "BOT_USERNAME",
    "CLIENT_PHOTO_EDGE",
    "DEMO_PEOPLE",
    "DEMO_STREET",
    "EXTRA_RESIDENT_BASE",
    "LIVE_LOCATION_SECONDS",
    "MAX_EXTRA_RESIDENTS",
    "MAX_UPLOAD_BYTES",
    "DemoPerson",
    "Persona",
    "PersonaError",
    "PersonaNotFound",
    "Sandbox",
    "SandboxRefused",
    "check_binding",
    "client_photo",
    "is_loopback_host",
    "seed_demo_people",
]

log = logging.getLogger(__name__)

BOT_USERNAME = "onegrid_sandbox_bot"
EXTRA_RESIDENT_BASE = 9_100_000  # Telegram ids of residents added in the console start above this
MAX_EXTRA_RESIDENTS = 50
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 50_000_000
CLIENT_PHOTO_EDGE = 2560  # Telegram clients send photos at most this many pixels per side
LIVE_LOCATION_SECONDS = 900  # "share live location for 15 minutes"
UNSTARTED_API_URL = "http://127.0.0.1:9"  # the discard port: calls before start fail at once


class PersonaError(ValueError):
    """A console request the persona cannot make; nothing was sent. `code` names the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PersonaNotFound(PersonaError):
    def __init__(self, message: str) -> None:
        super().__init__("unknown_persona", message)


# ------------------------------------------------------------------------------------ the sandbox


@dataclass
class Persona:
    """Someone one can chat as in the console: a fake Telegram user, maybe known to the store."""

    user: FakeUser
    key: str
    role: Role
    phone: str


def client_photo(data: bytes) -> bytes:
    """What a Telegram client sends for a picture: a JPEG, upright, no metadata, ≤ 2560 px a side.

    Raises PersonaError for anything that is not a picture, or too large.
    """
    not_a_picture = PersonaError("not_a_picture", "that file is not a picture (JPEG, PNG, WebP, GIF or BMP)")
    if len(data) > MAX_UPLOAD_BYTES:
        raise PersonaError("too_large", f"the picture is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    try:
        image = Image.open(io.BytesIO(data), formats=("JPEG", "PNG", "WEBP", "GIF", "BMP"))
    except Image.DecompressionBombError:
        raise PersonaError("too_large", "the picture has too many pixels") from None
    except (UnidentifiedImageError, OSError):
        raise not_a_picture from None
    with image:
        if image.width * image.height > MAX_UPLOAD_PIXELS:  # judged from the header, before decoding
            raise PersonaError("too_large", "the picture has too many pixels")
        try:
            upright = ImageOps.exif_transpose(image).convert("RGB")
        except (OSError, ValueError):  # truncated or corrupt pixel data
            raise not_a_picture from None
    upright.thumbnail((CLIENT_PHOTO_EDGE, CLIENT_PHOTO_EDGE))
    out = io.BytesIO()
    upright.save(out, format="JPEG", quality=87)
    return out.getvalue()


class Sandbox:
    """The emulator, the demo personas, and what the console reads from the store."""

    def __init__(self, settings: Settings, ctx: ServiceContext) -> None:
        self.settings = settings
        self.ctx = ctx
        bot_id = 1_000_000_000 + secrets.randbelow(8_000_000_000)
        self.token = f"{bot_id}:{secrets.token_urlsafe(30)}"
        self.emulator = BotApiEmulator(self.token, bot_username=BOT_USERNAME, bot_first_name="OneGrid")
        self.personas: dict[int, Persona] = {}
        self.seeded: list[str] = []
        # Long-lived console streams end when this says the server is stopping (set by `serve`).
        self.shutting_down: Callable[[], bool] = lambda: False
        self.pane_channel: PaneChannel | None = None  # set by the wiring before start
        self._running = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        """The emulator's base URL once started; before that an address where nothing answers."""
        return self.emulator.base_url if self._running else UNSTARTED_API_URL

    @property
    def running(self) -> bool:
        return self._running

    @property
    def console_url(self) -> str:
        host = self.settings.api_host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.settings.api_port}/console"

    async def announce(self, serving: Callable[[], bool]) -> None:
        """Say where the console is once the API accepts requests, so it is the last line `make run` shows."""
        while not serving():
            if self.shutting_down():
                return
            await asyncio.sleep(0.1)
        log.warning("Sandbox mode: try OneGrid in your browser at %s", self.console_url)

    def check_binding(self) -> None:
        """Raise SandboxRefused when the API would listen beyond loopback without the flag."""
        check_binding(self.settings)

    async def start(self, bot: Bot | None = None) -> None:
        """Check the binding, start the emulator on loopback, seed the demo and its personas.

        `bot` (built before the emulator had an address) is pointed at the emulator.
        """
        check_binding(self.settings)
        await self.emulator.start("127.0.0.1", 0)
        try:
            self.seeded = await asyncio.to_thread(seed_demo_people, self.ctx)
            for demo in DEMO_PEOPLE:
                self._add_persona(demo.telegram_user_id, demo.name, demo.language_code, demo.key, demo.role,
                                  demo.phone)
            for person in await asyncio.to_thread(self._stored_extra_residents):
                self._add_persona(person.telegram_user_id, person.display_name,
                                  "zh-hans" if person.locale == "zh_CN" else "en",
                                  f"resident{person.telegram_user_id - EXTRA_RESIDENT_BASE}",
                                  Role.RESIDENT, person.phone or "")
            if self.pane_channel is not None:
                await self.pane_channel.start({p.key: uid for uid, p in self.personas.items()}, self.emulator.touch)
            else:
                await asyncio.to_thread(back_to_telegram, self.ctx)
        except BaseException:
            await self.emulator.stop()
            raise
        self._running = True
        if bot is not None:
            bot.session.api = TelegramAPIServer.from_base(self.emulator.base_url)
        if not await asyncio.to_thread(self._has_map):
            log.warning("Sandbox: the store has no map; run `onegrid setup` (what `make run` does) "
                        "to load the demo map and categories.")

    def _has_map(self) -> bool:
        with self.ctx.sessions() as session:
            return session.exec(select(sa.func.count()).select_from(Area)).one() > 0

    async def stop(self) -> None:
        self._running = False
        if self.pane_channel is not None:
            await self.pane_channel.stop()
        await self.emulator.stop()

    def status(self) -> dict[str, Any]:
        return {
            "running": self._running,
            "emulator": self.emulator.base_url if self._running else None,
            "console": "/console",
            "personas": len(self.personas),
        }

    # -- personas ----------------------------------------------------------------------------

    def _add_persona(self, user_id: int, name: str, language_code: str, key: str, role: Role,
                     phone: str) -> Persona:
        user = self.emulator.user(user_id, first_name=name, language_code=language_code)
        persona = self.personas[user_id] = Persona(user=user, key=key, role=role, phone=phone)
        return persona

    def _stored_extra_residents(self) -> list[Person]:
        with self.ctx.sessions() as session:
            return list(session.exec(
                select(Person)
                .where(Person.telegram_user_id > EXTRA_RESIDENT_BASE,
                       Person.telegram_user_id <= EXTRA_RESIDENT_BASE + MAX_EXTRA_RESIDENTS)
                .order_by(Person.telegram_user_id)
            ).all())

    def add_resident(self, name: str, locale: str) -> Persona:
        """A new resident persona (a Telegram user the bot has never seen), up to 50 of them."""
        used = [uid for uid in self.personas if uid > EXTRA_RESIDENT_BASE]
        number = max(used, default=EXTRA_RESIDENT_BASE) - EXTRA_RESIDENT_BASE + 1
        if number > MAX_EXTRA_RESIDENTS:
            raise PersonaError("too_many", f"at most {MAX_EXTRA_RESIDENTS} extra residents")
        language = "zh-hans" if normalize_locale(locale) == "zh_CN" else "en"
        return self._add_persona(EXTRA_RESIDENT_BASE + number, name, language, f"resident{number}",
                                 Role.RESIDENT, f"+86139{number:08d}")

    def persona(self, user_id: int) -> Persona:
        found = self.personas.get(user_id)
        if found is None:
            raise PersonaNotFound(f"no persona {user_id}")
        return found

    def persona_by_key(self, key: str) -> Persona:
        for persona in self.personas.values():
            if persona.key == key:
                return persona
        raise PersonaNotFound(f"no persona {key!r}")

    def people(self) -> list[dict[str, Any]]:
        """The personas as the console shows them, with what the store knows of each now."""
        with self.ctx.sessions() as session:
            ids = list(self.personas)
            stored = {p.telegram_user_id: p for p in session.exec(
                select(Person).where(Person.telegram_user_id.in_(ids)))} if ids else {}
            areas = {a.code: a for a in session.exec(select(Area).where(
                Area.code.in_({p.area_code for p in stored.values() if p.area_code})))}
        result = []
        for user_id, persona in self.personas.items():
            person = stored.get(user_id)
            area = areas.get(person.area_code) if person and person.area_code else None
            result.append({
                "id": user_id,
                "key": persona.key,
                "name": person.display_name if person and person.display_name else persona.user.first_name,
                "roles": list(person.roles) if person else [persona.role.value],
                "area": {"code": area.code, "name": area.name, "name_en": area.name_en} if area else None,
                "department": person.department_code if person else None,
                "locale": person.locale if person and person.locale else normalize_locale(
                    persona.user.language_code, self.settings.default_locale),
                "on_duty": bool(person.on_duty) if person else False,
                "known": person is not None,
                "channel": self.pane_channel.name if self.on_pane_channel(user_id) else "telegram",
            })
        return result

    # -- acting as a persona -----------------------------------------------------------------
    # Each of these is what the Telegram app does when its user types, taps or shares (or, for a
    # persona on `pane_channel`, what that messenger's app does).

    def on_pane_channel(self, user_id: int) -> bool:
        return self.pane_channel is not None and self.pane_channel.has(user_id)

    async def send_text(self, user_id: int, text: str) -> dict[str, Any]:
        user = self.persona(user_id).user
        text = text.strip()
        if not text:
            raise PersonaError("empty", "empty message")
        if self.pane_channel is not None and self.pane_channel.has(user_id):
            return await self.pane_channel.send_text(user_id, text)
        if text.startswith("/") and len(text) > 1 and not text[1].isspace():
            command, _, args = text.partition(" ")
            return await user.send_command(command, args.strip() or None)
        return await user.send_text(text)

    async def press(self, user_id: int, message_id: int, callback_data: str) -> dict[str, Any]:
        user = self.persona(user_id).user
        if self.pane_channel is not None and self.pane_channel.has(user_id):
            return await self.pane_channel.press(user_id, message_id, callback_data)
        message = self.emulator.store.get(user.id, message_id)
        if message is None:
            raise PersonaError("message_gone", "that message is gone")
        try:
            return await user.press(message, callback_data)
        except LookupError:
            raise PersonaError("button_gone", "that button is no longer there") from None

    async def send_location(self, user_id: int, latitude: float, longitude: float, *, live: bool = False,
                            accuracy_m: float | None = 10.0) -> dict[str, Any]:
        user = self.persona(user_id).user
        if self.pane_channel is not None and self.pane_channel.has(user_id):  # no live location there
            return await self.pane_channel.send_location(user_id, latitude, longitude)
        return await user.send_location(latitude, longitude, horizontal_accuracy=accuracy_m,
                                        live_period=LIVE_LOCATION_SECONDS if live else None)

    async def send_photo(self, user_id: int, data: bytes, caption: str | None = None) -> dict[str, Any]:
        user = self.persona(user_id).user
        jpeg = await asyncio.to_thread(client_photo, data)
        if self.pane_channel is not None and self.pane_channel.has(user_id):
            return await self.pane_channel.send_photo(user_id, jpeg, caption.strip() if caption else None)
        return await user.send_photo(jpeg, caption.strip() if caption and caption.strip() else None)

    async def share_contact(self, user_id: int) -> dict[str, Any]:
        persona = self.persona(user_id)
        if self.on_pane_channel(user_id):
            raise PersonaError("not_on_this_channel", "contacts are shared only on Telegram")
        return await persona.user.send_contact(persona.phone or "+8613800000000")

    # -- what the console reads --------------------------------------------------------------

    def chat(self, user_id: int) -> dict[str, Any]:
        """The persona's private chat as the emulator holds it: messages, reply keyboard, answers."""
        user = self.persona(user_id).user
        answers = [a for a in self.emulator.callback_answers if a["chat_id"] == user.id and a["text"]]
        return {
            "messages": self.emulator.history(user.id),
            "reply_keyboard": self.emulator.reply_keyboard(user.id),
            "callback_answers": answers[-5:],
            "commands": self._commands(user.language_code),
        }

    def _commands(self, language_code: str | None) -> list[dict[str, str]]:
        """The command menu the bot set for private chats in this language (Telegram's fallbacks)."""
        language = (language_code or "")[:2]
        for scope in ({"type": "all_private_chats"}, {"type": "default"}):
            for lang in (language, ""):
                found = self.emulator.commands.get((repr(sorted(scope.items())), lang))
                if found:
                    return found
        return []

    def file(self, file_id: str) -> bytes | None:
        stored = self.emulator.files.get(file_id)
        if stored is None and self.pane_channel is not None:
            return self.pane_channel.file(file_id)
        return None if stored is None else stored.data

    def map_features(self, area_code: str | None = None) -> dict[str, Any]:
        """GeoJSON of the demo street's district, its streets and grids (see `sandbox_views.map_features`)."""
        return sandbox_views.map_features(self.ctx, area_code)

    def recent_cases(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest cases, newest first, with their category's names."""
        return sandbox_views.recent_cases(self.ctx, limit)

    def latest_event_id(self) -> int:
        """The id of the newest case event (0 for none): the console refreshes when it moves."""
        return sandbox_views.latest_event_id(self.ctx)

    def case_timeline(self, number: str) -> dict[str, Any] | None:
        """A case and its audit events, oldest first, with who acted; None if unknown."""
        return sandbox_views.case_timeline(self.ctx, number)
