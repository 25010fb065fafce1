"""What an operator reads from `onegrid`: short summaries, and errors as one line saying what to do.

Issue 14 (readable CLI output) and issue 13 item 14 (a store with no schema, or one behind the code,
is refused in one line naming the command to run; the empty embedded store is created).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import func, select
from typer.testing import CliRunner

from models.tables import Area, Category, Department
from onegrid.cli import cli

DEMO_MAP = Path(__file__).resolve().parents[2] / "data" / "shanghai-demo-grids.geojson"


def run(args: list[str], **env: str | None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, args, env={"ONEGRID_DATABASE_URL": None, **env})
    return result.exit_code, result.stdout, result.stderr


def count(db, table) -> int:  # noqa: ANN001
    with db.sessions() as s:
        return s.exec(select(func.count()).select_from(table)).one()


def one_street(tmp_path: Path) -> Path:
    """The city, one district, one street and its grids, cut from the demo map."""
    doc = json.loads(DEMO_MAP.read_text(encoding="utf-8"))
    keep = [f for f in doc["features"]
            if f["properties"]["code"] in ("SH", "SH-HP", "SH-HP-01")
            or f["properties"]["parent_code"] == "SH-HP-01"]
    path = tmp_path / "street.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": keep}), encoding="utf-8")
    return path


def test_categories_load_prints_a_summary_not_a_repr(db, tmp_path) -> None:
    env = {"ONEGRID_DATABASE_URL": db.url, "ONEGRID_DATA_DIR": str(tmp_path)}
    code, first, err = run(["categories", "load"], **env)
    assert code == 0, err
    categories, departments = count(db, Category), count(db, Department)
    assert categories > 0 and departments > 0
    assert first.strip() == f"categories: {categories} created · departments: {departments} created"
    code, again, _ = run(["categories", "load"], **env)
    assert again.strip() == f"categories: {categories} unchanged · departments: {departments} unchanged"


def test_grids_import_prints_a_summary_and_a_refusal_in_one_line(db, tmp_path) -> None:
    env = {"ONEGRID_DATABASE_URL": db.url, "ONEGRID_DATA_DIR": str(tmp_path)}
    code, out, err = run(["grids", "import", str(one_street(tmp_path))], **env)
    assert code == 0, err
    grids = count(db, Area) - 3
    assert out.startswith(f"areas: {grids + 3} created (city 1 · district 1 · street 1 · grid {grids})")

    orphan = tmp_path / "orphan.geojson"
    orphan.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": None,
         "properties": {"code": "X-1", "name": "x", "name_en": "x", "level": "street", "parent_code": "NOPE"}}]}))
    code, out, err = run(["grids", "import", str(orphan)], **env)
    assert code == 1 and out == ""
    assert err.startswith("area import refused (nothing imported): ") and "Fix the file" in err.splitlines()[0]
    assert "Traceback" not in err and count(db, Area) == grids + 3


def test_a_store_without_schema_is_refused_in_one_line(tmp_path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    code, out, err = run(["categories", "list"], ONEGRID_DATABASE_URL=empty, ONEGRID_DATA_DIR=str(tmp_path))
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        "error: the store has no schema: run `onegrid migrate` (or `onegrid setup` for the demo)"]

    # `onegrid serve` as a service manager starts it: one line, exit code 1, no traceback, nothing served.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONEGRID_")}
    env.update(ONEGRID_DATABASE_URL=empty, ONEGRID_DATA_DIR=str(tmp_path), ONEGRID_SANDBOX="off")
    served = subprocess.run([sys.executable, "-m", "onegrid.cli", "serve"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert served.returncode == 1
    assert served.stderr.strip().splitlines() == [
        "error: the store has no schema: run `onegrid migrate` (or `onegrid setup` for the demo)"]


def test_a_schema_behind_the_code_is_refused_until_migrated(db, tmp_path) -> None:
    with db.engine.begin() as conn:
        head = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0009'"))
    try:
        code, out, err = run(["categories", "list"], ONEGRID_DATABASE_URL=db.url, ONEGRID_DATA_DIR=str(tmp_path))
    finally:
        with db.engine.begin() as conn:  # the PostgreSQL database is shared by this worker's next tests
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        f"error: the store's schema is at 0009, this OneGrid needs {head}: back up the store, then run "
        "`onegrid migrate`"]


def test_the_empty_embedded_store_is_created_on_first_use(tmp_path) -> None:
    code, out, err = run(["categories", "list"], ONEGRID_DATA_DIR=str(tmp_path / "var"))
    assert code == 0, err
    assert "schema: created in the new embedded store" in err and out == ""
    assert (tmp_path / "var" / "onegrid.sqlite3").exists()
    code, out, err = run(["categories", "load"], ONEGRID_DATA_DIR=str(tmp_path / "var"))
    assert code == 0 and out.startswith("categories: ") and err == ""  # the second command just uses it


def test_an_unreachable_store_is_one_line_without_the_password_and_debug_shows_the_traceback(tmp_path) -> None:
    url = "postgresql+psycopg://bob:hunter2@127.0.0.1:1/none?connect_timeout=1"
    code, out, err = run(["apikey", "list"], ONEGRID_DATABASE_URL=url, ONEGRID_DATA_DIR=str(tmp_path))
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the store does not answer (")
    assert "check ONEGRID_DATABASE_URL" in lines[0] and "hunter2" not in err

    result = CliRunner().invoke(cli, ["--debug", "apikey", "list"],
                                env={"ONEGRID_DATABASE_URL": url, "ONEGRID_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 1 and isinstance(result.exception, sa.exc.OperationalError)
