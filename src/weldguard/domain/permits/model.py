"""The hot-work permit's vocabulary: levels, methods, roles, statuses, and the
frozen records the rules read (content, signed steps, samples, check-ins)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from weldguard.domain.authorization import HeldCertificate, PlaceFacts, is_crowded_place
from weldguard.domain.geo import GeoPoint, haversine_m, point_in_polygon

__all__ = [
    "DEFAULT_CHECK_IN_INTERVAL",
    "DEFAULT_HOT_SPOT_RADIUS_M",
    "Approval",
    "ApproverRole",
    "CrowdedPlaceException",
    "FireWatch",
    "FireWatchCheckIn",
    "GasSample",
    "HotSpot",
    "HotWorkMethod",
    "MeasureConfirmation",
    "MonitorReading",
    "NoticeConfirmation",
    "NoticeLocation",
    "Pause",
    "Permit",
    "PermitContent",
    "PermitLevel",
    "PermitMachine",
    "PermitStatus",
    "PermitWelder",
    "Person",
    "SafetyMeasure",
    "Step",
    "StepRecord",
    "SuspendCause",
    "Suspension",
]

DEFAULT_HOT_SPOT_RADIUS_M = 10.0
DEFAULT_CHECK_IN_INTERVAL = timedelta(minutes=30)


def _require_aware(name: str, moment: datetime | None) -> None:
    if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware")


# --------------------------------------------------------------------------
# Enumerations
# --------------------------------------------------------------------------


class PermitLevel(StrEnum):
    """动火级别 (GB 30871-2022): 特级 > 一级 > 二级."""

    SPECIAL = "special"
    FIRST = "first"
    SECOND = "second"

    @property
    def label(self) -> str:
        return {
            PermitLevel.SPECIAL: "特级",
            PermitLevel.FIRST: "一级",
            PermitLevel.SECOND: "二级",
        }[self]

    @property
    def rank(self) -> int:
        """2 for 特级, 1 for 一级, 0 for 二级: a higher rank is the stricter level."""
        return {PermitLevel.SPECIAL: 2, PermitLevel.FIRST: 1, PermitLevel.SECOND: 0}[self]

    def raised(self) -> PermitLevel:
        """One level up; 特级 is the top and stays."""
        if self is PermitLevel.SECOND:
            return PermitLevel.FIRST
        return PermitLevel.SPECIAL


class HotWorkMethod(StrEnum):
    """动火方式, and the machine processes (``machine.models.WeldingProcess``) each
    one allows on the permit."""

    ELECTRIC_WELDING = "electric_welding"
    GAS_WELDING_CUTTING = "gas_welding_cutting"
    PLASMA_CUTTING = "plasma_cutting"
    BRAZING = "brazing"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {
            HotWorkMethod.ELECTRIC_WELDING: "电焊",
            HotWorkMethod.GAS_WELDING_CUTTING: "气焊/气割",
            HotWorkMethod.PLASMA_CUTTING: "等离子切割",
            HotWorkMethod.BRAZING: "钎焊",
            HotWorkMethod.OTHER: "其他动火（喷灯、砂轮等）",
        }[self]

    @property
    def processes(self) -> frozenset[str]:
        return _METHOD_PROCESSES[self]

    @property
    def uses_gas_cylinders(self) -> bool:
        """Oxygen and fuel-gas cylinders on site (the 5 m / 10 m spacing measure)."""
        return self is HotWorkMethod.GAS_WELDING_CUTTING

    @property
    def electric(self) -> bool:
        """An electric machine on site (grounding and the 10 m geofence)."""
        return self in (
            HotWorkMethod.ELECTRIC_WELDING,
            HotWorkMethod.PLASMA_CUTTING,
            HotWorkMethod.BRAZING,
        )


_METHOD_PROCESSES: dict[HotWorkMethod, frozenset[str]] = {
    HotWorkMethod.ELECTRIC_WELDING: frozenset(
        {"manual_arc", "mig_mag", "tig", "submerged_arc", "resistance"}
    ),
    HotWorkMethod.GAS_WELDING_CUTTING: frozenset({"gas_welding", "gas_cutting"}),
    HotWorkMethod.PLASMA_CUTTING: frozenset({"plasma_cutting"}),
    HotWorkMethod.BRAZING: frozenset({"brazing"}),
    HotWorkMethod.OTHER: frozenset(),
}


class ApproverRole(StrEnum):
    """Who approves (GB 30871-2022): 特级 the enterprise's leader in charge, 一级 the
    safety department, 二级 the unit where the hot spot is."""

    ENTERPRISE_LEADER = "enterprise_leader"
    SAFETY_DEPARTMENT = "safety_department"
    UNIT = "unit"

    @property
    def label(self) -> str:
        return {
            ApproverRole.ENTERPRISE_LEADER: "企业主管负责人",
            ApproverRole.SAFETY_DEPARTMENT: "安全管理部门",
            ApproverRole.UNIT: "动火点所在单位负责人",
        }[self]

    @property
    def rank(self) -> int:
        """Authority: 2 for the leader, 1 for the safety department, 0 for the unit."""
        return {
            ApproverRole.ENTERPRISE_LEADER: 2,
            ApproverRole.SAFETY_DEPARTMENT: 1,
            ApproverRole.UNIT: 0,
        }[self]


class PermitStatus(StrEnum):
    """Where a permit stands; the diagram is in the package docstring."""

    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    CLEARED = "cleared"
    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    WATCHING = "watching"
    DISPOSED = "disposed"
    CLOSED = "closed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def label(self) -> str:
        return _STATUS_LABELS[self]

    @property
    def terminal(self) -> bool:
        return self in (PermitStatus.CLOSED, PermitStatus.CANCELLED, PermitStatus.EXPIRED)

    @property
    def before_work(self) -> bool:
        """No hot work has happened under the permit yet."""
        return self in (
            PermitStatus.DRAFT,
            PermitStatus.SUBMITTED,
            PermitStatus.APPROVED,
            PermitStatus.CLEARED,
        )

    @property
    def interrupted(self) -> bool:
        """Started, and the work stands still (machines locked)."""
        return self in (PermitStatus.PAUSED, PermitStatus.SUSPENDED)


_STATUS_LABELS: dict[PermitStatus, str] = {
    PermitStatus.DRAFT: "草稿",
    PermitStatus.SUBMITTED: "待审批",
    PermitStatus.APPROVED: "已审批",
    PermitStatus.CLEARED: "已清理",
    PermitStatus.IN_PROGRESS: "动火中",
    PermitStatus.PAUSED: "作业中断",
    PermitStatus.SUSPENDED: "已暂停",
    PermitStatus.WATCHING: "作业结束监护中",
    PermitStatus.DISPOSED: "已处置",
    PermitStatus.CLOSED: "已关闭",
    PermitStatus.CANCELLED: "已取消",
    PermitStatus.EXPIRED: "已过期",
}


class Step(StrEnum):
    """Signed steps, for the photo rule (:attr:`PermitPolicy.photos_required_for`)."""

    SITE_SURVEY = "site_survey"
    RISK_CONFIRMATION = "risk_confirmation"
    APPROVAL = "approval"
    CLEARANCE = "clearance"
    START = "start"
    CHECK_IN = "check_in"
    END_WORK = "end_work"
    DISPOSAL = "disposal"
    CLOSURE = "closure"

    @property
    def label(self) -> str:
        return {
            Step.SITE_SURVEY: "现场勘查",
            Step.RISK_CONFIRMATION: "风险确认",
            Step.APPROVAL: "审批",
            Step.CLEARANCE: "清理可燃物",
            Step.START: "动火",
            Step.CHECK_IN: "监护签到",
            Step.END_WORK: "作业结束",
            Step.DISPOSAL: "处置（余火检查）",
            Step.CLOSURE: "关闭作业票",
        }[self]


class NoticeLocation(StrEnum):
    """Where a crowded place posts the public notice of the hot work."""

    ENTRANCE = "entrance"
    SITE = "site"

    @property
    def label(self) -> str:
        return {NoticeLocation.ENTRANCE: "主要出入口", NoticeLocation.SITE: "作业现场"}[self]


class SuspendCause(StrEnum):
    """Why the work was stopped by the rules or by a person in charge."""

    FIRE_WATCH_ABSENT = "fire_watch_absent"
    GAS_OVER_LIMIT = "gas_over_limit"
    GAS_RETEST_DUE = "gas_retest_due"
    MONITOR_FAILED = "monitor_failed"
    OPENING_HOURS = "opening_hours"
    ORDERED = "ordered"

    @property
    def label(self) -> str:
        return {
            SuspendCause.FIRE_WATCH_ABSENT: "监护人员离岗",
            SuspendCause.GAS_OVER_LIMIT: "可燃气体浓度超标",
            SuspendCause.GAS_RETEST_DUE: "未按规定复测气体",
            SuspendCause.MONITOR_FAILED: "连续气体监测中断或超标",
            SuspendCause.OPENING_HOURS: "人员密集场所进入营业时间",
            SuspendCause.ORDERED: "责令停止作业",
        }[self]


# --------------------------------------------------------------------------
# People and signed steps
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A named person who signs something. ``user_id``: their platform account;
    ``welder_id``: their welder record, when they are a registered welder."""

    name: str
    user_id: int | None = None
    welder_id: int | None = None

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("a person needs a name")

    def same_as(self, other: Person) -> bool:
        """Whether two signatures are the same person. Without a shared account or
        welder record the names decide: two signers with the same name count as one
        person, so a double check cannot be satisfied by a namesake."""
        if self.user_id is not None and other.user_id is not None:
            return self.user_id == other.user_id
        if self.welder_id is not None and other.welder_id is not None:
            return self.welder_id == other.welder_id
        return self.name.strip() == other.name.strip()


@dataclass(frozen=True)
class StepRecord:
    """A signed step: when, by whom (``None``: the platform itself, e.g. expiry),
    with which photos (stored photo keys) and note."""

    at: datetime
    by: Person | None
    photos: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        _require_aware("at", self.at)


@dataclass(frozen=True)
class Approval:
    """The approval signature with the role the approver signed in."""

    at: datetime
    by: Person
    role: ApproverRole
    photos: tuple[str, ...] = ()
    note: str = ""

    def __post_init__(self) -> None:
        _require_aware("at", self.at)


# --------------------------------------------------------------------------
# The permit's content (fixed at approval)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class HotSpot:
    """动火点: a position, and the area where the machines may stand: within
    ``radius_m`` of it, or inside ``polygon`` when one is drawn."""

    position: GeoPoint
    radius_m: float = DEFAULT_HOT_SPOT_RADIUS_M
    polygon: tuple[GeoPoint, ...] = ()

    def __post_init__(self) -> None:
        if not self.radius_m > 0:
            raise ValueError("radius_m must be positive")
        if self.polygon and len(set(self.polygon)) < 3:
            raise ValueError("a hot-spot polygon needs at least 3 distinct vertices")

    def distance_m(self, point: GeoPoint) -> float:
        return haversine_m(self.position, point)

    def contains(self, point: GeoPoint) -> bool:
        """Inside the polygon when one is drawn, else within the radius (inclusive)."""
        if self.polygon:
            return point_in_polygon(point, self.polygon)
        return self.distance_m(point) <= self.radius_m

    @property
    def label(self) -> str:
        return "划定的动火区域" if self.polygon else f"动火点 {self.radius_m:g} 米范围"


@dataclass(frozen=True)
class PermitWelder:
    """A welder named on the permit (动火人), with the certificates written on it.
    Each :class:`HeldCertificate` carries its status for the day the service built it."""

    welder_id: int
    name: str
    certificates: tuple[HeldCertificate, ...] = ()


@dataclass(frozen=True)
class PermitMachine:
    """A machine named on the permit. ``process``: ``machine.models.WeldingProcess``."""

    machine_id: int
    process: str
    enterprise_id: int
    code: str = ""

    @property
    def label(self) -> str:
        return self.code or f"#{self.machine_id}"


@dataclass(frozen=True)
class FireWatch:
    """监护人. ``trained``: the enterprise confirms the watch has the training."""

    person: Person
    trained: bool


@dataclass(frozen=True)
class SafetyMeasure:
    """One safety measure on the permit; ``applicable=False`` is the form's "不涉及"."""

    code: str
    text: str
    applicable: bool = True


@dataclass(frozen=True)
class CrowdedPlaceException:
    """The exception path for hot work in a crowded place's opening hours: the full
    risk assessment and the fire separation with non-combustible material, each
    signed (``None``: not done yet). Approval at the higher level is checked when
    the permit is approved."""

    risk_assessment: StepRecord | None = None
    fire_separation: StepRecord | None = None

    @property
    def complete(self) -> bool:
        return self.risk_assessment is not None and self.fire_separation is not None


@dataclass(frozen=True)
class PermitContent:
    """What the applicant fills in and the approver approves. After approval it
    never changes: any change of content, scope or place needs a new permit.

    Attributes:
        place: the premises (sector, crowded-place sub-type, opening hours…);
            ``place.enterprise_id`` is the permit's enterprise.
        base_level: the level the place and the work call for.
        level: the level the permit is managed at; at least
            :func:`~weldguard.domain.permits.levels.effective_level` of the base.
        starts_at, ends_at: the validity window, ``[starts_at, ends_at)``.
        gas_analysis_required: the place calls for gas analysis (always so for a
            base level of 特级 or 一级: a fire or explosion area).
        check_in_interval: the longest gap between the fire watch's check-ins.
        crowded_exception: the exception path, when requested.
    """

    id: int
    number: str
    place: PlaceFacts
    site_id: int | None
    place_description: str
    hot_spot: HotSpot
    methods: frozenset[HotWorkMethod]
    base_level: PermitLevel
    level: PermitLevel
    starts_at: datetime
    ends_at: datetime
    welders: tuple[PermitWelder, ...]
    machines: tuple[PermitMachine, ...]
    lead: Person
    fire_watch: FireWatch
    hazards: tuple[str, ...]
    measures: tuple[SafetyMeasure, ...]
    linked_permits: tuple[str, ...] = ()
    gas_analysis_required: bool = False
    check_in_interval: timedelta = DEFAULT_CHECK_IN_INTERVAL
    crowded_exception: CrowdedPlaceException | None = None

    def __post_init__(self) -> None:
        _require_aware("starts_at", self.starts_at)
        _require_aware("ends_at", self.ends_at)

    @property
    def enterprise_id(self) -> int:
        return self.place.enterprise_id

    @property
    def welder_ids(self) -> frozenset[int]:
        return frozenset(w.welder_id for w in self.welders)

    @property
    def machine_ids(self) -> frozenset[int]:
        return frozenset(m.machine_id for m in self.machines)

    @property
    def crowded(self) -> bool:
        return is_crowded_place(self.place)

    @property
    def gas_required(self) -> bool:
        """Gas analysis before and during the work: where the place calls for it,
        and always in a fire or explosion area (base level 特级 or 一级)."""
        return self.gas_analysis_required or self.base_level is not PermitLevel.SECOND

    @property
    def continuous_monitoring_required(self) -> bool:
        """特级 work (including work raised to 特级) needs continuous gas readings."""
        return self.level is PermitLevel.SPECIAL

    @property
    def exception_requested(self) -> bool:
        return self.crowded_exception is not None


# --------------------------------------------------------------------------
# Records kept while the permit runs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class GasSample:
    """One gas analysis (气体分析): when, which gas, its LEL (% by volume), the
    reading (% by volume), the analyst and, when known, where it was taken."""

    taken_at: datetime
    gas: str
    lel_percent: float
    reading_percent: float
    analyst: Person
    position: GeoPoint | None = None

    def __post_init__(self) -> None:
        _require_aware("taken_at", self.taken_at)
        if not self.gas.strip():
            raise ValueError("a gas sample names its gas")
        if not 0 < self.lel_percent <= 100:
            raise ValueError(f"lel_percent out of range: {self.lel_percent}")
        if not 0 <= self.reading_percent <= 100:
            raise ValueError(f"reading_percent out of range: {self.reading_percent}")


@dataclass(frozen=True)
class MonitorReading:
    """One reading of a continuous gas monitor (连续监测), required for 特级."""

    taken_at: datetime
    gas: str
    lel_percent: float
    reading_percent: float
    device: str = ""

    def __post_init__(self) -> None:
        _require_aware("taken_at", self.taken_at)
        if not self.gas.strip():
            raise ValueError("a monitor reading names its gas")
        if not 0 < self.lel_percent <= 100:
            raise ValueError(f"lel_percent out of range: {self.lel_percent}")
        if not 0 <= self.reading_percent <= 100:
            raise ValueError(f"reading_percent out of range: {self.reading_percent}")


@dataclass(frozen=True)
class FireWatchCheckIn:
    """The fire watch checks in (监护签到), with position and photos when taken."""

    at: datetime
    by: Person
    position: GeoPoint | None = None
    photos: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require_aware("at", self.at)


@dataclass(frozen=True)
class MeasureConfirmation:
    """A named person confirms that the safety measure ``code`` is in place."""

    code: str
    by: Person
    at: datetime
    photos: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _require_aware("at", self.at)


@dataclass(frozen=True)
class NoticeConfirmation:
    """The public notice of a crowded place's hot work, posted and photographed."""

    location: NoticeLocation
    by: Person
    at: datetime
    photos: tuple[str, ...]

    def __post_init__(self) -> None:
        _require_aware("at", self.at)


@dataclass(frozen=True)
class Pause:
    """An interruption of the work from ``since``; ``until`` when it was resumed."""

    since: datetime
    by: Person | None
    reason: str = ""
    until: datetime | None = None


@dataclass(frozen=True)
class Suspension:
    """The work stopped by a rule or a person in charge; ``lifted`` when reinstated."""

    since: datetime
    cause: SuspendCause
    by: Person | None = None
    note: str = ""
    lifted: StepRecord | None = None


@dataclass(frozen=True)
class Permit:
    """A permit and everything signed and recorded on it so far.

    Built by :func:`~weldguard.domain.permits.workflow.new_permit` and changed only
    by :func:`~weldguard.domain.permits.workflow.transition`. ``stopped_since``:
    while paused or suspended, when the work stopped (a suspension during a pause,
    and the pause after a lifted suspension, keep the first stop: the gas re-test
    rule counts the whole interruption).
    """

    content: PermitContent
    status: PermitStatus = PermitStatus.DRAFT
    submitted: StepRecord | None = None
    site_survey: StepRecord | None = None
    risk_confirmation: StepRecord | None = None
    approval: Approval | None = None
    rejections: tuple[StepRecord, ...] = ()
    clearance: StepRecord | None = None
    started: StepRecord | None = None
    pauses: tuple[Pause, ...] = ()
    suspensions: tuple[Suspension, ...] = ()
    stopped_since: datetime | None = None
    work_ended: StepRecord | None = None
    ended_by_expiry: bool = False
    disposal: StepRecord | None = None
    closure: StepRecord | None = None
    cancellation: StepRecord | None = None
    expiry: StepRecord | None = None
    gas_samples: tuple[GasSample, ...] = ()
    check_ins: tuple[FireWatchCheckIn, ...] = ()
    measure_confirmations: tuple[MeasureConfirmation, ...] = ()
    notices: tuple[NoticeConfirmation, ...] = ()

    @property
    def id(self) -> int:
        return self.content.id

    @property
    def number(self) -> str:
        return self.content.number

    @property
    def current_suspension(self) -> Suspension | None:
        if self.status is PermitStatus.SUSPENDED and self.suspensions:
            return self.suspensions[-1]
        return None

    @property
    def crowded_exception_taken(self) -> bool:
        """The crowded-place exception path was taken in full and approved (the
        approval checked that it was at the higher level)."""
        exception = self.content.crowded_exception
        return exception is not None and exception.complete and self.approval is not None
