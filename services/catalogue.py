"""The category catalogue: departments and case categories, loaded from JSON and kept in the store.

`data/categories.json` is the source of truth for the default catalogue. `load_catalogue`
reads and validates it (every error names the entry at fault); `apply_catalogue` makes the
store match it in one transaction; `set_category_fields` is the narrow edit the CLI uses.

Categories are never deleted, because cases refer to them by code: a category that is no
longer in the file is marked inactive, which stops new reports in it and keeps old cases
readable. Departments are never deleted either (people and categories refer to them).

Note for operators: `apply_catalogue` overwrites every field of every category listed in
the file, so a CLI edit to such a category lasts only until the file is applied again;
make lasting changes in the file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from models.tables import Category, Department
from services import reference
from services.db import transaction

DEFAULT_CATALOGUE_PATH = Path(__file__).resolve().parent.parent / "data" / "categories.json"

CODE_RE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
_CODE_PATTERN = CODE_RE.pattern
CATEGORY_CODE_MAX = 32

_Code = Annotated[str, StringConstraints(pattern=_CODE_PATTERN, max_length=64)]
_CategoryCode = Annotated[str, StringConstraints(pattern=_CODE_PATTERN, max_length=CATEGORY_CODE_MAX)]
_Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
_Positive = Annotated[int, Field(gt=0)]
# How a deadline counts (services/working_time.py): working minutes, working hours, working days, or
# minutes around the clock (the default, which is how a catalogue that names no unit has always counted).
SlaUnit = Literal["minutes", "hours", "days", "clock_minutes"]
# Rough length of one unit in clock minutes, only to compare an entry's two deadlines with each other.
_UNIT_SCALE = {"minutes": 1, "clock_minutes": 1, "hours": 60, "days": 8 * 60}


class CatalogueError(ValueError):
    """The catalogue or an edit is invalid. The message names the entry; nothing was written.

    `entry` is a short label of the offending entry (e.g. ``category 'road_icing'``), or None
    when the problem is the file as a whole; `source` is the file, when one was read.
    """

    def __init__(self, message: str, *, entry: str | None = None, source: Path | str | None = None) -> None:
        text = f"{entry}: {message}" if entry else message
        super().__init__(f"{source}: {text}" if source else text)
        self.detail, self.entry, self.source = message, entry, source


class DepartmentEntry(BaseModel):
    """A department as written in the catalogue; `name` is Chinese, `name_en` English."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: _Code
    name: _Name
    name_en: _Name


class CategoryEntry(BaseModel):
    """A case category as written in the catalogue; field names match `models.tables.Category`.

    Both SLAs count from registration (see services/cases.py), so the handling deadline may
    not come before the acceptance deadline.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: _CategoryCode
    kind: _Code  # menu grouping: environment, noise, roads...
    name: _Name
    name_en: _Name
    department_code: _Code
    # Further departments for joint handling (联勤联动), besides `department_code`.
    extra_departments: list[_Code] = Field(default_factory=list)
    # The names predate units: the amount counts in `accept_sla_unit` / `handle_sla_unit`.
    accept_sla_minutes: _Positive
    handle_sla_minutes: _Positive
    accept_sla_unit: SlaUnit = "clock_minutes"
    handle_sla_unit: SlaUnit = "clock_minutes"
    proof_radius_m: _Positive
    duplicate_radius_m: _Positive = 50
    photo_required: bool = True
    active: bool = True

    @field_validator(
        "accept_sla_minutes", "handle_sla_minutes", "proof_radius_m", "duplicate_radius_m", mode="before"
    )
    @classmethod
    def _no_bool_for_int(cls, value: Any) -> Any:
        # bool is an int subclass and pydantic's lax mode would take True as 1.
        if isinstance(value, bool):
            raise ValueError("must be a whole number, not true/false")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CategoryEntry:
        if len(set(self.extra_departments)) != len(self.extra_departments):
            raise ValueError("extra_departments lists a department twice")
        if self.department_code in self.extra_departments:
            raise ValueError("extra_departments repeats the main department_code")
        if (self.handle_sla_minutes * _UNIT_SCALE[self.handle_sla_unit]
                < self.accept_sla_minutes * _UNIT_SCALE[self.accept_sla_unit]):
            raise ValueError(
                "handle_sla_minutes (in handle_sla_unit) is shorter than accept_sla_minutes (in accept_sla_unit); "
                "both count from registration"
            )
        return self

    def departments(self) -> list[str]:
        """The main department followed by the joint-handling ones."""
        return [self.department_code, *self.extra_departments]


# Fields of a category that an edit may change (the code is the identity; never edited).
EDITABLE_CATEGORY_FIELDS: frozenset[str] = frozenset(CategoryEntry.model_fields) - {"code"}


@dataclass(frozen=True)
class Catalogue:
    """A validated catalogue: unique codes, and every category routed to a listed department.

    Constructing one checks the cross-entry rules and raises `CatalogueError`; the entries
    themselves are validated by their pydantic models.
    """

    departments: tuple[DepartmentEntry, ...]
    categories: tuple[CategoryEntry, ...]

    def __post_init__(self) -> None:
        dept_codes: set[str] = set()
        for d in self.departments:
            if d.code in dept_codes:
                raise CatalogueError("duplicate department code", entry=f"department {d.code!r}")
            dept_codes.add(d.code)
        cat_codes: set[str] = set()
        for c in self.categories:
            label = f"category {c.code!r}"
            if c.code in cat_codes:
                raise CatalogueError("duplicate category code", entry=label)
            cat_codes.add(c.code)
            for code in c.departments():
                if code not in dept_codes:
                    raise CatalogueError(f"unknown department {code!r}", entry=label)

    def department(self, code: str) -> DepartmentEntry | None:
        return next((d for d in self.departments if d.code == code), None)

    def category(self, code: str) -> CategoryEntry | None:
        return next((c for c in self.categories if c.code == code), None)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def _label(kind: str, key: str, index: int, raw: Any) -> str:
    code = raw.get("code") if isinstance(raw, Mapping) else None
    return f"{kind} {code!r} ({key}[{index}])" if isinstance(code, str) else f"{key}[{index}]"


def parse_catalogue(data: Any) -> Catalogue:
    """Validate already-decoded catalogue JSON (``{"departments": [...], "categories": [...]}``).

    Values must have their JSON types (no "30" for 30). Raises `CatalogueError` naming the
    first bad entry.
    """
    if not isinstance(data, Mapping):
        raise CatalogueError("the catalogue must be a JSON object with 'departments' and 'categories'")
    unknown = set(data) - {"departments", "categories"}
    if unknown:
        raise CatalogueError(f"unknown top-level keys: {sorted(unknown)}")
    parsed: dict[str, list[Any]] = {}
    sections = (("departments", "department", DepartmentEntry), ("categories", "category", CategoryEntry))
    for key, kind, model in sections:
        raws = data.get(key)
        if not isinstance(raws, list):
            raise CatalogueError(f"'{key}' must be a list")
        parsed[key] = []
        for i, raw in enumerate(raws):
            try:
                parsed[key].append(model.model_validate(raw, strict=True))
            except ValidationError as exc:
                raise CatalogueError(_describe(exc), entry=_label(kind, key, i, raw)) from None
    return Catalogue(tuple(parsed["departments"]), tuple(parsed["categories"]))


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and validate a catalogue file (default: the project's data/categories.json).

    Raises `CatalogueError` for a missing or malformed file or any invalid entry.
    """
    path = DEFAULT_CATALOGUE_PATH if path is None else Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogueError(f"cannot read catalogue {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogueError(f"{path} is not valid JSON: {exc}") from None
    try:
        return parse_catalogue(data)
    except CatalogueError as exc:
        raise CatalogueError(exc.detail, entry=exc.entry, source=path) from None


def _category_values(entry: CategoryEntry) -> dict[str, Any]:
    values = entry.model_dump()
    values["extra_departments"] = list(entry.extra_departments)
    return values


def apply_catalogue(session_factory: sessionmaker[Session], catalogue: Catalogue) -> dict[str, int]:
    """Make the store's departments and categories match `catalogue`, in one transaction.

    Idempotent: applying the same catalogue again changes nothing and reports zero changes.
    Listed categories are created or overwritten field by field (and made active); stored
    categories missing from the catalogue are marked inactive, never deleted. Departments
    are upserted and never deleted. Returns counts under the keys ``departments_created``,
    ``departments_updated``, ``categories_created``, ``categories_updated``,
    ``categories_deactivated``, ``departments``, ``categories`` (the last two: sizes of
    the catalogue).

    Run it from one place at a time (start-up or the CLI): two concurrent first applies on
    PostgreSQL may collide on the unique codes, in which case one fails and writes nothing.
    """
    counts = dict.fromkeys(
        ("departments_created", "departments_updated", "categories_created", "categories_updated",
         "categories_deactivated"),
        0,
    )
    with transaction(session_factory) as session:
        _upsert_departments(session, catalogue, counts)
        _upsert_categories(session, catalogue, counts)
        reference.bump(session)
    counts["departments"] = len(catalogue.departments)
    counts["categories"] = len(catalogue.categories)
    return counts


def _upsert_departments(session: Session, catalogue: Catalogue, counts: dict[str, int]) -> None:
    stored = {d.code: d for d in session.exec(select(Department))}
    for entry in catalogue.departments:
        row = stored.get(entry.code)
        if row is None:
            session.add(Department(code=entry.code, name=entry.name, name_en=entry.name_en))
            counts["departments_created"] += 1
        elif (row.name, row.name_en) != (entry.name, entry.name_en):
            row.name, row.name_en = entry.name, entry.name_en
            session.add(row)
            counts["departments_updated"] += 1
    session.flush()


def _upsert_categories(session: Session, catalogue: Catalogue, counts: dict[str, int]) -> None:
    stored = {c.code: c for c in session.exec(select(Category))}
    for entry in catalogue.categories:
        values = _category_values(entry)
        row = stored.get(entry.code)
        if row is None:
            session.add(Category(**values))
            counts["categories_created"] += 1
            continue
        changed = {k: v for k, v in values.items() if getattr(row, k) != v}
        if changed:
            for key, value in changed.items():
                setattr(row, key, value)
            session.add(row)
            counts["categories_updated"] += 1
    listed = {c.code for c in catalogue.categories}
    for code, row in stored.items():
        if code not in listed and row.active:
            # Cases may refer to it: retire it rather than delete it.
            row.active = False
            session.add(row)
            counts["categories_deactivated"] += 1
    session.flush()


def set_category_fields(session_factory: sessionmaker[Session], code: str, /, **fields: Any) -> Category:
    """Change some fields of one stored category (the CLI's edit), validated like the file.

    Values may be given as strings, as a command line would ("45", "false");
    `extra_departments` may be a list or a comma-separated string. Departments named must
    exist in the store. Raises `CatalogueError` (and writes nothing) for an unknown category
    code, a field that cannot be edited, or a bad value. Returns the updated category.
    """
    label = f"category {code!r}"
    if not fields:
        raise CatalogueError("no fields to change", entry=label)
    unknown = sorted(set(fields) - EDITABLE_CATEGORY_FIELDS)
    if unknown:
        raise CatalogueError(
            f"cannot edit {', '.join(unknown)}; editable fields: {', '.join(sorted(EDITABLE_CATEGORY_FIELDS))}",
            entry=label,
        )
    if isinstance(fields.get("extra_departments"), str):
        fields["extra_departments"] = [p.strip() for p in fields["extra_departments"].split(",") if p.strip()]
    with transaction(session_factory) as session:
        row = session.exec(select(Category).where(Category.code == code)).first()
        if row is None:
            raise CatalogueError("unknown category code", entry=label)
        current = {name: getattr(row, name) for name in CategoryEntry.model_fields}
        try:
            entry = CategoryEntry.model_validate({**current, **fields})
        except ValidationError as exc:
            raise CatalogueError(_describe(exc), entry=label) from None
        known = set(session.exec(select(Department.code)))
        missing = [d for d in entry.departments() if d not in known]
        if missing:
            raise CatalogueError(f"unknown department {', '.join(map(repr, missing))}", entry=label)
        values = _category_values(entry)
        for name in fields:
            setattr(row, name, values[name])
        session.add(row)
        reference.bump(session)
    return row


__all__ = [
    "CATEGORY_CODE_MAX",
    "DEFAULT_CATALOGUE_PATH",
    "EDITABLE_CATEGORY_FIELDS",
    "Catalogue",
    "CatalogueError",
    "CategoryEntry",
    "DepartmentEntry",
    "apply_catalogue",
    "load_catalogue",
    "parse_catalogue",
    "set_category_fields",
]
