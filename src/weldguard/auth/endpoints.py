"""Sign-in for API clients and the current account."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from weldguard.auth.models import Role, TokenKind
from weldguard.auth.schemas import LoginIn, MeOut, TokenOut
from weldguard.auth.service import AuthService
from weldguard.deps import AppState, CurrentUser, DbSession, Now, app_state
from weldguard.errors import AccountLocked, AuthenticationFailed
from weldguard.jurisdiction.repository import DepartmentRepository, JurisdictionRepository

router = APIRouter(tags=["auth"])


@router.post(
    "/auth/token",
    response_model=TokenOut,
    summary="Exchange username and password for a bearer token",
)
def login(
    body: LoginIn, session: DbSession, now: Now, state: AppState = Depends(app_state)
) -> TokenOut:
    service = AuthService(session, state.settings)
    try:
        user = service.authenticate(body.username, body.password, now)
    except (AuthenticationFailed, AccountLocked):
        # The failure counter must survive the error: commit it before raising.
        session.commit()
        raise
    raw, token = service.issue_token(user, TokenKind.API, now, name=body.token_name)
    return TokenOut(access_token=raw, expires_at=token.expires_at.isoformat())


@router.get("/me", response_model=MeOut)
def me(user: CurrentUser, session: DbSession) -> MeOut:
    node = (
        JurisdictionRepository(session).by_id(user.jurisdiction_id)
        if user.jurisdiction_id
        else None
    )
    department = (
        DepartmentRepository(session).by_id(user.department_id) if user.department_id else None
    )
    return MeOut(
        id=user.id,
        username=user.username,
        display_name=user.display_name,
        role=user.role,
        role_label=Role(user.role).label,
        jurisdiction=node.full_name if node else None,
        department=department.name if department else None,
        enterprise_id=user.enterprise_id,
    )
