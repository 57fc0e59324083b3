from __future__ import annotations

from pydantic import BaseModel, Field


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)
    token_name: str = Field(default="api", max_length=64)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105  (a scheme name, not a secret)
    expires_at: str


class MeOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
    role_label: str
    jurisdiction: str | None
    department: str | None
    enterprise_id: int | None
