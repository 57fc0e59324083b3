"""The error tree. Every error the platform reports to a user is a DomainError;
one handler turns it into the single JSON error format (or an error page)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from weldguard.domain.ids import InvalidIdentifier, normalize_phone


@dataclass(frozen=True)
class ErrorDetail:
    """Where and why: a field, or a row and column of an uploaded file."""

    reason: str
    field: str | None = None
    row: int | None = None
    column: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class DomainError(Exception):
    message: str
    details: list[ErrorDetail] = field(default_factory=list)
    status_code = 400
    code = "bad_request"

    def __str__(self) -> str:
        if not self.details:
            return self.message
        lines = [self.message]
        for d in self.details:
            where = " ".join(
                p
                for p in (
                    f"第 {d.row} 行" if d.row is not None else "",
                    f"[{d.column}]" if d.column else "",
                    f"{d.field}:" if d.field else "",
                )
                if p
            )
            lines.append(f"  {where} {d.reason}".rstrip())
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = [d.as_dict() for d in self.details]
        return {"error": body}


class InvalidInput(DomainError):
    status_code = 422
    code = "invalid_input"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class PermissionDenied(DomainError):
    status_code = 403
    code = "forbidden"


class AuthenticationFailed(DomainError):
    status_code = 401
    code = "unauthenticated"


class AccountLocked(DomainError):
    status_code = 423
    code = "account_locked"


def invalid(field_name: str, reason: str) -> InvalidInput:
    return InvalidInput(f"{field_name}: {reason}", [ErrorDetail(reason=reason, field=field_name)])


class FieldErrors:
    """The field errors of one input, collected so that every bad field is reported
    at once and nothing is written when there is one."""

    def __init__(self) -> None:
        self.details: list[ErrorDetail] = []

    def add(self, field_name: str, reason: str) -> None:
        self.details.append(ErrorDetail(reason=reason, field=field_name))

    def has(self, field_name: str) -> bool:
        return any(d.field == field_name for d in self.details)

    def raise_if_any(self, what: str) -> None:
        if self.details:
            raise InvalidInput(
                f"{what}有误：" + "；".join(f"{d.field}: {d.reason}" for d in self.details),
                self.details,
            )

    def text(self, name: str, value: str, label: str, limit: int, required: bool = True) -> str:
        """The trimmed text, checked for presence and length."""
        text = (value or "").strip()
        if required and not text:
            self.add(name, f"请填写{label}")
        elif len(text) > limit:
            self.add(name, f"{label}不能超过 {limit} 个字")
        return text

    def phone(self, name: str, value: str, label: str, required: bool = True) -> str:
        """A mainland mobile number, normalised; "" when missing or invalid."""
        if not (value or "").strip():
            if required:
                self.add(name, f"请填写{label}")
            return ""
        try:
            return normalize_phone(value)
        except InvalidIdentifier as exc:
            self.add(name, f"{label}无效：{exc.reason}")
            return ""
