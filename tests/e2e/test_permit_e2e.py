"""End-to-end: a hot-work permit applied for on the desktop, signed step by step by
the approver (with a photo), the welder on a phone and back, a refused step shown
with its reason, then printed and opened from its QR link."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy.orm import Session

from tests.e2e.conftest import sign_in
from tests.factories import World
from tests.permit.permits import HOT_SPOT, people
from weldguard.config import Settings

pytestmark = pytest.mark.browser


def _jpeg(path: Path) -> Path:
    out = io.BytesIO()
    Image.new("RGB", (16, 16), (180, 90, 30)).save(out, "JPEG")
    path.write_bytes(out.getvalue())
    return path


def _offline(page: Any, base: str) -> None:
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(base) else route.abort(),
    )


def test_apply_approve_and_refuse_in_the_browser(
    browser: Any,
    live_server: str,
    world: World,
    db: Session,
    settings: Settings,
    tmp_path: Path,
) -> None:
    p = people(db, settings, world)
    base = live_server
    desk = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    page = desk.new_page()
    _offline(page, base)
    page.set_default_timeout(10_000)

    # The safety officer applies on the desktop.
    sign_in(page, base, "safety_b")
    page.goto(f"{base}/permits")
    page.click("#new-permit")
    page.fill("#f-place", "3号楼钢结构焊接")
    page.fill("#f-lat", str(HOT_SPOT[0]))
    page.fill("#f-lon", str(HOT_SPOT[1]))
    page.check(f"input[name=welder_ids][value='{world.welders['B'].id}']")
    page.check(f"input[name=machine_ids][value='{world.machines['B'].id}']")
    page.select_option("#f-lead", f"u{p.welder.id}")
    page.select_option("#f-watch", f"u{p.applicant.id}")
    page.fill("#f-hazards", "高处焊接火花飞溅")
    page.click("#permit-save")
    page.wait_for_selector("#permit-message")
    assert "作业票草稿已保存" in page.inner_text("#permit-message")
    url = page.url.split("?")[0]
    assert "升级原因" in page.content()  # Sunday: 二级 managed at 一级
    page.click("#step-submit button")
    page.wait_for_selector("#permit-message")
    assert "已完成：提交审批" in page.inner_text("#permit-message")

    # The leader surveys the site with a photo, then tries to approve too early.
    desk.clear_cookies()
    sign_in(page, base, "boss_b")
    page.goto(url)
    page.set_input_files("#step-site_survey input[type=file]", str(_jpeg(tmp_path / "site.jpg")))
    page.fill("#step-site_survey textarea", "现场已勘查")
    page.click("#step-site_survey button")
    page.wait_for_selector("#timeline img")
    page.click("#step-approve button")
    error = page.wait_for_selector("#step-approve .step-error")
    assert "风险" in error.inner_text()

    # The welder confirms the risks on a phone.
    phone = browser.new_context(
        locale="zh-CN",
        viewport={"width": 390, "height": 844},
        geolocation={"latitude": HOT_SPOT[0], "longitude": HOT_SPOT[1], "accuracy": 8},
        permissions=["geolocation"],
    )
    mobile = phone.new_page()
    _offline(mobile, base)
    mobile.set_default_timeout(10_000)
    sign_in(mobile, base, "welder_b")
    mobile.goto(url)
    assert mobile.query_selector("#step-approve") is None
    mobile.click("#step-confirm_risks button")
    mobile.wait_for_selector("#permit-message")
    phone.close()

    # Now the approval goes through, and the permit prints with its QR link.
    page.goto(url)
    page.click("#step-approve button")
    page.wait_for_selector("#permit-message")
    assert "已审批" in page.inner_text("h1")
    pdf = page.request.get(f"{url}/permit.pdf")
    assert pdf.status == 200 and pdf.body().startswith(b"%PDF")
    page.click("#permit-live")
    page.wait_for_load_state()
    assert "票证真实" in page.content()
    desk.close()
