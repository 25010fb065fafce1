"""`onegrid grids import --dry-run`: what an import would change, the map's flaws, and an SVG picture of it.

On SQLite and PostgreSQL, through the command line (in-process): what the operator reads, the exit
code, the preview file, and that the store is untouched.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import defusedxml.ElementTree as ET
from sqlmodel import func, select
from typer.testing import CliRunner

from models.tables import Area
from onegrid.cli import cli
from services.areas import import_geojson

SVG = "{http://www.w3.org/2000/svg}"
X0, Y0, STEP = 121.40, 31.20, 0.01  # about 950 m × 1110 m per cell near Shanghai


def cell(col: float, row: float = 0, width: float = 1, height: float = 1) -> dict:
    x, y = X0 + col * STEP, Y0 + row * STEP
    w, h = width * STEP, height * STEP
    return {"type": "Polygon", "coordinates": [[[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]]}


def feature(code: str, level: str, parent: str | None, geometry: dict | None) -> dict:
    return {"type": "Feature", "geometry": geometry,
            "properties": {"code": code, "name": f"区域{code}", "name_en": code, "level": level, "parent_code": parent}}


def town(*grids: dict) -> dict:
    """City T → district T-D → street T-S (three cells wide), and the given grids."""
    return {"type": "FeatureCollection", "features": [
        feature("T", "city", None, None), feature("T-D", "district", "T", None),
        feature("T-S", "street", "T-D", cell(0, width=3)), *grids]}


def dry_run(db, tmp_path: Path, doc: dict, *extra: str) -> tuple[int, list[str], Path]:  # noqa: ANN001
    source = tmp_path / "map.geojson"
    source.write_text(json.dumps(doc), encoding="utf-8")
    env = {"ONEGRID_DATABASE_URL": db.url, "ONEGRID_DATA_DIR": str(tmp_path / "cli")}
    result = CliRunner().invoke(cli, ["grids", "import", "--dry-run", str(source), *extra], env=env)
    return result.exit_code, result.stdout.splitlines(), tmp_path / "map-preview.svg"


def areas(db) -> int:  # noqa: ANN001
    with db.sessions() as s:
        return s.exec(select(func.count()).select_from(Area)).one()


def svg_of(path: Path):  # noqa: ANN201
    root = ET.fromstring(path.read_text(encoding="utf-8"))
    assert root.tag == f"{SVG}svg"
    return root


def test_a_gap_and_an_orphan_grid_are_flagged_and_drawn(db, tmp_path) -> None:
    doc = town(feature("T-S-1", "grid", "T-S", cell(0)), feature("T-S-3", "grid", "T-S", cell(2)),
               feature("X-1", "grid", "T-NOWHERE", cell(0, row=1.5)))
    code, lines, preview = dry_run(db, tmp_path, doc)
    assert code == 1  # the orphan would make the real import refuse the file
    assert lines[0].endswith("map.geojson: nothing was written")
    assert lines[1] == "areas in the file: 6: 6 added, 0 changed, 0 unchanged"
    assert "grids without a parent: 1: X-1" in lines
    gap = next(line for line in lines if line.startswith("gaps over 100 m²: 1: "))
    assert " m² in T-S near 121.41500,31.20500" in gap  # the middle cell, about 1 km²
    assert int(gap.split(": ")[2].split(" m²")[0].replace(",", "")) in range(1_000_000, 1_100_000)
    assert "the import would be refused: 1 problem(s):" in lines
    assert any("'T-NOWHERE' is neither in the file nor in the store" in line for line in lines)
    assert lines[-1] == f"preview: {preview}"
    assert areas(db) == 0

    root = svg_of(preview)
    width, height = int(root.get("width")), int(root.get("height"))
    assert width == 1200 and 300 <= height <= 1600  # three cells wide, 2.5 high, plus the legend
    fills = [p.get("fill") for p in root.iter(f"{SVG}path")]
    assert fills.count("#e53935") == 1 and fills.count("#8e24aa") == 1  # the orphan in red, the gap in purple
    titles = [t.text for t in root.iter(f"{SVG}title")]
    assert "X-1 (grid, orphan)" in titles and "T-S-1 (grid, added)" in titles


def test_a_clean_map_reports_no_flaws_and_small_gaps_stay_under_the_threshold(db, tmp_path) -> None:
    doc = town(feature("T-S-1", "grid", "T-S", cell(0)), feature("T-S-2", "grid", "T-S", cell(1, width=0.999)),
               feature("T-S-3", "grid", "T-S", cell(2)))
    code, lines, preview = dry_run(db, tmp_path, doc)  # the 0.001-cell seam is ~1 m wide: a sliver
    assert code == 0 and lines[-2:] == ["the import would be accepted", f"preview: {preview}"]
    assert not any(line.startswith(("gaps", "overlapping", "grids without")) for line in lines)
    custom = tmp_path / "elsewhere.svg"
    code, lines, _ = dry_run(db, tmp_path, town(feature("T-S-1", "grid", "T-S", cell(0, width=2.8))),
                             "--gap-threshold", "50000", "--preview", str(custom))
    assert code == 0 and any(line.startswith("gaps over 50,000 m²: 1: ") for line in lines)
    assert lines[-1] == f"preview: {custom}" and svg_of(custom) is not None


def test_changes_against_the_store_overlaps_and_areas_missing_from_the_file(db, tmp_path) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    import_geojson(db.sessions, town(feature("T-S-1", "grid", "T-S", cell(0)), feature("T-S-2", "grid", "T-S", cell(1)),
                                     feature("T-S-3", "grid", "T-S", cell(2))), now=now)
    before = areas(db)
    moved = town(feature("T-S-1", "grid", "T-S", cell(0, width=1.5)), feature("T-S-2", "grid", "T-S", cell(1)),
                 feature("T-S-4", "grid", "T-S", cell(2)))  # T-S-1 now overlaps T-S-2; T-S-3 is left out
    code, lines, preview = dry_run(db, tmp_path, moved)
    assert code == 0
    assert lines[1] == "areas in the file: 6: 1 added, 1 changed, 4 unchanged"
    assert "in the store but not in the file (an import keeps them): 1: T-S-3" in lines
    # T-S-3 stays in the store, so it would overlap its replacement T-S-4 (the larger overlap, listed first).
    overlap = next(line for line in lines if line.startswith("overlapping grids: 2 pair(s): T-S-3 × T-S-4 ("))
    assert ", T-S-1 × T-S-2 (" in overlap and overlap.endswith(" m²)")
    assert lines[-2] == "the import would be accepted, but look at the flaws above first"
    assert areas(db) == before
    root = svg_of(preview)
    assert [p.get("fill") for p in root.iter(f"{SVG}path")].count("#ff9800") == 2
    assert "T-S-3 (grid, stored_only)" in [t.text for t in root.iter(f"{SVG}title")]
