"""The default category catalogue: its content, loading and validation, and applying it to the store."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

import services.catalogue as catalogue_module
from models.tables import Category, Department
from services.catalogue import (
    DEFAULT_CATALOGUE_PATH,
    CatalogueError,
    apply_catalogue,
    load_catalogue,
    parse_catalogue,
    set_category_fields,
)
from services.db import transaction
from tests.conftest import Store

NOISE = ("construction_noise", "renovation_noise", "animal_noise")
REQUIRED = {
    "exposed_garbage", "renovation_waste", "muck_truck_uncovered", "shared_bike_disorderly",
    "fire_lane_blocked", "road_waterlogging", "curtain_wall_broken", *NOISE, "street_stall",
    "business_outside_shop", "fire_hazard", "elderly_door_sensor_alarm", "elderly_water_meter_alarm",
    "road_icing", "manhole_cover_missing", "illegal_posting", "street_light_out", "fallen_tree",
    "illegal_construction", "neighbour_dispute",
}


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return json.loads(DEFAULT_CATALOGUE_PATH.read_text(encoding="utf-8"))


def _rows(db: Store) -> tuple[dict[str, Department], dict[str, Category]]:
    with transaction(db.sessions) as s:
        return {d.code: d for d in s.exec(select(Department))}, {c.code: c for c in s.exec(select(Category))}


# ---- The file itself (no store needed) ----


def test_default_catalogue_has_the_city_case_types() -> None:
    cat = load_catalogue()
    codes = {c.code for c in cat.categories}
    assert REQUIRED <= codes, f"missing: {sorted(REQUIRED - codes)}"
    for c in cat.categories:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", c.code) and len(c.code) <= 32
        assert c.name and c.name_en and re.search(r"[\u4e00-\u9fff]", c.name), c.code
    for d in cat.departments:
        assert re.search(r"[\u4e00-\u9fff]", d.name) and d.name_en, d.code


def test_default_catalogue_routing_and_slas_make_sense() -> None:
    cat = load_catalogue()
    by = {c.code: c for c in cat.categories}
    assert len({by[c].department_code for c in NOISE}) == 3, "each kind of noise has its own department"
    assert all(by[c].kind == "noise" for c in NOISE)
    assert len(by["neighbour_dispute"].extra_departments) >= 2, "联勤联动: police + market + street"
    # Urgent: a blocked fire lane or a broken curtain wall is accepted within minutes,
    # an elderly person's alarm faster still; waste can wait longer.
    for code in ("fire_lane_blocked", "curtain_wall_broken"):
        assert by[code].accept_sla_minutes <= 15, code
    for code in ("elderly_door_sensor_alarm", "elderly_water_meter_alarm"):
        assert by[code].accept_sla_minutes <= 10 and by[code].handle_sla_minutes <= 60, code
        assert not by[code].photo_required, "an alarm comes from a sensor, not a camera"
    for code in ("exposed_garbage", "renovation_waste"):
        assert by[code].accept_sla_minutes > by["fire_lane_blocked"].accept_sla_minutes
        assert by[code].handle_sla_minutes > by["fire_lane_blocked"].handle_sla_minutes
    for code in NOISE:
        assert not by[code].photo_required, "noise cannot be photographed"
    # Emergencies count around the clock; slow structural work counts in working hours and days (调休 aware).
    for code in ("fire_lane_blocked", "curtain_wall_broken", "elderly_door_sensor_alarm", "road_waterlogging"):
        assert (by[code].accept_sla_unit, by[code].handle_sla_unit) == ("clock_minutes", "clock_minutes"), code
    for code in ("illegal_construction", "road_surface_damaged"):
        assert by[code].handle_sla_unit == "days" and by[code].accept_sla_unit == "hours", code
    assert all(c.duplicate_radius_m > 0 and c.proof_radius_m > 0 for c in cat.categories)


def test_default_path_is_next_to_the_package() -> None:
    package_root = Path(catalogue_module.__file__).resolve().parent.parent
    assert DEFAULT_CATALOGUE_PATH == package_root / "data" / "categories.json"
    assert load_catalogue(DEFAULT_CATALOGUE_PATH) == load_catalogue()


def _set(data: dict[str, Any], index: int, **changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(data)
    data["categories"][index].update(changes)
    return data


# (description, mutate(raw) -> raw, text the message must contain)
BAD: list[tuple[str, Any, str]] = [
    ("unknown department", lambda d: _set(d, 0, department_code="no_such_dept"), "no_such_dept"),
    ("unknown extra department", lambda d: _set(d, 0, extra_departments=["ghost"]), "ghost"),
    ("zero accept sla", lambda d: _set(d, 0, accept_sla_minutes=0), "accept_sla_minutes"),
    ("negative handle sla", lambda d: _set(d, 0, handle_sla_minutes=-5), "handle_sla_minutes"),
    (
        "handle before accept",
        lambda d: _set(d, 0, accept_sla_minutes=100, handle_sla_minutes=50),
        "handle_sla_minutes",
    ),
    ("string sla", lambda d: _set(d, 0, accept_sla_minutes="30"), "accept_sla_minutes"),
    ("unknown sla unit", lambda d: _set(d, 0, handle_sla_unit="weeks"), "handle_sla_unit"),
    (
        "two working days to accept, ten hours to handle",
        lambda d: _set(d, 0, accept_sla_minutes=2, accept_sla_unit="days", handle_sla_minutes=600,
                       handle_sla_unit="minutes"),
        "handle_sla_minutes",
    ),
    ("bool radius", lambda d: _set(d, 0, proof_radius_m=True), "proof_radius_m"),
    ("blank name", lambda d: _set(d, 0, name="  "), "name"),
    ("unknown field", lambda d: _set(d, 0, colour="red"), "colour"),
    (
        "extra repeats main",
        lambda d: _set(d, 0, extra_departments=[d["categories"][0]["department_code"]]),
        "repeats",
    ),
]


@pytest.mark.parametrize(("what", "mutate", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_entry_is_refused_naming_it(raw: dict[str, Any], what: str, mutate: Any, needle: str) -> None:
    data = mutate(raw)
    with pytest.raises(CatalogueError) as exc:
        parse_catalogue(data)
    first = raw["categories"][0]["code"]
    assert first in str(exc.value) and first in (exc.value.entry or "")
    assert needle in str(exc.value)


@pytest.mark.parametrize(
    "bad_code", ["Exposed_Garbage", "exposed-garbage", "1st", "a__b", "x" * 33, "trailing_"]
)
def test_bad_category_code_format(raw: dict[str, Any], bad_code: str) -> None:
    with pytest.raises(CatalogueError) as exc:
        parse_catalogue(_set(raw, 2, code=bad_code))
    assert bad_code in str(exc.value) and "code" in str(exc.value)


def test_duplicate_codes(raw: dict[str, Any]) -> None:
    dup = _set(raw, 1, code=raw["categories"][0]["code"])
    with pytest.raises(CatalogueError, match=rf"category '{raw['categories'][0]['code']}'.*duplicate"):
        parse_catalogue(dup)
    dup_dept = copy.deepcopy(raw)
    dup_dept["departments"].append(dict(dup_dept["departments"][0]))
    with pytest.raises(CatalogueError, match=rf"department '{raw['departments'][0]['code']}'.*duplicate"):
        parse_catalogue(dup_dept)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(CatalogueError, match="not valid JSON"):
        load_catalogue(broken)
    for data in ([], {"departments": []}, {"departments": [], "categories": [], "extra": 1}):
        with pytest.raises(CatalogueError):
            parse_catalogue(data)


# ---- Applying to the store (SQLite and PostgreSQL) ----


def test_apply_twice_is_idempotent_and_matches_the_file(db: Store) -> None:
    cat = load_catalogue()
    first = apply_catalogue(db.sessions, cat)
    assert first["departments_created"] == len(cat.departments) == first["departments"]
    assert first["categories_created"] == len(cat.categories) == first["categories"]
    depts, cats = _rows(db)
    second = apply_catalogue(db.sessions, cat)
    assert {k: v for k, v in second.items() if k not in ("departments", "categories")} == dict.fromkeys(
        ("departments_created", "departments_updated", "categories_created", "categories_updated",
         "categories_deactivated"), 0)
    depts2, cats2 = _rows(db)
    assert len(depts2) == len(cat.departments) and len(cats2) == len(cat.categories)
    assert {c: r.model_dump() for c, r in cats.items()} == {c: r.model_dump() for c, r in cats2.items()}
    for entry in cat.categories:
        row = cats2[entry.code]
        for field, value in entry.model_dump().items():
            assert getattr(row, field) == value, (entry.code, field)


def test_every_category_routes_to_a_stored_department(db: Store) -> None:
    apply_catalogue(db.sessions, load_catalogue())
    depts, cats = _rows(db)
    for c in cats.values():
        assert c.department_code in depts, c.code
        assert set(c.extra_departments) <= set(depts), c.code
    assert len({cats[c].department_code for c in NOISE}) == 3
    joint = [c for c in cats.values() if len(c.extra_departments) >= 2]
    assert any(c.code == "neighbour_dispute" for c in joint)


def test_missing_categories_are_deactivated_not_deleted(db: Store) -> None:
    cat = load_catalogue()
    apply_catalogue(db.sessions, cat)
    gone = cat.categories[0].code
    smaller = type(cat)(cat.departments, cat.categories[1:])
    counts = apply_catalogue(db.sessions, smaller)
    assert counts["categories_deactivated"] == 1 and counts["categories_updated"] == 0
    _, cats = _rows(db)
    assert gone in cats and cats[gone].active is False
    assert all(c.active for code, c in cats.items() if code != gone)
    assert apply_catalogue(db.sessions, cat)["categories_updated"] == 1
    assert _rows(db)[1][gone].active is True


def test_apply_updates_changed_fields(db: Store, raw: dict[str, Any]) -> None:
    apply_catalogue(db.sessions, parse_catalogue(raw))
    changed = copy.deepcopy(raw)
    changed["categories"][0]["handle_sla_minutes"] += 60
    changed["departments"][0]["name_en"] = "Renamed"
    counts = apply_catalogue(db.sessions, parse_catalogue(changed))
    assert counts["categories_updated"] == counts["departments_updated"] == 1
    assert counts["categories_created"] == counts["departments_created"] == 0
    depts, cats = _rows(db)
    first = raw["categories"][0]
    assert cats[first["code"]].handle_sla_minutes == first["handle_sla_minutes"] + 60
    assert depts[raw["departments"][0]["code"]].name_en == "Renamed"


def test_bad_catalogue_writes_nothing(db: Store, tmp_path: Path, raw: dict[str, Any]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_set(raw, 5, department_code="nowhere"), ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CatalogueError) as exc:
        apply_catalogue(db.sessions, load_catalogue(bad))
    assert raw["categories"][5]["code"] in str(exc.value) and str(bad) in str(exc.value)
    assert _rows(db) == ({}, {})


def test_apply_is_one_transaction(db: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    # A failure after the departments were written must take them back out.
    def boom(*_args: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(catalogue_module, "_upsert_categories", boom)
    with pytest.raises(RuntimeError):
        apply_catalogue(db.sessions, load_catalogue())
    assert _rows(db) == ({}, {})


def test_set_category_fields(db: Store) -> None:
    apply_catalogue(db.sessions, load_catalogue())
    row = set_category_fields(db.sessions, "road_icing", accept_sla_minutes="20", photo_required="false",
                              extra_departments="traffic_police, water_affairs")
    assert (row.accept_sla_minutes, row.photo_required) == (20, False)
    assert row.extra_departments == ["traffic_police", "water_affairs"]
    row = set_category_fields(db.sessions, "animal_noise", department_code="street_office", active=False)
    _, cats = _rows(db)
    assert cats["road_icing"].accept_sla_minutes == 20 and cats["road_icing"].photo_required is False
    assert cats["road_icing"].extra_departments == ["traffic_police", "water_affairs"]
    assert cats["animal_noise"].department_code == "street_office" and cats["animal_noise"].active is False
    assert cats["road_icing"].handle_sla_minutes == load_catalogue().category("road_icing").handle_sla_minutes


def test_sla_units_are_stored_and_edited(db: Store, raw: dict[str, Any]) -> None:
    # Four working hours to accept and three working days to handle is consistent; the store keeps the units.
    data = _set(raw, 0, accept_sla_minutes=4, accept_sla_unit="hours", handle_sla_minutes=3, handle_sla_unit="days")
    apply_catalogue(db.sessions, parse_catalogue(data))
    code = raw["categories"][0]["code"]
    row = _rows(db)[1][code]
    assert (row.accept_sla_minutes, row.accept_sla_unit, row.handle_sla_minutes, row.handle_sla_unit) == (
        4, "hours", 3, "days")
    # A catalogue entry that names no unit counts around the clock, as before units existed.
    other = _rows(db)[1][raw["categories"][1]["code"]]
    assert (other.accept_sla_unit, other.handle_sla_unit) == ("clock_minutes", "clock_minutes")
    set_category_fields(db.sessions, code, handle_sla_minutes="5")
    assert _rows(db)[1][code].handle_sla_minutes == 5 and _rows(db)[1][code].handle_sla_unit == "days"
    with pytest.raises(CatalogueError) as exc:
        set_category_fields(db.sessions, code, handle_sla_unit="minutes")  # 5 working minutes < 4 hours
    assert "handle_sla_minutes" in str(exc.value)
    assert _rows(db)[1][code].handle_sla_unit == "days"


@pytest.mark.parametrize(
    ("code", "fields", "needle"),
    [
        ("no_such_category", {"accept_sla_minutes": 5}, "no_such_category"),
        ("road_icing", {}, "no fields"),
        ("road_icing", {"code": "ice"}, "cannot edit code"),
        ("road_icing", {"colour": "blue"}, "cannot edit colour"),
        ("road_icing", {"accept_sla_minutes": 0}, "accept_sla_minutes"),
        ("road_icing", {"accept_sla_minutes": "soon"}, "accept_sla_minutes"),
        ("road_icing", {"accept_sla_minutes": True}, "accept_sla_minutes"),
        ("road_icing", {"accept_sla_minutes": 10_000}, "handle_sla_minutes"),
        ("road_icing", {"department_code": "nowhere"}, "nowhere"),
        ("road_icing", {"extra_departments": ["fire_rescue", "ghost"]}, "ghost"),
        ("road_icing", {"kind": "Bad Kind"}, "kind"),
        ("road_icing", {"accept_sla_unit": "fortnights"}, "accept_sla_unit"),
        ("road_icing", {"photo_required": "perhaps"}, "photo_required"),
        ("road_icing", {"name": " "}, "name"),
    ],
)
def test_set_category_fields_refuses_bad_edits(
    db: Store, code: str, fields: dict[str, Any], needle: str
) -> None:
    apply_catalogue(db.sessions, load_catalogue())
    before = _rows(db)
    with pytest.raises(CatalogueError) as exc:
        set_category_fields(db.sessions, code, **fields)
    assert needle in str(exc.value) and code in str(exc.value)
    after = _rows(db)
    assert {c: r.model_dump() for c, r in after[1].items()} == {c: r.model_dump() for c, r in before[1].items()}
