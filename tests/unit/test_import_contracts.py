"""The layer contracts in pyproject.toml can fail: each forbidden arrow, planted in a tiny fake tree, is caught.

`make test` runs `lint-imports` on the real repository; this proves that a pass there means something.
The fake tree gets the very [tool.importlinter] text of pyproject.toml, so the contracts tested are the ones
in force.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# Every module the contracts name, so that the clean tree is a complete stand-in for the real one.
MODULES = [
    "onegrid/__init__.py", "onegrid/app.py", "onegrid/wiring.py", "onegrid/cli.py", "onegrid/i18n.py",
    "onegrid/clock.py", "onegrid/settings.py",
    "bot/__init__.py", "handlers/__init__.py", "api/__init__.py",
    "services/__init__.py", "services/work.py",
    "models/__init__.py", "models/lifecycle.py", "models/state_table.py", "models/work_lifecycles.py",
    "models/work.py", "models/events/__init__.py", "models/events/work.py",
]

# The arrows the code is allowed today: the clean tree must pass with them.
CLEAN = {
    "onegrid/app.py": "import onegrid.wiring\nimport bot\nimport services.work\nimport fastapi\nimport aiogram\n",
    "onegrid/wiring.py": "import bot\nimport services\nimport models.events\n",
    "bot/__init__.py": "import aiogram\nimport services.work\nimport onegrid.i18n\n",
    "handlers/__init__.py": "import aiogram\nimport bot\nimport services.work\n",
    "api/__init__.py": "import fastapi\nimport services.work\nimport onegrid.settings\n",
    "services/work.py": "import sqlmodel\nimport models.work\nimport models.work_lifecycles\nimport onegrid.clock\n"
                        "import onegrid.settings\n",
    "models/work.py": "import sqlmodel\nimport sqlalchemy\n",
    "models/work_lifecycles.py": "import models.state_table\nimport models.work\n",
    "models/events/work.py": "import models.events\nimport models.work\n",
}


def importlinter_section() -> str:
    """The [tool.importlinter] tables of pyproject.toml, verbatim."""
    lines = (ROOT / "pyproject.toml").read_text(encoding="utf-8").splitlines()
    out: list[str] = []
    inside = False
    for line in lines:
        if line.startswith("["):
            inside = line.lstrip("[").startswith("tool.importlinter")
        if inside:
            out.append(line)
    return "\n".join(out) + "\n"


def fake_tree(path: Path, planted: dict[str, str]) -> None:
    for name in MODULES:
        file = path / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(CLEAN.get(name, "") + planted.get(name, ""), encoding="utf-8")
    (path / "pyproject.toml").write_text(importlinter_section(), encoding="utf-8")


def lint(path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(path)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=path, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_copied_section_is_the_whole_config():
    real = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    assert tomllib.loads(importlinter_section())["tool"]["importlinter"] == real
    assert len(real["contracts"]) >= 5


def test_a_clean_tree_keeps_every_contract(tmp_path):
    fake_tree(tmp_path, {})
    run = lint(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 broken" in run.stdout


@pytest.mark.parametrize(("module", "line", "contract", "arrow"), [
    ("services/work.py", "import aiogram\n", "Services are channel-free", "services.work -> aiogram"),
    ("services/work.py", "from bot import x\n", "Services are channel-free", "services.work -> bot"),
    ("services/work.py", "import onegrid.i18n\n", "Services are channel-free", "services.work -> onegrid.i18n"),
    ("services/work.py", "import handlers\n", "Edges call services, services use models", "services.work -> handlers"),
    ("models/work.py", "import services.work\n", "Models import no framework", "models.work -> services.work"),
    ("models/work.py", "import fastapi\n", "Models import no framework", "models.work -> fastapi"),
    ("models/state_table.py", "import sqlalchemy\n", "The case lifecycle and the state table",
     "models.state_table -> sqlalchemy"),
    ("models/lifecycle.py", "import models.work\n", "The case lifecycle and the state table",
     "models.work -> sqlmodel"),  # an indirect import counts for the case lifecycle
    ("models/events/work.py", "import sqlmodel\n", "Work tables and domain events",
     "models.events.work -> sqlmodel"),
    ("handlers/__init__.py", "import onegrid.app\n", "Channels do not import the wiring", "handlers -> onegrid.app"),
    ("api/__init__.py", "import onegrid.wiring\n", "Channels do not import the wiring", "api -> onegrid.wiring"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path, module, line, contract, arrow):
    fake_tree(tmp_path, {module: line})
    run = lint(tmp_path)
    assert run.returncode != 0, run.stdout
    broken = run.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken
    assert arrow in broken


def test_a_type_only_mention_of_the_factory_is_no_dependency(tmp_path):
    # api/ names the OneGrid container it is handed in annotations; that import never runs.
    fake_tree(tmp_path, {"api/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import onegrid.app\n"})
    run = lint(tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
