"""Masking of personal data (PIPL): how staff cards, work orders and API answers show a resident.

One implementation for the whole product, so a work order, a supervisor card, an Open311 answer and
an export never disagree about what is hidden. The rules:

* A resident shown to staff is their masked phone (`138****5678`) or, without a phone, a pseudonym
  `R000042` (`resident_tag`); never a name, not even a surname.
* Free text read by anyone but its owner or a `pii` reader goes through `mask_text`: phone numbers,
  ID-card numbers and e-mail addresses anywhere, and a name where the text introduces one ("我叫…",
  "姓名：…", "联系人…", "my name is …", "name: …"). Names typed without such a cue are not
  detectable and stay; the cue list is deliberately short, so ordinary words are not starred.
* Coordinates for such readers are rounded to `COARSE_DECIMALS` (3) decimal places: about 111 m of
  latitude and under 100 m of longitude at Shanghai's latitude (`coarsen`).

Functions return "" for a missing value; callers choose their own placeholder.
"""

from __future__ import annotations

import math
import re
from enum import StrEnum

_NON_DIGITS = re.compile(r"\D+")
COARSE_DECIMALS = 3  # 0.001° ≈ 111 m north-south, ≈ 95 m east-west at 31°N

# An 18-digit resident ID (last character may be X) or an old 15-digit one, not inside a longer number.
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
# A mainland mobile (optionally +86/0086, separated by spaces or dashes) or a landline with its area code.
_PHONE = re.compile(
    r"(?<![\d])(?:(?:\+|00)?86[\s-]?)?1[3-9]\d(?:[\s-]?\d{4}){2}(?!\d)"
    r"|(?<![\d])0\d{2,3}[\s-]?\d{7,8}(?!\d)"
)
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# A name right after a cue that introduces one; the cue is kept, the name masked.
_ZH_NAME = re.compile(r"((?:我叫|我的名字是|我的名字叫|名字叫|本人|姓名|联系人|报告人|举报人)[:：\s]*)([\u4e00-\u9fff·]{2,4})")
_EN_NAME = re.compile(r"((?:[Mm]y name is|[Nn]ame\s*[:：]|[Cc]ontact\s*[:：]|[Cc]all me)\s*)"
                      r"([A-Z][a-zA-Z'-]+(?:\s+[A-Z][a-zA-Z'-]+)?)")


class Audience(StrEnum):
    """Who reads a case: anyone (no key), a key of the area, or a key with the `pii` scope."""

    PUBLIC = "public"
    AREA = "area"
    PII = "pii"


def mask_phone(phone: str | None) -> str:
    """`13812341234` (or `+86 138 1234 1234`) → `138****1234`; numbers under 8 digits are all stars."""
    digits = _NON_DIGITS.sub("", phone or "")
    if len(digits) == 13 and digits.startswith("86"):  # +86 country code before a mainland mobile number
        digits = digits[2:]
    if len(digits) < 8:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_name(name: str | None) -> str:
    """The first character and one or two stars, whatever the length: 王小明 → 王**, Alexander → A**."""
    name = (name or "").strip()
    if not name:
        return ""
    return name[0] + "*" * max(1, min(len(name) - 1, 2))


def mask_id_card(number: str | None) -> str:
    """All but the last four characters starred: the region and birth date never show."""
    number = (number or "").strip()
    return "*" * max(0, len(number) - 4) + number[-4:]


def mask_text(text: str | None) -> str:
    """`text` with ID-card numbers, phone numbers, e-mail addresses and introduced names masked."""
    if not text:
        return ""
    text = _ID_CARD.sub(lambda m: mask_id_card(m.group(0)), text)
    text = _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***{m.group(2)}", text)
    text = _ZH_NAME.sub(lambda m: m.group(1) + "*" * len(m.group(2)), text)
    return _EN_NAME.sub(lambda m: m.group(1) + mask_name(m.group(2)), text)


def coarsen(degrees: float) -> float:
    """A latitude or longitude rounded to about 100 m (`COARSE_DECIMALS`); non-finite values unchanged."""
    return round(degrees, COARSE_DECIMALS) if math.isfinite(degrees) else degrees


def resident_tag(phone: str | None, person_id: int | None) -> str:
    """How staff see a resident: the masked phone, else the pseudonym `R` + six digits of the id."""
    if phone:
        return mask_phone(phone)
    return f"R{person_id or 0:06d}"
