"""Distances and areas on the earth's surface, for 远距离扫码 and site outlines.

Pure functions over WGS-84 latitude/longitude in degrees. Every position compared
here must be in the same datum: a chip's GNSS fix and the browser's Geolocation API
are WGS-84, while Chinese map SDKs (AMap, Tencent, Baidu) hand out GCJ-02 or BD-09,
which are shifted by 100-700 m in mainland China. Comparing a GCJ-02 phone position
with a WGS-84 chip fix would eat most of a 500 m limit, so convert before calling.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "EARTH_MEAN_RADIUS_M",
    "GeoPoint",
    "haversine_m",
    "point_in_polygon",
]

#: IUGG mean earth radius (2R+r)/3. The spherical model is off by at most ~0.5 %
#: against the ellipsoid, i.e. ±2.5 m at 500 m: far below a phone's GPS error.
EARTH_MEAN_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class GeoPoint:
    """A WGS-84 position in decimal degrees."""

    latitude: float
    longitude: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.latitude) and -90.0 <= self.latitude <= 90.0):
            raise ValueError(f"latitude out of range: {self.latitude}")
        if not (math.isfinite(self.longitude) and -180.0 <= self.longitude <= 180.0):
            raise ValueError(f"longitude out of range: {self.longitude}")


def haversine_m(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle distance between ``a`` and ``b`` in metres (spherical earth).

    The haversine form stays accurate for the short distances that matter here
    (a few metres to a few kilometres), where the spherical law of cosines loses
    digits to rounding.
    """
    lat1 = math.radians(a.latitude)
    lat2 = math.radians(b.latitude)
    dlat = lat2 - lat1
    dlon = math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    # min() guards asin against 1.0000000000000002 for antipodal points.
    return 2 * EARTH_MEAN_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def point_in_polygon(point: GeoPoint, polygon: Sequence[GeoPoint]) -> bool:
    """Whether ``point`` lies inside ``polygon`` (a ring of at least 3 vertices).

    Even-odd ray casting in the latitude/longitude plane: exact enough for site
    outlines of a few hundred metres, which do not cross the antimeridian or a
    pole. The ring may be open or closed (last vertex equal to the first). A point
    on an edge or a vertex counts as inside, so a welder standing on the fence
    line is not turned away by a rounding error.
    """
    vertices = list(polygon)
    if len(vertices) > 1 and vertices[0] == vertices[-1]:
        vertices.pop()
    if len(vertices) < 3:
        raise ValueError("a polygon needs at least 3 distinct vertices")
    x, y = point.longitude, point.latitude
    inside = False
    previous = vertices[-1]
    for current in vertices:
        x1, y1 = previous.longitude, previous.latitude
        x2, y2 = current.longitude, current.latitude
        if _on_segment(x, y, x1, y1, x2, y2):
            return True
        # Half-open rule on y, so a ray through a vertex is counted once.
        if (y1 > y) != (y2 > y):
            crossing_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < crossing_x:
                inside = not inside
        previous = current
    return inside


def _on_segment(x: float, y: float, x1: float, y1: float, x2: float, y2: float) -> bool:
    """Whether (x, y) lies on the segment (x1, y1)-(x2, y2), within ~1 cm."""
    tolerance = 1e-7  # degrees: about 1 cm of latitude
    if not (
        min(x1, x2) - tolerance <= x <= max(x1, x2) + tolerance
        and min(y1, y2) - tolerance <= y <= max(y1, y2) + tolerance
    ):
        return False
    cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
    length = math.hypot(x2 - x1, y2 - y1)
    if length == 0.0:
        return math.hypot(x - x1, y - y1) <= tolerance
    return abs(cross) / length <= tolerance
