"""The elder roster (独居老人): records with address, grid, devices, key holder and family contacts.

What callers may rely on:
- `create`, `update`, `end` and `import_rows` are one transaction each; a refusal raises
  `ElderInvalid` (every problem at once, with its field, and for imports its line) and writes nothing.
  An import is all or none.
- The grid is the given grid code, or found from the location; a location outside that grid, an
  unknown grid, or a grid outside the caller's area is refused. Consent (who, when) is required.
- A device id is listed for at most one current record; ending a record frees its devices.
- `elder_view(elder, devices, pii=False)` masks the name, address, phones and chat ids (services/privacy.py);
  only readers with `pii` see them whole.
- `purge_ended` (retention) empties the personal data of records ended before the cutoff; the row and
  its welfare checks stay, for the audit.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, time
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, select

from models.elders import DeviceKind, Elder, ElderDevice
from models.tables import Area, AreaLevel
from services.api_keys import Principal, area_in_scope
from services.context import ServiceContext
from services.db import transaction
from services.privacy import mask_name, mask_phone

CSV_COLUMNS = ("name", "address", "grid", "lat", "lon", "devices", "key_holder_name", "key_holder_phone",
               "contacts", "consent_by", "consent_at")
YES = {"yes", "y", "true", "1", "是"}
NO = {"no", "n", "false", "0", "否", ""}


@dataclass(frozen=True)
class Problem:
    field: str
    detail: str
    line: int | None = None  # CSV line (the header is line 1)


class ElderInvalid(ValueError):
    """The record (or some rows of an import) cannot be stored; `problems` says each thing wrong."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(f"{'line %d: ' % p.line if p.line else ''}{p.field}: {p.detail}"
                                   for p in problems))
        self.problems = problems


class ElderNotFound(LookupError):
    """No such current record in the caller's area."""


@dataclass(frozen=True)
class Contact:
    name: str
    phone: str = ""
    chat_id: int | None = None  # the contact's Telegram chat, when they use the bot
    notify: bool = False  # chose to be told welfare-check outcomes


@dataclass(frozen=True)
class ElderInput:
    name: str
    address: str
    consent_by: str
    consent_at: datetime | None
    grid_code: str | None = None
    lat: float | None = None
    lon: float | None = None
    devices: list[tuple[str, str]] = field(default_factory=list)  # (device id, kind)
    key_holder_name: str = ""
    key_holder_phone: str = ""
    contacts: list[Contact] = field(default_factory=list)


# -- validation ------------------------------------------------------------------------------------------


def _check(session: Session, ctx: ServiceContext, principal: Principal | None, data: ElderInput,
           *, elder_id: int | None = None, line: int | None = None) -> tuple[str | None, list[Problem]]:
    problems: list[Problem] = []

    def bad(name: str, detail: str) -> None:
        problems.append(Problem(name, detail, line))

    if not data.name.strip():
        bad("name", "is required")
    if not data.address.strip():
        bad("address", "is required")
    if not data.consent_by.strip() or data.consent_at is None:
        bad("consent", "who consented (consent_by) and when (consent_at) are required")
    grid = _grid_of(session, ctx, data, bad)
    if grid is not None and principal is not None and not area_in_scope(session, principal, grid):
        bad("grid", f"{grid} is outside this key's area")
    seen: set[str] = set()
    for device_id, kind in data.devices:
        if not device_id.strip() or len(device_id) > 128:
            bad("devices", "a device id is empty or longer than 128 characters")
        elif kind not in {k.value for k in DeviceKind}:
            bad("devices", f"{device_id}: type must be door or water, not {kind!r}")
        elif device_id in seen:
            bad("devices", f"{device_id} is listed twice")
        else:
            seen.add(device_id)
            owner = session.exec(select(ElderDevice.elder_id).where(ElderDevice.device_id == device_id)).first()
            if owner is not None and owner != elder_id:
                bad("devices", f"{device_id} is already listed for elder {owner}")
    if not data.devices:
        bad("devices", "at least one device (door or water) is required")
    for contact in data.contacts:
        if not contact.name.strip():
            bad("contacts", "every family contact needs a name")
        if not contact.phone.strip() and contact.chat_id is None:
            bad("contacts", f"{contact.name or '?'}: a phone or a chat id is required")
    return grid, problems


def _grid_of(session: Session, ctx: ServiceContext, data: ElderInput, bad) -> str | None:  # noqa: ANN001
    located = None
    if (data.lat is None) != (data.lon is None):
        bad("location", "give both lat and lon, or neither")
    elif data.lat is not None:
        if not (-90 <= data.lat <= 90 and -180 <= data.lon <= 180):
            bad("location", "lat/lon out of range")
            return None
        located = ctx.grid_map.lookup(data.lon, data.lat) if ctx.grid_map is not None else None
        if located is None:
            bad("location", f"{data.lat:.6f},{data.lon:.6f} lies in no grid")
            return None
    if data.grid_code:
        area = session.exec(select(Area).where(Area.code == data.grid_code)).first()
        if area is None or area.level != AreaLevel.GRID:
            bad("grid", f"{data.grid_code} is not a grid")
            return None
        if located is not None and located != data.grid_code:
            bad("grid", f"the location lies in {located}, not {data.grid_code}")
            return None
        return data.grid_code
    if located is None and data.lat is None:
        bad("grid", "give a grid code or a location")
    return located


def _apply(elder: Elder, data: ElderInput, grid: str, now: datetime) -> None:
    elder.name, elder.address, elder.grid_code = data.name.strip(), data.address.strip(), grid
    elder.lat, elder.lon = data.lat, data.lon
    elder.key_holder_name, elder.key_holder_phone = data.key_holder_name.strip(), data.key_holder_phone.strip()
    elder.contacts = [{"name": c.name.strip(), "phone": c.phone.strip(), "chat_id": c.chat_id, "notify": c.notify}
                      for c in data.contacts]
    elder.consent_by, elder.consent_at, elder.updated_at = data.consent_by.strip(), data.consent_at, now


def _set_devices(session: Session, elder_id: int, devices: list[tuple[str, str]]) -> None:
    session.execute(sa.delete(ElderDevice).where(ElderDevice.elder_id == elder_id))
    session.flush()
    for device_id, kind in devices:
        session.add(ElderDevice(elder_id=elder_id, device_id=device_id.strip(), kind=kind))


# -- use cases -------------------------------------------------------------------------------------------


def create(ctx: ServiceContext, *, principal: Principal | None, data: ElderInput) -> tuple[Elder, list[ElderDevice]]:
    with transaction(ctx.sessions) as session:
        grid, problems = _check(session, ctx, principal, data)
        if problems:
            raise ElderInvalid(problems)
        return _insert(session, data, grid, ctx.clock.now())


def _insert(session: Session, data: ElderInput, grid: str, now: datetime) -> tuple[Elder, list[ElderDevice]]:
    elder = Elder(grid_code=grid, created_at=now)
    _apply(elder, data, grid, now)
    session.add(elder)
    session.flush()
    _set_devices(session, elder.id, data.devices)
    session.flush()
    return elder, devices_of(session, elder.id)


def _current(session: Session, principal: Principal | None, elder_id: int) -> Elder:
    elder = session.get(Elder, elder_id)
    if elder is None or elder.ended_at is not None or (
            principal is not None and not area_in_scope(session, principal, elder.grid_code)):
        raise ElderNotFound(str(elder_id))
    return elder


def update(ctx: ServiceContext, *, principal: Principal | None, elder_id: int,
           data: ElderInput) -> tuple[Elder, list[ElderDevice]]:
    """Replace the record's fields and devices with `data` (validated like a new record)."""
    with transaction(ctx.sessions) as session:
        elder = _current(session, principal, elder_id)
        grid, problems = _check(session, ctx, principal, data, elder_id=elder.id)
        if problems:
            raise ElderInvalid(problems)
        _apply(elder, data, grid, ctx.clock.now())
        session.add(elder)
        _set_devices(session, elder.id, data.devices)
        session.flush()
        return elder, devices_of(session, elder.id)


def end(ctx: ServiceContext, *, principal: Principal | None, elder_id: int) -> None:
    """Take the record off the roster: its devices no longer raise welfare checks; retention purges it later."""
    with transaction(ctx.sessions) as session:
        elder = _current(session, principal, elder_id)
        elder.ended_at = ctx.clock.now()
        session.add(elder)
        session.execute(sa.delete(ElderDevice).where(ElderDevice.elder_id == elder.id))


def read(ctx: ServiceContext, *, principal: Principal | None, elder_id: int) -> tuple[Elder, list[ElderDevice]]:
    with ctx.sessions() as session:
        elder = _current(session, principal, elder_id)
        return elder, devices_of(session, elder.id)


def list_current(ctx: ServiceContext, *, principal: Principal | None,
                 grid_code: str | None = None) -> list[tuple[Elder, list[ElderDevice]]]:
    with ctx.sessions() as session:
        query = select(Elder).where(Elder.ended_at.is_(None)).order_by(Elder.id)
        if grid_code:
            query = query.where(Elder.grid_code == grid_code)
        return [(e, devices_of(session, e.id)) for e in session.exec(query).all()
                if principal is None or area_in_scope(session, principal, e.grid_code)]


def devices_of(session: Session, elder_id: int) -> list[ElderDevice]:
    return list(session.exec(select(ElderDevice).where(ElderDevice.elder_id == elder_id)
                             .order_by(ElderDevice.id)).all())


def elder_for_device(session: Session, device_id: str) -> tuple[Elder, ElderDevice] | None:
    """The current record listing `device_id`, with the device; None when the device is not listed."""
    if not device_id:
        return None
    row = session.exec(select(Elder, ElderDevice).join(ElderDevice, ElderDevice.elder_id == Elder.id).where(
        ElderDevice.device_id == device_id, Elder.ended_at.is_(None))).first()
    return None if row is None else (row[0], row[1])


# -- masking ---------------------------------------------------------------------------------------------


def elder_view(elder: Elder, devices: list[ElderDevice], *, pii: bool) -> dict:
    """The record as a reader sees it: whole with `pii`, else names, address, phones and chats masked."""
    def name(value: str) -> str:
        return value if pii else mask_name(value)

    def phone(value: str) -> str:
        return value if pii else mask_phone(value)

    return {
        "id": elder.id, "name": name(elder.name), "address": elder.address if pii else _mask_address(elder.address),
        "grid_code": elder.grid_code,
        "lat": elder.lat if pii or elder.lat is None else round(elder.lat, 3),
        "lon": elder.lon if pii or elder.lon is None else round(elder.lon, 3),
        "devices": [{"device_id": d.device_id, "type": d.kind} for d in devices],
        "key_holder": {"name": name(elder.key_holder_name), "phone": phone(elder.key_holder_phone)},
        "contacts": [{"name": name(c.get("name", "")), "phone": phone(c.get("phone", "")),
                      "chat_id": c.get("chat_id") if pii else None, "uses_bot": c.get("chat_id") is not None,
                      "notify": bool(c.get("notify"))} for c in elder.contacts or []],
        "consent": {"by": name(elder.consent_by), "at": elder.consent_at},
        "created_at": elder.created_at, "updated_at": elder.updated_at, "masked": not pii,
    }


def _mask_address(address: str) -> str:
    """Keep the first few characters (the road), star the rest (the building and the flat)."""
    address = address or ""
    keep = min(len(address) // 2, 6)
    return address[:keep] + "*" * min(len(address) - keep, 8)


# -- CSV import ------------------------------------------------------------------------------------------


def parse_csv(text: str, *, timezone: str) -> tuple[list[tuple[int, ElderInput]], list[Problem]]:
    """Rows of an elder CSV (columns CSV_COLUMNS) as inputs with their line numbers, and format problems."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    missing = [c for c in ("name", "address", "devices", "consent_by", "consent_at")
               if c not in (reader.fieldnames or [])]
    if missing:
        return [], [Problem("header", f"missing column(s): {', '.join(missing)}; expected {','.join(CSV_COLUMNS)}", 1)]
    rows: list[tuple[int, ElderInput]] = []
    problems: list[Problem] = []
    for row in reader:
        line = reader.line_num
        row_problems: list[Problem] = []

        def bad(name: str, detail: str, line: int = line, out: list[Problem] = row_problems) -> None:
            out.append(Problem(name, detail, line))

        data = _row_input({k: (v or "").strip() for k, v in row.items() if k}, timezone, bad)
        problems.extend(row_problems)
        if not row_problems:
            rows.append((line, data))
    if not rows and not problems:
        problems.append(Problem("file", "no rows", None))
    return rows, problems


def _row_input(row: dict[str, str], timezone: str, bad) -> ElderInput:  # noqa: ANN001
    lat = lon = None
    try:
        lat = float(row["lat"]) if row.get("lat") else None
        lon = float(row["lon"]) if row.get("lon") else None
    except ValueError:
        bad("location", "lat and lon must be numbers")
    devices = []
    for item in filter(None, (p.strip() for p in row.get("devices", "").split(";"))):
        kind, sep, device_id = item.partition(":")
        if not sep:
            bad("devices", f"{item!r}: write type:device-id, e.g. door:DS-1001")
            continue
        devices.append((device_id.strip(), kind.strip().lower()))
    contacts = []
    for item in filter(None, (p.strip() for p in row.get("contacts", "").split(";"))):
        parts = [p.strip() for p in item.split("|")] + ["", "", "", ""]
        name, phone, chat, notify = parts[:4]
        chat_id = None
        if chat:
            try:
                chat_id = int(chat)
            except ValueError:
                bad("contacts", f"{name}: chat id {chat!r} is not a number")
        if notify.lower() not in YES | NO:
            bad("contacts", f"{name}: notify must be yes or no, not {notify!r}")
        contacts.append(Contact(name, phone, chat_id, notify.lower() in YES))
    consent_at = None
    if row.get("consent_at"):
        consent_at = parse_when(row["consent_at"], timezone)
        if consent_at is None:
            bad("consent_at", f"{row['consent_at']!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)")
    return ElderInput(name=row.get("name", ""), address=row.get("address", ""), consent_by=row.get("consent_by", ""),
                      consent_at=consent_at, grid_code=row.get("grid") or None, lat=lat, lon=lon, devices=devices,
                      key_holder_name=row.get("key_holder_name", ""), key_holder_phone=row.get("key_holder_phone", ""),
                      contacts=contacts)


def parse_when(text: str, timezone: str) -> datetime | None:
    """An ISO date or date-time; a value without an offset is the city's local time."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    if len(text) == 10:
        value = datetime.combine(value.date(), time(0))
    return value.replace(tzinfo=ZoneInfo(timezone)) if value.tzinfo is None else value


def import_rows(ctx: ServiceContext, *, principal: Principal | None, text: str) -> int:
    """Import every row of an elder CSV, or none: raises ElderInvalid with every bad row's problems."""
    rows, problems = parse_csv(text, timezone=ctx.settings.timezone)
    with transaction(ctx.sessions) as session:
        checked: list[tuple[ElderInput, str]] = []
        seen: dict[str, int] = {}
        for line, data in rows:
            grid, row_problems = _check(session, ctx, principal, data, line=line)
            for device_id, _kind in data.devices:
                if device_id in seen:
                    row_problems.append(Problem("devices", f"{device_id} is also on line {seen[device_id]}", line))
                seen.setdefault(device_id, line)
            problems.extend(row_problems)
            checked.append((data, grid))
        if problems:
            raise ElderInvalid(sorted(problems, key=lambda p: p.line or 0))
        now = ctx.clock.now()
        for data, grid in checked:
            _insert(session, data, grid, now)
        return len(checked)


# -- retention -------------------------------------------------------------------------------------------


def purge_ended(ctx: ServiceContext, cutoff: datetime, now: datetime, *, batch: int = 200) -> int:
    """Empty the personal data of records ended before `cutoff`; returns how many."""
    with transaction(ctx.sessions) as session:
        rows = session.exec(select(Elder).where(Elder.ended_at < cutoff, Elder.purged_at.is_(None))
                            .order_by(Elder.id).limit(batch)).all()
        for elder in rows:
            elder.name = elder.address = elder.key_holder_name = elder.key_holder_phone = elder.consent_by = ""
            elder.contacts, elder.lat, elder.lon, elder.purged_at = [], None, None, now
            session.add(elder)
        return len(rows)
