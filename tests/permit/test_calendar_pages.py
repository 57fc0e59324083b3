"""/admin/calendar: the admin's page to keep the 节假日安排 (list, one-day form,
delete, upload with its error report, export); nobody else reaches it."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import NOW, World
from tests.permit.conftest import ROWS_2027, csv_file, days_of, xlsx_file
from tests.web.conftest import csrf_of, login
from weldguard.deps import get_clock
from weldguard.permit.calendar_seed import built_in_days

SignIn = Callable[[str], TestClient]
ROW = re.compile(r'<tr class="calendar-row" data-day="([0-9-]+)" data-kind="([a-z]+)">')


@pytest.fixture
def sign_in(client: TestClient, world: World) -> SignIn:
    client.app.dependency_overrides[get_clock] = lambda: NOW  # type: ignore[attr-defined]

    def do(username: str) -> TestClient:
        assert login(client, username).status_code == 303
        return client

    return do


def rows_on(html: str) -> dict[str, str]:
    return dict(ROW.findall(html))


def test_admin_sees_the_year_and_the_nav_entry(sign_in: SignIn) -> None:
    client = sign_in("admin")
    page = client.get("/admin/calendar")  # the world's today is in 2026
    assert page.status_code == 200
    assert "节假日安排 · 2026 年" in page.text
    assert 'href="/admin/calendar"' in page.text and 'aria-current="page"' in page.text
    assert len(rows_on(page.text)) == len(built_in_days(2026))
    assert "国务院办公厅通知（内置，可编辑）" in page.text
    empty = client.get("/admin/calendar?year=2031")
    assert empty.status_code == 200 and "2031 年尚未录入节假日安排" in empty.text
    assert rows_on(empty.text) == {}
    assert client.get("/admin/calendar?year=abc").status_code == 422
    assert client.get("/admin/calendar?year=1800").status_code == 422
    assert 'href="/admin/calendar"' not in sign_in("reg_changning").get("/").text


@pytest.mark.parametrize(
    "username", ["reg_changning", "insp_xinjing", "ent_a", "welder_one", "installer_cn"]
)
def test_nobody_else_reaches_the_page(sign_in: SignIn, db: Session, username: str) -> None:
    client = sign_in(username)
    assert client.get("/admin/calendar").status_code == 403
    token = csrf_of(client)
    form = {"day": "2027-10-01", "kind": "holiday", "name": "国庆节", "csrf_token": token}
    assert client.post("/admin/calendar/days", data=form).status_code == 403
    assert (
        client.post(
            "/admin/calendar/import",
            data={"csrf_token": token},
            files={"file": ("2027.csv", csv_file(ROWS_2027), "text/csv")},
        ).status_code
        == 403
    )
    assert client.get("/admin/calendar/export.xlsx?year=2026").status_code == 403
    assert days_of(db, 2027) == {}


def test_signed_out_is_sent_to_the_login(client: TestClient, world: World) -> None:
    response = client.get("/admin/calendar", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=/admin/calendar")


def test_add_change_and_delete_a_day(sign_in: SignIn, db: Session) -> None:
    client = sign_in("admin")
    page = client.get("/admin/calendar?year=2027").text
    form = {"day": "2027-10-09", "kind": "workday", "name": "国庆节", "year": "2027"}
    # Without the CSRF token: refused, nothing written.
    assert client.post("/admin/calendar/days", data=form).status_code == 403
    done = client.post(
        "/admin/calendar/days",
        data={**form, "csrf_token": csrf_of(client, page)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == "/admin/calendar?year=2027&saved=2027-10-09"
    shown = client.get(done.headers["location"]).text
    assert "已保存 2027-10-09" in shown and rows_on(shown) == {"2027-10-09": "workday"}

    bad = client.post(
        "/admin/calendar/days",
        data={**form, "day": "2027-10-08", "name": "", "csrf_token": csrf_of(client, shown)},
    )
    assert bad.status_code == 422
    assert 'data-field="kind"' in bad.text and "星期五" in bad.text
    assert 'data-field="name"' in bad.text and "未保存任何数据" in bad.text
    assert days_of(db, 2027) == {"2027-10-09": ("workday", "国庆节")}

    changed = client.post(
        "/admin/calendar/days",
        data={**form, "kind": "holiday", "csrf_token": csrf_of(client, shown)},
    )
    assert rows_on(changed.text) == {"2027-10-09": "holiday"}

    url = "/admin/calendar/days/2027-10-09/delete"
    assert client.post(url, data={}).status_code == 403  # CSRF
    deleted = client.post(url, data={"csrf_token": csrf_of(client, changed.text)})
    assert deleted.status_code == 200 and "已删除 2027-10-09" in deleted.text
    assert days_of(db, 2027) == {}
    again = client.post(url, data={"csrf_token": csrf_of(client, deleted.text)})
    assert again.status_code == 404


def test_upload_imports_a_year_or_reports_every_error(sign_in: SignIn, db: Session) -> None:
    client = sign_in("admin")
    page = client.get("/admin/calendar").text
    token = csrf_of(client, page)
    bad_rows = [ROWS_2027[0], ["2027-02-03", "调休上班", "春节"], ["2027-02-30", "节假日", "春节"]]
    refused = client.post(
        "/admin/calendar/import",
        data={"csrf_token": token, "page_year": "2026"},
        files={"file": ("2027.csv", csv_file(bad_rows), "text/csv")},
    )
    assert refused.status_code == 422
    assert 'data-row="3" data-column="类型"' in refused.text
    assert 'data-row="4" data-column="日期"' in refused.text
    assert "未写入任何数据" in refused.text and "节假日安排 · 2026 年" in refused.text
    assert days_of(db, 2027) == {}

    no_csrf = client.post(
        "/admin/calendar/import",
        data={"csrf_token": ""},
        files={"file": ("2027.xlsx", xlsx_file(ROWS_2027), "application/octet-stream")},
    )
    assert no_csrf.status_code == 403 and days_of(db, 2027) == {}

    done = client.post(
        "/admin/calendar/import",
        data={"csrf_token": token, "year": "2027", "page_year": "2026"},
        files={"file": ("2027.xlsx", xlsx_file(ROWS_2027), "application/octet-stream")},
    )
    assert done.status_code == 200
    assert "已导入 2027 年节假日安排" in done.text and "节假日安排 · 2027 年" in done.text
    assert len(rows_on(done.text)) == len(ROWS_2027) == len(days_of(db, 2027))

    wrong_year = client.post(
        "/admin/calendar/import",
        data={"csrf_token": token, "year": "abc"},
        files={"file": ("2027.csv", csv_file(ROWS_2027), "text/csv")},
    )
    assert wrong_year.status_code == 422 and "年份须在" in wrong_year.text


def test_export_downloads(sign_in: SignIn) -> None:
    client = sign_in("admin")
    workbook = client.get("/admin/calendar/export.xlsx?year=2026")
    assert workbook.status_code == 200 and workbook.content.startswith(b"PK")
    assert "attachment" in workbook.headers["content-disposition"]
    text = client.get("/admin/calendar/export.csv?year=2026")
    assert text.status_code == 200
    lines = text.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "日期,星期,类型,名称,来源"
    assert len(lines) == 1 + len(built_in_days(2026))
