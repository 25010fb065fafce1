"""docs/GO-LIVE.md, followed word for word on a fresh store: the doc and the product cannot drift apart.

The commands come out of the markdown itself: a fenced block right after `<!-- go-live: KIND -->` is
a step, and the next ```text block of that section is what the operator should see (`…` stands for
anything). KIND `env` is the .env file, `run` lines are `onegrid` commands (run in-process through the
CLI's own Typer app, in a folder holding the operator's files), `http` lines are curl requests answered
by the app that `onegrid serve` would run (built from the same .env, polling the Bot API emulator instead
of Telegram). The Chinese version must hold the same steps, command for command.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from bot.emulator.server import BotApiEmulator
from onegrid.app import build, start_background, stop_background
from onegrid.cli import cli
from onegrid.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOC, DOC_ZH = ROOT / "docs" / "GO-LIVE.md", ROOT / "docs" / "GO-LIVE.zh_CN.md"
DEMO_MAP = ROOT / "data" / "shanghai-demo-grids.geojson"
STEP = re.compile(r"<!-- go-live: (\w+) -->\s*```\w*\n(.*?)```", re.S)
EXPECTED = re.compile(r"```text\n(.*?)```", re.S)


def steps(doc: Path) -> list[tuple[str, str, list[str]]]:
    """(kind, command block, expected lines) in the order of the document."""
    text = doc.read_text(encoding="utf-8")
    found = []
    for match in STEP.finditer(text):
        rest = text[match.end():]
        section_end = min((i for i in (rest.find("<!-- go-live:"), rest.find("\n## ")) if i >= 0), default=len(rest))
        expected = EXPECTED.search(rest[:section_end])
        found.append((match[1], match[2], expected[1].splitlines() if expected else []))
    return found


def assert_shows(output: str, expected: list[str], what: str) -> None:
    """Each expected line (… = anything) matches an output line, in order."""
    lines = [line.strip() for line in output.splitlines()]
    at = 0
    for want in expected:
        pattern = re.compile(".*".join(map(re.escape, want.strip().split("…"))))
        while at < len(lines) and not pattern.fullmatch(lines[at]):
            at += 1
        assert at < len(lines), f"{what}: expected a line like {want!r} in:\n{output}"
        at += 1


def district_map(folder: Path) -> None:
    """The operator's map: the Changning district of the demo map (102 areas), as in the doc."""
    doc = json.loads(DEMO_MAP.read_text(encoding="utf-8"))
    doc["features"] = [f for f in doc["features"] if f["properties"]["code"] == "SH"
                       or f["properties"]["code"].startswith("SH-CN")]
    (folder / "district.geojson").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def staff_list(folder: Path) -> None:
    """Twenty people: eighteen workers of two departments in nine grids, two street supervisors."""
    rows = ["name,role,area,department,phone"]
    for i in range(18):
        department = ("greening_appearance", "urban_management")[i % 2]
        rows.append(f"网格员{i + 1},worker,SH-CN-01-{i // 2 + 1:03d},{department},138 0013 {8100 + i}")
    rows += ["张敏,supervisor,SH-CN-01,,139 0013 9001", "Zhang Wei,supervisor,SH-CN-02,,139 0013 9002"]
    (folder / "staff.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")


def run_onegrid(line: str) -> str:
    argv = shlex.split(line)
    assert argv[0] == "onegrid", f"not an onegrid command: {line}"
    result = CliRunner().invoke(cli, argv[1:])
    assert result.exit_code == 0, f"{line} failed ({result.exit_code}):\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def test_the_chinese_checklist_has_the_same_steps() -> None:
    english, chinese = steps(DOC), steps(DOC_ZH)
    assert [(k, c) for k, c, _ in chinese] == [(k, c) for k, c, _ in english]
    assert [e for *_, e in chinese] == [e for *_, e in english]  # the same outputs to look for
    assert {"env", "run", "http"} <= {k for k, *_ in english}


async def test_following_go_live_on_a_fresh_store(db, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    district_map(tmp_path)
    staff_list(tmp_path)
    async with BotApiEmulator() as emulator:
        # The environment wins over .env: the test's store, and the emulator standing in for Telegram.
        monkeypatch.setenv("ONEGRID_DATABASE_URL", db.url)
        monkeypatch.setenv("ONEGRID_BOT_TOKEN", emulator.token)
        monkeypatch.setenv("ONEGRID_TELEGRAM_API_URL", emulator.base_url)
        checked = []
        for kind, block, expected in steps(DOC):
            if kind == "env":
                (tmp_path / ".env").write_text(block, encoding="utf-8")
                assert Settings().bot_username == "your_district_bot"
            elif kind in ("run", "upgrade"):
                output = ""
                for line in block.splitlines():
                    if line.startswith("onegrid "):
                        output += await asyncio.to_thread(run_onegrid, line)
                assert_shows(output, expected, block.strip())
            elif kind == "http":
                app = build(Settings())
                await start_background(app, polling_timeout=1)
                try:
                    transport = httpx.ASGITransport(app=app.api)
                    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
                        url = shlex.split(block)[-1]
                        response = await client.get(httpx.URL(url).path)
                finally:
                    await stop_background(app)
                assert response.status_code == 200, response.text
                assert_shows(response.text, expected, block.strip())
            checked.append(kind)
    assert checked.count("run") >= 6 and "http" in checked

    # What the steps left behind: the preview, 20 invitation links and their printable sheet.
    assert (tmp_path / "district-preview.svg").read_text(encoding="utf-8").startswith("<svg")
    links = (tmp_path / "staff-invitations.csv").read_text(encoding="utf-8").splitlines()
    assert len(links) == 21 and all("https://t.me/your_district_bot?start=inv_" in row for row in links[1:])
    assert (tmp_path / "staff-invitations.html").read_text(encoding="utf-8").count("<svg") == 20


GUIDES = sorted((ROOT / "docs").glob("guide-*.md"))


@pytest.mark.parametrize("doc", [DOC, DOC_ZH, *GUIDES], ids=lambda p: p.name)
def test_the_checklist_and_the_guides_link_to_what_exists(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#:]+)\)", text):
        assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_every_guide_has_both_languages_and_the_same_pictures() -> None:
    names = {p.name for p in GUIDES}
    assert {"guide-worker.md", "guide-supervisor.md", "guide-resident.md"} <= names
    for guide in (ROOT / "docs").glob("guide-*[!N].md"):
        chinese = guide.with_name(guide.stem + ".zh_CN.md")
        assert chinese.name in names, f"{guide.name} has no Chinese version"
        pictures = re.findall(r"img/en/([\w-]+\.png)", guide.read_text(encoding="utf-8"))
        assert pictures and pictures == re.findall(r"img/zh_CN/([\w-]+\.png)", chinese.read_text(encoding="utf-8"))
