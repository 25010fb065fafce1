"""Area import into the store (SQLite and PostgreSQL): counts, hierarchy, idempotence, and
all-or-nothing refusal of bad input."""

from __future__ import annotations

import copy
import json
from datetime import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from shapely.geometry import shape
from sqlmodel import select

from models.tables import Area, AreaLevel
from services.areas import AreaImportError, area_chain, get_area, grid_at, import_geojson, refresh_grid_map
from services.gridmap import GridIndex, GridMap, load_grid_index

DEMO = Path(__file__).resolve().parents[2] / "data" / "shanghai-demo-grids.geojson"


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    return json.loads(DEMO.read_text(encoding="utf-8"))


def _snapshot(db) -> list[tuple]:
    """Every area row, every column, in id order."""
    with db.sessions() as session:
        rows = session.exec(select(Area).order_by(Area.id)).all()
        return [tuple(getattr(r, c) for c in Area.model_fields) for r in rows]


def _count_by_level(db) -> dict[str, int]:
    with db.sessions() as session:
        rows = session.exec(select(Area.level, sa.func.count()).group_by(Area.level)).all()
        return {level: n for level, n in rows}


def _feature(code: str, level: str, parent: str | None, geometry: dict | None, name: str | None = None) -> dict:
    return {
        "type": "Feature",
        "properties": {"code": code, "name": name or f"区域 {code}", "name_en": f"Area {code}", "level": level, "parent_code": parent},
        "geometry": geometry,
    }


def _square(x: float, y: float, size: float = 1.0) -> dict:
    return {"type": "Polygon", "coordinates": [[[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]]}


def _small_map() -> dict[str, Any]:
    """City T, one district, one street, two grids side by side."""
    return {
        "type": "FeatureCollection",
        "features": [
            _feature("T", "city", None, None),
            _feature("T-A", "district", "T", _square(0, 0, 2)),
            _feature("T-A-01", "street", "T-A", _square(0, 0, 2)),
            _feature("T-A-01-001", "grid", "T-A-01", _square(0, 0)),
            _feature("T-A-01-002", "grid", "T-A-01", _square(1, 0)),
        ],
    }


# ------------------------------------------------------------------------------- good input


def test_import_demo_map(db, clock, demo) -> None:
    report = import_geojson(db.sessions, DEMO, now=clock.now())
    assert report.by_level == {"city": 1, "district": 16, "street": 220, "grid": 1980}
    assert (report.created, report.updated, report.unchanged) == (2217, 0, 0)
    assert report.grids_changed
    assert _count_by_level(db) == {"city": 1, "district": 16, "street": 220, "grid": 1980}

    with db.sessions() as session:
        chain = area_chain(session, "SH-CN-01-003")
        assert [a.code for a in chain] == ["SH-CN-01-003", "SH-CN-01", "SH-CN", "SH"]
        assert [a.level for a in chain] == [AreaLevel.GRID, AreaLevel.STREET, AreaLevel.DISTRICT, AreaLevel.CITY]
        assert chain[2].name == "长宁区" and chain[2].name_en == "Changning"
        assert [a.code for a in area_chain(session, "SH")] == ["SH"]
        assert area_chain(session, "NOPE") == []
        grid = chain[0]
        assert grid.created_at == clock.now()
        assert grid.geometry is None  # the chain comes from the reference cache, which holds no polygons
        stored = session.exec(select(Area.geometry).where(Area.code == "SH-CN-01-003")).one()
        source = next(f for f in demo["features"] if f["properties"]["code"] == "SH-CN-01-003")
        assert shape(json.loads(stored)).equals_exact(shape(source["geometry"]), 0)


def test_reimport_is_idempotent_and_updates_in_place(db, clock, demo) -> None:
    import_geojson(db.sessions, demo, now=clock.now())
    before = _snapshot(db)

    clock.advance(days=1)
    again = import_geojson(db.sessions, json.dumps(demo, ensure_ascii=False), now=clock.now())
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2217)
    assert not again.grids_changed
    assert _snapshot(db) == before

    changed = copy.deepcopy(demo)
    by_code = {f["properties"]["code"]: f for f in changed["features"]}
    by_code["SH-CN-01-003"]["properties"]["name"] = "新名字"
    by_code["SH-HP"]["properties"]["name_en"] = "Huangpu District"
    report = import_geojson(db.sessions, changed, now=clock.now())
    assert (report.created, report.updated, report.unchanged) == (0, 2, 2215)
    assert report.grids_changed
    after = {row[1]: row for row in _snapshot(db)}  # by code
    old = {row[1]: row for row in before}
    assert after.keys() == old.keys()
    assert after["SH-CN-01-003"][0] == old["SH-CN-01-003"][0]  # same id: updated in place
    with db.sessions() as session:
        grid = get_area(session, "SH-CN-01-003")
        assert grid.name == "新名字"
        assert grid.created_at == before[0][-1]  # created_at is kept from the first import


def test_grid_map_follows_the_store(db, clock, demo) -> None:
    grid_map = GridMap()
    report = import_geojson(db.sessions, demo, now=clock.now(), grid_map=grid_map)
    assert report.grid_map_version == grid_map.version == 1
    assert len(grid_map.index) == 1980

    from_file = GridIndex.build(
        (f["properties"]["code"], shape(f["geometry"])) for f in demo["features"] if f["properties"]["level"] == "grid"
    )
    rng = np.random.default_rng(5)
    xs, ys = rng.uniform(120.86, 121.99, 3000), rng.uniform(30.68, 31.86, 3000)
    assert grid_map.lookup_many(xs, ys) == from_file.lookup_many(xs, ys)
    with db.sessions() as session:
        assert load_grid_index(session).lookup_many(xs, ys) == from_file.lookup_many(xs, ys)
        area = grid_at(session, grid_map, 121.4737, 31.2304)
        assert area is not None and area.level == AreaLevel.GRID
        assert area.code == from_file.lookup(121.4737, 31.2304)
        assert grid_at(session, grid_map, 0.0, 0.0) is None

    # Nothing changed: no rebuild. A grid changed: rebuilt.
    assert import_geojson(db.sessions, demo, now=clock.now(), grid_map=grid_map).grid_map_version == 1
    moved = copy.deepcopy(demo)
    next(f for f in moved["features"] if f["properties"]["level"] == "grid")["properties"]["name"] = "改名"
    assert import_geojson(db.sessions, moved, now=clock.now(), grid_map=grid_map).grid_map_version == 2


def test_another_process_sees_an_import_on_its_next_refresh(db, clock, demo) -> None:
    # Two OneGrid processes on one store: `here` imports (the CLI), `there` keeps serving lookups.
    here, there = GridMap(), GridMap()
    there.rebuild(db.sessions)
    assert refresh_grid_map(db.sessions, there) is False  # nothing changed since it was built
    assert there.lookup(121.4737, 31.2304) is None

    import_geojson(db.sessions, demo, now=clock.now(), grid_map=here)
    assert there.lookup(121.4737, 31.2304) is None  # stale until it refreshes
    assert refresh_grid_map(db.sessions, there) is True
    assert there.lookup(121.4737, 31.2304) == here.lookup(121.4737, 31.2304) is not None
    assert refresh_grid_map(db.sessions, there) is False  # one rebuild per change, not per tick

    # A re-import that changes nothing leaves every process's index alone; a changed grid does not.
    import_geojson(db.sessions, demo, now=clock.now(), grid_map=here)
    assert refresh_grid_map(db.sessions, there) is False
    renamed = copy.deepcopy(demo)
    next(f for f in renamed["features"] if f["properties"]["level"] == "grid")["properties"]["name"] = "改名"
    import_geojson(db.sessions, renamed, now=clock.now(), grid_map=here)
    version = there.version
    assert refresh_grid_map(db.sessions, there) is True and there.version == version + 1


def test_area_chains_are_remembered_for_one_transaction_only(db, clock, demo) -> None:
    import_geojson(db.sessions, demo, now=clock.now())
    grid = next(f["properties"]["code"] for f in demo["features"] if f["properties"]["level"] == "grid")
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # noqa: ANN001, ANN002
        statements.append(statement)

    engine = db.sessions.kw["bind"]
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with db.sessions() as s:
            first = [a.code for a in area_chain(s, grid)]
            asked = len(statements)
            assert [a.code for a in area_chain(s, grid)] == first and len(statements) == asked  # no second read
            assert len(first) == 4 and first[0] == grid
            s.commit()
            assert "area_chains" not in s.info  # a new transaction reads the hierarchy again
            assert [a.code for a in area_chain(s, grid)] == first and len(statements) > asked
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def test_parent_may_already_be_stored(db, clock) -> None:
    import_geojson(db.sessions, _small_map(), now=clock.now())
    extra = {"type": "FeatureCollection", "features": [_feature("T-A-01-003", "grid", "T-A-01", _square(0, 1))]}
    report = import_geojson(db.sessions, extra, now=clock.now())
    assert (report.created, report.by_level) == (1, {"grid": 1})
    with db.sessions() as session:
        assert [a.code for a in area_chain(session, "T-A-01-003")] == ["T-A-01-003", "T-A-01", "T-A", "T"]


# -------------------------------------------------------------------------------- bad input
# Each case turns the small map into a bad one. The store already holds the small map, and
# the bad file also carries a new valid street and grid and a renamed stored grid, so a
# half-done import would show.


def _add(*features: dict) -> Callable[[dict], dict]:
    def mutate(doc: dict) -> dict:
        doc["features"].extend(features)
        return doc

    return mutate


_BOW_TIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}

BAD_CASES: dict[str, tuple[Callable[[dict], Any], str | None, str]] = {
    "unknown parent": (_add(_feature("T-B-01-001", "grid", "T-B-01", _square(5, 5))), "T-B-01-001", "neither in the file nor in the store"),
    "cycle": (
        _add(_feature("T-X", "street", "T-Y", None), _feature("T-Y", "street", "T-X", None)),
        "T-X",
        "loops back",
    ),
    "self parent": (_add(_feature("T-Z", "district", "T-Z", None)), "T-Z", "its own parent"),
    "bow-tie polygon": (_add(_feature("T-A-01-009", "grid", "T-A-01", _BOW_TIE)), "T-A-01-009", "Self-intersection"),
    "grid without geometry": (_add(_feature("T-A-01-009", "grid", "T-A-01", None)), "T-A-01-009", "needs a Polygon"),
    "grid with a point": (
        _add(_feature("T-A-01-009", "grid", "T-A-01", {"type": "Point", "coordinates": [0.5, 0.5]})),
        "T-A-01-009",
        "'Point' is not allowed",
    ),
    "duplicate code": (_add(_feature("T-A-01-001", "grid", "T-A-01", _square(3, 3))), "T-A-01-001", "already used by features[3]"),
    "unknown level": (_add(_feature("T-A-01-009", "village", "T-A-01", None)), "T-A-01-009", "is not one of"),
    "wrong parent level": (_add(_feature("T-A-09", "street", "T", None)), "T-A-09", "parent 'T' is a city"),
    "city with parent": (_add(_feature("T2", "city", "T", None)), "T2", "a city has no parent"),
    "unclosed ring": (
        _add(_feature("T-A-01-009", "grid", "T-A-01", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]})),
        "T-A-01-009",
        "not closed",
    ),
    "non-finite coordinate": (
        _add(_feature("T-A-01-009", "grid", "T-A-01", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, float("nan")], [0, 0]]]})),
        "T-A-01-009",
        "not a finite number",
    ),
    "missing code": (_add({"type": "Feature", "properties": {"name": "x", "level": "grid", "parent_code": "T-A-01"}, "geometry": _square(3, 3)}), None, "has no code"),
    "not a feature": (_add({"type": "Polygon", "coordinates": []}), None, "is not a GeoJSON Feature"),
    "re-levelled parent": (
        # The stored grids of street T-A-01 are not in this file; T-A-01 turns into a district.
        lambda doc: _add(_feature("T-A-01", "district", "T", _square(0, 0, 2)))(
            {**doc, "features": [f for f in doc["features"] if not f["properties"]["code"].startswith("T-A-01")]}
        ),
        "T-A-01",
        "can no longer be the parent",
    ),
    "bad json": (lambda doc: json.dumps(doc)[:-20], None, "not valid JSON"),
    "not a feature collection": (lambda doc: {"type": "Feature", "features": doc["features"]}, None, "FeatureCollection"),
}


def _valid_extras(doc: dict) -> dict:
    doc["features"][3]["properties"]["name"] = "改过的名字"  # an update that must not happen
    doc["features"].append(_feature("T-A-02", "street", "T-A", None))
    doc["features"].append(_feature("T-A-02-001", "grid", "T-A-02", _square(0, 2)))
    return doc


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_imports_nothing(db, clock, case: str) -> None:
    import_geojson(db.sessions, _small_map(), now=clock.now())
    before = _snapshot(db)
    mutate, code, phrase = BAD_CASES[case]
    bad = mutate(_valid_extras(_small_map()))
    with pytest.raises(AreaImportError) as err:
        import_geojson(db.sessions, bad, now=clock.now())
    problems = err.value.problems
    matching = [p for p in problems if phrase in p.message]
    assert matching, [str(p) for p in problems]
    if isinstance(bad, dict) and bad.get("type") == "FeatureCollection":
        # The problem names the offending feature: its position (the last feature with that
        # code, or the very last feature) and its code.
        features = bad["features"]
        where = max(
            i for i, f in enumerate(features)
            if code is None and i == len(features) - 1 or code is not None and f.get("properties", {}).get("code") == code
        )
        assert any(p.index == where and p.code == code for p in matching), [str(p) for p in problems]
        assert f"features[{where}]" in str(err.value)
        if code is not None:
            assert f"({code})" in str(err.value)
    else:
        assert all(p.index is None for p in matching)
    assert _snapshot(db) == before


def test_non_finite_in_json_text_is_named(db, clock) -> None:
    doc = _small_map()
    doc["features"][4]["geometry"]["coordinates"][0][1][0] = 12345.5  # a marker to replace
    text = json.dumps(doc).replace("12345.5", "NaN")  # JSON text as some tools write it
    with pytest.raises(AreaImportError) as err:
        import_geojson(db.sessions, text, now=clock.now())
    assert [(p.index, p.code) for p in err.value.problems] == [(4, "T-A-01-002")]
    assert _snapshot(db) == []


def test_bad_last_feature_after_the_whole_demo_map(db, clock, demo) -> None:
    import_geojson(db.sessions, _small_map(), now=clock.now())
    before = _snapshot(db)
    bad = copy.deepcopy(demo)
    bad["features"].append(_feature("SH-CN-01-999", "grid", "SH-CN-01", _BOW_TIE))
    with pytest.raises(AreaImportError) as err:
        import_geojson(db.sessions, bad, now=clock.now())
    assert [(p.index, p.code) for p in err.value.problems] == [(2217, "SH-CN-01-999")]
    assert "Self-intersection" in err.value.problems[0].message
    assert _snapshot(db) == before


def test_every_problem_is_reported(db, clock) -> None:
    doc = _small_map()
    doc["features"].append(_feature("T-A-01-008", "grid", "T-A-77", _square(4, 4)))
    doc["features"].append(_feature("T-A-01-009", "grid", "T-A-01", _BOW_TIE))
    with pytest.raises(AreaImportError) as err:
        import_geojson(db.sessions, doc, now=clock.now())
    assert [p.code for p in err.value.problems] == ["T-A-01-008", "T-A-01-009"]
    assert _snapshot(db) == []


def test_naive_time_is_refused(db) -> None:
    with pytest.raises(ValueError, match="timezone"):
        import_geojson(db.sessions, _small_map(), now=datetime(2026, 1, 1))
