"""End-to-end: a regulator's day, a foreign URL, and an import with a bad row."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy.orm import Session

from tests.e2e.conftest import sign_in
from tests.factories import ADMIN_SCOPE, World, enterprise_row
from weldguard.enterprise.fields import TEMPLATE_COLUMNS
from weldguard.enterprise.service import EnterpriseService

pytestmark = pytest.mark.browser


def test_regulator_home_lists_and_details(
    page: Any, live_server: str, world: World, db: Session
) -> None:
    base = live_server
    EnterpriseService(db).add_site(
        ADMIN_SCOPE, world.enterprises["B"].id, "1号钢构车间", "新泾镇测试路2号", 31.2180, 121.3760
    )
    db.commit()
    sign_in(page, base, "reg_changning")

    # Home: the six cards and the street breakdown.
    assert page.inner_text("[data-stat=enterprises]") == "3"
    assert page.inner_text("[data-stat=machines]") == "3"
    assert page.inner_text("[data-stat=machines_with_chip]") == "1"
    assert page.inner_text("[data-stat=machine_chip_percent]") == "33.3%"
    assert page.inner_text("[data-stat=welders]") == "3"
    assert page.inner_text("[data-stat=welder_certified_percent]") == "100.0%"
    assert "长宁区" in page.inner_text("header")
    assert page.locator("table.breakdown tbody tr").count() == 10
    page.screenshot(path="/tmp/weldguard-home.png", full_page=True)

    # Enterprise list, then filter by a street: htmx swaps only the results.
    page.click("nav.sidenav >> text=企业")
    page.wait_for_url(f"{base}/enterprises")
    assert page.locator("#results tbody tr").count() == 3
    page.evaluate("window.__sameDocument = true")
    page.select_option("#f-area", "310105102")
    page.wait_for_url("**/enterprises?*area=310105102*")
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length === 1")
    assert page.evaluate("window.__sameDocument") is True  # no full reload
    assert "新泾钢结构工程有限公司" in page.inner_text("#results")
    page.screenshot(path="/tmp/weldguard-enterprises.png", full_page=True)

    # Live search by name, debounced.
    assert "sector=" not in page.url  # empty filters stay out of the URL
    page.select_option("#f-area", "")
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length === 3")
    page.fill("#f-q", "虹桥")
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length === 1")
    assert "虹桥商场管理有限公司" in page.inner_text("#results")
    assert "共 1 家企业" in page.inner_text("#results")
    page.wait_for_url("**/enterprises?q=*")
    page.fill("#f-q", "")
    page.select_option("#f-area", "310105102")
    page.wait_for_function("document.querySelectorAll('#results tbody tr').length === 1")

    # Detail page with its site on a Leaflet map, then on to the machines.
    page.click("#results >> text=新泾钢结构工程有限公司")
    page.wait_for_url(f"{base}/enterprises/{world.enterprises['B'].id}")
    assert "91310105MA1FL0002" in page.inner_text("main")
    page.wait_for_selector("#site-map.leaflet-container")
    assert page.locator("#site-map .site-pin").count() == 1
    page.screenshot(path="/tmp/weldguard-enterprise-detail.png", full_page=True)
    page.click("main .quick-links >> text=焊机")
    page.wait_for_url(f"**/machines?enterprise_id={world.enterprises['B'].id}")
    assert world.machines["B"].code in page.inner_text("#results")
    page.click(f"text={world.machines['B'].code}")
    page.wait_for_url(f"{base}/machines/{world.machines['B'].id}")
    assert "芯片绑定记录" in page.inner_text("main")


def test_phone_layout(browser: Any, live_server: str, world: World) -> None:
    context = browser.new_context(
        locale="zh-CN", viewport={"width": 390, "height": 844}, device_scale_factor=2
    )
    page = context.new_page()
    try:
        sign_in(page, live_server, "reg_huayang")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, "the home page scrolls sideways on a phone"
        page.screenshot(path="/tmp/weldguard-home-phone.png", full_page=True)
        page.goto(f"{live_server}/welders")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path="/tmp/weldguard-welders-phone.png", full_page=True)
    finally:
        context.close()


def test_enterprise_admin_gets_404_for_a_foreign_enterprise(
    page: Any, live_server: str, world: World
) -> None:
    sign_in(page, live_server, "ent_a")
    assert "本企业" in page.inner_text("nav.sidenav")
    response = page.goto(f"{live_server}/enterprises/{world.enterprises['Z'].id}")
    assert response is not None and response.status == 404
    assert "找不到该页面或记录" in page.inner_text("body")
    own = page.goto(f"{live_server}/enterprises/{world.enterprises['A'].id}")
    assert own is not None and own.status == 200


def _register_with_bad_row(path: Path) -> Path:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append([header for _, header in TEMPLATE_COLUMNS])
    rows = [
        enterprise_row(301, "浏览器导入测试厂", "长宁区", "华阳路街道"),
        enterprise_row(302, "校验位错误公司", "长宁区", "新泾镇", credit_code="91310105MA1FL03029"),
    ]
    for number, row in enumerate(rows, start=1):
        ws.append([number if key == "row_number" else row.get(key) for key, _ in TEMPLATE_COLUMNS])
    buffer = io.BytesIO()
    wb.save(buffer)
    path.write_bytes(buffer.getvalue())
    return path


def test_import_shows_the_bad_row(
    page: Any, live_server: str, world: World, tmp_path: Path
) -> None:
    sign_in(page, live_server, "reg_changning")
    page.click("nav.sidenav >> text=导入")
    page.wait_for_url(f"{live_server}/imports")
    page.set_input_files(
        "#file-enterprises", str(_register_with_bad_row(tmp_path / "企业底数.xlsx"))
    )
    page.click("#form-enterprises button[type=submit]")
    page.wait_for_selector("#import-result")
    result = page.inner_text("#import-result")
    assert "未写入任何数据" in result
    error_row = page.locator("#import-result tr.row-error")
    assert error_row.count() == 1
    text = error_row.inner_text()
    assert "3" in text and "统一社会信用代码" in text and "校验位" in text
    page.screenshot(path="/tmp/weldguard-import.png", full_page=True)
    with page.expect_download() as download:
        page.click("text=下载导入结果（xlsx）")
    assert download.value.suggested_filename.endswith(".xlsx")
