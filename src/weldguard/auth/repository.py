"""Queries for accounts and tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, select
from sqlalchemy.orm import Session

from weldguard.auth.models import AccessToken, User
from weldguard.db import PREPARED, UTCDateTime
from weldguard.welder.models import Welder


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_username(self, username: str) -> User | None:
        return self.session.scalars(select(User).where(User.username == username)).one_or_none()

    def by_phone(self, phone: str) -> list[User]:
        """Accounts with this mobile number: their own, or the one on the welder
        record they are linked to (enterprises register their welders' phones)."""
        linked = select(Welder.id).where(Welder.phone == phone)
        return list(
            self.session.scalars(
                select(User)
                .where((User.phone == phone) | User.welder_id.in_(linked))
                .order_by(User.id)
                .limit(2)
            )
        )

    def for_welder(self, welder_id: int) -> User | None:
        """The account linked to a welder's record (there is at most one)."""
        return self.session.scalars(
            select(User).where(User.welder_id == welder_id).order_by(User.id).limit(1)
        ).first()

    def by_id(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def add(self, user: User) -> User:
        self.session.add(user)
        self.session.flush()
        return user

    def list_all(self) -> list[User]:
        return list(self.session.scalars(select(User).order_by(User.id)))


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, token: AccessToken) -> AccessToken:
        self.session.add(token)
        self.session.flush()
        return token

    def live_with_user(self, token_hash: str, now: datetime) -> tuple[AccessToken, User] | None:
        """A live token and its account in one round trip (every signed-in request
        starts with this)."""
        row = self.session.execute(
            _LIVE_WITH_USER, {"token_hash": token_hash, "now": now}
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    def live_by_hash(self, token_hash: str, now: datetime) -> AccessToken | None:
        return self.session.scalars(
            select(AccessToken).where(
                AccessToken.token_hash == token_hash,
                AccessToken.revoked_at.is_(None),
                AccessToken.expires_at > now,
            )
        ).one_or_none()


def live_token(token_hash: Any, now: Any) -> ColumnElement[bool]:
    """What makes a token good for signing in: its hash, not revoked, not expired
    (also joined into the scan's read, which takes the account with the machine)."""
    return and_(
        AccessToken.token_hash == token_hash,
        AccessToken.revoked_at.is_(None),
        AccessToken.expires_at > now,
    )


# Built once: every signed-in request runs it.
_LIVE_WITH_USER = (
    select(AccessToken, User)
    .join(User, User.id == AccessToken.user_id)
    .where(live_token(bindparam("token_hash"), bindparam("now", type_=UTCDateTime())))
    .execution_options(**{PREPARED: True})
)
