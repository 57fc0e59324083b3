from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class EnterpriseIn(BaseModel):
    """The import template's fields, with the same names as enterprise.fields."""

    name: str = Field(max_length=512)
    credit_code: str = Field(max_length=64)
    sector: str = Field(max_length=64)
    city: str = Field(max_length=64)
    district: str = Field(max_length=64)
    street: str = Field(default="", max_length=64)
    address: str = Field(default="", max_length=1024)
    crowded_subtype: str | None = Field(default=None, max_length=64)
    legal_rep_name: str = Field(default="", max_length=256)
    legal_rep_phone: str = Field(default="", max_length=64)
    contact_phone: str = Field(default="", max_length=64)
    production_status: str = Field(default="在产", max_length=16)
    involves_welding: bool = True
    mobile_work: bool = False
    declared_machine_count: int = 0
    declared_welder_count: int = 0


class EnterpriseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    credit_code: str
    sector: str
    crowded_subtype: str | None
    jurisdiction_id: int
    area_path: str
    address: str
    legal_rep_name: str
    legal_rep_phone: str
    contact_phone: str
    production_status: str
    involves_welding: bool
    mobile_work: bool
    declared_machine_count: int
    declared_welder_count: int
    opening_hours: list[dict[str, object]] | None
    permit_required: bool | None = None


class OpeningWindow(BaseModel):
    days: list[int]
    open: str
    close: str


class SiteIn(BaseModel):
    name: str = Field(max_length=512)
    address: str = Field(default="", max_length=1024)
    latitude: float | None = None
    longitude: float | None = None
    polygon: list[list[float]] | None = None


class SiteOut(SiteIn):
    model_config = ConfigDict(from_attributes=True)

    id: int
    enterprise_id: int
