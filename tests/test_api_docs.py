"""The API describes itself, and its docs page works without the internet."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_openapi_lists_the_register(client: TestClient) -> None:
    spec = client.get("/api/openapi.json").json()
    for path in (
        "/api/v1/enterprises",
        "/api/v1/machines",
        "/api/v1/welders",
        "/api/v1/certificates",
        "/api/v1/imports/enterprises",
        "/api/v1/exports/enterprises.xlsx",
    ):
        assert path in spec["paths"], path


def test_docs_page_loads_its_assets_locally(client: TestClient) -> None:
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text
    assert client.get("/vendor/swagger-ui-dist/swagger-ui-bundle.js").status_code == 200
    assert client.get("/vendor/swagger-ui-dist/swagger-ui.css").status_code == 200
