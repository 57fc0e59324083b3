"""Shared pieces of the web layer: templates, formatting filters, rendering with
the CSRF token, query-string parsing and pagination links."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.config import Settings
from weldguard.domain.certificates import CertificateKind, CertificateStatus
from weldguard.enterprise.models import Enterprise
from weldguard.enterprise.service import EnterpriseService
from weldguard.errors import NotFound
from weldguard.machine.models import MachineStatus, WeldingProcess

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATE_DIR = WEB_DIR / "templates"
PROJECT_ROOT = WEB_DIR.parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")

templates = Jinja2Templates(directory=TEMPLATE_DIR)


def node_modules_dir(settings: Settings) -> Path:
    return settings.node_modules_dir or PROJECT_ROOT / "node_modules"


def local_today(now: datetime) -> date:
    """The calendar day in China at ``now``."""
    return now.astimezone(SHANGHAI).date()


# --- filters ------------------------------------------------------------------
def local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    return value.astimezone(SHANGHAI).strftime(fmt)


def datetime_input(value: datetime | None) -> str:
    """A moment as the value of an ``<input type="datetime-local">``, China time."""
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M") if value else ""


def parse_datetime_input(raw: str) -> datetime | None:
    """A ``datetime-local`` field (China time, no zone) as an aware moment; None
    when empty or unreadable."""
    text = raw.strip()[:32]
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=SHANGHAI) if value.tzinfo is None else value


def local_date(value: date | None) -> str:
    return value.isoformat() if value else ""


def yes_no(value: bool | None) -> str:
    if value is None:
        return ""
    return "是" if value else "否"


def process_label(value: str) -> str:
    try:
        return WeldingProcess(value).label
    except ValueError:
        return value


def machine_status_label(value: str) -> str:
    try:
        return MachineStatus(value).label
    except ValueError:
        return value


def certificate_kind_label(value: str) -> str:
    try:
        return CertificateKind(value).label
    except ValueError:
        return value


def certificate_status_label(value: str) -> str:
    try:
        return CertificateStatus(value).label
    except ValueError:
        return value


# Municipalities are both province and city: "上海市上海市长宁区" reads "上海市长宁区".
MUNICIPALITIES = ("北京市", "天津市", "上海市", "重庆市")


def place_label(full_name: str | None) -> str:
    if not full_name:
        return ""
    for name in MUNICIPALITIES:
        if full_name.startswith(name + name):
            return full_name[len(name) :]
    return full_name


WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def weekdays(days: list[int] | None) -> str:
    if not days:
        return ""
    if sorted(days) == list(range(1, 8)):
        return "每天"
    return "、".join(WEEKDAYS[d - 1] for d in sorted(days) if 1 <= d <= 7)


templates.env.filters["local_time"] = local_time
templates.env.filters["local_date"] = local_date
templates.env.filters["yes_no"] = yes_no
templates.env.filters["process_label"] = process_label
templates.env.filters["machine_status_label"] = machine_status_label
templates.env.filters["certificate_kind_label"] = certificate_kind_label
templates.env.filters["certificate_status_label"] = certificate_status_label
templates.env.filters["weekdays"] = weekdays
templates.env.filters["place"] = place_label


# --- rendering ----------------------------------------------------------------
def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.weldguard.settings
    return settings


def is_htmx(request: Request) -> bool:
    """A partial update by htmx (not a history restore, which wants the whole page)."""
    return (
        request.headers.get("hx-request") == "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


def render(
    request: Request, name: str, context: Mapping[str, Any], status_code: int = 200
) -> HTMLResponse:
    from weldguard.web.csrf import csrf_token, set_csrf_cookie

    token = csrf_token(request)
    response = templates.TemplateResponse(
        request,
        name,
        {"csrf_token": token, "map_tile_url": settings_of(request).map_tile_url, **context},
        status_code=status_code,
    )
    set_csrf_cookie(request, response)
    response.headers["Vary"] = "HX-Request"
    # Pages carry personal data: keep them out of shared caches and the back-forward cache.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


# --- query strings --------------------------------------------------------------
def text_param(value: str | None, limit: int = 64) -> str | None:
    """A trimmed, length-limited text parameter; None when empty."""
    if value is None:
        return None
    value = value.strip()[:limit]
    return value or None


def int_param(value: str | None) -> int | None:
    """A positive integer parameter; None when empty or malformed."""
    if value is None:
        return None
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        return None
    number = int(value)
    return number if number > 0 else None


def date_param(value: str | None) -> date | None:
    """An ISO date parameter (YYYY-MM-DD); None when empty or malformed."""
    text = text_param(value, 10)
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def bool_param(value: str | None) -> bool | None:
    if value in ("1", "true", "yes", "是"):
        return True
    if value in ("0", "false", "no", "否"):
        return False
    return None


def choice_param(value: str | None, choices: Mapping[str, str] | tuple[str, ...]) -> str | None:
    return value if value and value in choices else None


def filter_enterprise(session: Session, scope: Scope, raw: str | None) -> Enterprise | None:
    """The ``enterprise_id`` filter of a list page. It must name an enterprise the
    viewer may see: a malformed or foreign id is a 404, never an unfiltered list."""
    enterprise_id = int_param(raw)
    if raw and raw.strip() and enterprise_id is None:
        raise NotFound("企业不存在")
    if enterprise_id is None:
        return None
    return EnterpriseService(session).get(scope, enterprise_id)


@dataclass(frozen=True)
class PageLink:
    number: int | None  # None: a gap (…)
    url: str
    current: bool = False


@dataclass(frozen=True)
class Pager:
    total: int
    page: int
    pages: int
    links: list[PageLink]
    prev_url: str | None
    next_url: str | None


def page_url(path: str, params: Mapping[str, str], page: int) -> str:
    query = {k: v for k, v in params.items() if v and k != "page"}
    if page > 1:
        query["page"] = str(page)
    return path + ("?" + urlencode(query) if query else "")


def make_pager(path: str, params: Mapping[str, str], page: int, pages: int, total: int) -> Pager:
    wanted = {1, pages, *range(page - 2, page + 3)}
    links: list[PageLink] = []
    previous = 0
    for number in sorted(n for n in wanted if 1 <= n <= pages):
        if number - previous > 1:
            links.append(PageLink(None, ""))
        links.append(PageLink(number, page_url(path, params, number), number == page))
        previous = number
    return Pager(
        total=total,
        page=page,
        pages=pages,
        links=links,
        prev_url=page_url(path, params, page - 1) if page > 1 else None,
        next_url=page_url(path, params, page + 1) if page < pages else None,
    )
