"""Server-rendered pages (Simplified Chinese)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from weldguard.config import Settings
from weldguard.web.common import STATIC_DIR, node_modules_dir


def mount(app: FastAPI, settings: Settings) -> None:
    from weldguard.web.routes import router

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    vendor = node_modules_dir(settings)
    if vendor.is_dir():
        app.mount("/vendor", StaticFiles(directory=vendor), name="vendor")
    app.include_router(router)
