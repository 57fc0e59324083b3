"""Browser tests: the app served by uvicorn in a thread, driven by Debian's
Chromium through Playwright. Never downloads a browser: without
/usr/bin/chromium the tests are skipped."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import NOW, PASSWORD, World
from weldguard.app import create_app
from weldguard.config import Settings
from weldguard.deps import get_clock

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Module scope, not session: while Playwright's sync API is open it keeps an event
# loop running on the main thread, and later tests in the same worker that call
# asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip(
            "Debian's Chromium (/usr/bin/chromium) is not installed: apt-get install chromium"
        )
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def live_server(
    settings: Settings, session_factory: sessionmaker[Session], world: World
) -> Iterator[str]:
    """The app on a free localhost port, with the world's clock."""
    app = create_app(settings)
    app.dependency_overrides[get_clock] = lambda: NOW
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app=app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="uvicorn-e2e", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def page(browser: Any, live_server: str) -> Iterator[Any]:
    context = browser.new_context(locale="zh-CN", viewport={"width": 1366, "height": 900})
    page = context.new_page()

    # Nothing leaves the machine: map tiles and any other outside request are refused.
    def route(route: Any) -> None:
        if route.request.url.startswith(live_server):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", route)
    page.set_default_timeout(10_000)
    yield page
    context.close()


def sign_in(page: Any, base: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")
