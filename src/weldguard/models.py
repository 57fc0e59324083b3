"""Imports every model so that metadata is complete (Alembic, tests)."""

from weldguard.auth.models import AccessToken, User
from weldguard.device.models import DeviceAlarm, DeviceCommand, DeviceMessage, DeviceState
from weldguard.enterprise.models import Enterprise, Site
from weldguard.jurisdiction.models import Department, Jurisdiction
from weldguard.machine.models import Chip, ChipBinding, Machine
from weldguard.permit.calendar_models import CalendarDay
from weldguard.report.models import ImportRun
from weldguard.unlock.models import ScanRecord, SpecialPeriod, WorkSession
from weldguard.unlock.rollup_models import (
    ScanDayCount,
    ScanRollupDay,
    ScanRollupSector,
    ScanRollupState,
)
from weldguard.welder.models import Certificate, Employment, Welder

__all__ = [
    "AccessToken",
    "CalendarDay",
    "Certificate",
    "Chip",
    "ChipBinding",
    "Department",
    "DeviceAlarm",
    "DeviceCommand",
    "DeviceMessage",
    "DeviceState",
    "Employment",
    "Enterprise",
    "ImportRun",
    "Jurisdiction",
    "Machine",
    "ScanDayCount",
    "ScanRecord",
    "ScanRollupDay",
    "ScanRollupSector",
    "ScanRollupState",
    "Site",
    "SpecialPeriod",
    "User",
    "Welder",
    "WorkSession",
]
