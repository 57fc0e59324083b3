"""Mobile jobs (流动作业报备): declaring, listing, cancelling and their photos.

Who declares: an enterprise's admin or safety officer for their enterprise (the
contractor), a welder for themself (a mobile welder working on a client's
machine), the admin for any contractor. The machines named go with the crew:
each belongs to the contractor (or, for a welder, an enterprise employing them)
or to the registered client. A machine that leaves its owner's premises must
belong to an enterprise registered for mobile work (是否流动作业 = 是): the scan
looks for jobs only when the welder is not the owner's, or the owner works away
(``unlock.facts.declared_mobile_jobs``), so an unflagged owner's job would
silently not count.

Every input error is reported at once, each naming its field, and nothing is
written unless all are right. A job is never edited: it is cancelled (before its
window) or ended (during it) and declared again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.clock import local_today
from weldguard.domain.geo import GeoPoint
from weldguard.domain.ids import InvalidIdentifier, normalize_credit_code
from weldguard.domain.mobile_jobs import (
    DEFAULT_MOBILE_JOB_POLICY,
    JobStatus,
    MobileJobPolicy,
    end_transition,
    is_live,
    window_problems,
)
from weldguard.enterprise.models import Enterprise
from weldguard.errors import Conflict, FieldErrors, NotFound, PermissionDenied
from weldguard.jurisdiction.models import Jurisdiction, Level
from weldguard.machine.models import MachineStatus
from weldguard.pagination import Page
from weldguard.permit.mobile_models import MobileJob, MobileJobMachine, MobileJobWelder
from weldguard.permit.mobile_repository import MobileJobRepository

__all__ = ["MAX_PHOTOS", "MobileJobInput", "MobileJobService"]

DECLARER_ROLES = frozenset({Role.ADMIN, Role.ENTERPRISE_ADMIN, Role.SAFETY_OFFICER, Role.WELDER})
MAX_PHOTOS = 9
MAX_CREW = 50  # welders, and machines, named in one job


@dataclass(frozen=True)
class MobileJobInput:
    """What is declared. The client is a registered enterprise (``client_credit_code``)
    or a name with a contact; ``area`` the division code of the street (or
    district) the place lies in, defaulting to the registered client's."""

    starts_at: datetime | None
    ends_at: datetime | None
    address: str = ""
    area: str = ""
    latitude: float | None = None
    longitude: float | None = None
    client_credit_code: str = ""
    client_name: str = ""
    client_contact: str = ""
    client_phone: str = ""
    fire_watch_name: str = ""
    fire_watch_phone: str = ""
    description: str = ""
    welder_ids: Sequence[int] = field(default_factory=tuple)
    machine_ids: Sequence[int] = field(default_factory=tuple)
    contractor_enterprise_id: int | None = None  # the admin's choice; others: their own


def _ids(errors: FieldErrors, name: str, values: Sequence[int], label: str) -> list[int]:
    ids = list(dict.fromkeys(values))  # order kept, repeats dropped
    if not ids:
        errors.add(name, f"请选择{label}")
    elif len(ids) > MAX_CREW:
        errors.add(name, f"一次报备最多 {MAX_CREW} 个{label}")
    return ids


class MobileJobService:
    def __init__(self, session: Session, policy: MobileJobPolicy = DEFAULT_MOBILE_JOB_POLICY):
        self.session = session
        self.repo = MobileJobRepository(session)
        self.policy = policy

    # --- reads -----------------------------------------------------------------
    def list_page(
        self,
        scope: Scope,
        state: str | None,
        now: datetime,
        page: int,
        size: int,
        *,
        enterprise_id: int | None = None,
        between: tuple[datetime, datetime] | None = None,
    ) -> Page[MobileJob]:
        return self.repo.page(
            scope, state, now, page, size, enterprise_id=enterprise_id, between=between
        )

    def get(self, scope: Scope, job_id: int) -> MobileJob:
        job = self.repo.visible(scope, job_id)
        if job is None:
            raise NotFound("流动作业报备不存在")
        return job

    def may_manage(self, scope: Scope, job: MobileJob) -> bool:
        """The declaring side (contractor, or the welder who declared) and the admin."""
        if scope.everything:
            return True
        if scope.role in (Role.ENTERPRISE_ADMIN, Role.SAFETY_OFFICER):
            return job.contractor_enterprise_id == scope.enterprise_id
        if scope.role is Role.WELDER:
            return job.declared_by_welder_id is not None and (
                job.declared_by_welder_id == scope.welder_id
            )
        return False

    # --- writes ----------------------------------------------------------------
    def declare(
        self, scope: Scope, data: MobileJobInput, user_id: int | None, now: datetime
    ) -> MobileJob:
        if scope.role not in DECLARER_ROLES:
            raise PermissionDenied("当前账号无权报备流动作业")
        errors = FieldErrors()

        # Who goes.
        contractor: Enterprise | None = None
        welder_declarer = scope.role is Role.WELDER
        if scope.everything:
            if data.contractor_enterprise_id is None:
                errors.add("contractor_enterprise_id", "请选择作业单位")
            else:
                contractor = self.repo.enterprise(data.contractor_enterprise_id)
                if contractor is None:
                    errors.add("contractor_enterprise_id", "作业单位不存在")
        elif scope.enterprise_id is not None:
            contractor = self.repo.enterprise(scope.enterprise_id)
        elif not welder_declarer or scope.welder_id is None:
            raise PermissionDenied("当前账号无权报备流动作业")

        # The client.
        client: Enterprise | None = None
        code = (data.client_credit_code or "").strip()
        if code:
            try:
                client = self.repo.enterprise_by_credit_code(normalize_credit_code(code))
            except InvalidIdentifier as exc:
                errors.add("client_credit_code", f"统一社会信用代码无效：{exc.reason}")
            else:
                if client is None:
                    errors.add("client_credit_code", "该统一社会信用代码的企业未在平台登记")
            client_name = client.name if client else ""
            client_contact = errors.text(
                "client_contact", data.client_contact, "客户联系人", 64, False
            )
            client_phone = ""
            if (data.client_phone or "").strip():
                client_phone = errors.phone("client_phone", data.client_phone, "客户联系电话")
        else:
            client_name = errors.text("client_name", data.client_name, "客户名称", 128, True)
            client_contact = errors.text(
                "client_contact", data.client_contact, "客户联系人", 64, True
            )
            client_phone = errors.phone("client_phone", data.client_phone, "客户联系电话")

        # The place.
        # A registered client's address and street are the defaults (when the code is
        # wrong, that is the one error to report).
        address = errors.text("address", data.address, "作业地址", 256, not code)
        if not address and client is not None:
            address = client.address
        node: Jurisdiction | None = None
        area = (data.area or "").strip()
        if area:
            node = self.repo.jurisdiction_by_code(area)
            if node is None:
                errors.add("area", f"未知的区域代码“{area[:16]}”")
            elif node.level not in (Level.STREET, Level.DISTRICT):
                errors.add("area", "请选择作业地点所在的街道（乡镇）或区县")
                node = None
        elif client is not None:
            node = self.repo.jurisdiction(client.jurisdiction_id)
        elif not code:
            errors.add("area", "请选择作业地点所在的街道（乡镇）")
        latitude, longitude = data.latitude, data.longitude
        if (latitude is None) != (longitude is None):
            errors.add(
                "latitude" if latitude is None else "longitude", "经纬度须同时填写或同时留空"
            )
        elif latitude is not None and longitude is not None:
            try:
                GeoPoint(latitude, longitude)
            except ValueError:
                errors.add("latitude", "经纬度超出范围（WGS-84 十进制度）")

        # When.
        for problem in window_problems(data.starts_at, data.ends_at, now, self.policy):
            errors.add(problem.field, problem.reason)

        fire_watch_name = errors.text(
            "fire_watch_name", data.fire_watch_name, "看火人姓名", 64, True
        )
        fire_watch_phone = errors.phone("fire_watch_phone", data.fire_watch_phone, "看火人电话")
        description = errors.text("description", data.description, "作业内容", 512, False)

        # The crew and the machines.
        welder_ids = list(data.welder_ids)
        if welder_declarer and not welder_ids and scope.welder_id is not None:
            welder_ids = [scope.welder_id]
        welder_ids = _ids(errors, "welder_ids", welder_ids, "焊工")
        machine_ids = _ids(errors, "machine_ids", data.machine_ids, "焊机")
        today = local_today(now)
        employers = self.repo.employers_on(welder_ids, today) if welder_ids else {}
        if welder_declarer:
            if welder_ids and welder_ids != [scope.welder_id]:
                errors.add("welder_ids", "焊工只能为本人报备流动作业")
        elif contractor is not None:
            strangers = [w for w in welder_ids if contractor.id not in employers.get(w, set())]
            if strangers:
                errors.add(
                    "welder_ids",
                    f"焊工（编号 {'、'.join(map(str, strangers))}）不是{contractor.name}的在职焊工",
                )
        machines = self.repo.machines_for_update(machine_ids) if machine_ids else {}
        missing = [m for m in machine_ids if m not in machines]
        if missing:
            errors.add("machine_ids", f"焊机（编号 {'、'.join(map(str, missing))}）不存在")
        own_ids: set[int] = set()
        if contractor is not None:
            own_ids = {contractor.id}
        elif welder_declarer and scope.welder_id is not None:
            own_ids = employers.get(scope.welder_id, set())
        for machine_id in machine_ids:
            if machine_id not in machines:
                continue
            machine, owner = machines[machine_id]
            if machine.status == MachineStatus.RETIRED:
                errors.add("machine_ids", f"焊机 {machine.code} 已报废")
            elif client is not None and owner.id == client.id:
                continue  # the client's own machine, used at the client's
            elif owner.id not in own_ids:
                errors.add("machine_ids", f"焊机 {machine.code} 不属于作业单位或客户，不能报备")
            elif not owner.mobile_work:
                errors.add(
                    "machine_ids",
                    f"焊机 {machine.code} 所属企业未登记为流动作业单位（是否流动作业），"
                    "不能带焊机外出作业",
                )
        if (
            not errors.has("starts_at")
            and not errors.has("ends_at")
            and data.starts_at is not None
            and data.ends_at is not None
            and machines
        ):
            for machine_id, other in self.repo.live_overlapping(
                list(machines), data.starts_at, data.ends_at, now
            ):
                errors.add(
                    "machine_ids",
                    f"焊机 {machines[machine_id][0].code} 在该时段已有流动作业报备"
                    f"（编号 {other.id}），同一焊机的作业时间不能重叠",
                )

        errors.raise_if_any("流动作业报备")
        assert node is not None and data.starts_at is not None and data.ends_at is not None
        job = MobileJob(
            status=JobStatus.DECLARED.value,
            contractor_enterprise_id=contractor.id if contractor else None,
            declared_by_welder_id=scope.welder_id if welder_declarer else None,
            declared_by_user_id=user_id,
            declared_at=now,
            client_enterprise_id=client.id if client else None,
            client_name=client_name,
            client_contact=client_contact,
            client_phone=client_phone,
            address=address,
            latitude=latitude,
            longitude=longitude,
            jurisdiction_id=node.id,
            area_path=node.path,
            description=description,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            fire_watch_name=fire_watch_name,
            fire_watch_phone=fire_watch_phone,
            photos=[],
            welders=[MobileJobWelder(welder_id=w) for w in welder_ids],
            machines=[MobileJobMachine(machine_id=m) for m in machine_ids],
        )
        return self.repo.add(job)

    def cancel(self, scope: Scope, job_id: int, user_id: int | None, now: datetime) -> MobileJob:
        """Before its window: cancelled. During it: ended now, so no later scan
        finds it (the crew is leaving). 409 when it is over already."""
        job = self.get(scope, job_id)
        if not self.may_manage(scope, job):
            raise PermissionDenied("只有报备单位（或报备的焊工本人）可以撤销该流动作业")
        change = end_transition(job.status, job.starts_at, job.ends_at, now)
        if change is None:
            raise Conflict("该流动作业已结束或已撤销")
        job.status, job.ends_at = change[0].value, change[1]
        job.closed_at, job.closed_by_user_id = now, user_id
        self.session.flush()
        return job

    def add_photo(
        self, scope: Scope, job_id: int, store: Callable[[], str], now: datetime
    ) -> MobileJob:
        """Adds a photo while the job is live: ``store`` writes the checked photo
        (``weldguard.photos.store_photo``) and returns its relative path; it runs
        only once everything else is known to be in order, so a refused upload
        leaves no file behind."""
        job = self.get(scope, job_id)
        if not self.may_manage(scope, job):
            raise PermissionDenied("只有报备单位（或报备的焊工本人）可以上传现场照片")
        if not is_live(job.status, job.ends_at, now):
            raise Conflict("该流动作业已结束或已撤销，不能再上传照片")
        if len(job.photos) >= MAX_PHOTOS:
            raise Conflict(f"每项流动作业最多 {MAX_PHOTOS} 张照片")
        job.photos = [*job.photos, store()]  # a new list: JSON columns track assignment
        self.session.flush()
        return job
