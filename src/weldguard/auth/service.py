"""Accounts: creation, password sign-in with lockout, tokens, and the user's scope."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from weldguard.auth.models import AccessToken, Role, TokenKind, User
from weldguard.auth.passwords import MIN_PASSWORD_LENGTH, Passwords
from weldguard.auth.repository import TokenRepository, UserRepository
from weldguard.auth.scope import Scope
from weldguard.config import Settings
from weldguard.domain.ids import InvalidIdentifier, normalize_mobile_phone
from weldguard.enterprise.repository import EnterpriseRepository
from weldguard.errors import (
    AccountLocked,
    AuthenticationFailed,
    Conflict,
    ErrorDetail,
    InvalidInput,
    invalid,
)
from weldguard.jurisdiction.repository import DepartmentRepository, JurisdictionRepository

# A failed sign-in does not tell whether the user exists.
BAD_CREDENTIALS = "用户名或密码错误"


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class NewUser:
    username: str
    password: str
    role: str
    display_name: str = ""
    jurisdiction_code: str | None = None
    department: str | None = None
    enterprise_credit_code: str | None = None
    phone: str | None = None
    welder_id: int | None = None


class AuthService:
    def __init__(self, session: Session, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.users = UserRepository(session)
        self.tokens = TokenRepository(session)
        self.passwords = Passwords(settings)

    # --- accounts -----------------------------------------------------------
    def create_user(self, new: NewUser) -> User:
        errors: list[ErrorDetail] = []
        username = new.username.strip()
        if not username or len(username) > 64:
            errors.append(ErrorDetail("用户名不能为空且不超过 64 个字符", field="username"))
        elif self.users.by_username(username) is not None:
            raise Conflict(f"用户名 {username} 已存在")
        if len(new.password) < MIN_PASSWORD_LENGTH:
            errors.append(ErrorDetail(f"密码至少 {MIN_PASSWORD_LENGTH} 个字符", field="password"))
        try:
            role = Role(new.role)
        except ValueError:
            valid = ", ".join(r.value for r in Role)
            raise invalid("role", f"未知角色 {new.role!r}，可选：{valid}") from None

        jurisdiction_id = department_id = enterprise_id = None
        if new.jurisdiction_code:
            node = JurisdictionRepository(self.session).by_code(new.jurisdiction_code)
            if node is None:
                errors.append(
                    ErrorDetail(f"未知的行政区划代码 {new.jurisdiction_code}", field="jurisdiction")
                )
            else:
                jurisdiction_id = node.id
        if new.department:
            department = DepartmentRepository(self.session).find(new.department)
            if department is None:
                errors.append(ErrorDetail(f"未知的部门 {new.department}", field="department"))
            else:
                department_id = department.id
        if new.enterprise_credit_code:
            enterprise = EnterpriseRepository(self.session).by_credit_code(
                new.enterprise_credit_code.strip().upper()
            )
            if enterprise is None:
                errors.append(
                    ErrorDetail(
                        f"未登记的统一社会信用代码 {new.enterprise_credit_code}", field="enterprise"
                    )
                )
            else:
                enterprise_id = enterprise.id

        if role.is_area_role and not new.jurisdiction_code:
            errors.append(ErrorDetail(f"{role.label}必须绑定辖区", field="jurisdiction"))
        if role == Role.REGULATOR and not new.department:
            errors.append(ErrorDetail("监管人员必须绑定部门", field="department"))
        if role.is_enterprise_role and not new.enterprise_credit_code:
            errors.append(ErrorDetail(f"{role.label}必须绑定企业", field="enterprise"))
        if role == Role.WELDER and new.welder_id is None:
            errors.append(ErrorDetail("焊工账号必须关联焊工档案", field="welder"))
        if new.welder_id is not None:
            # One account per welder: the scan page signs in by the welder's phone
            # number, which must name one account.
            linked = self.users.for_welder(new.welder_id)
            if linked is not None:
                raise Conflict(f"该焊工档案已有账号 {linked.username}，不能再建一个")
        if errors:
            raise InvalidInput("无法创建用户", errors)

        return self.users.add(
            User(
                username=username,
                display_name=new.display_name or username,
                password_hash=self.passwords.hash(new.password),
                role=role.value,
                jurisdiction_id=jurisdiction_id,
                department_id=department_id,
                enterprise_id=enterprise_id,
                welder_id=new.welder_id,
                phone=new.phone,
            )
        )

    # --- sign-in ------------------------------------------------------------
    def authenticate(self, username: str, password: str, now: datetime) -> User:
        return self._check_password(self.users.by_username(username.strip()), password, now)

    def authenticate_phone(self, phone: str, password: str, now: datetime) -> User:
        """Sign-in with a mobile number (the scan page on a welder's phone). A number
        that belongs to no account, or to more than one, signs into none, with the
        same answer as a wrong password."""
        try:
            number = normalize_mobile_phone(phone)
        except InvalidIdentifier:
            number = None
        matches = self.users.by_phone(number) if number else []
        user = matches[0] if len(matches) == 1 else None
        return self._check_password(user, password, now)

    def _check_password(self, user: User | None, password: str, now: datetime) -> User:
        if user is None or not user.is_active:
            # Spend the same time as a real check so timing does not reveal users.
            self.passwords.verify(_DUMMY_HASH.get(self.passwords), password)
            raise AuthenticationFailed(BAD_CREDENTIALS)
        if user.locked_until is not None and user.locked_until > now:
            minutes = max(1, int((user.locked_until - now).total_seconds() // 60) + 1)
            raise AccountLocked(f"连续登录失败次数过多，账号已锁定，请 {minutes} 分钟后再试")
        if not self.passwords.verify(user.password_hash, password):
            user.failed_logins += 1
            if user.failed_logins >= self.settings.login_max_failures:
                user.locked_until = now + timedelta(minutes=self.settings.login_lockout_minutes)
                user.failed_logins = 0
            self.session.flush()
            raise AuthenticationFailed(BAD_CREDENTIALS)
        user.failed_logins = 0
        user.locked_until = None
        user.last_login_at = now
        self.session.flush()
        return user

    def issue_token(
        self,
        user: User,
        kind: TokenKind,
        now: datetime,
        name: str = "",
        lifetime: timedelta | None = None,
    ) -> tuple[str, AccessToken]:
        """``lifetime`` overrides the kind's default (记住我 on a phone)."""
        raw = secrets.token_urlsafe(32)
        if lifetime is None:
            lifetime = (
                timedelta(hours=self.settings.session_hours)
                if kind == TokenKind.SESSION
                else timedelta(days=self.settings.api_token_days)
            )
        token = self.tokens.add(
            AccessToken(
                token_hash=hash_token(raw),
                kind=kind.value,
                user_id=user.id,
                name=name,
                created_at=now,
                expires_at=now + lifetime,
            )
        )
        return raw, token

    def user_for_token(self, raw: str, now: datetime) -> User | None:
        found = self.tokens.live_with_user(hash_token(raw), now)
        return None if found is None else self.accept_token(*found, now)

    def accept_token(self, token: AccessToken, user: User, now: datetime) -> User | None:
        """The account behind a live token (read by ``live_token``'s conditions), as
        every signed-in request takes it: None for a deactivated account."""
        if not user.is_active:
            return None
        # Touch at most once a minute: a write per request would serialise SQLite.
        if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
            token.last_used_at = now
            self.session.flush()
        return user

    def revoke_token(self, raw: str, now: datetime) -> None:
        token = self.tokens.live_by_hash(hash_token(raw), now)
        if token is not None:
            token.revoked_at = now
            self.session.flush()

    # --- scope ---------------------------------------------------------------
    def scope_for(self, user: User) -> Scope:
        role = Role(user.role)
        if role == Role.ADMIN:
            return Scope(role=role, user_id=user.id, everything=True)
        if role.is_enterprise_role:
            return Scope(role=role, user_id=user.id, enterprise_id=user.enterprise_id or -1)
        if role == Role.WELDER:
            return Scope(role=role, user_id=user.id, welder_id=user.welder_id or -1)
        area_path = None
        if user.jurisdiction_id is not None:
            node = JurisdictionRepository(self.session).by_id(user.jurisdiction_id)
            area_path = node.path if node else None
        sectors: frozenset[str] | None = None
        if user.department_id is not None:
            department = DepartmentRepository(self.session).by_id(user.department_id)
            if department is not None and not department.all_sectors:
                sectors = frozenset(str(s) for s in department.sectors)
        return Scope(role=role, user_id=user.id, area_path=area_path, sectors=sectors)


class _DummyHash:
    """A hash made once per hasher configuration, for constant-time misses."""

    def __init__(self) -> None:
        self._cache: dict[int, str] = {}

    def get(self, passwords: Passwords) -> str:
        key = id(passwords.__class__)
        if key not in self._cache:
            self._cache[key] = passwords.hash(secrets.token_hex(8))
        return self._cache[key]


_DUMMY_HASH = _DummyHash()
