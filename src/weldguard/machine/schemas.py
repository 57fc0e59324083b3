from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class MachineIn(BaseModel):
    serial_number: str = Field(max_length=256)
    make: str = Field(max_length=256)
    model: str = Field(max_length=256)
    process: str = Field(max_length=32)
    rated_current_a: int
    enterprise_id: int
    site_id: int | None = None


class ChipOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    device_id: str
    imei: str
    iccid: str
    firmware: str


class MachineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    code: str
    serial_number: str
    make: str
    model: str
    process: str
    rated_current_a: int
    enterprise_id: int
    site_id: int | None
    status: str
    registered_at: datetime
    retired_at: datetime | None
    chip: ChipOut | None = None


class BindingOut(BaseModel):
    chip: ChipOut
    fitted_at: datetime
    fitted_by_name: str
    latitude: float | None
    longitude: float | None
    removed_at: datetime | None
    removed_by_name: str | None
    removal_reason: str | None


class MachineDetailOut(MachineOut):
    bindings: list[BindingOut]
