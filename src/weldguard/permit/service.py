"""Hot-work permits' use cases: create and edit a draft, apply each step.

Every rule is the domain's (``weldguard.domain.permits``): this module loads the
permit, rebuilds the domain ``Permit`` (content from the header, state from its last
event), calls ``transition`` with the work calendar and the other permits' machine
bookings, and on acceptance appends the event and moves the header in the same
flush. A refusal raises :class:`PermitRefused` with every reason. Services flush;
the request or the command commits.

Who writes: the enterprise's admin, safety officer and unit heads (their
enterprise's permits), and a welder the steps of the work on a permit naming them
(:data:`WELDER_EVENTS`); everyone else reads within their scope (403 on a write).
Who approves is mapped from our roles onto the standard's approval authorities
(:data:`APPROVER_ROLES`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from weldguard.auth.models import Role, User
from weldguard.auth.scope import Scope
from weldguard.clock import local_today
from weldguard.device.registry import DeviceSecrets
from weldguard.domain.calendar import WorkCalendar
from weldguard.domain.geo import GeoPoint
from weldguard.domain.permits import (
    DEFAULT_HOT_SPOT_RADIUS_M,
    DEFAULT_PERMIT_POLICY,
    STANDARD_SAFETY_MEASURES,
    Accepted,
    Approve,
    ApproverRole,
    Cancel,
    CheckIn,
    Clear,
    Close,
    ConfirmMeasure,
    ConfirmNotice,
    ConfirmRisks,
    Dispose,
    Edit,
    EndWork,
    Expire,
    GasSample,
    HotWorkMethod,
    MachineClaim,
    MonitorReading,
    NoticeLocation,
    PauseWork,
    Permit,
    PermitContent,
    PermitEvent,
    PermitLevel,
    PermitMachine,
    PermitPolicy,
    PermitReason,
    PermitReasonCode,
    PermitStatus,
    PermitWelder,
    Person,
    RecordGasSample,
    RecordSiteSurvey,
    Refused,
    Reinstate,
    Reject,
    ResumeWork,
    StartWork,
    StepRecord,
    Submit,
    Suspend,
    SuspendCause,
    allowed_from,
    assess_level,
    check_certificates,
    check_machines,
    machines_to_lock,
    mandatory_measure_codes,
    new_permit,
    transition,
)
from weldguard.enterprise.models import Enterprise
from weldguard.errors import (
    Conflict,
    DomainError,
    ErrorDetail,
    FieldErrors,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from weldguard.permit import models as m
from weldguard.permit.alarm_repository import MonitorRepository
from weldguard.permit.calendar_service import CalendarService
from weldguard.permit.codec import (
    content_of,
    crowded_exception_json,
    held_certificate,
    permit_of,
    state_json,
)
from weldguard.permit.repository import PermitRepository
from weldguard.photos import PHOTO_NAME, photo_file
from weldguard.unlock.facts import place_facts
from weldguard.unlock.service import end_sessions_under_permit
from weldguard.welder.service import status_of

__all__ = [
    "APPROVER_ROLES",
    "EVENT_KINDS",
    "EVENT_TYPES",
    "WELDER_EVENTS",
    "LoadedPermit",
    "PermitInput",
    "PermitRefused",
    "PermitService",
    "PersonInput",
    "WelderEntry",
    "steps_open_to",
]

#: Our enterprise roles as the standard's approval authorities (GB 30871-2022: 特级
#: the enterprise's leader in charge, 一级 the safety department, 二级 the unit
#: where the hot spot is). The enterprise admin is the account of the enterprise's
#: management, the safety officer that of its safety department, the unit head
#: (单位负责人) that of a workshop or project team; a higher authority may approve
#: a lower level, never the reverse.
APPROVER_ROLES: Mapping[Role, ApproverRole] = {
    Role.ENTERPRISE_ADMIN: ApproverRole.ENTERPRISE_LEADER,
    Role.SAFETY_OFFICER: ApproverRole.SAFETY_DEPARTMENT,
    Role.UNIT_HEAD: ApproverRole.UNIT,
}

#: The steps a welder named on a permit may sign (the rules check who exactly).
WELDER_EVENTS = frozenset(
    {
        "confirm_risks",
        "check_in",
        "confirm_measure",
        "start",
        "pause",
        "resume",
        "end",
        "dispose",
        "close",
    }
)

WRITERS = frozenset({Role.ENTERPRISE_ADMIN, Role.SAFETY_OFFICER, Role.UNIT_HEAD, Role.WELDER})

NAME_MAX = 64
PLACE_MAX = 256
PHOTO_MAX = 255
NOTE_MAX = 500
MAX_PHOTOS = 20
#: How the platform signs the steps the rules take themselves (``apply_rule``).
SYSTEM_NAME = "系统"
SYSTEM_ROLE = "system"


class PermitRefused(DomainError):
    """A step or a draft the permit rules refuse, with every reason."""

    status_code = 409
    code = "permit_refused"

    @classmethod
    def of(cls, reasons: Sequence[PermitReason], what: str) -> PermitRefused:
        return cls(
            f"{what}未通过：" + "；".join(r.message for r in reasons),
            [ErrorDetail(reason=r.message, field=r.code.value) for r in reasons],
        )

    @property
    def codes(self) -> list[str]:
        return [d.field or "" for d in self.details]

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        body["details"] = [{"code": d.field, "reason": d.reason} for d in self.details]
        return {"error": body}


# --- input ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PersonInput:
    name: str
    user_id: int | None = None
    welder_id: int | None = None


@dataclass(frozen=True)
class WelderEntry:
    """A welder on the permit; ``certificate_ids`` empty: all the welder holds."""

    welder_id: int
    certificate_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class MeasureInput:
    code: str
    text: str = ""
    applicable: bool = True


@dataclass(frozen=True)
class PermitInput:
    """What the applicant fills in. ``enterprise_id`` may be left out by an
    enterprise user (their own); ``level`` defaults to ``base_level``; ``measures``
    None: the standard form, its mandatory measures applicable, the rest 不涉及."""

    place_description: str = ""
    hot_spot_lat: float | None = None
    hot_spot_lon: float | None = None
    hot_spot_radius_m: float = DEFAULT_HOT_SPOT_RADIUS_M
    hot_spot_polygon: list[list[float]] | None = None
    methods: list[str] = field(default_factory=list)
    base_level: str = ""
    level: str | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    welders: list[WelderEntry] = field(default_factory=list)
    machine_ids: list[int] = field(default_factory=list)
    lead: PersonInput | None = None
    fire_watch: PersonInput | None = None
    fire_watch_trained: bool = False
    hazards: list[str] = field(default_factory=list)
    measures: list[MeasureInput] | None = None
    linked_permits: list[str] = field(default_factory=list)
    gas_analysis_required: bool = False
    special_equipment: bool = False
    check_in_interval_min: int = 30
    crowded_exception: bool = False
    enterprise_id: int | None = None
    site_id: int | None = None


@dataclass(frozen=True)
class LoadedPermit:
    row: m.Permit
    permit: Permit
    enterprise: Enterprise


EVENT_KINDS = (
    "submit",
    "site_survey",
    "confirm_risks",
    "approve",
    "reject",
    "gas_sample",
    "check_in",
    "confirm_measure",
    "confirm_notice",
    "clear",
    "start",
    "pause",
    "resume",
    "suspend",
    "reinstate",
    "end",
    "dispose",
    "close",
    "cancel",
    "crowded_risk_assessment",
    "crowded_fire_separation",
)


def _aware(value: datetime | None) -> bool:
    return value is not None and value.tzinfo is not None and value.utcoffset() is not None


def _text(value: Any, name: str, limit: int, problems: FieldErrors, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        problems.add(name, "应为文字")
        return ""
    text = value.strip()
    if required and not text:
        problems.add(name, "不能为空")
    if len(text) > limit:
        problems.add(name, f"最长 {limit} 个字")
    return text


def _photos(value: Any, problems: FieldErrors) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(p, str) and p.strip() for p in value):
        problems.add("photos", "应为照片编号的列表")
        return ()
    if len(value) > MAX_PHOTOS or any(len(p) > PHOTO_MAX for p in value):
        problems.add("photos", f"最多 {MAX_PHOTOS} 张照片，每个编号最长 {PHOTO_MAX} 个字符")
        return ()
    keys = tuple(p.strip() for p in value)
    if not all(PHOTO_NAME.fullmatch(k) for k in keys):
        # Only keys the upload handed out: a step never points at a file of its choosing.
        problems.add("photos", "照片编号无效：请先上传照片（POST …/photos），再使用返回的编号")
        return ()
    return keys


def _number(value: Any, name: str, problems: FieldErrors) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problems.add(name, "应为数字")
        return None
    return float(value)


def _point(value: Any, name: str, problems: FieldErrors) -> GeoPoint | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.add(name, "应为 {lat, lon}")
        return None
    lat = _number(value.get("lat"), f"{name}.lat", problems)
    lon = _number(value.get("lon"), f"{name}.lon", problems)
    if lat is None or lon is None:
        return None
    try:
        return GeoPoint(lat, lon)
    except ValueError:
        problems.add(name, "经纬度超出范围")
        return None


def _person(user: User) -> Person:
    return Person(user.display_name.strip() or user.username, user.id, user.welder_id)


class PermitService:
    def __init__(
        self,
        session: Session,
        policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
        *,
        device_secrets: DeviceSecrets | None = None,
        lock_ttl_s: int = 30,
    ) -> None:
        """``device_secrets`` signs the locks sent to a permit's machines when it
        stops covering work (without them the sessions still end, and each chip
        locks itself at its session's end)."""
        self.session = session
        self.repo = PermitRepository(session)
        self.policy = policy
        self.device_secrets = device_secrets
        self.lock_ttl_s = lock_ttl_s

    # --- reads --------------------------------------------------------------------------
    def get(self, scope: Scope, permit_id: int) -> m.Permit:
        row = self.repo.get(scope, permit_id)
        if row is None:
            raise NotFound("作业票不存在")
        return row

    def require_signer(self, scope: Scope, user: User, permit_id: int) -> m.Permit:
        """The permit, when ``user`` may sign its steps (else 404 outside the scope,
        403 for a reader)."""
        row = self.get(scope, permit_id)
        self._require_writer(scope, user)
        return row

    def photo_path(self, scope: Scope, permit_id: int, key: str, data_dir: Path) -> Path:
        """The stored file of a photo one of the permit's steps names."""
        row = self.get(scope, permit_id)
        path = photo_file(data_dir, key)
        if path is None or not self.repo.names_photo(row.id, key):
            raise NotFound("照片不存在")
        return path

    def events(self, scope: Scope, permit_id: int) -> tuple[m.Permit, list[m.PermitEventRow]]:
        row = self.get(scope, permit_id)
        return row, self.repo.events(row.id)

    def load(
        self, scope: Scope, permit_id: int, now: datetime, *, lock: bool = False
    ) -> LoadedPermit:
        """The permit as the rules see it (certificate statuses for ``now``'s day)."""
        row = self.repo.get(scope, permit_id, for_update=lock)
        if row is None:
            raise NotFound("作业票不存在")
        enterprise = self.repo.enterprise_by_id(row.enterprise_id)
        assert enterprise is not None
        last = self.repo.event(row.last_event_id) if row.last_event_id is not None else None
        assert last is not None, "a permit is created with its first event"
        content = self._content(row, enterprise, now)
        return LoadedPermit(row, permit_of(content, last.state), enterprise)

    def _content(self, row: m.Permit, enterprise: Enterprise, now: datetime) -> PermitContent:
        welder_rows = self.repo.welders([w.welder_id for w in row.welders])
        names = {w.id: w.name for w in welder_rows}
        certificates = {c.id: c for c in self.repo.certificates_of(list(names))}
        today = local_today(now)
        welders = [
            PermitWelder(
                w.welder_id,
                names.get(w.welder_id, f"#{w.welder_id}"),
                tuple(
                    held_certificate(certificates[cid], status_of(certificates[cid], today))
                    for cid in w.certificate_ids
                    if cid in certificates
                ),
            )
            for w in row.welders
        ]
        machines = [
            PermitMachine(x.id, x.process, x.enterprise_id, x.code)
            for x in self.repo.machines([pm.machine_id for pm in row.machines])
        ]
        place = dataclasses.replace(
            place_facts(enterprise), special_equipment=row.special_equipment
        )
        return content_of(row, place, welders, machines)

    # --- drafts -------------------------------------------------------------------------
    def create(self, scope: Scope, user: User, data: PermitInput, now: datetime) -> m.Permit:
        """A draft. Bad input: InvalidInput naming every field; a welder whose
        certificates do not fit the machines, or machines the methods do not allow:
        PermitRefused with the reasons. Nothing is written unless all is right."""
        self._require_writer(scope, user)
        enterprise_id = (
            data.enterprise_id if data.enterprise_id is not None else scope.enterprise_id
        )
        if enterprise_id is None:
            raise InvalidInput(
                "enterprise_id: 请选择企业", [ErrorDetail("请选择企业", "enterprise_id")]
            )
        enterprise = self.repo.enterprise(scope, enterprise_id)
        if enterprise is None or scope.enterprise_id is None:
            # Only the enterprise's own users apply for its permits.
            raise NotFound("企业不存在")
        row = m.Permit(
            number="",
            enterprise_id=enterprise.id,
            area_path=enterprise.area_path,
            status=PermitStatus.DRAFT.value,
            version=1,
            created_by_user_id=user.id,
            created_at=now,
            updated_at=now,
        )
        content = self._fill(row, enterprise, data, now)
        reasons = (*check_machines(content), *check_certificates(content, self.policy))
        if reasons:
            raise PermitRefused.of(reasons, "作业票内容")
        self.repo.add_numbered(row, local_today(now))
        draft = new_permit(dataclasses.replace(content, id=row.id))
        self._append(row, None, draft, "create", user, "", _content_payload(row), (), now)
        return row

    def edit(
        self, scope: Scope, user: User, permit_id: int, data: PermitInput, now: datetime
    ) -> m.Permit:
        """New content for a draft (or a submitted permit, which goes back to draft);
        refused after approval (EDIT_AFTER_APPROVAL)."""
        self._require_writer(scope, user)
        if scope.welder_id is not None:
            raise PermissionDenied("焊工不能修改作业票")
        loaded = self.load(scope, permit_id, now, lock=True)
        row, permit = loaded.row, loaded.permit
        if permit.status not in (PermitStatus.DRAFT, PermitStatus.SUBMITTED):
            # Asked before the input is read: the answer is the same whatever it is.
            early = transition(
                permit,
                Edit(permit.content, _person(user)),
                now,
                calendar=self._calendar(permit.content),
                policy=self.policy,
            )
            if isinstance(early, Refused):
                raise PermitRefused.of(early.reasons, "修改作业票")
        if data.enterprise_id is not None and data.enterprise_id != row.enterprise_id:
            raise InvalidInput(
                "enterprise_id: 作业票的企业不能更改",
                [ErrorDetail("作业票的企业不能更改", "enterprise_id")],
            )
        version = row.version
        # Fill a detached copy first: nothing of the row changes unless all is right.
        scratch = m.Permit(id=row.id, number=row.number, enterprise_id=row.enterprise_id)
        content = self._fill(scratch, loaded.enterprise, data, now)
        reasons = (*check_machines(content), *check_certificates(content, self.policy))
        if reasons:
            raise PermitRefused.of(reasons, "作业票内容")
        result = transition(
            permit,
            Edit(content, _person(user)),
            now,
            calendar=self._calendar(content),
            policy=self.policy,
        )
        if isinstance(result, Refused):
            raise PermitRefused.of(result.reasons, "修改作业票")
        for name in _CONTENT_COLUMNS:
            setattr(row, name, getattr(scratch, name))
        row.welders[:] = [
            m.PermitWelder(welder_id=w.welder_id, certificate_ids=w.certificate_ids)
            for w in scratch.welders
        ]
        row.machines[:] = [m.PermitMachine(machine_id=x.machine_id) for x in scratch.machines]
        self.session.flush()
        self._advance(
            row, version, permit, result.permit, "edit", user, "", _content_payload(row), (), now
        )
        return row

    def _fill(
        self, row: m.Permit, enterprise: Enterprise, data: PermitInput, now: datetime
    ) -> PermitContent:
        """Checks the input, fills ``row``'s content columns and lists, and returns
        the domain content; InvalidInput naming every bad field."""
        p = FieldErrors()
        row.place_description = _text(data.place_description, "place_description", PLACE_MAX, p)
        lat = (
            _number(data.hot_spot_lat, "hot_spot_lat", p) if data.hot_spot_lat is not None else None
        )
        lon = (
            _number(data.hot_spot_lon, "hot_spot_lon", p) if data.hot_spot_lon is not None else None
        )
        if lat is None or lon is None:
            p.add("hot_spot", "请在地图上标出动火点（经纬度）")
        elif not (-90 <= lat <= 90 and -180 <= lon <= 180):
            p.add("hot_spot", "动火点经纬度超出范围")
        radius = _number(data.hot_spot_radius_m, "hot_spot_radius_m", p)
        if radius is not None and not 0 < radius <= 1000:
            p.add("hot_spot_radius_m", "动火点范围半径应在 0–1000 米之间")
        polygon = data.hot_spot_polygon
        if polygon is not None:
            try:
                points = [GeoPoint(float(a), float(b)) for a, b in polygon]
                if len(set(points)) < 3:
                    raise ValueError
            except (ValueError, TypeError):
                p.add("hot_spot_polygon", "动火区域须为至少 3 个不同的经纬度点")
        methods: list[HotWorkMethod] = []
        for value in data.methods:
            try:
                methods.append(HotWorkMethod(value))
            except ValueError:
                p.add(
                    "methods",
                    f"未知的动火方式“{value}”，可选：" + "、".join(x.value for x in HotWorkMethod),
                )
        levels = {x.value for x in PermitLevel}
        if data.base_level not in levels:
            p.add("base_level", "动火级别应为 special（特级）、first（一级）或 second（二级）")
        level = data.level or data.base_level
        starts, ends = data.starts_at, data.ends_at
        known = data.base_level in levels and starts and ends and _aware(starts) and _aware(ends)
        if data.level is None and known and starts and ends and starts < ends:
            # Left out: the level the rules manage the window at (holidays, rest days
            # and nights raise it one level), as the applicant would be told.
            level = assess_level(
                PermitLevel(data.base_level),
                starts,
                ends,
                self.calendar_between(starts, ends),
                self.policy,
            ).level.value
        if level not in levels:
            p.add("level", "动火级别应为 special（特级）、first（一级）或 second（二级）")
        if not _aware(data.starts_at):
            p.add("starts_at", "请填写带时区的作业开始时间")
        if not _aware(data.ends_at):
            p.add("ends_at", "请填写带时区的作业结束时间")
        if not 1 <= data.check_in_interval_min <= 24 * 60:
            p.add("check_in_interval_min", "监护签到间隔应在 1–1440 分钟之间")
        lead = self._person_input(data.lead, "lead", p)
        watch = self._person_input(data.fire_watch, "fire_watch", p)
        hazards = [h.strip() for h in data.hazards if isinstance(h, str) and h.strip()]
        if any(len(h) > NOTE_MAX for h in hazards):
            p.add("hazards", f"每项危害辨识最长 {NOTE_MAX} 个字")
        measures = self._measures(data, methods, level if level in levels else "second", p)
        if data.site_id is not None:
            site_ok = self.repo.site_of(enterprise.id, data.site_id)
            if not site_ok:
                p.add("site_id", "工地/场所不属于本企业")
        # Machines belong to the enterprise; welders are employed by it today.
        machines = self.repo.machines(data.machine_ids)
        found = {x.id: x for x in machines}
        for mid in data.machine_ids:
            machine = found.get(mid)
            if machine is None or machine.enterprise_id != enterprise.id:
                p.add("machine_ids", f"焊机 #{mid} 不存在或不属于本企业")
            elif machine.status == "retired":
                p.add("machine_ids", f"焊机 {machine.code} 已报废")
        welder_ids = [w.welder_id for w in data.welders]
        employed = {
            w.id: w for w in self.repo.welders_employed(enterprise.id, welder_ids, local_today(now))
        }
        for wid in welder_ids:
            if wid not in employed:
                p.add("welders", f"焊工 #{wid} 不存在或未受雇于本企业")
        held = self.repo.certificates_of(list(employed))
        by_id = {c.id: c for c in held}
        chosen: dict[int, tuple[int, ...]] = {}
        for entry in data.welders:
            if entry.certificate_ids:
                for cid in entry.certificate_ids:
                    cert = by_id.get(cid)
                    if cert is None or cert.welder_id != entry.welder_id:
                        p.add("welders", f"证书 #{cid} 不是焊工 #{entry.welder_id} 本人的证书")
                chosen[entry.welder_id] = tuple(entry.certificate_ids)
            else:
                chosen[entry.welder_id] = tuple(
                    c.id for c in held if c.welder_id == entry.welder_id
                )
        p.raise_if_any("作业票")
        assert lat is not None and lon is not None and radius is not None
        assert lead is not None and watch is not None
        assert data.starts_at is not None and data.ends_at is not None
        row.site_id = data.site_id
        row.hot_spot_lat, row.hot_spot_lon, row.hot_spot_radius_m = lat, lon, radius
        row.hot_spot_polygon = [list(x) for x in polygon] if polygon else None
        row.methods = sorted(x.value for x in methods)
        row.base_level, row.level = data.base_level, level
        row.starts_at, row.ends_at = data.starts_at, data.ends_at
        row.lead = {"name": lead.name, "user_id": lead.user_id, "welder_id": lead.welder_id}
        row.fire_watch = {
            "name": watch.name,
            "user_id": watch.user_id,
            "welder_id": watch.welder_id,
            "trained": data.fire_watch_trained,
        }
        row.hazards = hazards
        row.measures = measures
        row.linked_permits = [x.strip() for x in data.linked_permits if x.strip()]
        row.gas_analysis_required = data.gas_analysis_required
        row.special_equipment = data.special_equipment
        row.check_in_interval_min = data.check_in_interval_min
        # Requested afresh on every save: an assessment signed for other content
        # does not carry over to an edited permit.
        row.crowded_exception = (
            {"risk_assessment": None, "fire_separation": None} if data.crowded_exception else None
        )
        row.welders = [
            m.PermitWelder(welder_id=e.welder_id, certificate_ids=list(chosen[e.welder_id]))
            for e in data.welders
        ]
        row.machines = [m.PermitMachine(machine_id=mid) for mid in data.machine_ids]
        today = local_today(now)
        permit_welders = [
            PermitWelder(
                e.welder_id,
                employed[e.welder_id].name,
                tuple(
                    held_certificate(by_id[c], status_of(by_id[c], today))
                    for c in chosen[e.welder_id]
                ),
            )
            for e in data.welders
        ]
        permit_machines = [
            PermitMachine(
                found[mid].id, found[mid].process, found[mid].enterprise_id, found[mid].code
            )
            for mid in data.machine_ids
        ]
        place = dataclasses.replace(
            place_facts(enterprise), special_equipment=data.special_equipment
        )
        return content_of(row, place, permit_welders, permit_machines)

    @staticmethod
    def _person_input(value: PersonInput | None, name: str, p: FieldErrors) -> PersonInput | None:
        if value is None or not value.name.strip():
            p.add(f"{name}.name", "请填写姓名")
            return None
        if len(value.name.strip()) > NAME_MAX:
            p.add(f"{name}.name", f"姓名最长 {NAME_MAX} 个字")
            return None
        return PersonInput(value.name.strip(), value.user_id, value.welder_id)

    @staticmethod
    def _measures(
        data: PermitInput, methods: list[HotWorkMethod], level: str, p: FieldErrors
    ) -> list[dict[str, Any]]:
        texts = {t.code: t.text for t in STANDARD_SAFETY_MEASURES}
        if data.measures is None:
            mandatory = set(mandatory_measure_codes(frozenset(methods), PermitLevel(level)))
            return [
                {"code": t.code, "text": t.text, "applicable": t.code in mandatory}
                for t in STANDARD_SAFETY_MEASURES
            ]
        out = []
        for i, x in enumerate(data.measures):
            text = x.text.strip() or texts.get(x.code, "")
            if not x.code.strip() or not text:
                p.add(f"measures[{i}]", "安全措施须有代码和内容")
                continue
            out.append({"code": x.code.strip(), "text": text, "applicable": x.applicable})
        return out

    # --- steps --------------------------------------------------------------------------
    def apply(
        self,
        scope: Scope,
        user: User,
        permit_id: int,
        kind: str,
        data: Mapping[str, Any],
        now: datetime,
    ) -> m.PermitEventRow:
        """Applies one step ``kind`` with its input ``data`` as ``user``."""
        if kind not in EVENT_KINDS:
            raise InvalidInput(
                "kind: 未知的步骤",
                [ErrorDetail("未知的步骤，可选：" + "、".join(EVENT_KINDS), "kind")],
            )
        self._require_writer(scope, user)
        if scope.welder_id is not None and kind not in WELDER_EVENTS:
            raise PermissionDenied("焊工不能执行此步骤")
        loaded = self.load(scope, permit_id, now, lock=True)
        if kind in EXCEPTION_KINDS:
            return self._record_exception(loaded, kind, user, data, now)
        row, permit = loaded.row, loaded.permit
        version = row.version
        problems = FieldErrors()
        step = StepInput(
            user=user,
            by=_person(user),
            photos=_photos(data.get("photos"), problems),
            note=_text(data.get("note"), "note", NOTE_MAX, problems),
            data=data,
            problems=problems,
        )
        event = _BUILDERS[kind](step)
        problems.raise_if_any("作业步骤")
        assert event is not None
        claims: tuple[MachineClaim, ...] = ()
        if isinstance(event, Submit | Approve):
            claims = self.repo.other_claims(permit.content.machine_ids, row.id)
        result = transition(
            permit,
            event,
            now,
            calendar=self._calendar(permit.content),
            monitor=self._monitor(permit, now),
            other_claims=claims,
            policy=self.policy,
        )
        if isinstance(result, Refused):
            raise PermitRefused.of(result.reasons, event.label)
        assert isinstance(result, Accepted)
        role = APPROVER_ROLES.get(Role(user.role))
        # Only the fields a step reads are kept: the log is the permit's record.
        payload = {k: data[k] for k in _PAYLOAD_FIELDS if k in data}
        if step.note:
            payload["note"] = step.note
        self._stop_machines(row, permit, result.permit, now)
        return self._advance(
            row,
            version,
            permit,
            result.permit,
            kind,
            user,
            role.value if role else user.role,
            payload,
            step.photos,
            now,
        )

    def _record_exception(
        self, loaded: LoadedPermit, kind: str, user: User, data: Mapping[str, Any], now: datetime
    ) -> m.PermitEventRow:
        """One of the crowded-place exception path's two records (全面风险评估,
        不燃材料防火分隔), signed with photos before the approval, which then has
        to come from the higher level (the rules check it when approving)."""
        row, permit = loaded.row, loaded.permit
        problems = FieldErrors()
        photos = _photos(data.get("photos"), problems)
        note = _text(data.get("note"), "note", NOTE_MAX, problems)
        if not photos:
            problems.add("photos", "须拍摄照片留证")
        problems.raise_if_any(EXCEPTION_KINDS[kind])
        reasons = []
        if permit.status not in (PermitStatus.DRAFT, PermitStatus.SUBMITTED):
            reasons.append(
                PermitReason(
                    PermitReasonCode.EDIT_AFTER_APPROVAL,
                    f"作业票当前为“{permit.status.label}”，例外程序须在审批前完成",
                )
            )
        exception = permit.content.crowded_exception
        if exception is None:
            reasons.append(
                PermitReason(
                    PermitReasonCode.CROWDED_EXCEPTION_INCOMPLETE,
                    "作业票未申请人员密集场所营业时间动火例外",
                )
            )
        if reasons:
            raise PermitRefused.of(reasons, EXCEPTION_KINDS[kind])
        assert exception is not None
        record = StepRecord(now, _person(user), photos, note)
        field_name = kind.removeprefix("crowded_")
        row.crowded_exception = crowded_exception_json(
            dataclasses.replace(exception, **{field_name: record})
        )
        role = APPROVER_ROLES.get(Role(user.role))
        payload = {"note": note} if note else {}
        return self._advance(
            row,
            row.version,
            permit,
            permit,
            kind,
            user,
            role.value if role else user.role,
            payload,
            photos,
            now,
        )

    def apply_rule(self, loaded: LoadedPermit, event: Expire | Suspend, now: datetime) -> Permit:
        """Applies what ``supervise`` demands, as the platform (no account; signed
        "系统"): the same log, header move and machine locks as a person's step.
        ``loaded`` must come from ``load(..., lock=True)`` in this transaction."""
        row, permit = loaded.row, loaded.permit
        version = row.version
        result = transition(
            permit,
            event,
            now,
            calendar=self._calendar(permit.content),
            monitor=self._monitor(permit, now),
            policy=self.policy,
        )
        if isinstance(result, Refused):
            raise PermitRefused.of(result.reasons, event.label)
        assert isinstance(result, Accepted)
        payload: dict[str, Any] = {}
        if isinstance(event, Suspend):
            payload = {"cause": event.cause.value, "note": event.note}
        self._stop_machines(row, permit, result.permit, now)
        kind = "suspend" if isinstance(event, Suspend) else "expire"
        self._advance(
            row, version, permit, result.permit, kind, None, SYSTEM_ROLE, payload, (), now
        )
        return result.permit

    def _stop_machines(self, row: m.Permit, before: Permit, after: Permit, now: datetime) -> None:
        stopped = machines_to_lock(before, after)
        if stopped:
            # The permit no longer covers work: its machines lock now, not at the
            # end of its window.
            end_sessions_under_permit(
                self.session, self.device_secrets, row.id, stopped, now, self.lock_ttl_s
            )

    def _monitor(self, permit: Permit, now: datetime) -> tuple[MonitorReading, ...]:
        """The continuous monitor's latest readings, where the level needs them."""
        if not permit.content.continuous_monitoring_required:
            return ()
        return MonitorRepository(self.session).latest(permit.content.id, now)

    def _calendar(self, content: PermitContent) -> WorkCalendar:
        return self.calendar_between(content.starts_at, content.ends_at)

    def calendar_between(self, starts_at: datetime, ends_at: datetime) -> WorkCalendar:
        tz = self.policy.timezone
        first = starts_at.astimezone(tz).date() - timedelta(days=1)
        last = ends_at.astimezone(tz).date() + timedelta(days=1)
        return CalendarService(self.session).work_calendar_between(first, last)

    def _require_writer(self, scope: Scope, user: User) -> None:
        if Role(user.role) not in WRITERS or (
            scope.enterprise_id is None and scope.welder_id is None
        ):
            raise PermissionDenied("当前账号无权办理动火作业票")

    def _append(
        self,
        row: m.Permit,
        before: Permit | None,
        after: Permit,
        kind: str,
        user: User | None,
        role: str,
        payload: dict[str, Any],
        photos: tuple[str, ...],
        now: datetime,
    ) -> m.PermitEventRow:
        event = self.repo.add_event(
            m.PermitEventRow(
                permit_id=row.id,
                kind=kind,
                at=now,
                actor_user_id=user.id if user is not None else None,
                person_name=_person(user).name if user is not None else SYSTEM_NAME,
                person_role=role or (user.role if user is not None else SYSTEM_ROLE),
                status_before=before.status.value if before is not None else None,
                status_after=after.status.value,
                payload=_jsonable(payload),
                photos=list(photos),
                state=state_json(after),
            )
        )
        if before is None:
            row.last_event_id = event.id
            self.session.flush()
        return event

    def _advance(
        self,
        row: m.Permit,
        version: int,
        before: Permit,
        after: Permit,
        kind: str,
        user: User | None,
        role: str,
        payload: dict[str, Any],
        photos: tuple[str, ...],
        now: datetime,
    ) -> m.PermitEventRow:
        event = self._append(row, before, after, kind, user, role, payload, photos, now)
        if not self.repo.advance(row, version, after.status.value, event.id, now):
            raise Conflict("作业票刚被他人更新，请刷新后重试")
        return event


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _content_payload(row: m.Permit) -> dict[str, Any]:
    """The content as applied for, kept with the create and edit steps: the header
    holds only the latest draft."""
    payload = {name: getattr(row, name) for name in _CONTENT_COLUMNS}
    payload["welders"] = [
        {"welder_id": w.welder_id, "certificate_ids": list(w.certificate_ids)} for w in row.welders
    ]
    payload["machine_ids"] = [x.machine_id for x in row.machines]
    return payload


_PAYLOAD_FIELDS = (
    "taken_at",
    "gas",
    "lel_percent",
    "reading_percent",
    "analyst",
    "position",
    "code",
    "location",
    "no_embers",
)

_CONTENT_COLUMNS = (
    "site_id",
    "place_description",
    "hot_spot_lat",
    "hot_spot_lon",
    "hot_spot_radius_m",
    "hot_spot_polygon",
    "methods",
    "base_level",
    "level",
    "starts_at",
    "ends_at",
    "lead",
    "fire_watch",
    "hazards",
    "measures",
    "linked_permits",
    "gas_analysis_required",
    "special_equipment",
    "check_in_interval_min",
    "crowded_exception",
)


# --- one builder per step: the input as the domain event ------------------------------
@dataclass(frozen=True)
class StepInput:
    """What every step's input has: who (the account and the person it signs as),
    the photos, the note, the step's own fields (``data``), and where field
    errors are collected."""

    user: User
    by: Person
    photos: tuple[str, ...]
    note: str
    data: Mapping[str, Any]
    problems: FieldErrors


Builder = Callable[[StepInput], PermitEvent | None]


def _approver_role(user: User) -> ApproverRole:
    role = APPROVER_ROLES.get(Role(user.role))
    if role is None:
        raise PermitRefused.of(
            (PermitReason(PermitReasonCode.APPROVER_NOT_AUTHORISED, "当前账号不是企业的审批人"),),
            "审批",
        )
    return role


def _gas(step: StepInput) -> PermitEvent | None:
    taken = step.data.get("taken_at")
    taken_at: datetime | None = None
    if isinstance(taken, str):
        try:
            taken_at = datetime.fromisoformat(taken)
        except ValueError:
            taken_at = None
    elif isinstance(taken, datetime):
        taken_at = taken
    if not _aware(taken_at):
        step.problems.add("taken_at", "请填写带时区的采样时间")
    gas = _text(step.data.get("gas"), "gas", 32, step.problems, required=True)
    lel = _number(step.data.get("lel_percent"), "lel_percent", step.problems)
    reading = _number(step.data.get("reading_percent"), "reading_percent", step.problems)
    if lel is not None and not 0 < lel <= 100:
        step.problems.add("lel_percent", "爆炸下限应在 0–100% 之间")
    if reading is not None and not 0 <= reading <= 100:
        step.problems.add("reading_percent", "检测浓度应在 0–100% 之间")
    analyst_name = (
        _text(step.data.get("analyst"), "analyst", NAME_MAX, step.problems) or step.by.name
    )
    position = _point(step.data.get("position"), "position", step.problems)
    if step.problems.details:
        return None
    assert taken_at is not None and lel is not None and reading is not None
    analyst = step.by if analyst_name == step.by.name else Person(analyst_name)
    return RecordGasSample(GasSample(taken_at, gas, lel, reading, analyst, position))


def _check_in(step: StepInput) -> PermitEvent | None:
    return CheckIn(
        step.by, _point(step.data.get("position"), "position", step.problems), step.photos
    )


def _measure(step: StepInput) -> PermitEvent | None:
    return ConfirmMeasure(
        _text(step.data.get("code"), "code", 32, step.problems, required=True), step.by, step.photos
    )


def _notice(step: StepInput) -> PermitEvent | None:
    try:
        location = NoticeLocation(str(step.data.get("location")))
    except ValueError:
        step.problems.add("location", "公告位置应为 entrance（主要出入口）或 site（作业现场）")
        return None
    return ConfirmNotice(location, step.by, step.photos)


def _dispose(step: StepInput) -> PermitEvent | None:
    no_embers = step.data.get("no_embers")
    if not isinstance(no_embers, bool):
        step.problems.add("no_embers", "请确认现场有无余火（true/false）")
        return None
    return Dispose(step.by, no_embers, step.photos, step.note)


def _suspend(step: StepInput) -> PermitEvent | None:
    return Suspend(SuspendCause.ORDERED, step.by, step.note)


#: The crowded-place exception path's records: signed like steps, kept with the
#: content (the rules read them there), taken before the approval.
EXCEPTION_KINDS: Mapping[str, str] = {
    "crowded_risk_assessment": "全面风险评估",
    "crowded_fire_separation": "不燃材料防火分隔",
}

#: Each step's domain event: which statuses it may be taken in.
EVENT_TYPES: Mapping[str, type[PermitEvent]] = {
    "submit": Submit,
    "site_survey": RecordSiteSurvey,
    "confirm_risks": ConfirmRisks,
    "approve": Approve,
    "reject": Reject,
    "gas_sample": RecordGasSample,
    "check_in": CheckIn,
    "confirm_measure": ConfirmMeasure,
    "confirm_notice": ConfirmNotice,
    "clear": Clear,
    "start": StartWork,
    "pause": PauseWork,
    "resume": ResumeWork,
    "suspend": Suspend,
    "reinstate": Reinstate,
    "end": EndWork,
    "dispose": Dispose,
    "close": Close,
    "cancel": Cancel,
}

#: The steps only an approver (:data:`APPROVER_ROLES`) takes.
APPROVER_EVENTS = frozenset({"approve", "reject", "reinstate"})


def steps_open_to(permit: Permit, user: User, scope: Scope) -> list[str]:
    """The steps ``user`` may try on ``permit`` now, in the form's order. Only a
    first filter for the pages (the status, the role, what is already signed); the
    rules decide each step when it is taken."""
    role = Role(user.role)
    if role not in WRITERS or (scope.enterprise_id is None and scope.welder_id is None):
        return []
    status = permit.status
    exception = permit.content.crowded_exception
    steps = []
    for kind in EVENT_KINDS:
        if kind in EXCEPTION_KINDS:
            if (
                exception is None
                or scope.welder_id is not None
                or status not in (PermitStatus.DRAFT, PermitStatus.SUBMITTED)
                or getattr(exception, kind.removeprefix("crowded_")) is not None
            ):
                continue
        elif status not in allowed_from(EVENT_TYPES[kind]):
            continue
        if scope.welder_id is not None and kind not in WELDER_EVENTS:
            continue
        if kind in APPROVER_EVENTS and role not in APPROVER_ROLES:
            continue
        if not _named_signer(kind, permit.content, _person(user)):
            continue
        steps.append(kind)
    return steps


def _named_signer(kind: str, content: PermitContent, person: Person) -> bool:
    """Whether ``person`` is whom the permit names for a step only they sign (the
    lead's risk confirmation, the fire watch's check-ins and ember check, the start
    by the lead or a welder): a page offers nobody else those buttons."""
    if kind == "confirm_risks":
        return person.same_as(content.lead)
    if kind in ("check_in", "dispose"):
        return person.same_as(content.fire_watch.person)
    if kind in ("start", "resume"):
        return person.same_as(content.lead) or person.welder_id in content.welder_ids
    return True


_BUILDERS: dict[str, Builder] = {
    "submit": lambda step: Submit(step.by),
    "site_survey": lambda step: RecordSiteSurvey(step.by, step.photos, step.note),
    "confirm_risks": lambda step: ConfirmRisks(step.by, step.photos, step.note),
    "approve": lambda step: Approve(step.by, _approver_role(step.user), step.photos, step.note),
    "reject": lambda step: Reject(step.by, step.note),
    "gas_sample": _gas,
    "check_in": _check_in,
    "confirm_measure": _measure,
    "confirm_notice": _notice,
    "clear": lambda step: Clear(step.by, step.photos, step.note),
    "start": lambda step: StartWork(step.by, step.photos),
    "pause": lambda step: PauseWork(step.by, step.note),
    "resume": lambda step: ResumeWork(step.by),
    "suspend": _suspend,
    "reinstate": lambda step: Reinstate(step.by, _approver_role(step.user)),
    "end": lambda step: EndWork(step.by, step.photos),
    "dispose": _dispose,
    "close": lambda step: Close(step.by, step.photos),
    "cancel": lambda step: Cancel(step.by, step.note),
}
