"""Shared pieces of the web layer: templates, formatting filters."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from fastapi.templating import Jinja2Templates

from weldguard.config import Settings

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATE_DIR = WEB_DIR / "templates"
PROJECT_ROOT = WEB_DIR.parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")

templates = Jinja2Templates(directory=TEMPLATE_DIR)


def node_modules_dir(settings: Settings) -> Path:
    return settings.node_modules_dir or PROJECT_ROOT / "node_modules"


def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    return value.astimezone(SHANGHAI).strftime(fmt)


def local_date(value: date | None) -> str:
    return value.isoformat() if value else ""


templates.env.filters["local_time"] = local_time
templates.env.filters["local_date"] = local_date
