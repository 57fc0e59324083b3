"""Request dependencies: the transaction boundary, the signed-in user and scope."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from weldguard.auth.models import User
from weldguard.auth.scope import Scope
from weldguard.auth.service import AuthService
from weldguard.config import Settings
from weldguard.db import utcnow
from weldguard.errors import AuthenticationFailed
from weldguard.welder.identity import IdentityVault

if TYPE_CHECKING:
    from weldguard.unlock.command_bus import CommandBus

SESSION_COOKIE = "wg_session"


@dataclass
class AppState:
    settings: Settings
    session_factory: sessionmaker[Session]
    vault: IdentityVault
    # The unlock fast path of this process (unlock/command_bus.py); None: scans
    # deliver through the dispatchers.
    command_bus: CommandBus | None = None


# The dependencies that only read memory are ``async def``: FastAPI runs a plain
# ``def`` dependency on a worker thread, a thread hop per request for nothing.
async def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.weldguard
    return state


async def get_settings_dep(state: Annotated[AppState, Depends(app_state)]) -> Settings:
    return state.settings


def get_session(state: Annotated[AppState, Depends(app_state)]) -> Iterator[Session]:
    """The transaction boundary of a request: commit when the endpoint returns,
    roll back when it raises. Services below only flush."""
    session = state.session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


async def get_clock() -> datetime:
    return utcnow()


DbSession = Annotated[Session, Depends(get_session)]
Now = Annotated[datetime, Depends(get_clock)]


def _raw_token(request: Request) -> str | None:
    """The API takes bearer tokens only and pages the session cookie only: a
    cookie is sent by the browser on its own, so accepting it on the API would
    open the API to cross-site requests that pages guard with their CSRF token."""
    if request.url.path.startswith("/api/"):
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:].strip() or None
        return None
    return request.cookies.get(SESSION_COOKIE)


def optional_user(
    request: Request,
    session: DbSession,
    state: Annotated[AppState, Depends(app_state)],
    now: Now,
) -> User | None:
    raw = _raw_token(request)
    if not raw:
        return None
    return AuthService(session, state.settings).user_for_token(raw, now)


async def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise AuthenticationFailed("请先登录")
    return user


def current_scope(
    user: Annotated[User, Depends(current_user)],
    session: DbSession,
    state: Annotated[AppState, Depends(app_state)],
) -> Scope:
    return AuthService(session, state.settings).scope_for(user)


CurrentUser = Annotated[User, Depends(current_user)]
CurrentScope = Annotated[Scope, Depends(current_scope)]


async def get_vault(state: Annotated[AppState, Depends(app_state)]) -> IdentityVault:
    return state.vault


Vault = Annotated[IdentityVault, Depends(get_vault)]
