"""The grid map shared by the services of one process, and loading it from the store.

`GridMap` holds the current `GridIndex` (the exact point → grid lookup, `services.gridmap_index`)
and swaps in a new one when the grids in the store change (`rebuild`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape as _shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, select

from models.tables import Area, AreaLevel, MapRevision
from services.gridmap_index import (
    DEFAULT_CELLS_PER_GRID,
    DEFAULT_MAX_CELLS,
    Coordinates,
    GridIndex,
    IndexStats,
)

__all__ = [
    "DEFAULT_CELLS_PER_GRID",
    "DEFAULT_MAX_CELLS",
    "Coordinates",
    "GridIndex",
    "GridMap",
    "IndexStats",
    "grids_from_geojson_texts",
    "load_grid_index",
]


def grids_from_geojson_texts(rows: Iterable[tuple[str, str]]) -> list[tuple[str, BaseGeometry]]:
    """(code, GeoJSON geometry text) → (code, shapely geometry), parsed in one vectorised call."""
    rows = list(rows)
    if not rows:
        return []
    texts = np.array([t for _, t in rows], dtype=object)
    try:
        geoms = shapely.from_geojson(texts)
    except Exception:  # noqa: BLE001 - fall back to the slower, more lenient Python parser
        geoms = [_shape(json.loads(t)) for t in texts]
    return [(code, g) for (code, _), g in zip(rows, geoms)]


def load_grid_index(session: Session, **build_options: Any) -> GridIndex:
    """Build a `GridIndex` from the store's grid-level areas (rows without geometry are skipped)."""
    rows = session.exec(
        select(Area.code, Area.geometry).where(Area.level == AreaLevel.GRID, Area.geometry.is_not(None))
    ).all()
    return GridIndex.build(grids_from_geojson_texts(rows), **build_options)


class GridMap:
    """The current `GridIndex`, shared by the services of one process.

    `index` is swapped whole on `rebuild`, never changed in place, so a reader that takes
    `grid_map.index` once sees one consistent map. `version` goes up by one on every swap.
    The index only changes through `rebuild`/`replace`: after grids change in the store,
    call `rebuild` (`services.areas.import_geojson` does when given the map). Another
    process's import is seen when `services.areas.refresh_grid_map` notices the store's map
    revision moved (a scheduler job asks every few seconds); `store_revision` is the revision
    the current index was built from.
    """

    def __init__(self, index: GridIndex | None = None) -> None:
        self._index = index if index is not None else GridIndex.build([])
        self._version = 0
        self.store_revision: int | None = None  # the store's map revision this index was built from
        self._lock = threading.Lock()  # guards the swap
        # Serialises whole rebuilds, so a slow rebuild that read the store earlier can never
        # swap in its older index after a later one. Readers never take either lock.
        self._rebuild_lock = threading.Lock()

    @property
    def index(self) -> GridIndex:
        return self._index

    @property
    def version(self) -> int:
        return self._version

    def lookup(self, lon: float, lat: float) -> str | None:
        """`GridIndex.lookup` on the current index."""
        return self._index.lookup(lon, lat)

    def lookup_many(self, lons: Coordinates, lats: Coordinates) -> list[str | None]:
        """`GridIndex.lookup_many` on the current index."""
        return self._index.lookup_many(lons, lats)

    def replace(self, index: GridIndex) -> int:
        """Swap in a ready index; returns the new version."""
        with self._lock:
            self._index = index
            self._version += 1
            return self._version

    def rebuild(self, session_factory: sessionmaker[Session]) -> int:
        """Rebuild from the store's grids and swap it in; returns the new version.

        Lookups keep using the old index until the new one is complete.
        """
        with self._rebuild_lock:
            with session_factory() as session:
                stamp = session.get(MapRevision, 1)  # read before the grids: a later import only makes it stale
                index = load_grid_index(session)
            version = self.replace(index)
            self.store_revision = stamp.revision if stamp is not None else 0
            return version
