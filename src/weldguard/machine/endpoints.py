"""/api/v1/machines"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from weldguard.deps import CurrentScope, DbSession, Now
from weldguard.enterprise.endpoints import area_path_of
from weldguard.errors import NotFound
from weldguard.machine.models import Machine
from weldguard.machine.repository import MachineFilter, MachineRepository
from weldguard.machine.schemas import (
    BindingOut,
    ChipOut,
    MachineDetailOut,
    MachineIn,
    MachineOut,
)
from weldguard.machine.service import MachineInput, MachineService
from weldguard.schemas import PageOut

router = APIRouter(prefix="/machines", tags=["machines"])


def _out(machine: Machine, repo: MachineRepository) -> MachineOut:
    out = MachineOut.model_validate(machine)
    chip = repo.current_chips([machine.id]).get(machine.id)
    out.chip = ChipOut.model_validate(chip) if chip else None
    return out


@router.get("", response_model=PageOut[MachineOut])
def list_machines(
    session: DbSession,
    scope: CurrentScope,
    q: str | None = None,
    enterprise_id: int | None = None,
    area: str | None = None,
    process: str | None = None,
    status: str | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> PageOut[MachineOut]:
    repo = MachineRepository(session)
    result = repo.search(
        scope,
        MachineFilter(
            q=q,
            enterprise_id=enterprise_id,
            area_path=area_path_of(session, area),
            process=process,
            status=status,
        ),
        page,
        size,
    )
    chips = repo.current_chips([m.id for m in result.items])
    items = []
    for machine in result.items:
        out = MachineOut.model_validate(machine)
        chip = chips.get(machine.id)
        out.chip = ChipOut.model_validate(chip) if chip else None
        items.append(out)
    return PageOut.of(result, items)


@router.get("/{machine_id}", response_model=MachineDetailOut)
def get_machine(machine_id: int, session: DbSession, scope: CurrentScope) -> MachineDetailOut:
    repo = MachineRepository(session)
    machine = repo.visible(scope, machine_id)
    if machine is None:
        raise NotFound("焊机不存在")
    base = _out(machine, repo)
    bindings = [
        BindingOut(
            chip=ChipOut.model_validate(chip),
            fitted_at=b.fitted_at,
            fitted_by_name=b.fitted_by_name,
            latitude=b.latitude,
            longitude=b.longitude,
            removed_at=b.removed_at,
            removed_by_name=b.removed_by_name,
            removal_reason=b.removal_reason,
        )
        for b, chip in repo.bindings_of(machine.id)
    ]
    return MachineDetailOut(**base.model_dump(), bindings=bindings)


@router.post("", response_model=MachineOut, status_code=201)
def register_machine(
    body: MachineIn, session: DbSession, scope: CurrentScope, now: Now
) -> MachineOut:
    machine = MachineService(session).register(scope, MachineInput(**body.model_dump()), now)
    return _out(machine, MachineRepository(session))


@router.post("/{machine_id}/retire", response_model=MachineOut)
def retire_machine(
    machine_id: int, session: DbSession, scope: CurrentScope, now: Now
) -> MachineOut:
    machine = MachineService(session).retire(scope, machine_id, now)
    return _out(machine, MachineRepository(session))
