"""Sign-in and sign-out with a session cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from weldguard.auth.models import TokenKind
from weldguard.auth.service import AuthService
from weldguard.deps import SESSION_COOKIE, DbSession, Now, optional_user
from weldguard.errors import AccountLocked, AuthenticationFailed
from weldguard.web.common import render, settings_of
from weldguard.web.csrf import EXPIRED_FORM, csrf_ok, verify_csrf

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Only local absolute paths: "/x" but never "//host" or "/\\host"."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    if any(ch in target for ch in "\r\n\t") or len(target) > 2000:
        return "/"
    return target


def _login_page(
    request: Request, next_url: str, username: str = "", error: str = "", status: int = 200
) -> Response:
    return render(
        request,
        "login.html",
        {"next": next_url, "username": username, "error": error},
        status_code=status,
    )


@router.get("/login")
def login_form(request: Request, session: DbSession, now: Now, next: str | None = None) -> Response:
    next_url = safe_next(next)
    state = request.app.state.weldguard
    if optional_user(request, session, state, now) is not None:
        return RedirectResponse(next_url, status_code=303)
    return _login_page(request, next_url)


@router.post("/login")
def login(
    request: Request,
    session: DbSession,
    now: Now,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    next_url = safe_next(next)
    if not csrf_ok(request, csrf_token):
        return _login_page(request, next_url, username, EXPIRED_FORM, status=403)
    if not username.strip() or not password:
        return _login_page(request, next_url, username, "请输入用户名和密码", status=422)
    settings = settings_of(request)
    service = AuthService(session, settings)
    try:
        user = service.authenticate(username, password, now)
    except (AuthenticationFailed, AccountLocked) as exc:
        # The failure counter (and a lockout) must survive the failed sign-in.
        session.commit()
        return _login_page(request, next_url, username, exc.message, status=exc.status_code)
    raw, _token = service.issue_token(user, TokenKind.SESSION, now, name="web")
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        max_age=settings.session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
    return response


@router.post("/logout")
def logout(
    request: Request,
    session: DbSession,
    now: Now,
    csrf_token: Annotated[str, Form(max_length=256)] = "",
) -> Response:
    verify_csrf(request, csrf_token)
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        AuthService(session, settings_of(request)).revoke_token(raw, now)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings_of(request).cookie_secure,
    )
    return response
