from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class JurisdictionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    name: str
    level: str
    parent_id: int | None
    full_name: str


class DepartmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    code: str
    name: str
    short_name: str
    all_sectors: bool
    sectors: list[str]
