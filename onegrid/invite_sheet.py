"""The outputs of `onegrid invite --csv`: a CSV of links and a printable HTML sheet, one QR code per person.

The sheet is what a supervisor hands out at the morning meeting: one card per person (name, role,
area, department, the QR code of their link, the link itself and until when it works), cards never
split across printed pages. Its words are in the locale asked for (default: ONEGRID_DEFAULT_LOCALE).
The QR codes are inline SVG made by segno, so the page needs no network and no image files.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import segno

from onegrid.i18n import gettext_for


@dataclass(frozen=True)
class SheetEntry:
    name: str
    role: str  # "worker" or "supervisor"
    area_code: str
    area_name: str
    department_code: str
    department_name: str
    phone: str
    link: str
    expires_at: datetime


CSV_COLUMNS = ("name", "role", "area", "department", "phone", "link", "expires_at_utc")


def links_csv(entries: Iterable[SheetEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        writer.writerow([e.name, e.role, e.area_code, e.department_code, e.phone, e.link,
                         f"{e.expires_at:%Y-%m-%d %H:%M}"])
    return out.getvalue()


def qr_svg(link: str) -> str:
    """The link as an inline SVG QR code (error correction M, about 4 cm wide when printed)."""
    return segno.make(link, error="m", micro=False).svg_inline(scale=4, border=2, omitsize=False)


_STYLE = """
body { font-family: "Noto Sans CJK SC", "WenQuanYi Micro Hei", sans-serif; margin: 1.5em; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
p.note { margin: 0 0 1em; color: #444; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px dashed #888; padding: 10px; width: 300px; break-inside: avoid; page-break-inside: avoid; }
.card h2 { font-size: 1.1em; margin: 0 0 .2em; }
.card .meta { font-size: .85em; margin: 0 0 .4em; }
.card .link { font-family: monospace; font-size: .6em; word-break: break-all; }
@media print { body { margin: 0; } p.note { display: none; } }
"""


def invitation_sheet(entries: list[SheetEntry], *, locale: str, bot_username: str) -> str:
    """The printable HTML page."""
    _ = gettext_for(locale)
    roles = {"worker": _("Grid worker"), "supervisor": _("Supervisor")}
    title = _("Invitations to the OneGrid bot")
    note = _("Cut along the dashed lines and hand each card to its person. Each code works once; "
             "keep the sheet safe until then.")
    cards = []
    for e in entries:
        where = e.area_name if e.area_name == e.area_code else f"{e.area_name} ({e.area_code})"
        department = f" · {html.escape(e.department_name)}" if e.department_code else ""
        scan = _("Scan with the phone camera, open Telegram and tap Start (@{bot}).").format(bot=bot_username)
        until = _("Works once, until {time} UTC.").format(time=f"{e.expires_at:%Y-%m-%d %H:%M}")
        cards.append(
            f'<section class="card"><h2>{html.escape(e.name)}</h2>'
            f'<p class="meta">{html.escape(roles.get(e.role, e.role))} · {html.escape(where)}{department}</p>'
            f"{qr_svg(e.link)}"
            f"<p>{html.escape(scan)}</p><p>{html.escape(until)}</p>"
            f'<p class="link">{html.escape(e.link)}</p></section>'
        )
    lang = "zh-CN" if locale.startswith("zh") else "en"
    return (f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f'<p class="note">{html.escape(note)}</p><div class="cards">{"".join(cards)}</div></body></html>\n')


_PROBLEM_TEXT = {
    "file": "the file: {value} {detail}",
    "no_name": "no name (or longer than 200 characters)",
    "bad_role": "role {value!r} is not worker or supervisor",
    "unknown_area": "unknown area {value!r}; import the map first (onegrid grids import)",
    "no_department": "a worker needs a department: orders are dispatched by department",
    "unknown_department": "unknown department {value!r}; see `onegrid categories list`",
    "bad_phone": "phone {value!r} does not look like a phone number",
    "duplicate_phone": "phone {value!r} is already on line {detail}",
    "phone_taken": "phone {value!r} already belongs to {detail_text}",
}


def describe_problem(line: int, kind: str, value: str, detail: str) -> str:
    """One refused row, for the operator's terminal (English, like the rest of the command line)."""
    detail_text = {"person": "a person in the store", "invitation": "an open invitation"}.get(detail, detail)
    text = _PROBLEM_TEXT.get(kind, kind).format(value=value, detail=detail, detail_text=detail_text).strip()
    return f"line {line}: {text}"
