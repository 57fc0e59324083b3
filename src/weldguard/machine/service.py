"""Use cases for machines and their chips. Services flush, never commit."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from weldguard.auth.scope import Action, Scope
from weldguard.enterprise.repository import EnterpriseRepository
from weldguard.errors import Conflict, ErrorDetail, InvalidInput, NotFound
from weldguard.machine.models import Chip, ChipBinding, Machine, MachineStatus, WeldingProcess
from weldguard.machine.repository import MachineRepository

# Crockford-style alphabet: no I, L, O, U, so codes read back unambiguously.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
IMEI_RE = re.compile(r"^\d{15}$")
ICCID_RE = re.compile(r"^\d{19,20}$")
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{4,32}$")
MAX_RATED_CURRENT_A = 2000


def new_machine_code() -> str:
    return "WG" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))


@dataclass(frozen=True)
class MachineInput:
    serial_number: str
    make: str
    model: str
    process: str
    rated_current_a: int
    enterprise_id: int
    site_id: int | None = None


def validate_machine(data: MachineInput) -> list[ErrorDetail]:
    errors: list[ErrorDetail] = []
    for key, limit in (("serial_number", 64), ("make", 64), ("model", 64)):
        value = str(getattr(data, key)).strip()
        if not value:
            errors.append(ErrorDetail("不能为空", field=key))
        elif len(value) > limit:
            errors.append(ErrorDetail(f"超过 {limit} 个字符", field=key))
    try:
        WeldingProcess(data.process)
    except ValueError:
        options = "、".join(f"{p.value}({p.label})" for p in WeldingProcess)
        errors.append(
            ErrorDetail(f"未知的焊接工艺“{data.process}”，可选：{options}", field="process")
        )
    if not 1 <= data.rated_current_a <= MAX_RATED_CURRENT_A:
        errors.append(
            ErrorDetail(f"额定电流应在 1 到 {MAX_RATED_CURRENT_A} A 之间", field="rated_current_a")
        )
    return errors


class MachineService:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.repo = MachineRepository(session)

    def register(self, scope: Scope, data: MachineInput, now: datetime) -> Machine:
        scope.require(Action.MANAGE_ENTERPRISE_ASSETS)
        enterprises = EnterpriseRepository(self.session)
        if enterprises.visible(scope, data.enterprise_id) is None:
            raise NotFound("企业不存在")
        errors = validate_machine(data)
        if data.site_id is not None and enterprises.site(data.enterprise_id, data.site_id) is None:
            errors.append(ErrorDetail("该企业没有这个作业场所", field="site_id"))
        if errors:
            raise InvalidInput("焊机信息有误", errors)
        make, serial = data.make.strip(), data.serial_number.strip()
        if self.repo.by_make_serial(make, serial) is not None:
            raise Conflict(f"{make} 出厂编号 {serial} 的焊机已登记")
        code = new_machine_code()
        while self.repo.code_exists(code):
            code = new_machine_code()
        return self.repo.add(
            Machine(
                code=code,
                serial_number=serial,
                make=make,
                model=data.model.strip(),
                process=data.process,
                rated_current_a=data.rated_current_a,
                enterprise_id=data.enterprise_id,
                site_id=data.site_id,
                status=MachineStatus.REGISTERED.value,
                registered_at=now,
            )
        )

    def retire(self, scope: Scope, machine_id: int, now: datetime) -> Machine:
        scope.require(Action.MANAGE_ENTERPRISE_ASSETS)
        machine = self.repo.visible(scope, machine_id)
        if machine is None:
            raise NotFound("焊机不存在")
        binding = self.repo.open_binding_of_machine(machine.id)
        if binding is not None:
            binding.removed_at = now
            binding.removal_reason = "焊机报废"
        machine.status = MachineStatus.RETIRED.value
        machine.retired_at = now
        self.session.flush()
        return machine

    def fit_chip(
        self,
        machine: Machine,
        device_id: str,
        imei: str,
        iccid: str,
        fitted_by_name: str,
        now: datetime,
        fitted_by_user_id: int | None = None,
        position: tuple[float, float] | None = None,
    ) -> ChipBinding:
        """Binds a chip to a machine. A chip already in another machine, or a
        machine with another chip, is moved: the old binding is closed, not lost."""
        errors = []
        if not DEVICE_ID_RE.match(device_id):
            errors.append(ErrorDetail("设备号应为 4–32 位字母、数字、-、_", field="device_id"))
        if not IMEI_RE.match(imei):
            errors.append(ErrorDetail("IMEI 应为 15 位数字", field="imei"))
        if not ICCID_RE.match(iccid):
            errors.append(ErrorDetail("ICCID 应为 19–20 位数字", field="iccid"))
        if machine.status == MachineStatus.RETIRED.value:
            errors.append(ErrorDetail("焊机已报废，不能加芯", field="machine"))
        if errors:
            raise InvalidInput("加芯信息有误", errors)
        chip = self.repo.chip_by_device_id(device_id)
        if chip is None:
            chip = self.repo.add_chip(
                Chip(device_id=device_id, imei=imei, iccid=iccid, registered_at=now)
            )
        moved_from = self.repo.open_binding_of_chip(chip.id)
        replaced = self.repo.open_binding_of_machine(machine.id)
        for old in (moved_from, replaced):
            if old is not None:
                old.removed_at = now
                old.removed_by_name = fitted_by_name
                old.removal_reason = "更换芯片"
        if moved_from is not None and moved_from.machine_id != machine.id:
            previous = self.session.get(Machine, moved_from.machine_id)
            if previous is not None and previous.status == MachineStatus.CHIP_FITTED.value:
                previous.status = MachineStatus.REGISTERED.value
        self.session.flush()
        binding = ChipBinding(
            machine_id=machine.id,
            chip_id=chip.id,
            fitted_at=now,
            fitted_by_user_id=fitted_by_user_id,
            fitted_by_name=fitted_by_name,
            latitude=position[0] if position else None,
            longitude=position[1] if position else None,
        )
        self.session.add(binding)
        machine.status = MachineStatus.CHIP_FITTED.value
        self.session.flush()
        return binding
