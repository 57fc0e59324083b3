"""End to end, as a welder would: Debian's Chromium on a phone-sized screen scans a
machine's label, signs in with a phone number, unlocks the machine (a reference chip
on the embedded broker acknowledges through the server's command bus), ends the
work, and is then refused with an expired certificate."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.device.conftest import embedded_broker_thread
from tests.e2e.conftest import _free_port
from tests.factories import PASSWORD, World
from tests.unlock.test_scan_service import live_machine
from weldguard.app import create_app
from weldguard.clock import local_today
from weldguard.config import Settings
from weldguard.db import utcnow
from weldguard.device.broker import EmbeddedBroker
from weldguard.machine.models import Machine
from weldguard.sim.chip import ChipConfig, ChipCore
from weldguard.sim.transport import ChipTransport
from weldguard.unlock.labels import signer_for
from weldguard.unlock.models import WorkSession
from weldguard.welder.models import Certificate

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
NEAR_MACHINE = {"latitude": 31.2201, "longitude": 121.4201, "accuracy": 12}


@pytest.fixture
def broker(session_factory: sessionmaker[Session], settings: Settings) -> Iterator[EmbeddedBroker]:
    with embedded_broker_thread(session_factory, settings.resolved_secret_key()) as embedded:
        yield embedded


@pytest.fixture
def scan_server(
    settings: Settings,
    session_factory: sessionmaker[Session],
    world: World,
    broker: EmbeddedBroker,
) -> Iterator[tuple[str, Any]]:
    """The app with its command bus on the embedded broker, on the real clock
    (the chip checks each command's expiry with its own)."""
    live = settings.model_copy(update={"unlock_command_bus": True, "mqtt_url": broker.url})
    app = create_app(live)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app=app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-scan-e2e", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    bus = app.state.weldguard.command_bus
    while not bus.connected:
        if time.monotonic() > deadline:
            raise RuntimeError("the command bus did not connect")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", bus
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _chip(broker: EmbeddedBroker, device_id: str, secret: str) -> ChipTransport:
    core = ChipCore(ChipConfig(device_id=device_id, secret_hex=secret), time.time_ns() // 1_000_000)
    return ChipTransport(core, broker.url, tick_s=0.05, backoff_min_s=0.2, backoff_max_s=1.0)


def _phone(browser: Any, base: str) -> tuple[Any, Any]:
    context = browser.new_context(
        locale="zh-CN",
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        geolocation=NEAR_MACHINE,
        permissions=["geolocation"],
    )
    page = context.new_page()
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(base) else route.abort(),
    )
    page.set_default_timeout(15_000)
    return context, page


def _see(page: Any, selector: str) -> None:
    """Waits for ``selector``; on a timeout the failure shows the page the browser
    is on, which says why (an error message, another panel) where a bare timeout
    does not."""
    try:
        page.wait_for_selector(selector)
    except Exception as exc:  # Playwright's TimeoutError
        body = page.inner_text("body") if page.locator("body").count() else page.content()
        raise AssertionError(f"{selector} not shown on {page.url}:\n{body[:2000]}") from exc


def _label_url(base: str, settings: Settings, machine: Machine) -> str:
    return f"{base}/s/{signer_for(settings).label_token(machine.code)}"


def test_welder_unlocks_works_ends_and_is_refused_with_an_expired_certificate(
    browser: Any,
    scan_server: tuple[str, Any],
    broker: EmbeddedBroker,
    db: Session,
    settings: Settings,
    world: World,
) -> None:
    base, bus = scan_server
    machine, device_id, secret = live_machine(db, settings, world, now=utcnow())
    transport = _chip(broker, device_id, secret)
    transport.start()
    context, page = _phone(browser, base)
    try:
        deadline = time.monotonic() + 10
        while not transport.connected:
            assert time.monotonic() < deadline, "the chip did not connect"
            time.sleep(0.05)

        # The label's URL, as the phone's camera opens it; then the phone sign-in.
        page.goto(_label_url(base, settings, machine))
        page.wait_for_url(f"{base}/scan/{machine.code}?sig=*")
        assert machine.code in page.inner_text("#machine-card")
        assert "长宁华阳机电维修有限公司" in page.inner_text("#machine-card")
        page.fill("#phone", "13900000001")
        page.fill("#password", PASSWORD)
        page.check("#remember")
        page.screenshot(path="/tmp/weldguard-scan-login.png", full_page=True)
        page.click("#scan-login button[type=submit]")
        _see(page, "#unlock-button")
        _see(page, "#geo-status[data-located='1']")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path="/tmp/weldguard-scan-ready.png", full_page=True)

        # 扫码开机: the decision, then the progress view until the chip acknowledges.
        page.click("#unlock-button")
        page.wait_for_url(f"{base}/scan/records/*")
        assert "核验通过" in page.inner_text("#decision")
        _see(page, "#unlocked")
        panel = page.inner_text("#session-panel")
        assert "已开机 — 可以作业" in panel and "有效至" in panel
        page.screenshot(path="/tmp/weldguard-scan-unlocked.png", full_page=True)
        assert transport.core.lock == "unlocked"
        work = db.scalars(select(WorkSession).where(WorkSession.machine_id == machine.id)).one()
        assert transport.core.sess == work.id and work.status == "active"
        assert bus.published >= 1 and bus.fallbacks == 0

        # 结束作业: the session ends and the chip locks.
        page.click("#end-button")
        _see(page, "#session-ended")
        _see(page, "#lock-state:has-text('焊机已上锁')")
        page.screenshot(path="/tmp/weldguard-scan-ended.png", full_page=True)
        assert transport.core.lock == "locked"
        db.refresh(work)
        assert (work.status, work.end_reason) == ("ended", "welder")

        # The certificate expired yesterday: the next scan is refused, plainly.
        cert = db.scalars(
            select(Certificate).where(Certificate.welder_id == world.welders["A"].id)
        ).one()
        cert.expiry_date = local_today(utcnow()) - timedelta(days=1)
        db.commit()
        page.click("#rescan")
        _see(page, "#unlock-button")
        page.click("#unlock-button")
        page.wait_for_url(f"{base}/scan/records/*")
        decision = page.inner_text("#decision")
        assert "不能开机" in decision and "证书已过期" in decision
        assert page.locator("#session-panel").count() == 0
        page.screenshot(path="/tmp/weldguard-scan-denied.png", full_page=True)
        assert transport.core.lock == "locked"
    finally:
        context.close()
        transport.stop()
