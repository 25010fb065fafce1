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
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from PIL import Image, ImageOps, UnidentifiedImageError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bot.emulator import BotApiEmulator, FakeUser
from models.lifecycle import Role
from models.tables import Area, AreaLevel, Case, CaseEvent, Category, Person
from onegrid.i18n import normalize_locale
from onegrid.settings import Settings
from services.context import ServiceContext
from services.db import transaction

log = logging.getLogger(__name__)

BOT_USERNAME = "onegrid_sandbox_bot"
DEMO_STREET = "SH-CN-01"  # 江苏路街道, Changning
EXTRA_RESIDENT_BASE = 9_100_000  # Telegram ids of residents added in the console start above this
MAX_EXTRA_RESIDENTS = 50
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_UPLOAD_PIXELS = 50_000_000
CLIENT_PHOTO_EDGE = 2560  # Telegram clients send photos at most this many pixels per side
LIVE_LOCATION_SECONDS = 900  # "share live location for 15 minutes"
UNSTARTED_API_URL = "http://127.0.0.1:9"  # the discard port: calls before start fail at once


class SandboxRefused(RuntimeError):
    """Sandbox mode may not start with these settings; the message says why and what to set."""


class PersonaError(ValueError):
    """A console request the persona cannot make; nothing was sent. `code` names the reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class PersonaNotFound(PersonaError):
    def __init__(self, message: str) -> None:
        super().__init__("unknown_persona", message)


@dataclass(frozen=True)
class DemoPerson:
    """A person the sandbox seeds; `key` names them in the console and in tests."""

    key: str
    telegram_user_id: int
    name: str
    role: Role
    locale: str
    area_code: str | None = None
    department_code: str | None = None
    phone: str = ""

    @property
    def language_code(self) -> str:
        """The Telegram client language that goes with `locale`."""
        return "zh-hans" if self.locale == "zh_CN" else "en"


# A resident, a worker in each of two grids of 江苏路街道 (department of exposed_garbage and the
# other greening & city appearance categories) and the street's supervisor, in both languages.
DEMO_PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson("resident", 9_000_001, "李华", Role.RESIDENT, "zh_CN", phone="+8613800000001"),
    DemoPerson("worker", 9_000_002, "王建国", Role.WORKER, "zh_CN", f"{DEMO_STREET}-001",
               "greening_appearance", "+8613800000002"),
    DemoPerson("worker2", 9_000_003, "Chen Jie", Role.WORKER, "en", f"{DEMO_STREET}-002",
               "greening_appearance", "+8613800000003"),
    DemoPerson("supervisor", 9_000_004, "Zhang Min", Role.SUPERVISOR, "en", DEMO_STREET,
               phone="+8613800000004"),
)


# ------------------------------------------------------------------------------------ safety


def is_loopback_host(host: str) -> bool:
    """True when every address `host` names is a loopback address (127.0.0.0/8, ::1)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False  # a name we cannot resolve is not known to be loopback
    addresses = {info[4][0].split("%")[0] for info in infos}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def check_binding(settings: Settings) -> None:
    """Raise SandboxRefused when the API host is not loopback and no flag allows it."""
    if is_loopback_host(settings.api_host) or settings.allow_non_loopback_sandbox:
        return
    raise SandboxRefused(
        f"Sandbox mode refuses to listen on {settings.api_host}: anyone who reaches that address "
        "could act as any demo person. Use ONEGRID_API_HOST=127.0.0.1, or set "
        "ONEGRID_BOT_TOKEN to run the real bot, or ONEGRID_SANDBOX=off to run without a bot; "
        "set ONEGRID_ALLOW_NON_LOOPBACK_SANDBOX=true only on a network you trust."
    )


# ------------------------------------------------------------------------------------ seeding


def seed_demo_people(ctx: ServiceContext, people: tuple[DemoPerson, ...] = DEMO_PEOPLE) -> list[str]:
    """Create the demo people missing from the store; returns the keys of those created.

    The street's supervisor chat is set to the demo supervisor when the street has none, so
    whatever the bot sends to the street's supervisor reaches that persona.
    """
    created: list[str] = []
    now = ctx.clock.now()
    for demo in people:
        try:
            with transaction(ctx.sessions) as session:
                if _person(session, demo.telegram_user_id) is not None:
                    continue
                session.add(Person(
                    telegram_user_id=demo.telegram_user_id,
                    display_name=demo.name,
                    phone=demo.phone or None,
                    roles=[demo.role.value],
                    area_code=demo.area_code,
                    department_code=demo.department_code,
                    locale=demo.locale,
                    locale_chosen=True,
                    on_duty=demo.role is Role.WORKER,
                    created_at=now,
                ))
            created.append(demo.key)
        except IntegrityError:  # another process seeded the same person first: that is fine
            continue
    supervisor = next((p for p in people if p.role is Role.SUPERVISOR), None)
    if supervisor is not None and supervisor.area_code:
        with transaction(ctx.sessions) as session:
            session.execute(
                sa.update(Area)
                .where(Area.code == supervisor.area_code, Area.supervisor_chat_id.is_(None))
                .values(supervisor_chat_id=supervisor.telegram_user_id)
            )
    return created


def _person(session: Session, telegram_user_id: int) -> Person | None:
    return session.exec(select(Person).where(Person.telegram_user_id == telegram_user_id)).first()


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
            })
        return result

    # -- acting as a persona -----------------------------------------------------------------
    # Each of these is what the Telegram app does when its user types, taps or shares.

    async def send_text(self, user_id: int, text: str) -> dict[str, Any]:
        user = self.persona(user_id).user
        text = text.strip()
        if not text:
            raise PersonaError("empty", "empty message")
        if text.startswith("/") and len(text) > 1 and not text[1].isspace():
            command, _, args = text.partition(" ")
            return await user.send_command(command, args.strip() or None)
        return await user.send_text(text)

    async def press(self, user_id: int, message_id: int, callback_data: str) -> dict[str, Any]:
        user = self.persona(user_id).user
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
        return await user.send_location(latitude, longitude, horizontal_accuracy=accuracy_m,
                                        live_period=LIVE_LOCATION_SECONDS if live else None)

    async def send_photo(self, user_id: int, data: bytes, caption: str | None = None) -> dict[str, Any]:
        user = self.persona(user_id).user
        jpeg = await asyncio.to_thread(client_photo, data)
        return await user.send_photo(jpeg, caption.strip() if caption and caption.strip() else None)

    async def share_contact(self, user_id: int) -> dict[str, Any]:
        persona = self.persona(user_id)
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
        return None if stored is None else stored.data

    def map_features(self, area_code: str | None = None) -> dict[str, Any]:
        """GeoJSON of the area around the demo street: its district, the district's streets and grids.

        `area_code` picks another street or district; unknown codes give an empty collection.
        """
        with self.ctx.sessions() as session:
            focus = session.exec(select(Area).where(Area.code == (area_code or DEMO_STREET))).first()
            if focus is None:
                return {"type": "FeatureCollection", "features": [], "focus": None}
            district = focus if focus.level == AreaLevel.DISTRICT else session.exec(
                select(Area).where(Area.code == focus.parent_code)).first() or focus
            streets = list(session.exec(select(Area).where(Area.parent_code == district.code)))
            grids = list(session.exec(select(Area).where(
                Area.parent_code.in_([s.code for s in streets])))) if streets else []
        features = []
        for area in [district, *streets, *grids]:
            if not area.geometry:
                continue
            features.append({
                "type": "Feature",
                "geometry": json.loads(area.geometry),
                "properties": {"code": area.code, "name": area.name, "name_en": area.name_en,
                               "level": str(area.level), "parent_code": area.parent_code},
            })
        return {"type": "FeatureCollection", "features": features, "focus": focus.code}

    def recent_cases(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest cases, newest first, with their category's names."""
        with self.ctx.sessions() as session:
            rows = session.exec(
                select(Case, Category)
                .join(Category, Category.code == Case.category_code, isouter=True)
                .order_by(Case.id.desc())
                .limit(limit)
            ).all()
            return [_case_summary(case, category) for case, category in rows]

    def latest_event_id(self) -> int:
        """The id of the newest case event (0 for none): the console refreshes when it moves."""
        with self.ctx.sessions() as session:
            return session.exec(select(sa.func.max(CaseEvent.id))).one() or 0

    def case_timeline(self, number: str) -> dict[str, Any] | None:
        """A case and its audit events (case_event rows), oldest first, with who acted; None if unknown."""
        with self.ctx.sessions() as session:
            case = session.exec(select(Case).where(Case.number == number)).first()
            if case is None:
                return None
            rows = session.exec(
                select(CaseEvent, Person)
                .join(Person, CaseEvent.actor_id == Person.id, isouter=True)
                .where(CaseEvent.case_id == case.id)
                .order_by(CaseEvent.id)
            ).all()
            events = [{
                "id": event.id,
                "at": event.at.isoformat() if event.at else None,
                "action": str(event.action),
                "from_status": str(event.from_status) if event.from_status else None,
                "to_status": str(event.to_status),
                "actor_role": str(event.actor_role),
                "actor": person.display_name if person is not None else None,
                "note": event.note,
            } for event, person in rows]
            category = session.exec(select(Category).where(Category.code == case.category_code)).first()
            return {"case": _case_summary(case, category), "events": events}


def _case_summary(case: Case, category: Category | None = None) -> dict[str, Any]:
    return {
        "number": case.number,
        "status": str(case.status),
        "category": case.category_code,
        "category_name": category.name if category else None,
        "category_name_en": category.name_en if category else None,
        "grid": case.grid_code,
        "lat": case.lat,
        "lon": case.lon,
        "created_at": case.created_at.isoformat() if case.created_at else None,
        "updated_at": case.updated_at.isoformat() if case.updated_at else None,
    }
