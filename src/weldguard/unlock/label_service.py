"""Which labels to print, and what a scanned label points at."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.enterprise.models import Enterprise
from weldguard.enterprise.repository import EnterpriseRepository
from weldguard.errors import Conflict, NotFound
from weldguard.machine.models import Machine, MachineStatus
from weldguard.unlock.label_render import LabelInfo
from weldguard.unlock.labels import LabelRejected, LabelSigner, RejectReason
from weldguard.unlock.repository import LabelRepository


@dataclass(frozen=True)
class LabelBatch:
    enterprise: Enterprise
    labels: list[LabelInfo]
    retired: list[str]  # codes of the retired machines left out

    @property
    def title(self) -> str:
        return f"{self.enterprise.name} 焊机标签"


def _is_retired(machine: Machine) -> bool:
    return machine.status == MachineStatus.RETIRED.value


class LabelService:
    def __init__(self, session: Session, signer: LabelSigner) -> None:
        self.session = session
        self.signer = signer
        self.repo = LabelRepository(session)

    def info(self, machine: Machine, enterprise: Enterprise) -> LabelInfo:
        return LabelInfo(
            code=machine.code,
            url=self.signer.label_url(machine.code),
            enterprise_name=enterprise.name,
            serial_number=machine.serial_number,
            make=machine.make,
            model=machine.model,
        )

    def machine_label(self, scope: Scope, machine_id: int) -> LabelInfo:
        found = self.repo.machine_with_enterprise(scope, machine_id)
        if found is None:
            raise NotFound("焊机不存在")
        machine, enterprise = found
        if _is_retired(machine):
            raise Conflict(f"焊机 {machine.code} 已报废，不再打印标签")
        return self.info(machine, enterprise)

    def enterprise(self, scope: Scope, enterprise_id: int) -> Enterprise:
        enterprise = EnterpriseRepository(self.session).visible(scope, enterprise_id)
        if enterprise is None:
            raise NotFound("企业不存在")
        return enterprise

    def enterprise_by_credit_code(self, scope: Scope, credit_code: str) -> Enterprise:
        code = credit_code.strip().upper()
        enterprise = EnterpriseRepository(self.session).visible_by_credit_code(scope, code)
        if enterprise is None:
            raise NotFound(f"找不到统一社会信用代码为 {code} 的企业")
        return enterprise

    def enterprise_labels(
        self, scope: Scope, enterprise: Enterprise, codes: Sequence[str] = ()
    ) -> LabelBatch:
        """The labels of an enterprise's machines in service, by code; ``codes``
        narrows them to some machines, each of which must belong to it."""
        machines = self.repo.machines_of(scope, enterprise.id)
        if codes:
            wanted = {code.strip().upper() for code in codes}
            unknown = wanted - {m.code for m in machines}
            if unknown:
                raise NotFound(f"企业“{enterprise.name}”没有这些焊机：{'、'.join(sorted(unknown))}")
            machines = [m for m in machines if m.code in wanted]
        retired = [m.code for m in machines if _is_retired(m)]
        labels = [self.info(m, enterprise) for m in machines if not _is_retired(m)]
        if not labels:
            if not machines:
                raise Conflict(f"企业“{enterprise.name}”没有登记焊机，没有可打印的标签")
            raise Conflict(
                f"企业“{enterprise.name}”的焊机均已报废（{len(retired)} 台），没有可打印的标签"
            )
        return LabelBatch(enterprise, labels, retired)

    def scanned_machine(self, token: str) -> Machine:
        """The machine a scanned label names; :class:`LabelRejected` when the label
        is malformed, forged or tampered with, or names no machine of ours."""
        parsed = self.signer.parse_label_token(token)
        machine = self.repo.machine_by_code(parsed.code)
        if machine is None:
            raise LabelRejected(RejectReason.UNKNOWN_MACHINE, parsed.code)
        return machine
