"""Double-submit CSRF protection for the pages.

A random token lives in a cookie and is repeated in every form (hidden field
``csrf_token``) or, for htmx requests, in the ``X-CSRF-Token`` header. A POST is
accepted only when both are present and equal: a foreign site can make the
browser send the cookie but cannot read it to fill in the form."""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request, Response

from weldguard.errors import PermissionDenied

CSRF_COOKIE = "wg_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_TOKEN_BYTES = 32
_MAX_LENGTH = 128

EXPIRED_FORM = "页面已过期或请求来源无效，请刷新页面后重试"


class CsrfFailed(PermissionDenied):
    code = "csrf_failed"


def _well_formed(token: str | None) -> bool:
    return bool(token) and 20 <= len(token or "") <= _MAX_LENGTH and (token or "").isascii()


def csrf_token(request: Request) -> str:
    """The token for this request's forms: the cookie's, or a new one."""
    token: str | None = getattr(request.state, "csrf_token", None)
    if token:
        return token
    cookie = request.cookies.get(CSRF_COOKIE)
    if _well_formed(cookie):
        assert cookie is not None
        token = cookie
        request.state.csrf_new = False
    else:
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        request.state.csrf_new = True
    request.state.csrf_token = token
    return token


def set_csrf_cookie(request: Request, response: Response) -> None:
    """Sends the cookie when the token was made for this request."""
    if not getattr(request.state, "csrf_new", False):
        return
    from weldguard.web.common import settings_of

    response.set_cookie(
        CSRF_COOKIE,
        request.state.csrf_token,
        httponly=True,
        samesite="lax",
        secure=settings_of(request).cookie_secure,
        path="/",
    )


def csrf_ok(request: Request, submitted: str | None) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE)
    value = submitted or request.headers.get(CSRF_HEADER)
    if not _well_formed(cookie) or not _well_formed(value):
        return False
    assert cookie is not None and value is not None
    return hmac.compare_digest(cookie.encode(), value.encode())


def verify_csrf(request: Request, submitted: str | None) -> None:
    if not csrf_ok(request, submitted):
        raise CsrfFailed(EXPIRED_FORM)
