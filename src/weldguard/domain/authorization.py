"""The scan-to-unlock decision (扫码开机): may this welder unlock this machine, here, now?

Pure rules: no I/O, no ORM, no clock reads. The service gathers the facts into a
:class:`ScanRequest` (``now`` is timezone-aware; local rules such as opening hours
and employment dates use China Standard Time) and :func:`decide` returns a
:class:`Decision` that names *every* failing check, not only the first, each with a
stable code, a plain-Chinese message with the specifics, and whether it calls for a
warning to the regulators.

Checks, in the order their reasons are reported (the order of :class:`ReasonCode`):

1. the welder's account is active;
2. certificates (证书匹配, DOMAIN.md "Certificates"): a certificate held by the
   signed-in welder whose kind and item fit the machine's process at this place
   (:data:`CERTIFICATE_FIT`), in order: valid or expiring, or pending verification
   and confirmed by an enterprise that employs the welder or owns the machine;
3. employment: the welder works for the machine's enterprise, or has a declared
   mobile job (流动作业报备) there; a machine at another enterprise's premises needs a
   mobile job declared for that place;
4. the machine: not retired, a chip is fitted, the chip is online, nobody else is
   using it, and the welder is not working on another machine at the same time;
5. the place and the time: a crowded place (人员密集场所) is not open now; no special
   period (特殊时期) declared by a regulator bans hot work here now;
6. the position: the phone, when it shares its position, is within
   ``max_distance_m`` of the machine (远距离扫码);
7. the hot-work permit (动火作业票), where :func:`permit_required` or a special period
   asks for one: a started permit that names the welder and the machine, for this
   place, covering now.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any

from weldguard.clock import SHANGHAI
from weldguard.domain.certificates import CertificateKind, CertificateStatus
from weldguard.domain.geo import GeoPoint, haversine_m

__all__ = [
    "CERTIFICATE_FIT",
    "CONSTRUCTION_SECTOR",
    "CROWDED_PLACE_SECTOR",
    "DEFAULT_AUTHORIZATION_POLICY",
    "DEFAULT_PERMIT_RULE",
    "HAZARDOUS_CHEMICALS_SECTOR",
    "RETIRED_MACHINE_STATUS",
    "AuthorizationPolicy",
    "CertificateFit",
    "Decision",
    "EmploymentPeriod",
    "HeldCertificate",
    "MachineFacts",
    "MobileJob",
    "OpeningWindow",
    "PermitFacts",
    "PermitRule",
    "PermitState",
    "PhonePosition",
    "PlaceFacts",
    "Reason",
    "ReasonCode",
    "ScanRequest",
    "SpecialPeriod",
    "SpecialPeriodKind",
    "WelderFacts",
    "WorkContext",
    "accepted_certificates",
    "decide",
    "is_crowded_place",
    "open_window_at",
    "opening_windows_from_json",
    "permit_required",
    "work_context",
]

# Values shared with the register (jurisdiction.service.SECTORS, machine.models):
# repeated here so that the pure rules do not import the ORM; tests check they agree.
CONSTRUCTION_SECTOR = "施工工地"
HAZARDOUS_CHEMICALS_SECTOR = "危化"
CROWDED_PLACE_SECTOR = "人员密集场所"
RETIRED_MACHINE_STATUS = "retired"
IN_PRODUCTION = "在产"

PROCESS_LABELS: dict[str, str] = {
    "manual_arc": "焊条电弧焊",
    "mig_mag": "熔化极气体保护焊(MIG/MAG)",
    "tig": "钨极氩弧焊(TIG)",
    "submerged_arc": "埋弧焊",
    "plasma_cutting": "等离子切割",
    "resistance": "电阻焊",
    "brazing": "钎焊",
    "gas_welding": "气焊",
    "gas_cutting": "气割",
}
_ARC_AND_GAS_WELDING = frozenset(
    {"manual_arc", "mig_mag", "tig", "submerged_arc", "gas_welding"}
)  # fusion welding
_CUTTING = frozenset({"plasma_cutting", "gas_cutting"})  # thermal cutting
_ALL_PROCESSES = frozenset(PROCESS_LABELS)


# --------------------------------------------------------------------------
# Reasons
# --------------------------------------------------------------------------


class ReasonCode(StrEnum):
    """Stable identifiers of the decision's reasons, in reporting order.

    The values are stored with every scan record and counted per area, so they
    never change; new codes are added, old ones are not renamed.
    """

    WELDER_INACTIVE = "WELDER_INACTIVE"
    NO_CERTIFICATE = "NO_CERTIFICATE"
    CERT_HOLDER_MISMATCH = "CERT_HOLDER_MISMATCH"
    UNKNOWN_PROCESS = "UNKNOWN_PROCESS"
    CERT_KIND_MISMATCH = "CERT_KIND_MISMATCH"
    CERT_ITEM_MISMATCH = "CERT_ITEM_MISMATCH"
    CERT_REVOKED = "CERT_REVOKED"
    CERT_EXPIRED = "CERT_EXPIRED"
    CERT_REVIEW_OVERDUE = "CERT_REVIEW_OVERDUE"
    CERT_UNVERIFIED = "CERT_UNVERIFIED"
    CERT_EXPIRING = "CERT_EXPIRING"
    CERT_PROVISIONAL = "CERT_PROVISIONAL"
    NOT_EMPLOYED = "NOT_EMPLOYED"
    MOBILE_JOB_NOT_DECLARED = "MOBILE_JOB_NOT_DECLARED"
    MACHINE_RETIRED = "MACHINE_RETIRED"
    NO_CHIP = "NO_CHIP"
    MACHINE_OFFLINE = "MACHINE_OFFLINE"
    MACHINE_IN_USE = "MACHINE_IN_USE"
    MACHINE_UNLOCKED_WITHOUT_SESSION = "MACHINE_UNLOCKED_WITHOUT_SESSION"
    BUSY_ELSEWHERE = "BUSY_ELSEWHERE"
    DURING_OPENING_HOURS = "DURING_OPENING_HOURS"
    OPENING_HOURS_UNKNOWN = "OPENING_HOURS_UNKNOWN"
    NOT_IN_PRODUCTION = "NOT_IN_PRODUCTION"
    SPECIAL_PERIOD = "SPECIAL_PERIOD"
    NO_POSITION = "NO_POSITION"
    POSITION_IMPRECISE = "POSITION_IMPRECISE"
    MACHINE_POSITION_UNKNOWN = "MACHINE_POSITION_UNKNOWN"
    TOO_FAR = "TOO_FAR"
    PERMIT_REQUIRED = "PERMIT_REQUIRED"
    PERMIT_INVALID = "PERMIT_INVALID"

    @property
    def label(self) -> str:
        """Short Chinese name, for statistics and filters."""
        return _REASON_LABELS[self]

    @property
    def regulator_warning(self) -> str | None:
        """The warning pushed to the regulators for this reason, or ``None``.

        Named after the Shandong categories where one fits (远距离扫码作业,
        特殊时期动火, 证书到期). 证书临期 is raised once per certificate by the
        scheduler, not per scan, so ``CERT_EXPIRING`` carries none (alarm fatigue).
        """
        return _REGULATOR_WARNINGS.get(self)

    @property
    def order(self) -> int:
        """Position in the reporting order."""
        return _CODE_ORDER[self]


_REASON_LABELS: dict[ReasonCode, str] = {
    ReasonCode.WELDER_INACTIVE: "焊工账号已停用",
    ReasonCode.NO_CERTIFICATE: "无有效证书",
    ReasonCode.CERT_HOLDER_MISMATCH: "人证不符",
    ReasonCode.UNKNOWN_PROCESS: "焊机工艺未知",
    ReasonCode.CERT_KIND_MISMATCH: "证书类型不符",
    ReasonCode.CERT_ITEM_MISMATCH: "准操项目不符",
    ReasonCode.CERT_REVOKED: "证书已吊销",
    ReasonCode.CERT_EXPIRED: "证书已过期",
    ReasonCode.CERT_REVIEW_OVERDUE: "证书逾期未复审",
    ReasonCode.CERT_UNVERIFIED: "证书待核验",
    ReasonCode.CERT_EXPIRING: "证书临期",
    ReasonCode.CERT_PROVISIONAL: "证书临时使用",
    ReasonCode.NOT_EMPLOYED: "非本单位焊工",
    ReasonCode.MOBILE_JOB_NOT_DECLARED: "流动作业未报备",
    ReasonCode.MACHINE_RETIRED: "焊机已报废",
    ReasonCode.NO_CHIP: "焊机未加芯",
    ReasonCode.MACHINE_OFFLINE: "焊机离线",
    ReasonCode.MACHINE_IN_USE: "焊机使用中",
    ReasonCode.MACHINE_UNLOCKED_WITHOUT_SESSION: "焊机无会话处于解锁状态",
    ReasonCode.BUSY_ELSEWHERE: "焊工正在使用其他焊机",
    ReasonCode.DURING_OPENING_HOURS: "人员密集场所营业时间",
    ReasonCode.OPENING_HOURS_UNKNOWN: "人员密集场所营业时间未登记",
    ReasonCode.NOT_IN_PRODUCTION: "企业非在产",
    ReasonCode.SPECIAL_PERIOD: "特殊时期禁止动火",
    ReasonCode.NO_POSITION: "未获取手机位置",
    ReasonCode.POSITION_IMPRECISE: "手机定位精度差",
    ReasonCode.MACHINE_POSITION_UNKNOWN: "焊机位置未知",
    ReasonCode.TOO_FAR: "远距离扫码",
    ReasonCode.PERMIT_REQUIRED: "无动火作业票",
    ReasonCode.PERMIT_INVALID: "动火作业票无效",
}

_REGULATOR_WARNINGS: dict[ReasonCode, str] = {
    ReasonCode.NO_CERTIFICATE: "无证动火",
    ReasonCode.CERT_HOLDER_MISMATCH: "人证不符",
    ReasonCode.CERT_REVOKED: "证书到期",
    ReasonCode.CERT_EXPIRED: "证书到期",
    ReasonCode.CERT_REVIEW_OVERDUE: "证书到期",
    ReasonCode.MACHINE_RETIRED: "报废焊机使用",
    ReasonCode.DURING_OPENING_HOURS: "人员密集场所营业时间动火",
    ReasonCode.SPECIAL_PERIOD: "特殊时期动火",
    ReasonCode.TOO_FAR: "远距离扫码作业",
}

_CODE_ORDER: dict[ReasonCode, int] = {code: index for index, code in enumerate(ReasonCode)}


@dataclass(frozen=True)
class Reason:
    """One failed check (a denial) or one warning of a decision.

    Attributes:
        code: stable identifier.
        message: plain Chinese for the welder, with the specifics (dates, metres,
            hours).
        regulator_warning: whether the scan should raise a warning to the
            regulators (see :attr:`ReasonCode.regulator_warning` for its name).
    """

    code: ReasonCode
    message: str
    regulator_warning: bool = False

    @property
    def label(self) -> str:
        """Short Chinese name of the code."""
        return self.code.label


def _reason(code: ReasonCode, message: str) -> Reason:
    return Reason(code, message, regulator_warning=code.regulator_warning is not None)


@dataclass(frozen=True)
class Decision:
    """The outcome of a scan.

    Attributes:
        allowed: ``True`` exactly when ``reasons`` is empty.
        reasons: every failed check, in :class:`ReasonCode` order.
        warnings: things the welder and the enterprise should know that do not
            block the unlock (expiring certificate, no phone position…).
        permit_id: the permit that authorises the work, when one was needed.
        valid_until: when the session must end at the latest because of a fact
            used here (the permit's end, the declared mobile job's end, the next
            opening of a crowded place, the start of a known special period);
            ``None`` when nothing here limits it.
    """

    allowed: bool
    reasons: tuple[Reason, ...]
    warnings: tuple[Reason, ...] = ()
    permit_id: int | None = None
    valid_until: datetime | None = None

    @property
    def codes(self) -> tuple[ReasonCode, ...]:
        """The denial codes."""
        return tuple(reason.code for reason in self.reasons)

    @property
    def warning_codes(self) -> tuple[ReasonCode, ...]:
        """The warning codes."""
        return tuple(reason.code for reason in self.warnings)

    @property
    def regulator_warnings(self) -> tuple[Reason, ...]:
        """Reasons and warnings that call for a warning to the regulators."""
        return tuple(r for r in (*self.reasons, *self.warnings) if r.regulator_warning)


# --------------------------------------------------------------------------
# Certificate fit (DOMAIN.md, "Certificates")
# --------------------------------------------------------------------------


class WorkContext(StrEnum):
    """What kind of place the work is in, for the certificate rule."""

    SPECIAL_EQUIPMENT = "special_equipment"
    CONSTRUCTION_SITE = "construction_site"
    GENERAL = "general"

    @property
    def label(self) -> str:
        """Chinese name."""
        return {
            WorkContext.SPECIAL_EQUIPMENT: "特种设备（锅炉、压力容器、压力管道）焊接",
            WorkContext.CONSTRUCTION_SITE: "建筑施工工地",
            WorkContext.GENERAL: "一般场所",
        }[self]


@dataclass(frozen=True)
class CertificateFit:
    """One row of the certificate table: in ``context``, a certificate of ``kind``
    with welding item ``item`` allows the machine processes ``processes``."""

    context: WorkContext
    kind: CertificateKind
    item: str
    processes: frozenset[str]


_SO = CertificateKind.SPECIAL_OPERATION
_SE = CertificateKind.SPECIAL_EQUIPMENT
_CO = CertificateKind.CONSTRUCTION
_FUSION_AND_CUTTING = "熔化焊接与热切割作业"


def _special_operation_rows(context: WorkContext) -> tuple[CertificateFit, ...]:
    return (
        CertificateFit(context, _SO, _FUSION_AND_CUTTING, _ARC_AND_GAS_WELDING | _CUTTING),
        CertificateFit(context, _SO, "压力焊作业", frozenset({"resistance"})),
        CertificateFit(context, _SO, "钎焊作业", frozenset({"brazing"})),
    )


#: Which certificate (kind, item) allows which machine process where.
#:
#: DOMAIN.md, "Certificates": "Special-equipment welding needs the 特种设备
#: certificate; construction sites accept 建筑焊工 or 特种作业; elsewhere 特种作业
#: (熔化焊接与热切割 for arc welding and cutting, 压力焊 for resistance welding,
#: 钎焊 for brazing)." Readings taken where the text is silent (stricter side):
#:
#: * special equipment: every *welding* process needs 金属焊接操作 (the machines
#:   weld metal; 非金属焊接操作 is plastics fusion, which no machine process here
#:   is). Cutting is not welding, so on special equipment it falls under the
#:   general rule: 特种作业 熔化焊接与热切割作业. A 特种作业 certificate alone does
#:   not allow welding on special equipment.
#: * construction sites: 建筑焊工 (its full name is 建筑焊工（含焊接切割）) covers
#:   every process; a 特种作业 certificate needs the item that fits the process,
#:   as elsewhere.
#: * gas welding is fusion welding and gas cutting is thermal cutting, both under
#:   熔化焊接与热切割作业. A 特种设备 or 建筑施工 certificate does not allow work
#:   elsewhere (mutual recognition of the registries is not read as mutual
#:   recognition of the scopes); pass another table in the policy to change that.
CERTIFICATE_FIT: tuple[CertificateFit, ...] = (
    CertificateFit(WorkContext.SPECIAL_EQUIPMENT, _SE, "金属焊接操作", _ALL_PROCESSES - _CUTTING),
    *(
        CertificateFit(WorkContext.SPECIAL_EQUIPMENT, row.kind, row.item, row.processes & _CUTTING)
        for row in _special_operation_rows(WorkContext.SPECIAL_EQUIPMENT)
        if row.processes & _CUTTING
    ),
    CertificateFit(WorkContext.CONSTRUCTION_SITE, _CO, "建筑焊工", _ALL_PROCESSES),
    *_special_operation_rows(WorkContext.CONSTRUCTION_SITE),
    *_special_operation_rows(WorkContext.GENERAL),
)


def accepted_certificates(
    context: WorkContext, process: str, table: Iterable[CertificateFit] = CERTIFICATE_FIT
) -> tuple[tuple[CertificateKind, str], ...]:
    """The (kind, item) pairs that allow ``process`` in ``context``, in table order."""
    return tuple(
        (row.kind, row.item) for row in table if row.context is context and process in row.processes
    )


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class WelderFacts:
    """The signed-in welder."""

    id: int
    active: bool = True


@dataclass(frozen=True)
class HeldCertificate:
    """A certificate presented for the scan, with its status already computed by
    :func:`weldguard.domain.certificates.certificate_status` for today.

    Attributes:
        holder_welder_id: the welder the registry says holds it (人证不符 when it
            is not the signed-in welder).
        number_masked: the masked number, for messages (never the clear number).
        expiry_date, review_due_date: the dates behind ``status``, for messages.
        confirmed_by_enterprise_id: the enterprise that provisionally accepted a
            certificate pending verification, if any.
    """

    id: int
    holder_welder_id: int
    kind: CertificateKind
    item: str
    status: CertificateStatus
    expiry_date: date
    review_due_date: date | None = None
    confirmed_by_enterprise_id: int | None = None
    number_masked: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind.label}（{self.item}）"


@dataclass(frozen=True)
class EmploymentPeriod:
    """The welder works for ``enterprise_id`` from ``start_date`` to ``end_date``
    (both inclusive, local calendar days; ``None``: open-ended)."""

    enterprise_id: int
    start_date: date
    end_date: date | None = None

    def active_on(self, day: date) -> bool:
        return self.start_date <= day and (self.end_date is None or day <= self.end_date)


@dataclass(frozen=True)
class MobileJob:
    """A declared mobile job (流动作业报备) of the welder at a client's premises,
    from ``starts_at`` (inclusive) to ``ends_at`` (exclusive)."""

    id: int
    client_enterprise_id: int
    starts_at: datetime
    ends_at: datetime
    site_id: int | None = None

    def covers(self, now: datetime, enterprise_id: int, site_id: int | None) -> bool:
        if self.client_enterprise_id != enterprise_id or not self.starts_at <= now < self.ends_at:
            return False
        # A job declared for one site does not cover another site of the client.
        return self.site_id is None or site_id is None or self.site_id == site_id


@dataclass(frozen=True)
class MachineFacts:
    """The scanned machine and its chip.

    Attributes:
        status: ``machine.models.MachineStatus`` value.
        process: ``machine.models.WeldingProcess`` value.
        enterprise_id: the owner.
        chip_position: the chip's last GNSS fix, if any.
        site_position: the position of the machine's site, used when the chip
            has no fix.
        locked: the chip's last reported lock state (``None``: unknown).
        session_welder_id: the welder of the machine's open work session, if any.
    """

    id: int
    status: str
    process: str
    enterprise_id: int
    chip_bound: bool
    chip_online: bool
    site_id: int | None = None
    chip_last_seen: datetime | None = None
    chip_position: GeoPoint | None = None
    site_position: GeoPoint | None = None
    locked: bool | None = True
    session_welder_id: int | None = None
    code: str = ""

    @property
    def position(self) -> GeoPoint | None:
        """Where the machine is: the chip's fix, else its site."""
        return self.chip_position if self.chip_position is not None else self.site_position


_WEEKDAY_LABELS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
_MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class OpeningWindow:
    """Opening hours on some weekdays, in local time.

    ``weekdays`` are ISO numbers (1 = Monday … 7 = Sunday) of the day the window
    *opens*; minutes count from local midnight. ``closes_minute`` at or before
    ``opens_minute`` is an overnight span that closes the next day (KTV 18:00-02:00);
    equal values mean open around the clock. 1440 (24:00) closes at midnight.
    """

    weekdays: frozenset[int]
    opens_minute: int
    closes_minute: int

    def __post_init__(self) -> None:
        if not self.weekdays or not self.weekdays <= frozenset(range(1, 8)):
            raise ValueError(f"weekdays must be 1..7, got {sorted(self.weekdays)}")
        if not 0 <= self.opens_minute < _MINUTES_PER_DAY:
            raise ValueError(f"opens_minute out of range: {self.opens_minute}")
        if not 0 <= self.closes_minute <= _MINUTES_PER_DAY:
            raise ValueError(f"closes_minute out of range: {self.closes_minute}")

    @property
    def length(self) -> timedelta:
        minutes = self.closes_minute - self.opens_minute
        if minutes <= 0:
            minutes += _MINUTES_PER_DAY
        return timedelta(minutes=minutes)

    def spans(self, day: date, tz: tzinfo) -> tuple[datetime, datetime] | None:
        """The window that opens on local ``day``, or ``None`` if it does not."""
        if day.isoweekday() not in self.weekdays:
            return None
        start = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(
            minutes=self.opens_minute
        )
        return start, start + self.length

    @property
    def label(self) -> str:
        days = _weekdays_label(self.weekdays)
        overnight = "次日" if self.closes_minute <= self.opens_minute else ""
        return f"{days} {_hhmm(self.opens_minute)}–{overnight}{_hhmm(self.closes_minute)}"


def _weekdays_label(weekdays: frozenset[int]) -> str:
    """每天, 周一至周五, 周五、周六, 周一、周三至周五."""
    if len(weekdays) == 7:
        return "每天"
    runs: list[list[int]] = []
    for day in sorted(weekdays):
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        first, last = _WEEKDAY_LABELS[run[0] - 1], _WEEKDAY_LABELS[run[-1] - 1]
        if len(run) >= 3:
            parts.append(f"{first}至{last}")
        else:
            parts.extend(_WEEKDAY_LABELS[d - 1] for d in run)
    return "、".join(parts)


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _parse_hhmm(text: str) -> int:
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"时间格式应为 HH:MM：{text}")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > _MINUTES_PER_DAY:
        raise ValueError(f"时间超出范围：{text}")
    return value


def opening_windows_from_json(raw: Sequence[Mapping[str, Any]]) -> tuple[OpeningWindow, ...]:
    """Opening hours as stored on the enterprise (``Enterprise.opening_hours``):
    ``[{"days": [1, 2, 3, 4, 5], "open": "09:00", "close": "21:00"}, ...]``.
    Raises ``ValueError`` with a Chinese reason."""
    windows = []
    for entry in raw:
        opens = _parse_hhmm(str(entry["open"]))
        if opens == _MINUTES_PER_DAY:
            raise ValueError("开门时间不能是 24:00")
        windows.append(
            OpeningWindow(
                weekdays=frozenset(int(d) for d in entry["days"]),
                opens_minute=opens,
                closes_minute=_parse_hhmm(str(entry["close"])),
            )
        )
    return tuple(windows)


@dataclass(frozen=True)
class PlaceFacts:
    """Where the work happens: the premises of ``enterprise_id``.

    Normally the machine's own enterprise; for a mobile job the client's.

    Attributes:
        sector: 企业类型 (工贸, 危化, 施工工地, …, 人员密集场所).
        crowded_subtype: 人密场所子类 when the place is a crowded place.
        area_path: the jurisdiction path ("310000/310100/310105/…"), matched
            against special periods.
        opening_hours: the crowded place's opening hours; ``None`` when not
            recorded, ``()`` when recorded as never open to the public.
        production_status: 生产状态 (在产, 停产, 半停产, 筹建, 歇业).
        special_equipment: the work is on special equipment (boilers, pressure
            vessels, pressure pipelines), as declared for the site or the permit.
        permit_required_override: the enterprise's own setting, which wins over
            the sector rule (``None``: follow the rule).
    """

    enterprise_id: int
    sector: str
    area_path: str
    crowded_subtype: str | None = None
    opening_hours: tuple[OpeningWindow, ...] | None = None
    production_status: str = IN_PRODUCTION
    special_equipment: bool = False
    permit_required_override: bool | None = None


class SpecialPeriodKind(StrEnum):
    """What a regulator's special period (特殊时期, e.g. a major event) demands."""

    BAN_HOT_WORK = "ban_hot_work"
    REQUIRE_PERMIT = "require_permit"


@dataclass(frozen=True)
class SpecialPeriod:
    """A special period for an area (every path under ``area_path``), from
    ``starts_at`` (inclusive) to ``ends_at`` (exclusive), optionally limited to
    some sectors (``None``: all)."""

    id: int
    title: str
    area_path: str
    starts_at: datetime
    ends_at: datetime
    kind: SpecialPeriodKind = SpecialPeriodKind.BAN_HOT_WORK
    sectors: frozenset[str] | None = None

    def applies_to(self, place: PlaceFacts) -> bool:
        if not place.area_path.startswith(self.area_path):
            return False
        return self.sectors is None or place.sector in self.sectors

    def active_at(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at


class PermitState(StrEnum):
    """Where a permit stands, as far as unlocking cares (the permit workflow of
    the next issue maps its steps onto these)."""

    NOT_STARTED = "not_started"  # applied for, approved or being cleared: no work yet
    ACTIVE = "active"  # the 动火 step has started: work may go ahead
    SUSPENDED = "suspended"  # e.g. the fire watch missed a check-in
    CLOSED = "closed"  # finished, cancelled or revoked

    @property
    def label(self) -> str:
        return {
            PermitState.NOT_STARTED: "尚未开始动火",
            PermitState.ACTIVE: "动火中",
            PermitState.SUSPENDED: "已暂停",
            PermitState.CLOSED: "已关闭",
        }[self]


@dataclass(frozen=True)
class PermitFacts:
    """A hot-work permit (动火作业票) that may cover this scan.

    ``starts_at`` inclusive, ``ends_at`` exclusive. ``crowded_place_exception``:
    the crowded-place exception path was taken (risk assessment, fire separation,
    approval at the higher level), which allows work during opening hours.
    """

    id: int
    number: str
    state: PermitState
    enterprise_id: int
    starts_at: datetime
    ends_at: datetime
    welder_ids: frozenset[int]
    machine_ids: frozenset[int]
    site_id: int | None = None
    crowded_place_exception: bool = False
    # What the permit's own rules found wrong for this scan that the checks below
    # cannot see (the machine outside the hot spot's 10 m, or without a fix), in
    # plain Chinese: domain/permits/unlock.permit_facts fills it from covers().
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class PhonePosition:
    """The phone's position when the welder shares it; ``accuracy_m`` is the
    radius the browser reports (68 % confidence)."""

    point: GeoPoint
    accuracy_m: float | None = None


@dataclass(frozen=True)
class ScanRequest:
    """Everything :func:`decide` looks at.

    Attributes:
        certificates: the welder's certificates (and any other presented).
        other_session_machine_ids: machines (other than this one) on which the
            welder has an open work session.
        now: timezone-aware.
    """

    welder: WelderFacts
    machine: MachineFacts
    place: PlaceFacts
    now: datetime
    certificates: tuple[HeldCertificate, ...] = ()
    employments: tuple[EmploymentPeriod, ...] = ()
    mobile_jobs: tuple[MobileJob, ...] = ()
    special_periods: tuple[SpecialPeriod, ...] = ()
    permits: tuple[PermitFacts, ...] = ()
    phone_position: PhonePosition | None = None
    other_session_machine_ids: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")


# --------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PermitRule:
    """Where a hot-work permit (动火作业票) is required before unlocking.

    Default (issue 5): hazardous-chemical enterprises, crowded places and
    construction sites. GB 30871-2022 is "a good default everywhere" (DOMAIN.md):
    ``everywhere=True`` asks for a permit at every place. ``processes`` adds
    machine processes that always need one (e.g. gas cutting). An enterprise's
    own setting (:attr:`PlaceFacts.permit_required_override`) wins over the rule.
    """

    sectors: frozenset[str] = frozenset(
        {HAZARDOUS_CHEMICALS_SECTOR, CROWDED_PLACE_SECTOR, CONSTRUCTION_SECTOR}
    )
    processes: frozenset[str] = frozenset()
    everywhere: bool = False


DEFAULT_PERMIT_RULE = PermitRule()


@dataclass(frozen=True)
class AuthorizationPolicy:
    """The configurable parts of the decision (defaults: the stricter reading).

    Attributes:
        max_distance_m: the phone must be within this distance of the machine
            (远距离扫码); exactly this distance is still allowed.
        require_position: deny a scan whose phone shares no position (default:
            a warning, since indoor phones and denied browser permissions are
            common).
        imprecise_position_m: warn when the phone's accuracy radius exceeds this.
        refuse_when_busy_elsewhere: deny a welder who has an open session on
            another machine.
        deny_crowded_place_without_hours: a crowded place without recorded
            opening hours counts as open (deny) rather than as closed.
        opening_hours_margin: extends each opening window on both sides (the
            fire watch stays 30 min after work; an enterprise may want a buffer).
        exception_subtypes: crowded-place sub-types where the exception path
            (a permit with ``crowded_place_exception``) allows work during
            opening hours: DOMAIN.md names hospitals, care homes and schools.
        production_statuses_denied: 生产状态 values that block hot work; any other
            status than 在产 is a warning.
        permit_rule: :class:`PermitRule`.
        certificate_fit: the certificate table, :data:`CERTIFICATE_FIT`.
        timezone: local time for opening hours and employment dates.
    """

    max_distance_m: float = 500.0
    require_position: bool = False
    imprecise_position_m: float = 100.0
    refuse_when_busy_elsewhere: bool = True
    deny_crowded_place_without_hours: bool = True
    opening_hours_margin: timedelta = timedelta(0)
    exception_subtypes: frozenset[str] = frozenset({"医院", "养老院", "学校"})
    production_statuses_denied: frozenset[str] = frozenset()
    permit_rule: PermitRule = DEFAULT_PERMIT_RULE
    certificate_fit: tuple[CertificateFit, ...] = CERTIFICATE_FIT
    timezone: tzinfo = field(default=SHANGHAI)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_distance_m) and self.max_distance_m > 0):
            raise ValueError("max_distance_m must be positive")
        if self.opening_hours_margin < timedelta(0):
            raise ValueError("opening_hours_margin must not be negative")


DEFAULT_AUTHORIZATION_POLICY = AuthorizationPolicy()


# --------------------------------------------------------------------------
# Place rules
# --------------------------------------------------------------------------


def is_crowded_place(place: PlaceFacts) -> bool:
    """A crowded place (人员密集场所): the sector, or any crowded-place sub-type."""
    return place.sector == CROWDED_PLACE_SECTOR or place.crowded_subtype is not None


def work_context(place: PlaceFacts) -> WorkContext:
    """Special equipment wins over the sector: welding a boiler on a building site
    still needs the 特种设备 certificate."""
    if place.special_equipment:
        return WorkContext.SPECIAL_EQUIPMENT
    if place.sector == CONSTRUCTION_SECTOR:
        return WorkContext.CONSTRUCTION_SITE
    return WorkContext.GENERAL


def _permit_required_because(place: PlaceFacts, process: str, rule: PermitRule) -> str | None:
    if place.permit_required_override is not None:
        return "本单位设置为动火须持作业票" if place.permit_required_override else None
    if rule.everywhere:
        return "所有动火作业须持动火作业票"
    if is_crowded_place(place) and CROWDED_PLACE_SECTOR in rule.sectors:
        return "人员密集场所动火须持动火作业票"
    if place.sector in rule.sectors:
        return f"{place.sector}单位动火须持动火作业票"
    if process in rule.processes:
        return f"{_process_label(process)}须持动火作业票"
    return None


def permit_required(
    place: PlaceFacts, process: str, rule: PermitRule = DEFAULT_PERMIT_RULE
) -> bool:
    """Whether hot work with ``process`` at ``place`` needs a permit by the rule
    (special periods may ask for one too; :func:`decide` adds those)."""
    return _permit_required_because(place, process, rule) is not None


def open_window_at(
    windows: Iterable[OpeningWindow],
    now: datetime,
    tz: tzinfo = SHANGHAI,
    margin: timedelta = timedelta(0),
) -> tuple[OpeningWindow, datetime, datetime] | None:
    """The opening window (and its local start and end) that ``now`` falls in,
    each window widened by ``margin`` on both sides; ``None`` when closed.

    A window covers [open, close): at the closing minute the place is closed.
    Yesterday's windows are looked at too, for overnight spans.
    """
    today = now.astimezone(tz).date()
    # A window lasts at most a day, so one that opened the day before yesterday
    # may still cover now; a margin widens the reach by its whole days, both ways.
    reach = margin.days + 2
    for window in windows:
        for offset in range(-reach, reach + 1):
            span = window.spans(today + timedelta(days=offset), tz)
            if span is not None and span[0] - margin <= now < span[1] + margin:
                return window, span[0], span[1]
    return None


def _next_opening(
    windows: Iterable[OpeningWindow], now: datetime, tz: tzinfo, margin: timedelta
) -> datetime | None:
    local_day = now.astimezone(tz).date()
    starts = [
        span[0] - margin
        for window in windows
        for offset in range(8)
        if (span := window.spans(local_day + timedelta(days=offset), tz)) is not None
        and span[0] - margin > now
    ]
    return min(starts) if starts else None


# --------------------------------------------------------------------------
# The decision
# --------------------------------------------------------------------------


def decide(
    request: ScanRequest, policy: AuthorizationPolicy = DEFAULT_AUTHORIZATION_POLICY
) -> Decision:
    """Decide a scan: every failing check is a reason; allowed iff there is none."""
    denials: list[Reason] = []
    warnings: list[Reason] = []
    limits: list[datetime] = []

    if not request.welder.active:
        denials.append(
            _reason(ReasonCode.WELDER_INACTIVE, "焊工账号已停用，请联系所在企业安全管理员")
        )
    _check_certificates(request, policy, denials, warnings)
    _check_employment(request, policy, denials, limits)
    _check_machine(request, policy, denials, warnings)
    exception_permit_needed = _check_place_and_time(request, policy, denials, warnings, limits)
    _check_position(request, policy, denials, warnings)
    permit_id = _check_permit(request, policy, exception_permit_needed, denials, limits)

    denials.sort(key=lambda r: r.code.order)
    warnings.sort(key=lambda r: r.code.order)
    allowed = not denials
    return Decision(
        allowed=allowed,
        reasons=tuple(denials),
        warnings=tuple(warnings),
        permit_id=permit_id if allowed else None,
        valid_until=min(limits) if allowed and limits else None,
    )


def _local(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _machine_site_here(request: ScanRequest) -> int | None:
    """The machine's registered site when it stands at its own enterprise; a
    machine taken to a client's premises is not at any site of the client's."""
    if request.machine.enterprise_id == request.place.enterprise_id:
        return request.machine.site_id
    return None


def _process_label(process: str) -> str:
    return PROCESS_LABELS.get(process, process)


def _check_certificates(
    request: ScanRequest,
    policy: AuthorizationPolicy,
    denials: list[Reason],
    warnings: list[Reason],
) -> None:
    welder_id = request.welder.id
    # Sorted so that messages do not depend on the order the service read them in.
    presented = sorted(request.certificates, key=lambda c: c.id)
    held = [c for c in presented if c.holder_welder_id == welder_id]
    foreign = [c for c in presented if c.holder_welder_id != welder_id]
    if foreign:
        numbers = "、".join(f"{c.label} {c.number_masked}".rstrip() for c in foreign)
        denials.append(
            _reason(ReasonCode.CERT_HOLDER_MISMATCH, f"证书持证人不是当前登录的焊工：{numbers}")
        )
    if not held:
        denials.append(
            _reason(
                ReasonCode.NO_CERTIFICATE,
                "未查到您本人的焊接作业证书，无证不得动火作业",
            )
        )
        return

    machine = request.machine
    if machine.process not in PROCESS_LABELS:
        denials.append(
            _reason(
                ReasonCode.UNKNOWN_PROCESS,
                f"焊机登记的焊接工艺“{machine.process}”无法识别，无法匹配证书，请企业更正焊机信息",
            )
        )
        return

    context = work_context(request.place)
    accepted = accepted_certificates(context, machine.process, policy.certificate_fit)
    accepted_text = "或".join(f"{kind.label}（{item}）" for kind, item in accepted)
    situation = f"在{context.label}使用{_process_label(machine.process)}"
    held_text = "、".join(c.label for c in held)
    accepted_kinds = {kind for kind, _ in accepted}
    of_kind = [c for c in held if c.kind in accepted_kinds]
    if not of_kind:
        denials.append(
            _reason(
                ReasonCode.CERT_KIND_MISMATCH,
                f"{situation}须持{accepted_text}；您持有的是{held_text}",
            )
        )
        return
    fitting = [c for c in of_kind if (c.kind, c.item) in set(accepted)]
    if not fitting:
        denials.append(
            _reason(
                ReasonCode.CERT_ITEM_MISMATCH,
                f"{situation}须持{accepted_text}；您的准操项目为"
                + "、".join(c.item for c in of_kind),
            )
        )
        return

    confirmers = {machine.enterprise_id} | {
        e.enterprise_id for e in request.employments if e.active_on(_today(request, policy))
    }

    def confirmed(cert: HeldCertificate) -> bool:
        return cert.confirmed_by_enterprise_id in confirmers

    usable = [c for c in fitting if c.status.allows_work(confirmed(c))]
    if usable:
        best = min(usable, key=lambda c: _USABLE_PREFERENCE[c.status])
        if best.status is CertificateStatus.EXPIRING:
            warnings.append(
                _reason(ReasonCode.CERT_EXPIRING, _deadline_message(best, request, policy))
            )
        elif best.status is CertificateStatus.PENDING_VERIFICATION:
            warnings.append(
                _reason(
                    ReasonCode.CERT_PROVISIONAL,
                    f"{best.label}尚未在全国查询系统核验，经企业人工确认临时使用，将持续复核",
                )
            )
        return

    by_code: dict[ReasonCode, list[str]] = {}
    for cert in fitting:
        code, text = _unusable(cert, request, policy)
        by_code.setdefault(code, []).append(text)
    for code, texts in by_code.items():
        denials.append(_reason(code, "；".join(texts)))


_USABLE_PREFERENCE = {
    CertificateStatus.VALID: 0,
    CertificateStatus.EXPIRING: 1,
    CertificateStatus.PENDING_VERIFICATION: 2,
}


def _today(request: ScanRequest, policy: AuthorizationPolicy) -> date:
    return request.now.astimezone(policy.timezone).date()


def _deadline_message(
    cert: HeldCertificate, request: ScanRequest, policy: AuthorizationPolicy
) -> str:
    today = _today(request, policy)
    if cert.review_due_date is not None and cert.review_due_date < cert.expiry_date:
        days = (cert.review_due_date - today).days
        due = cert.review_due_date.isoformat()
        return f"{cert.label}距复审截止还有 {days} 天（{due}），请及时复审"
    days = (cert.expiry_date - today).days
    return f"{cert.label}距到期还有 {days} 天（{cert.expiry_date.isoformat()}），请及时换证"


def _unusable(
    cert: HeldCertificate, request: ScanRequest, policy: AuthorizationPolicy
) -> tuple[ReasonCode, str]:
    today = _today(request, policy)
    if cert.status is CertificateStatus.REVOKED:
        return ReasonCode.CERT_REVOKED, f"{cert.label}已被发证机关吊销"
    if cert.status is CertificateStatus.EXPIRED:
        days = (today - cert.expiry_date).days
        return (
            ReasonCode.CERT_EXPIRED,
            f"{cert.label}已于 {cert.expiry_date.isoformat()} 到期（已过期 {days} 天）",
        )
    if cert.status is CertificateStatus.REVIEW_OVERDUE:
        due = cert.review_due_date
        when = f"应于 {due.isoformat()} 前复审（已逾期 {(today - due).days} 天）" if due else ""
        return (
            ReasonCode.CERT_REVIEW_OVERDUE,
            f"{cert.label}逾期未复审{'，' + when if when else ''}",
        )
    return (
        ReasonCode.CERT_UNVERIFIED,
        f"{cert.label}尚未在全国查询系统核验，且未经本企业人工确认，暂不能使用",
    )


def _check_employment(
    request: ScanRequest,
    policy: AuthorizationPolicy,
    denials: list[Reason],
    limits: list[datetime],
) -> None:
    machine, place, now = request.machine, request.place, request.now
    today = _today(request, policy)
    employed_by_owner = any(
        e.enterprise_id == machine.enterprise_id and e.active_on(today) for e in request.employments
    )
    site_id = _machine_site_here(request)
    jobs_here = [j for j in request.mobile_jobs if j.covers(now, place.enterprise_id, site_id)]

    if place.enterprise_id == machine.enterprise_id:
        # A welder of the enterprise, or an outside welder with a job declared here.
        if employed_by_owner:
            return
        if jobs_here:
            limits.append(max(j.ends_at for j in jobs_here))
            return
        denials.append(
            _reason(
                ReasonCode.NOT_EMPLOYED,
                "您不是该焊机所属企业的在职焊工，也没有在该企业报备的流动作业",
            )
        )
        return

    # The machine stands at another enterprise's premises: its owner's welder,
    # with a mobile job declared for that place.
    if not employed_by_owner:
        denials.append(_reason(ReasonCode.NOT_EMPLOYED, "您不是该焊机所属企业的在职焊工"))
    if jobs_here:
        limits.append(max(j.ends_at for j in jobs_here))
    else:
        denials.append(
            _reason(
                ReasonCode.MOBILE_JOB_NOT_DECLARED,
                f"焊机在外单位作业，当前时间（{_local(now, policy.timezone)}）"
                "没有报备覆盖该地点的流动作业",
            )
        )


def _check_machine(
    request: ScanRequest,
    policy: AuthorizationPolicy,
    denials: list[Reason],
    warnings: list[Reason],
) -> None:
    machine, welder_id = request.machine, request.welder.id
    if machine.status == RETIRED_MACHINE_STATUS:
        denials.append(_reason(ReasonCode.MACHINE_RETIRED, "该焊机已报废，不得使用"))
    if not machine.chip_bound:
        denials.append(_reason(ReasonCode.NO_CHIP, "该焊机未安装监管芯片（未加芯），不能扫码开机"))
    elif not machine.chip_online:
        seen = (
            f"，最后在线时间 {_local(machine.chip_last_seen, policy.timezone)}"
            if machine.chip_last_seen is not None
            else "，从未上线"
        )
        denials.append(
            _reason(ReasonCode.MACHINE_OFFLINE, f"焊机芯片离线{seen}；请检查焊机电源和信号")
        )
    if machine.session_welder_id is not None and machine.session_welder_id != welder_id:
        denials.append(_reason(ReasonCode.MACHINE_IN_USE, "该焊机正由其他焊工使用中"))
    elif machine.session_welder_id is None and machine.locked is False:
        warnings.append(
            _reason(
                ReasonCode.MACHINE_UNLOCKED_WITHOUT_SESSION,
                "焊机报告为解锁状态，但平台没有它的作业记录；本次开机将接管该焊机",
            )
        )
    others = request.other_session_machine_ids - {machine.id}
    if others and policy.refuse_when_busy_elsewhere:
        denials.append(
            _reason(
                ReasonCode.BUSY_ELSEWHERE,
                f"您正在使用另外 {len(others)} 台焊机，请先结束那里的作业",
            )
        )


def _check_place_and_time(
    request: ScanRequest,
    policy: AuthorizationPolicy,
    denials: list[Reason],
    warnings: list[Reason],
    limits: list[datetime],
) -> bool:
    """Returns whether the work relies on the crowded-place exception (and so needs
    a valid permit that took the exception path)."""
    place, now, tz = request.place, request.now, policy.timezone
    needs_exception_permit = False

    if is_crowded_place(place):
        kind = place.crowded_subtype or CROWDED_PLACE_SECTOR
        if place.opening_hours is None:
            if policy.deny_crowded_place_without_hours:
                denials.append(
                    _reason(
                        ReasonCode.OPENING_HOURS_UNKNOWN,
                        f"该{kind}未登记营业时间，无法确认当前不在营业时间内，请企业先登记营业时间",
                    )
                )
        else:
            hit = open_window_at(place.opening_hours, now, tz, policy.opening_hours_margin)
            if hit is not None:
                window, opens, closes = hit
                exception = _exception_permit(request, policy)
                if exception is not None:
                    needs_exception_permit = True
                else:
                    denials.append(
                        _reason(
                            ReasonCode.DURING_OPENING_HOURS,
                            f"{kind}营业时间内禁止动火（人员密集场所）：营业时间 {window.label}，"
                            f"本次 {_local(opens, tz)} 至 {_local(closes, tz)}，"
                            f"当前 {_local(now, tz)}（北京时间）",
                        )
                    )
            else:
                upcoming = _next_opening(place.opening_hours, now, tz, policy.opening_hours_margin)
                if upcoming is not None:
                    limits.append(upcoming)

    if place.production_status != IN_PRODUCTION:
        text = f"企业生产状态为“{place.production_status}”"
        if place.production_status in policy.production_statuses_denied:
            denials.append(_reason(ReasonCode.NOT_IN_PRODUCTION, text + "，不允许动火作业"))
        else:
            warnings.append(
                _reason(
                    ReasonCode.NOT_IN_PRODUCTION, text + "，非正常生产期间动火风险高，请加强监护"
                )
            )

    bans_now = []
    for period in sorted(request.special_periods, key=lambda p: (p.starts_at, p.id)):
        if period.kind is not SpecialPeriodKind.BAN_HOT_WORK or not period.applies_to(place):
            continue
        if period.active_at(now):
            bans_now.append(period)
        elif period.starts_at > now:
            limits.append(period.starts_at)
    if bans_now:
        # One reason however many periods overlap; each is named.
        named = "；".join(
            f"“{p.title}”（{_local(p.starts_at, tz)} 至 {_local(p.ends_at, tz)}）" for p in bans_now
        )
        denials.append(_reason(ReasonCode.SPECIAL_PERIOD, f"特殊时期{named}本区域禁止动火作业"))
    return needs_exception_permit


def _exception_permit(request: ScanRequest, policy: AuthorizationPolicy) -> PermitFacts | None:
    """A valid permit that took the crowded-place exception path, where the
    sub-type allows the exception."""
    if request.place.crowded_subtype not in policy.exception_subtypes:
        return None
    for permit in request.permits:
        if permit.crowded_place_exception and not _permit_problems(permit, request, policy):
            return permit
    return None


def _check_position(
    request: ScanRequest,
    policy: AuthorizationPolicy,
    denials: list[Reason],
    warnings: list[Reason],
) -> None:
    phone = request.phone_position
    if phone is None:
        text = "未获取到手机位置，无法核对您是否在焊机旁"
        if policy.require_position:
            denials.append(_reason(ReasonCode.NO_POSITION, text + "；请允许定位后重新扫码"))
        else:
            warnings.append(_reason(ReasonCode.NO_POSITION, text))
        return
    if phone.accuracy_m is not None and phone.accuracy_m > policy.imprecise_position_m:
        warnings.append(
            _reason(
                ReasonCode.POSITION_IMPRECISE,
                f"手机定位精度较差（误差约 {phone.accuracy_m:.0f} 米），距离核对可能不准",
            )
        )
    machine_position = request.machine.position
    if machine_position is None:
        warnings.append(
            _reason(ReasonCode.MACHINE_POSITION_UNKNOWN, "焊机没有定位信息，无法核对扫码距离")
        )
        return
    distance = haversine_m(phone.point, machine_position)
    if distance > policy.max_distance_m:
        denials.append(
            _reason(
                ReasonCode.TOO_FAR,
                f"手机距焊机约 {distance:.0f} 米，超过允许的 {policy.max_distance_m:.0f} 米，"
                "请在焊机旁扫码",
            )
        )


def _permit_problems(
    permit: PermitFacts, request: ScanRequest, policy: AuthorizationPolicy
) -> list[str]:
    now, tz = request.now, policy.timezone
    problems = []
    if permit.state is not PermitState.ACTIVE:
        problems.append(permit.state.label)
    if now < permit.starts_at:
        problems.append(f"自 {_local(permit.starts_at, tz)} 起生效")
    elif now >= permit.ends_at:
        problems.append(f"已于 {_local(permit.ends_at, tz)} 到期")
    if request.welder.id not in permit.welder_ids:
        problems.append("作业人员中没有您")
    if request.machine.id not in permit.machine_ids:
        problems.append("未包含该焊机")
    site_id = _machine_site_here(request)
    if permit.enterprise_id != request.place.enterprise_id or (
        permit.site_id is not None and site_id is not None and permit.site_id != site_id
    ):
        problems.append("动火地点与焊机所在地点不符")
    problems.extend(permit.problems)
    return problems


def _check_permit(
    request: ScanRequest,
    policy: AuthorizationPolicy,
    exception_permit_needed: bool,
    denials: list[Reason],
    limits: list[datetime],
) -> int | None:
    place = request.place
    because = _permit_required_because(place, request.machine.process, policy.permit_rule)
    if because is None:
        period = next(
            (
                p
                for p in sorted(request.special_periods, key=lambda p: (p.starts_at, p.id))
                if p.kind is SpecialPeriodKind.REQUIRE_PERMIT
                and p.applies_to(place)
                and p.active_at(request.now)
            ),
            None,
        )
        if period is not None:
            because = f"特殊时期“{period.title}”动火须持动火作业票"
    if because is None and not exception_permit_needed:
        return None
    if because is None:
        because = "人员密集场所营业时间内动火须持经审批的动火作业票"

    candidates = request.permits
    if exception_permit_needed:
        candidates = tuple(p for p in candidates if p.crowded_place_exception)
    if not candidates:
        denials.append(_reason(ReasonCode.PERMIT_REQUIRED, because + "，未找到您的动火作业票"))
        return None
    problems_by_permit = [(p, _permit_problems(p, request, policy)) for p in candidates]
    valid = [p for p, problems in problems_by_permit if not problems]
    if valid:
        chosen = max(valid, key=lambda p: (p.ends_at, p.id))
        limits.append(chosen.ends_at)
        return chosen.id
    details = "；".join(
        f"作业票 {p.number}：{'、'.join(problems)}"
        for p, problems in sorted(problems_by_permit, key=lambda item: item[0].id)
    )
    denials.append(
        _reason(ReasonCode.PERMIT_INVALID, f"{because}，但没有有效的作业票（{details}）")
    )
    return None
