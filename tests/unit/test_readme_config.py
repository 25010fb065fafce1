"""README's configuration table names every setting, so an operator never has to read the code to find one."""

from __future__ import annotations

from pathlib import Path

from onegrid.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("## Configuration"):text.index("## Commands")]
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in table]
    assert missing == [], f"add these ONEGRID_ settings to README's configuration table: {missing}"
