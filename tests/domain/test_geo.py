"""Tests of weldguard.domain.geo: great-circle distance and point in polygon."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weldguard.domain.geo import EARTH_MEAN_RADIUS_M, GeoPoint, haversine_m, point_in_polygon

# 上海市长宁区 政府 (approximately) and 郑州市 二七塔 (approximately).
CHANGNING = GeoPoint(31.2204, 121.4244)
ZHENGZHOU = GeoPoint(34.7546, 113.6673)

METRES_PER_DEGREE = math.pi * EARTH_MEAN_RADIUS_M / 180  # along a meridian


def test_same_point_is_zero() -> None:
    assert haversine_m(CHANGNING, CHANGNING) == 0.0


def test_one_degree_of_latitude() -> None:
    assert haversine_m(GeoPoint(0, 0), GeoPoint(1, 0)) == pytest.approx(METRES_PER_DEGREE)
    assert pytest.approx(111_195, abs=1) == METRES_PER_DEGREE


def test_longitude_shrinks_with_latitude() -> None:
    at_equator = haversine_m(GeoPoint(0, 0), GeoPoint(0, 1))
    at_60 = haversine_m(GeoPoint(60, 0), GeoPoint(60, 1))
    assert at_60 == pytest.approx(at_equator / 2, rel=1e-3)


def test_shanghai_to_zhengzhou() -> None:
    # Straight-line distance between the two cities is about 830 km.
    assert haversine_m(CHANGNING, ZHENGZHOU) == pytest.approx(830_000, rel=0.02)


def test_short_distance_is_precise() -> None:
    # 500 m due north, computed from the definition of the sphere.
    north = GeoPoint(CHANGNING.latitude + 500 / METRES_PER_DEGREE, CHANGNING.longitude)
    assert haversine_m(CHANGNING, north) == pytest.approx(500.0, abs=1e-6)


def test_antipodes_are_half_the_circumference() -> None:
    assert haversine_m(GeoPoint(0, 0), GeoPoint(0, 180)) == pytest.approx(
        math.pi * EARTH_MEAN_RADIUS_M
    )
    assert haversine_m(GeoPoint(90, 0), GeoPoint(-90, 0)) == pytest.approx(
        math.pi * EARTH_MEAN_RADIUS_M
    )


def test_across_the_antimeridian() -> None:
    west, east = GeoPoint(0, 179.999), GeoPoint(0, -179.999)
    assert haversine_m(west, east) == pytest.approx(0.002 * METRES_PER_DEGREE, rel=1e-6)


@pytest.mark.parametrize(
    ("lat", "lon"),
    [(90.1, 0), (-90.1, 0), (0, 180.1), (0, -180.1), (math.nan, 0), (0, math.inf)],
)
def test_out_of_range_points_are_refused(lat: float, lon: float) -> None:
    with pytest.raises(ValueError):
        GeoPoint(lat, lon)


points = st.builds(
    GeoPoint,
    st.floats(-90, 90, allow_nan=False),
    st.floats(-180, 180, allow_nan=False),
)


@given(points, points)
def test_distance_is_symmetric_and_bounded(a: GeoPoint, b: GeoPoint) -> None:
    d = haversine_m(a, b)
    assert d == pytest.approx(haversine_m(b, a), abs=1e-6)
    assert 0.0 <= d <= math.pi * EARTH_MEAN_RADIUS_M + 1e-6


@given(points, points, points)
def test_triangle_inequality(a: GeoPoint, b: GeoPoint, c: GeoPoint) -> None:
    assert haversine_m(a, c) <= haversine_m(a, b) + haversine_m(b, c) + 1e-3


# A site outline of roughly 100 m x 100 m, and an L-shaped (concave) one.
SQUARE = [
    GeoPoint(31.2200, 121.4240),
    GeoPoint(31.2200, 121.4250),
    GeoPoint(31.2209, 121.4250),
    GeoPoint(31.2209, 121.4240),
]
L_SHAPE = [
    GeoPoint(0, 0),
    GeoPoint(0, 2),
    GeoPoint(1, 2),
    GeoPoint(1, 1),
    GeoPoint(2, 1),
    GeoPoint(2, 0),
]


def test_point_inside_and_outside_a_square() -> None:
    assert point_in_polygon(GeoPoint(31.2205, 121.4245), SQUARE)
    assert not point_in_polygon(GeoPoint(31.2215, 121.4245), SQUARE)
    assert not point_in_polygon(GeoPoint(31.2205, 121.4255), SQUARE)


def test_closed_ring_is_the_same_as_open() -> None:
    closed = [*SQUARE, SQUARE[0]]
    assert point_in_polygon(GeoPoint(31.2205, 121.4245), closed)
    assert not point_in_polygon(GeoPoint(31.2215, 121.4245), closed)


def test_concave_polygon() -> None:
    assert point_in_polygon(GeoPoint(0.5, 0.5), L_SHAPE)
    assert point_in_polygon(GeoPoint(0.5, 1.5), L_SHAPE)
    assert point_in_polygon(GeoPoint(1.5, 0.5), L_SHAPE)
    assert not point_in_polygon(GeoPoint(1.5, 1.5), L_SHAPE)  # the notch


def test_edges_and_vertices_count_as_inside() -> None:
    assert point_in_polygon(GeoPoint(0, 1), L_SHAPE)  # on an edge
    assert point_in_polygon(GeoPoint(1, 1), L_SHAPE)  # the reflex vertex
    assert point_in_polygon(GeoPoint(2, 0), L_SHAPE)  # a corner


def test_ray_through_a_vertex_is_counted_once() -> None:
    # The ray cast from these points runs along latitude 1, through the vertices
    # (1, 1) and (1, 2): each must be counted once, leaving both points outside.
    assert not point_in_polygon(GeoPoint(1, -1), L_SHAPE)
    assert not point_in_polygon(GeoPoint(1, 3), L_SHAPE)


def test_too_few_vertices() -> None:
    with pytest.raises(ValueError):
        point_in_polygon(GeoPoint(0, 0), [GeoPoint(0, 0), GeoPoint(1, 1)])
    with pytest.raises(ValueError):
        point_in_polygon(GeoPoint(0, 0), [GeoPoint(0, 0), GeoPoint(1, 1), GeoPoint(0, 0)])


@given(st.floats(-1, 3, allow_nan=False), st.floats(-1, 3, allow_nan=False))
def test_l_shape_matches_its_definition(lat: float, lon: float) -> None:
    tol = 1e-6
    if min(abs(lat - v) for v in (0, 1, 2)) < tol or min(abs(lon - v) for v in (0, 1, 2)) < tol:
        return  # on an edge line: covered by the explicit tests
    inside = 0 < lat < 2 and 0 < lon < 2 and not (lat > 1 and lon > 1)
    assert point_in_polygon(GeoPoint(lat, lon), L_SHAPE) == inside
