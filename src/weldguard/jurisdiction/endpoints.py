"""/api/v1/jurisdictions and /api/v1/departments"""

from __future__ import annotations

from fastapi import APIRouter

from weldguard.deps import CurrentScope, CurrentUser, DbSession
from weldguard.jurisdiction.repository import DepartmentRepository, JurisdictionRepository
from weldguard.jurisdiction.schemas import DepartmentOut, JurisdictionOut

router = APIRouter(tags=["jurisdictions"])


@router.get("/jurisdictions", response_model=list[JurisdictionOut])
def list_jurisdictions(session: DbSession, scope: CurrentScope) -> list[JurisdictionOut]:
    """The nodes of the caller's subtree (all of them for an admin)."""
    repo = JurisdictionRepository(session)
    if scope.everything:
        nodes = repo.all()
    elif scope.area_path is not None:
        nodes = repo.subtree(scope.area_path)
    else:
        nodes = []
    return [JurisdictionOut.model_validate(n) for n in nodes]


@router.get("/departments", response_model=list[DepartmentOut])
def list_departments(session: DbSession, _user: CurrentUser) -> list[DepartmentOut]:
    return [DepartmentOut.model_validate(d) for d in DepartmentRepository(session).all()]
