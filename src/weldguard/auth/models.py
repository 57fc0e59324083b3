"""Accounts and tokens."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from weldguard.db import Base, UTCDateTime, utcnow


class Role(StrEnum):
    ADMIN = "admin"
    REGULATOR = "regulator"
    INSPECTOR = "inspector"
    ENTERPRISE_ADMIN = "enterprise_admin"
    SAFETY_OFFICER = "safety_officer"
    # 动火点所在单位负责人: the head of a unit (workshop, project team) of an
    # enterprise, who approves its 二级 hot-work permits.
    UNIT_HEAD = "unit_head"
    WELDER = "welder"
    INSTALLER = "installer"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]

    @property
    def is_enterprise_role(self) -> bool:
        return self in (Role.ENTERPRISE_ADMIN, Role.SAFETY_OFFICER, Role.UNIT_HEAD)

    @property
    def is_area_role(self) -> bool:
        return self in (Role.REGULATOR, Role.INSPECTOR, Role.INSTALLER)


ROLE_LABELS = {
    Role.ADMIN: "系统管理员",
    Role.REGULATOR: "监管人员",
    Role.INSPECTOR: "检查员",
    Role.ENTERPRISE_ADMIN: "企业管理员",
    Role.SAFETY_OFFICER: "企业安全管理员",
    Role.UNIT_HEAD: "单位负责人",
    Role.WELDER: "焊工",
    Role.INSTALLER: "安装人员",
}


class User(Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32))
    jurisdiction_id: Mapped[int | None] = mapped_column(ForeignKey("jurisdiction.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprise.id"), index=True)
    welder_id: Mapped[int | None] = mapped_column(ForeignKey("welder.id"))
    phone: Mapped[str | None] = mapped_column(String(20))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TokenKind(StrEnum):
    SESSION = "session"  # browser cookie
    API = "api"  # bearer token


class AccessToken(Base):
    """Browser sessions and API tokens alike: only the SHA-256 of the secret is
    stored, so a database leak does not hand out live sessions."""

    __tablename__ = "access_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
