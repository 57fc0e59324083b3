"""Page routes: one router per area of the site (the scan page's is included
first of all, by weldguard.app)."""

from fastapi import APIRouter

from weldguard.web.pages_auth import router as auth_router
from weldguard.web.pages_calendar import router as calendar_router
from weldguard.web.pages_device import router as device_router
from weldguard.web.pages_filings import router as filings_router
from weldguard.web.pages_home import router as home_router
from weldguard.web.pages_import import router as import_router
from weldguard.web.pages_labels import router as labels_router
from weldguard.web.pages_permit_alarms import router as permit_alarms_router
from weldguard.web.pages_permit_docs import router as permit_docs_router
from weldguard.web.pages_permits import router as permits_router
from weldguard.web.pages_register import router as register_router
from weldguard.web.pages_unlock import router as unlock_router

router = APIRouter(include_in_schema=False)
router.include_router(auth_router)
router.include_router(home_router)
router.include_router(register_router)
router.include_router(import_router)
router.include_router(device_router)
router.include_router(labels_router)
router.include_router(unlock_router)
router.include_router(calendar_router)
router.include_router(permits_router)
router.include_router(permit_docs_router)
router.include_router(filings_router)
router.include_router(permit_alarms_router)
