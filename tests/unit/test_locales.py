"""Every user-facing string is translated in both catalogues, with the same placeholders."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from onegrid.i18n import DOMAIN, LOCALES_DIR, SUPPORTED, gettext_for

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "__": None, "N_": None, "gettext": None, "lazy_gettext": None}
SOURCE_DIRS = ["bot", "handlers", "services", "api", "onegrid"]
PLACEHOLDER = re.compile(r"\{[a-z_0-9]*\}")


def source_ids() -> set[str]:
    ids: set[str] = set()
    for folder in SOURCE_DIRS:
        for _file, _line, message, _comments, _ctx in extract_from_dir(
            ROOT / folder, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            ids.add(message if isinstance(message, str) else message[0])
    return ids


def catalogue(locale: str):
    with (LOCALES_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as f:
        return read_po(f, locale=locale)


@pytest.mark.parametrize("locale", SUPPORTED)
def test_every_source_string_is_translated(locale: str) -> None:
    cat = catalogue(locale)
    missing = sorted(i for i in source_ids() if i not in cat or not cat[i].string or cat[i].fuzzy)
    assert not missing, f"{locale}: untranslated or fuzzy (run `make messages` and translate): {missing}"


@pytest.mark.parametrize("locale", SUPPORTED)
def test_translations_keep_placeholders(locale: str) -> None:
    for message in catalogue(locale):
        if message.id and message.string:
            assert set(PLACEHOLDER.findall(message.id)) == set(PLACEHOLDER.findall(message.string)), message.id


def test_chinese_catalogue_is_really_chinese() -> None:
    _ = gettext_for("zh_CN")
    assert _("What you can do:") == "您可以："
    assert gettext_for("en")("What you can do:") == "What you can do:"
