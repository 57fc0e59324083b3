"""Error pages and the redirect to sign-in."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from weldguard.web.common import templates


def redirect_to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def render_error(request: Request, status: int, body: dict[str, Any]) -> Response:
    return templates.TemplateResponse(
        request, "error.html", {"status": status, "error": body["error"]}, status_code=status
    )
