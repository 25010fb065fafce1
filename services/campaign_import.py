"""Reading a campaign's places from GeoJSON or CSV: every problem found, or every place; never half.

GeoJSON: a FeatureCollection of Point features; `name` (or `名称`) and optional `address` (`地址`)
properties. CSV (UTF-8, a header row): `name`, `lat`, `lon` and optional `address` columns (Chinese
headers 名称, 纬度, 经度, 地址 too). Coordinates are WGS-84. A problem names its feature or line.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass

MAX_PLACES = 5000

NAME_KEYS = ("name", "名称")
ADDRESS_KEYS = ("address", "地址")
LAT_KEYS = ("lat", "latitude", "纬度")
LON_KEYS = ("lon", "lng", "longitude", "经度")


@dataclass(frozen=True)
class PlaceIn:
    name: str
    lat: float
    lon: float
    address: str | None = None


class PlacesRefused(ValueError):
    """The file cannot be imported; `problems` says where and why (codes with a position)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems[:20]))
        self.problems = problems


def _first(row: dict, keys: tuple[str, ...]) -> object:
    for key in keys:
        if key in row and row[key] not in (None, ""):
            return row[key]
    return None


def _coordinate(value: object, low: float, high: float) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and low <= number <= high else None


def _place(row: dict, lat: object, lon: object, where: str, problems: list[str]) -> PlaceIn | None:
    name = str(_first(row, NAME_KEYS) or "").replace("\x00", "").strip()
    address = _first(row, ADDRESS_KEYS)
    address = str(address).replace("\x00", "") if address is not None else None
    good_lat, good_lon = _coordinate(lat, -90, 90), _coordinate(lon, -180, 180)
    if not name:
        problems.append(f"{where}: no name")
    if good_lat is None or good_lon is None:
        problems.append(f"{where}: bad coordinates")
    if not name or good_lat is None or good_lon is None:
        return None
    return PlaceIn(name[:200], good_lat, good_lon, str(address).strip()[:500] if address else None)


def _csv_places(text: str, problems: list[str]) -> list[PlaceIn]:
    places = []
    reader = csv.DictReader(io.StringIO(text.replace("\x00", "")))
    headers = {h.strip().lower() for h in (reader.fieldnames or [])}
    if not headers & set(NAME_KEYS) or not headers & set(LAT_KEYS) or not headers & set(LON_KEYS):
        raise PlacesRefused(["the CSV needs name, lat and lon columns"])
    for row in reader:
        clean = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if isinstance(v, str)}
        place = _place(clean, _first(clean, LAT_KEYS), _first(clean, LON_KEYS), f"line {reader.line_num}",
                       problems)
        if place:
            places.append(place)
    return places


def read_places(data: bytes | str, *, fmt: str) -> list[PlaceIn]:
    """The places of a `geojson` or `csv` document; raises PlacesRefused listing every problem."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.lstrip("\ufeff")
    except UnicodeDecodeError:
        raise PlacesRefused(["not UTF-8 text"]) from None
    problems: list[str] = []
    places: list[PlaceIn] = []
    if fmt == "geojson":
        try:
            doc = json.loads(text)
        except ValueError:
            raise PlacesRefused(["not JSON"]) from None
        features = doc.get("features") if isinstance(doc, dict) else None
        if not isinstance(features, list):
            raise PlacesRefused(["not a GeoJSON FeatureCollection"])
        for number, feature in enumerate(features, start=1):
            geometry = feature.get("geometry") if isinstance(feature, dict) else None
            coords = geometry.get("coordinates") if isinstance(geometry, dict) and geometry.get("type") == "Point" \
                else None
            if not isinstance(coords, list) or len(coords) < 2:
                problems.append(f"feature {number}: not a Point")
                continue
            properties = feature.get("properties")
            place = _place(properties if isinstance(properties, dict) else {}, coords[1], coords[0],
                           f"feature {number}", problems)
            if place:
                places.append(place)
    elif fmt == "csv":
        try:
            places += _csv_places(text, problems)
        except csv.Error as exc:
            raise PlacesRefused([f"not a CSV file: {exc}"]) from None
    else:
        raise PlacesRefused([f"unknown format {fmt!r}: use geojson or csv"])
    if not places and not problems:
        problems.append("no places")
    if len(places) > MAX_PLACES:
        problems.append(f"more than {MAX_PLACES} places")
    if problems:
        raise PlacesRefused(problems)
    return places


def format_of(filename: str) -> str:
    """`geojson` for .geojson / .json, `csv` for .csv (else the suffix, which read_places refuses)."""
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    return "geojson" if suffix in ("geojson", "json") else suffix
