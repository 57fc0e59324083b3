"""Imports every model so that metadata is complete (Alembic, tests)."""

from weldguard.auth.models import AccessToken, User
from weldguard.device.models import DeviceAlarm, DeviceCommand, DeviceMessage, DeviceState
from weldguard.enterprise.models import Enterprise, Site
from weldguard.filing.models import SmallWorkCheck, SmallWorkFiling
from weldguard.jurisdiction.models import Department, Jurisdiction
from weldguard.machine.models import Chip, ChipBinding, Machine
from weldguard.permit.alarm_models import PermitAlarm, PermitMonitorReading
from weldguard.permit.calendar_models import CalendarDay
from weldguard.permit.mobile_models import MobileJob, MobileJobMachine, MobileJobWelder
from weldguard.permit.models import Permit, PermitEventRow, PermitMachine, PermitWelder
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
    "MobileJob",
    "MobileJobMachine",
    "MobileJobWelder",
    "Permit",
    "PermitAlarm",
    "PermitEventRow",
    "PermitMachine",
    "PermitMonitorReading",
    "PermitWelder",
    "ScanDayCount",
    "ScanRecord",
    "ScanRollupDay",
    "ScanRollupSector",
    "ScanRollupState",
    "Site",
    "SmallWorkCheck",
    "SmallWorkFiling",
    "SpecialPeriod",
    "User",
    "Welder",
    "WorkSession",
]
