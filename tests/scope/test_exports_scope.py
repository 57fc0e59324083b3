"""Exports and import reports never reach outside the caller's scope."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from openpyxl import Workbook, load_workbook

from tests.factories import World, enterprise_row
from weldguard.enterprise.fields import TEMPLATE_COLUMNS

Headers = Callable[[str], dict[str, str]]

EXPECTED = {
    "admin": {"A", "B", "C", "Z"},
    "reg_changning": {"A", "B", "C"},
    "reg_changning_zj": {"B"},
    "reg_huayang": {"A"},
    "reg_zhengzhou": {"Z"},
    "ent_a": {"A"},
    "insp_xinjing": {"B"},
}


def _codes_in(content: bytes) -> set[str]:
    sheet = load_workbook(io.BytesIO(content), read_only=True).worksheets[0]
    return {str(cell) for row in sheet.iter_rows(values_only=True) for cell in row if cell}


@pytest.mark.parametrize("username", sorted(EXPECTED))
@pytest.mark.parametrize("export", ["enterprises.xlsx", "monthly.xlsx?month=2026-11"])
def test_exports_hold_only_the_callers_enterprises(
    client: TestClient, world: World, as_user: Headers, username: str, export: str
) -> None:
    response = client.get(f"/api/v1/exports/{export}", headers=as_user(username))
    assert response.status_code == 200, response.text
    cells = _codes_in(response.content)
    for key, enterprise in world.enterprises.items():
        assert (enterprise.credit_code in cells) == (key in EXPECTED[username]), key


def test_export_of_a_subtree_outside_scope_is_empty(
    client: TestClient, world: World, as_user: Headers
) -> None:
    response = client.get(
        "/api/v1/exports/enterprises.xlsx",
        params={"area": "410100"},
        headers=as_user("reg_huayang"),
    )
    assert response.status_code == 200
    assert not any(e.credit_code in _codes_in(response.content) for e in world.enterprises.values())


def test_welders_cannot_export(client: TestClient, world: World, as_user: Headers) -> None:
    assert (
        client.get("/api/v1/exports/enterprises.xlsx", headers=as_user("welder_one")).status_code
        == 403
    )


def _template(rows: list[dict[str, object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([header for _, header in TEMPLATE_COLUMNS])
    for index, row in enumerate(rows, start=1):
        sheet.append(
            [index if key == "row_number" else row.get(key, "") for key, _ in TEMPLATE_COLUMNS]
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_import_through_the_api_is_scoped_and_reports_are_private(
    client: TestClient, world: World, as_user: Headers
) -> None:
    content = _template(
        [
            enterprise_row(80, "华阳新登记企业", "长宁区", "华阳路街道"),
            enterprise_row(81, "新泾越权企业", "长宁区", "新泾镇"),
        ]
    )
    response = client.post(
        "/api/v1/imports/enterprises",
        files={"file": ("register.xlsx", content)},
        headers=as_user("reg_huayang"),
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["applied"] is False
    assert report["created"] == 0
    assert [(e["row"], e["reason"]) for e in report["errors"]] == [
        (3, "所属区域不在您的管辖范围内")
    ]
    run_id = report["run_id"]
    assert (
        client.get(f"/api/v1/imports/{run_id}", headers=as_user("reg_huayang")).status_code == 200
    )
    assert (
        client.get(f"/api/v1/imports/{run_id}", headers=as_user("reg_changning")).status_code == 404
    )
    partial = client.post(
        "/api/v1/imports/enterprises",
        files={"file": ("register.xlsx", content)},
        data={"partial": "true"},
        headers=as_user("reg_huayang"),
    ).json()
    assert partial["created"] == 1 and partial["error_count"] == 1
    listed = client.get(
        "/api/v1/enterprises", params={"q": "华阳新登记"}, headers=as_user("reg_huayang")
    )
    assert listed.json()["total"] == 1


def test_enterprise_users_cannot_import_the_register(
    client: TestClient, world: World, as_user: Headers
) -> None:
    content = _template([enterprise_row(82, "企业自导入", "长宁区", "华阳路街道")])
    response = client.post(
        "/api/v1/imports/enterprises", files={"file": ("r.xlsx", content)}, headers=as_user("ent_a")
    )
    assert response.status_code == 403


def test_upload_that_is_not_a_workbook(client: TestClient, world: World, as_user: Headers) -> None:
    response = client.post(
        "/api/v1/imports/enterprises",
        files={"file": ("register.xlsx", b"this is not a workbook")},
        headers=as_user("admin"),
    )
    assert response.status_code == 422
    assert "xlsx" in response.json()["error"]["message"]
