"""End-to-end: an installer fits a chip from a phone (label code, chip id,
photo, the phone's position), then the machine page shows its map and timeline."""

from __future__ import annotations

import struct
import zlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.e2e.conftest import sign_in
from tests.factories import NOW, World
from weldguard.device.models import DeviceMessage, DeviceState
from weldguard.machine.models import Chip, ChipBinding

pytestmark = pytest.mark.browser


def _png(path: Path) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00\x20\x60\xa0"))
        + chunk(b"IEND", b"")
    )
    return path


def test_installer_binds_a_chip_on_a_phone(
    browser: Any, live_server: str, world: World, db: Session, tmp_path: Path
) -> None:
    db.add(
        Chip(
            device_id="WGE2E0001",
            imei="860000000000777",
            iccid="89860000000000000777",
            registered_at=NOW,
        )
    )
    db.commit()
    machine = world.machines["B"]
    context = browser.new_context(
        locale="zh-CN",
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        geolocation={"latitude": 31.2180, "longitude": 121.3760, "accuracy": 8},
        permissions=["geolocation"],
    )
    page = context.new_page()
    page.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(live_server) else route.abort()
        ),
    )
    page.set_default_timeout(10_000)
    try:
        sign_in(page, live_server, "installer_cn")
        page.click("nav.sidenav >> text=绑定芯片")
        page.wait_for_url(f"{live_server}/install")
        # The phone's position lands in the hidden fields.
        page.wait_for_selector("#geo-status[data-located='1']")
        assert page.input_value("#f-lat").startswith("31.218")
        assert page.input_value("#f-lon").startswith("121.376")
        # The label's URL as a scanner would paste it; the machine card confirms it.
        page.fill("#f-machine", f"https://weldguard.example.cn/m/{machine.code}?sig=ab12")
        page.dispatch_event("#f-machine", "change")
        page.wait_for_selector(f"#machine-card [data-machine='{machine.code}']")
        assert "新泾钢结构工程有限公司" in page.inner_text("#machine-card")
        page.fill("#f-device", "WGE2E0001")
        page.set_input_files("#f-photo", str(_png(tmp_path / "chip.png")))
        page.wait_for_selector("#photo-preview:not([hidden])")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path="/tmp/weldguard-install-phone.png", full_page=True)
        page.click("#install-submit")
        page.wait_for_url(f"{live_server}/install/bindings/*")
        done = page.inner_text("#install-done")
        assert "芯片绑定成功" in done and "WGE2E0001" in done and machine.code in done
        assert "31.21800, 121.37600" in page.inner_text("main")
        page.screenshot(path="/tmp/weldguard-install-done.png", full_page=True)
    finally:
        context.close()

    binding = db.scalars(select(ChipBinding).where(ChipBinding.machine_id == machine.id)).one()
    assert binding.photo_path and binding.latitude == pytest.approx(31.2180)

    # The chip reports: live state and a message, then the machine page.
    db.add(
        DeviceState(
            device_id="WGE2E0001",
            online=True,
            last_seen_at=NOW + timedelta(minutes=1),
            lock_state="locked",
            rssi=-80,
            lat_e6=31218100,
            lon_e6=121376100,
            gps_at=NOW + timedelta(minutes=1),
        )
    )
    at = binding.fitted_at + timedelta(seconds=30)
    db.add(
        DeviceMessage(
            device_id="WGE2E0001",
            kind="hello",
            seq=1,
            device_ts=at,
            received_at=at,
            buffered=False,
            payload={"v": 1, "seq": 1, "ts": 0, "fw": "wg-chip 1.4.2", "boot": True},
        )
    )
    db.commit()
    context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    page = context.new_page()
    page.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(live_server) else route.abort()
        ),
    )
    page.set_default_timeout(10_000)
    try:
        sign_in(page, live_server, "reg_changning")
        page.goto(f"{live_server}/machines/{machine.id}")
        page.wait_for_selector("#machine-map.leaflet-container")
        assert page.locator("#machine-map .machine-pin").count() == 2  # last fix, install spot
        timeline = page.inner_text("#timeline")
        assert "开机上线" in timeline and "安装芯片 WGE2E0001" in timeline
        assert "在线" in page.inner_text("#live")
        assert page.locator("img.thumb").count() == 1
        page.screenshot(path="/tmp/weldguard-machine-live.png", full_page=True)
    finally:
        context.close()
