"""`onegrid invite --csv`: a staff list becomes one link per person and a printable sheet, or nothing at all.

Run through the command line (Typer's runner, in-process) on SQLite and PostgreSQL: what the operator
reads, the files written, and the invitation rows stored.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import defusedxml.ElementTree as ET
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from models.tables import Invitation, Person
from onegrid.cli import cli
from services import invitations
from services.invitation_bulk import normalize_phone
from tests.worker_support import GRID, STREET, add_worker, make_ctx

BOT = "onegrid_test_bot"
HEADER = "name,role,area,department,phone\n"


@pytest.fixture
def ctx(db, clock, tmp_path):  # noqa: ANN001, ANN201
    return make_ctx(db.sessions, clock, tmp_path)


def run(db, tmp_path: Path, staff: str, *extra: str) -> tuple[int, str, str, Path]:  # noqa: ANN001
    source = tmp_path / "staff.csv"
    source.write_text(staff, encoding="utf-8")
    out = tmp_path / "out"
    env = {"ONEGRID_DATABASE_URL": db.url, "ONEGRID_DATA_DIR": str(tmp_path / "cli"), "ONEGRID_BOT_USERNAME": BOT}
    result = CliRunner().invoke(cli, ["invite", "--csv", str(source), "--out", str(out), *extra], env=env)
    return result.exit_code, result.stdout, result.stderr, out


def stored(db) -> list[Invitation]:  # noqa: ANN001
    with db.sessions() as s:
        return list(s.exec(select(Invitation).order_by(Invitation.id)).all())


def test_every_row_gets_a_link_a_qr_card_and_a_stored_invitation(ctx, db, tmp_path) -> None:
    staff = (HEADER + f"王芳,worker,{GRID},greening_appearance,138 0013 8000\n"
             f"Li Lei,Supervisor,{STREET},,+86-139-0013-9000\n"
             "\n"  # blank lines are skipped, line numbers still count them
             f'"Zhao, Min",worker,{GRID},urban_management,13700137000\n')
    code, out, err, folder = run(db, tmp_path, "\ufeff" + staff)  # Excel's BOM is fine
    assert code == 0, err
    assert out.strip() == (f"invited 3 people: links in {folder / 'staff-invitations.csv'}, "
                           f"printable sheet in {folder / 'staff-invitations.html'}")

    rows = list(csv.DictReader(io.StringIO((folder / "staff-invitations.csv").read_text(encoding="utf-8"))))
    assert [(r["name"], r["role"], r["area"], r["department"]) for r in rows] == [
        ("王芳", "worker", GRID, "greening_appearance"), ("Li Lei", "supervisor", STREET, ""),
        ("Zhao, Min", "worker", GRID, "urban_management")]
    tokens = [r["link"].removeprefix(f"https://t.me/{BOT}?start=") for r in rows]
    assert all(invitations.TOKEN_PATTERN.fullmatch(t) for t in tokens)

    saved = stored(db)
    assert [(i.invitee_name, i.phone, i.role, i.area_code) for i in saved] == [
        ("王芳", "13800138000", "worker", GRID), ("Li Lei", "+8613900139000", "supervisor", STREET),
        ("Zhao, Min", "13700137000", "worker", GRID)]
    assert [i.token_hash for i in saved] == [invitations.token_hash(t) for t in tokens]

    sheet = (folder / "staff-invitations.html").read_text(encoding="utf-8")
    assert sheet.count('<section class="card">') == 3 and sheet.count("<svg") == 3
    assert "网格员" in sheet and "督办员" in sheet and "王芳" in sheet  # the default locale is Chinese
    for svg in sheet.split("<svg")[1:]:
        ET.fromstring("<svg" + svg.split("</svg>")[0] + "</svg>")  # each QR code is well-formed SVG

    # The link works like any invitation, and the phone goes to the person who redeems it.
    binding = invitations.redeem_invitation(ctx, token=tokens[0], telegram_user_id=7001, display_name="Wang Fang")
    with db.sessions() as s:
        assert s.get(Person, binding.person_id).phone == "13800138000"


def test_the_sheet_speaks_english_when_asked(ctx, db, tmp_path) -> None:
    code, _out, err, folder = run(db, tmp_path, HEADER + f"Ann,worker,{GRID},greening_appearance,13800138001\n",
                                  "--lang", "en")
    assert code == 0, err
    sheet = (folder / "staff-invitations.html").read_text(encoding="utf-8")
    assert "Grid worker" in sheet and "Scan with the phone camera" in sheet


def test_bad_rows_are_all_reported_by_line_and_nothing_is_written(ctx, db, clock, tmp_path) -> None:
    add_worker(db.sessions, clock.now(), 6001, phone="138-0013-8099")
    invitations.create_invitation(ctx, role="supervisor", area_code=STREET)  # no phone: never a duplicate
    before = len(stored(db))
    staff = (HEADER
             + f"Good One,worker,{GRID},greening_appearance,13800138000\n"      # 2: fine
             + "Lost,worker,SH-NOWHERE,greening_appearance,13800138001\n"      # 3: unknown area
             + f"No Dept,worker,{GRID},,13800138002\n"                         # 4: missing department
             + f"Twin,worker,{GRID},greening_appearance,138 0013 8000\n"      # 5: duplicate of line 2
             + f"Known,worker,{GRID},greening_appearance,13800138099\n"        # 6: phone of a stored person
             + f"Boss,mayor,{GRID},,13800138003\n"                             # 7: bad role
             + f"Odd,worker,{GRID},space_agency,13800138004\n"                 # 8: unknown department
             + f"Nameless,worker,{GRID},greening_appearance,call me\n")        # 9: bad phone
    code, out, err, folder = run(db, tmp_path, staff)
    assert code == 1 and out == ""
    lines = [line for line in err.splitlines() if line.startswith("line ")]
    assert lines == [
        "line 3: unknown area 'SH-NOWHERE'; import the map first (onegrid grids import)",
        "line 4: a worker needs a department: orders are dispatched by department",
        "line 5: phone '138 0013 8000' is already on line 2",
        "line 6: phone '13800138099' already belongs to a person in the store",
        "line 7: role 'mayor' is not worker or supervisor",
        "line 8: unknown department 'space_agency'; see `onegrid categories list`",
        "line 9: phone 'call me' does not look like a phone number",
    ]
    assert "7 problem(s)" in err and "nobody was invited" in err
    assert len(stored(db)) == before and not folder.exists()


def test_running_the_same_list_twice_refuses_the_second_time(ctx, db, tmp_path) -> None:
    staff = HEADER + f"Ann,worker,{GRID},greening_appearance,13800138001\n"
    assert run(db, tmp_path, staff)[0] == 0
    code, _out, err, _folder = run(db, tmp_path, staff)
    assert code == 1 and "line 2: phone '13800138001' already belongs to an open invitation" in err
    assert len(stored(db)) == 1


def test_a_file_without_the_columns_is_refused_as_a_whole(ctx, db, tmp_path) -> None:
    code, _out, err, _folder = run(db, tmp_path, "name,area\nAnn,SH\n")
    assert code == 1 and "line 1: the file: role,department,phone missing columns" in err
    assert stored(db) == []


def test_outputs_that_cannot_be_written_issue_nothing(ctx, db, tmp_path) -> None:
    (tmp_path / "out").write_text("a file where the folder should be")
    code, _out, err, _folder = run(db, tmp_path, HEADER + f"Ann,worker,{GRID},greening_appearance,13800138001\n")
    assert code == 1 and "could not write the outputs" in err and "nobody was invited" in err
    assert stored(db) == []


def test_phones_compare_by_their_digits() -> None:
    assert normalize_phone("+86 (139) 0013-9000") == "+8613900139000"
