"""Fill empty translations after `pybabel update`: zh_CN from locales/incoming/*.json, en = the msgid.

Usage (via `make messages`): python tools/i18n_fill.py
Incoming files map English msgids to Chinese text; entries already translated in the .po win,
so a translator's edit in the .po is never overwritten.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

LOCALES = Path(__file__).resolve().parent.parent / "locales"


def main() -> int:
    incoming: dict[str, str] = {}
    for path in sorted((LOCALES / "incoming").glob("*.json")):
        incoming.update(json.loads(path.read_text(encoding="utf-8")))
    missing: list[str] = []
    for locale in ("zh_CN", "en"):
        po = LOCALES / locale / "LC_MESSAGES" / "messages.po"
        with po.open("rb") as f:
            catalog = read_po(f, locale=locale)
        for message in catalog:
            if not message.id or (message.string and not message.fuzzy):
                continue
            text = message.id if locale == "en" else incoming.get(message.id if isinstance(message.id, str) else message.id[0])
            if text:
                message.string = text
                message.flags.discard("fuzzy")
            else:
                missing.append(f"{locale}: {message.id!r}")
        with po.open("wb") as f:
            write_po(f, catalog, no_location=True, sort_output=True, width=100)
    for line in missing:
        print("untranslated", line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
