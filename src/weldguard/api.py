"""The JSON API under /api/v1: one router per area."""

from fastapi import APIRouter

from weldguard.auth.endpoints import router as auth_router
from weldguard.device.endpoints import router as command_router
from weldguard.enterprise.endpoints import router as enterprise_router
from weldguard.filing.endpoints import router as filing_router
from weldguard.jurisdiction.endpoints import router as jurisdiction_router
from weldguard.machine.endpoints import router as machine_router
from weldguard.permit.calendar_endpoints import router as calendar_router
from weldguard.permit.endpoints import router as permit_router
from weldguard.permit.mobile_endpoints import router as mobile_job_router
from weldguard.permit.monitor_endpoints import router as permit_monitor_router
from weldguard.report.endpoints import router as report_router
from weldguard.unlock.endpoints import router as unlock_router
from weldguard.welder.endpoints import router as welder_router

router = APIRouter()
for area_router in (
    auth_router,
    jurisdiction_router,
    enterprise_router,
    machine_router,
    welder_router,
    report_router,
    command_router,
    unlock_router,
    calendar_router,
    permit_router,
    mobile_job_router,
    permit_monitor_router,
    filing_router,
):
    router.include_router(area_router)
