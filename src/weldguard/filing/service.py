"""Small-works filing (限额以下小型工程备案): filing, listing, checking, closing.

Who files: an enterprise's admin or safety officer (the filer; the works' owner
may be that enterprise, another registered one, or a person), or the admin for
an enterprise. The filing goes to the street (街道/乡镇) where the works are. Who
checks (核查) and closes: the regulators whose jurisdiction covers that street,
and the admin. Every input error is reported at once, each naming its field, and
nothing is written unless all are right.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.clock import local_today
from weldguard.domain.ids import InvalidIdentifier, normalize_credit_code
from weldguard.domain.small_works import (
    CheckResult,
    FilingStatus,
    after_check,
    may_close,
    period_problems,
)
from weldguard.enterprise.models import Enterprise
from weldguard.errors import Conflict, FieldErrors, NotFound, PermissionDenied
from weldguard.filing.models import SmallWorkCheck, SmallWorkFiling
from weldguard.filing.repository import FilingRepository
from weldguard.jurisdiction.models import Jurisdiction, Level
from weldguard.pagination import Page

__all__ = ["OWNER_KINDS", "CheckInput", "FilingInput", "FilingService"]

FILER_ROLES = frozenset({Role.ADMIN, Role.ENTERPRISE_ADMIN, Role.SAFETY_OFFICER})
OWNER_KINDS = {"enterprise": "单位", "person": "个人"}
HOT_WORK_METHODS = ("电焊", "气焊", "气割", "等离子切割", "钎焊", "其他")


@dataclass(frozen=True)
class FilingInput:
    owner_kind: str = ""
    owner_credit_code: str = ""  # owner_kind "enterprise": a registered enterprise
    owner_name: str = ""  # owner_kind "person" (or an unregistered unit)
    owner_phone: str = ""
    address: str = ""
    street: str = ""  # division code of the street (街道/乡镇)
    description: str = ""
    expected_start: date | None = None
    expected_end: date | None = None
    contractor_credit_code: str = ""
    contractor_name: str = ""
    hot_work: bool | None = None
    hot_work_method: str = ""
    contact_name: str = ""
    contact_phone: str = ""
    enterprise_id: int | None = None  # the filer: the admin's choice; others their own


@dataclass(frozen=True)
class CheckInput:
    result: str = ""
    notes: str = ""
    checked_at: datetime | None = None  # when the check was made; default now


class FilingService:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.repo = FilingRepository(session)

    # --- reads -----------------------------------------------------------------
    def list_page(
        self, scope: Scope, status: str | None, area_path: str | None, page: int, size: int
    ) -> Page[SmallWorkFiling]:
        return self.repo.page(scope, status, area_path, page, size)

    def get(self, scope: Scope, filing_id: int) -> SmallWorkFiling:
        filing = self.repo.visible(scope, filing_id)
        if filing is None:
            raise NotFound("小型工程备案不存在")
        return filing

    def may_check(self, scope: Scope, filing: SmallWorkFiling) -> bool:
        """The regulators of the street (or above) and the admin. The rule lives
        here until it joins ``auth.scope.Action``."""
        if scope.everything:
            return True
        return scope.role is Role.REGULATOR and scope.covers_path(filing.area_path)

    # --- writes ----------------------------------------------------------------
    def _registered(
        self, errors: FieldErrors, name: str, raw: str, label: str
    ) -> Enterprise | None:
        try:
            found = self.repo.enterprise_by_credit_code(normalize_credit_code(raw))
        except InvalidIdentifier as exc:
            errors.add(name, f"{label}统一社会信用代码无效：{exc.reason}")
            return None
        if found is None:
            errors.add(name, f"该统一社会信用代码的{label}未在平台登记")
        return found

    def file(
        self, scope: Scope, data: FilingInput, user_id: int | None, now: datetime
    ) -> SmallWorkFiling:
        if scope.role not in FILER_ROLES:
            raise PermissionDenied("当前账号无权办理小型工程备案")
        errors = FieldErrors()

        filer: Enterprise | None = None
        if scope.everything:
            if data.enterprise_id is None:
                errors.add("enterprise_id", "请选择备案单位")
            else:
                filer = self.repo.enterprise(data.enterprise_id)
                if filer is None:
                    errors.add("enterprise_id", "备案单位不存在")
        elif scope.enterprise_id is not None:
            filer = self.repo.enterprise(scope.enterprise_id)
        if filer is None and not errors.details:
            raise PermissionDenied("当前账号无权办理小型工程备案")

        owner: Enterprise | None = None
        owner_name = ""
        if data.owner_kind not in OWNER_KINDS:
            errors.add("owner_kind", "建设单位类型无效，可选：enterprise（单位）、person（个人）")
        elif data.owner_kind == "enterprise" and (data.owner_credit_code or "").strip():
            owner = self._registered(
                errors, "owner_credit_code", data.owner_credit_code, "建设单位"
            )
            owner_name = owner.name if owner else ""
        else:
            owner_name = errors.text("owner_name", data.owner_name, "建设单位（业主）名称", 128)
        owner_phone = errors.phone(
            "owner_phone", data.owner_phone, "建设单位（业主）电话", required=owner is None
        )

        address = errors.text("address", data.address, "工程地址", 256)
        node: Jurisdiction | None = None
        code = (data.street or "").strip()
        if not code:
            errors.add("street", "请选择工程所在的街道（乡镇）")
        else:
            node = self.repo.jurisdiction_by_code(code)
            if node is None:
                errors.add("street", f"未知的区域代码“{code[:16]}”")
            elif node.level != Level.STREET:
                errors.add("street", "小型工程向工程所在的街道（乡镇）备案，请选择街道（乡镇）")
                node = None

        description = errors.text("description", data.description, "工程内容", 512)
        for name, reason in period_problems(
            data.expected_start, data.expected_end, local_today(now)
        ):
            errors.add(name, reason)

        contractor: Enterprise | None = None
        if (data.contractor_credit_code or "").strip():
            contractor = self._registered(
                errors, "contractor_credit_code", data.contractor_credit_code, "施工单位"
            )
            contractor_name = contractor.name if contractor else ""
        else:
            contractor_name = errors.text(
                "contractor_name", data.contractor_name, "施工单位名称", 128
            )

        method = (data.hot_work_method or "").strip()
        if data.hot_work is None:
            errors.add("hot_work", "请说明是否涉及动火作业")
        elif data.hot_work and method not in HOT_WORK_METHODS:
            errors.add("hot_work_method", "请选择动火方式：" + "、".join(HOT_WORK_METHODS))
        elif not data.hot_work:
            method = ""

        contact_name = errors.text("contact_name", data.contact_name, "现场联系人", 64)
        contact_phone = errors.phone("contact_phone", data.contact_phone, "现场联系人电话")

        errors.raise_if_any("小型工程备案")
        assert filer is not None and node is not None and data.hot_work is not None
        assert data.expected_start is not None and data.expected_end is not None
        filing = SmallWorkFiling(
            status=FilingStatus.FILED.value,
            enterprise_id=filer.id,
            filed_by_user_id=user_id,
            filed_at=now,
            owner_kind=data.owner_kind,
            owner_enterprise_id=owner.id if owner else None,
            owner_name=owner_name,
            owner_phone=owner_phone,
            address=address,
            jurisdiction_id=node.id,
            area_path=node.path,
            description=description,
            expected_start=data.expected_start,
            expected_end=data.expected_end,
            contractor_enterprise_id=contractor.id if contractor else None,
            contractor_name=contractor_name,
            hot_work=data.hot_work,
            hot_work_method=method,
            contact_name=contact_name,
            contact_phone=contact_phone,
            checks=[],
        )
        return self.repo.add(filing)

    def check(
        self,
        scope: Scope,
        filing_id: int,
        data: CheckInput,
        user_id: int | None,
        checker_name: str,
        now: datetime,
    ) -> SmallWorkFiling:
        """Records a check (核查); its result moves the status."""
        filing = self.get(scope, filing_id)
        if not self.may_check(scope, filing):
            raise PermissionDenied("只有工程所在街道（及上级）的监管部门可以核查")
        errors = FieldErrors()
        try:
            result: CheckResult | None = CheckResult(data.result)
        except ValueError:
            result = None
            errors.add("result", "核查结果无效，可选：" + "、".join(r.value for r in CheckResult))
        notes = errors.text(
            "notes", data.notes, "核查意见", 1024, required=result is CheckResult.RECTIFY
        )
        checked_at = data.checked_at or now
        if checked_at.tzinfo is None or checked_at.utcoffset() is None:
            errors.add("checked_at", "核查时间须带时区")
        elif checked_at > now:
            errors.add("checked_at", "核查时间不能晚于当前时间")
        elif checked_at < filing.filed_at:
            errors.add("checked_at", "核查时间不能早于备案时间")
        errors.raise_if_any("核查记录")
        assert result is not None
        status = after_check(filing.status, result)
        if status is None:
            raise Conflict("该备案已办结，不能再核查")
        filing.checks.append(
            SmallWorkCheck(
                checked_at=checked_at,
                checked_by_user_id=user_id,
                checked_by_name=checker_name,
                result=result.value,
                notes=notes,
            )
        )
        filing.status = status.value
        self.session.flush()
        return filing

    def close(self, scope: Scope, filing_id: int, now: datetime) -> SmallWorkFiling:
        """Closes (办结) a filing found in order (核查合格)."""
        filing = self.get(scope, filing_id)
        if not self.may_check(scope, filing):
            raise PermissionDenied("只有工程所在街道（及上级）的监管部门可以办结")
        if not may_close(filing.status):
            raise Conflict("只有核查合格的备案可以办结")
        filing.status = FilingStatus.CLOSED.value
        filing.closed_at = now
        self.session.flush()
        return filing
