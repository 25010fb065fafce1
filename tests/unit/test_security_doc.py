"""docs/SECURITY.md names real tests and real settings, so it cannot go stale silently."""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

from onegrid.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "SECURITY.md"
TEST_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
SETTING = re.compile(r"\bONEGRID_([A-Z0-9_]+)\b")


@lru_cache
def _test_functions(path: str) -> frozenset[str]:
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    return frozenset(node.name for node in ast.walk(tree)
                     if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"))


def _references() -> list[tuple[str, str]]:
    return TEST_REFERENCE.findall(DOC.read_text(encoding="utf-8"))


def test_every_test_the_security_page_names_exists() -> None:
    references = _references()
    assert len(references) >= 100, "the page should name the tests of every class it lists"
    missing_files = sorted({path for path, _ in references if not (ROOT / path).is_file()})
    assert missing_files == [], f"docs/SECURITY.md names test files that do not exist: {missing_files}"
    missing = [f"{path}::{name}" for path, name in references if name not in _test_functions(path)]
    assert missing == [], f"docs/SECURITY.md names tests that do not exist: {missing}"


def test_every_setting_the_security_page_names_exists() -> None:
    names = set(SETTING.findall(DOC.read_text(encoding="utf-8")))
    assert {"METRICS_BIND", "METRICS_TOKEN", "RETENTION_PRECISE_DAYS", "WEBHOOK_SECRET"} <= names
    unknown = sorted(name for name in names if name.lower() not in Settings.model_fields)
    assert unknown == [], f"docs/SECURITY.md names settings that do not exist: {unknown}"


def test_the_readme_links_the_security_page() -> None:
    assert "(docs/SECURITY.md)" in (ROOT / "README.md").read_text(encoding="utf-8")
