"""Areas: walking the city → district → street → grid hierarchy, and importing it.

Reading the hierarchy lives here (`get_area`, `area_chain`, `supervisor_group`, `grid_at`);
importing it from GeoJSON lives in `services.area_import` (checks in `services.area_checks`),
re-exported here for the API, the CLI and the tests that import it from this module.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm
from sqlmodel import Session, select

from models.supervision import SupervisorTopic
from models.tables import AREA_LEVEL_ORDER, Area
from services.area_checks import ImportProblem, geometry_text
from services.area_import import AreaImportError, ImportReport, import_geojson, refresh_grid_map
from services import reference
from services.gridmap import GridMap

__all__ = [
    "AreaImportError",
    "ImportProblem",
    "ImportReport",
    "area_chain",
    "geometry_text",
    "get_area",
    "grid_at",
    "import_geojson",
    "refresh_grid_map",
    "supervisor_group",
]


# ---------------------------------------------------------------------------- reading the hierarchy


def get_area(session: Session, code: str) -> Area | None:
    """The area with this code, or None."""
    return session.exec(select(Area).where(Area.code == code)).first()


@sa.event.listens_for(sa.orm.Session, "after_commit")
@sa.event.listens_for(sa.orm.Session, "after_rollback")
def _forget_area_chains(session: sa.orm.Session) -> None:
    """A session's remembered chains last one transaction (see `area_chain`)."""
    session.info.pop("area_chains", None)


def area_chain(session: Session, code: str) -> list[Area]:
    """The area and its ancestors, nearest first: grid → street → district → city.

    Empty when `code` is unknown; stops early at a parent that is missing from the store. Remembered
    for the session (one transaction): registering a case asks for the same chain several times, and
    the hierarchy only changes through an import, which uses its own session.
    """
    cache: dict[str, list[Area]] = session.info.setdefault("area_chains", {})
    if code in cache:
        return list(cache[code])
    chain: list[Area] = []
    seen: set[str] = set()
    next_code: str | None = code
    while next_code is not None and next_code not in seen and len(chain) < len(AREA_LEVEL_ORDER):
        area = reference.area(session, next_code)
        if area is None:
            break
        chain.append(area)
        seen.add(next_code)
        next_code = area.parent_code
    cache[code] = chain
    return list(chain)


def supervisor_group(session: Session, area_code: str, *, grid_code: str | None = None) -> tuple[int, int | None] | None:
    """The supervisor group chat of `area_code` (its own, else the nearest above it) and the forum topic
    (`message_thread_id`) bound there for `grid_code` or the nearest area above it that has one."""
    for area in area_chain(session, area_code):
        if area.supervisor_chat_id is None:
            continue
        for code in [a.code for a in area_chain(session, grid_code or area.code)]:
            topic = session.exec(select(SupervisorTopic.message_thread_id).where(
                SupervisorTopic.chat_id == area.supervisor_chat_id, SupervisorTopic.area_code == code)).first()
            if topic is not None:
                return area.supervisor_chat_id, topic
        return area.supervisor_chat_id, None
    return None


def grid_at(session: Session, grid_map: GridMap, lon: float, lat: float) -> Area | None:
    """The stored grid covering (lon, lat) per the map's rules, or None outside every grid."""
    code = grid_map.lookup(lon, lat)
    return get_area(session, code) if code is not None else None
