"""Links that open turn-by-turn navigation to a case's place, for every channel's work order.

Coordinates are WGS-84 (as stored); Amap is told so (`coordinate=wgs84`) and converts them itself.
"""

from __future__ import annotations

from urllib.parse import quote

from models.tables import Case


def navigation_links(lat: float, lon: float, label: str) -> list[tuple[str, str]]:
    """(name, url) pairs that open turn-by-turn navigation to the point (WGS-84 coordinates)."""
    return [
        ("amap", f"https://uri.amap.com/marker?position={lon:.6f},{lat:.6f}&name={quote(label)}"
                 "&coordinate=wgs84&callnative=1"),
        ("google", f"https://www.google.com/maps/search/?api=1&query={lat:.6f},{lon:.6f}"),
    ]


def navigate_url(case: Case) -> str:
    """The link of a work order's Navigate button: Amap, the map app workers in the city use."""
    return dict(navigation_links(case.lat, case.lon, case.number))["amap"]
