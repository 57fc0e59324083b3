"""The JSON API under /api/v1: one router per area."""

from fastapi import APIRouter

from weldguard.auth.endpoints import router as auth_router

router = APIRouter()
router.include_router(auth_router)
