from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class WelderIn(BaseModel):
    name: str = Field(max_length=256)
    id_number: str = Field(
        max_length=64, description="身份证号; stored hashed and encrypted, never returned"
    )
    phone: str | None = Field(default=None, max_length=32)
    enterprise_id: int = Field(description="The employing enterprise")


class CertificateOut(BaseModel):
    id: int
    welder_id: int
    kind: str
    kind_label: str
    number_masked: str
    item: str
    issue_date: date
    expiry_date: date
    review_due_date: date | None
    issuing_authority: str
    source: str
    status: str
    status_label: str
    status_reason: str
    confirmed_by_enterprise_id: int | None = None


class EmploymentOut(BaseModel):
    enterprise_id: int
    enterprise_name: str
    start_date: date
    end_date: date | None


class WelderOut(BaseModel):
    id: int
    name: str
    id_number_masked: str
    phone_masked: str | None


class WelderDetailOut(WelderOut):
    certificates: list[CertificateOut]
    employments: list[EmploymentOut]


class ManualCertificateIn(BaseModel):
    """A certificate entered by the enterprise before it shows in the authority's
    feed: kept as pending verification until a feed confirms it."""

    kind: str
    number: str = Field(max_length=64)
    item: str
    issue_date: date
    expiry_date: date | None = None
    issuing_authority: str = Field(max_length=128)
