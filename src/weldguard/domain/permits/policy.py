"""The configurable figures of the permit rules (defaults: DOMAIN.md, GB 30871-2022,
and the stricter reading where the source is unclear), and the standard safety
measures of the permit form."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo

from weldguard.clock import SHANGHAI
from weldguard.domain.authorization import (
    CERTIFICATE_FIT,
    DEFAULT_AUTHORIZATION_POLICY,
    CertificateFit,
    OpeningWindow,
)
from weldguard.domain.permits.model import HotWorkMethod, PermitLevel, Step

__all__ = [
    "DEFAULT_NIGHT",
    "DEFAULT_PERMIT_POLICY",
    "STANDARD_SAFETY_MEASURES",
    "MeasureTemplate",
    "PermitPolicy",
    "mandatory_measure_codes",
]

#: Night (夜间) for the level upgrade: 22:00 to 06:00 local time, every day. An
#: :class:`OpeningWindow` because it is the same shape: weekdays and an overnight
#: span in local minutes.
DEFAULT_NIGHT = OpeningWindow(frozenset(range(1, 8)), 22 * 60, 6 * 60)


@dataclass(frozen=True)
class PermitPolicy:
    """Every figure the permit rules use.

    Attributes:
        special_validity, first_validity, second_validity: the longest window of
            a permit of each level (8 h, 8 h, 72 h); exactly the limit is allowed.
        night: night hours for the level upgrade, local time.
        timezone: local time for night, rest days, opening hours and daily re-tests.
        gas_sample_max_age: the last sample is at most this old when the work
            starts or resumes after a long pause (exactly 30 min still passes).
        gas_sample_radius_m: a sample with a position is taken within this
            distance of the hot spot.
        lel_threshold_percent, limit_high_lel_percent, limit_low_lel_percent:
            gases with LEL ≥ 4 % pass at ≤ 0.5 % by volume, the others at ≤ 0.2 %.
        pause_retest_special_first, pause_retest_second: an interruption longer
            than this (特级/一级: 30 min; 二级: 60 min) needs a new sample.
        monitor_max_age: the continuous monitor's last reading of each gas is at
            most this old (特级).
        watch_after_work: the fire watch stays at least this long after the work
            ends before the ember check (NFPA 51B: 30-60 min).
        min_check_in_interval, max_check_in_interval: bounds of the interval a
            permit sets for the fire watch's check-ins.
        check_in_max_distance_m: a check-in with a position is within this
            distance of the hot spot.
        photos_required_for: steps that need at least one photo.
        higher_authority_may_approve: a role above the one the level requires may
            approve (the leader may approve a 二级 permit); ``False`` demands the
            exact role.
        each_welder_fits_every_machine: every welder on the permit holds a
            certificate fitting every machine on it (any welder named may unlock
            any machine named). ``False``: each welder fits at least one machine,
            and the scan-time certificate check does the rest.
        machine_position_required: :func:`covers` refuses a machine whose
            position is unknown (the 10 m geofence cannot be checked).
        crowded_hours_unknown_denies: a crowded place without recorded opening
            hours counts as open (as in the unlock decision).
        exception_subtypes, opening_hours_margin, certificate_fit: as in
            :class:`~weldguard.domain.authorization.AuthorizationPolicy` (the
            defaults are taken from there, so both agree).
    """

    special_validity: timedelta = timedelta(hours=8)
    first_validity: timedelta = timedelta(hours=8)
    second_validity: timedelta = timedelta(hours=72)
    night: OpeningWindow = DEFAULT_NIGHT
    timezone: tzinfo = field(default=SHANGHAI)
    gas_sample_max_age: timedelta = timedelta(minutes=30)
    gas_sample_radius_m: float = 10.0
    lel_threshold_percent: float = 4.0
    limit_high_lel_percent: float = 0.5
    limit_low_lel_percent: float = 0.2
    pause_retest_special_first: timedelta = timedelta(minutes=30)
    pause_retest_second: timedelta = timedelta(minutes=60)
    monitor_max_age: timedelta = timedelta(minutes=2)
    watch_after_work: timedelta = timedelta(minutes=30)
    min_check_in_interval: timedelta = timedelta(minutes=5)
    max_check_in_interval: timedelta = timedelta(minutes=60)
    check_in_max_distance_m: float = 50.0
    photos_required_for: frozenset[Step] = frozenset(
        {Step.SITE_SURVEY, Step.CLEARANCE, Step.START, Step.CHECK_IN, Step.DISPOSAL}
    )
    higher_authority_may_approve: bool = True
    each_welder_fits_every_machine: bool = True
    machine_position_required: bool = True
    crowded_hours_unknown_denies: bool = True
    exception_subtypes: frozenset[str] = DEFAULT_AUTHORIZATION_POLICY.exception_subtypes
    opening_hours_margin: timedelta = DEFAULT_AUTHORIZATION_POLICY.opening_hours_margin
    certificate_fit: tuple[CertificateFit, ...] = CERTIFICATE_FIT

    def __post_init__(self) -> None:
        for name in (
            "special_validity",
            "first_validity",
            "second_validity",
            "gas_sample_max_age",
            "pause_retest_special_first",
            "pause_retest_second",
            "monitor_max_age",
            "min_check_in_interval",
        ):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"PermitPolicy.{name} must be positive")
        if self.watch_after_work < timedelta(0):
            raise ValueError("PermitPolicy.watch_after_work must not be negative")
        if self.max_check_in_interval < self.min_check_in_interval:
            raise ValueError("PermitPolicy.max_check_in_interval is below the minimum")
        for name in ("gas_sample_radius_m", "check_in_max_distance_m", "lel_threshold_percent"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"PermitPolicy.{name} must be positive")
        if not 0 < self.limit_low_lel_percent <= self.limit_high_lel_percent:
            raise ValueError("PermitPolicy gas limits must be positive, low ≤ high")
        if self.opening_hours_margin < timedelta(0):
            raise ValueError("PermitPolicy.opening_hours_margin must not be negative")

    def validity(self, level: PermitLevel) -> timedelta:
        if level is PermitLevel.SPECIAL:
            return self.special_validity
        if level is PermitLevel.FIRST:
            return self.first_validity
        return self.second_validity

    def pause_retest_after(self, level: PermitLevel) -> timedelta:
        if level is PermitLevel.SECOND:
            return self.pause_retest_second
        return self.pause_retest_special_first


DEFAULT_PERMIT_POLICY = PermitPolicy()


@dataclass(frozen=True)
class MeasureTemplate:
    """A safety measure of the standard form. ``always``: every permit carries it as
    applicable; ``for_methods``/``for_levels``: mandatory for those methods/levels."""

    code: str
    text: str
    always: bool = False
    for_methods: frozenset[HotWorkMethod] = frozenset()
    for_levels: frozenset[PermitLevel] = frozenset()


_GAS = frozenset({HotWorkMethod.GAS_WELDING_CUTTING})
_ELECTRIC = frozenset(m for m in HotWorkMethod if m.electric)

#: The sixteen measures of the GB 30871-2022 permit form, paraphrased (the service
#: seeds a new permit with them; check the wording against the standard's form
#: before printing it as the official text). A few are mandatory: the rules refuse
#: a permit that drops them or marks them 不涉及.
STANDARD_SAFETY_MEASURES: tuple[MeasureTemplate, ...] = (
    MeasureTemplate("purged", "动火设备内部构件清理干净，经吹扫、置换或清洗合格，达到动火条件"),
    MeasureTemplate("isolated", "与动火设备相连的管线已断开并加盲板，未以关阀代替盲板"),
    MeasureTemplate("openings_sealed", "动火点周围的孔洞、窨井、地沟、污水井等已检查并封堵"),
    MeasureTemplate("tank_farm", "罐区动火点同一防火堤内和防火间距内的储罐未进行脱水、取样作业"),
    MeasureTemplate("spark_shield", "高处动火已采取防火花飞溅措施"),
    MeasureTemplate("lining_isolated", "在有可燃构件或可燃内衬的设备内动火，已采取防火隔绝措施"),
    MeasureTemplate(
        "gas_cylinders",
        "乙炔气瓶直立并防倾倒、装防回火装置；氧气瓶与乙炔气瓶间距不小于 5 米，"
        "二者与动火点间距不小于 10 米",
        for_methods=_GAS,
    ),
    MeasureTemplate("extinguishers", "现场配备灭火器、灭火毯等消防器材", always=True),
    MeasureTemplate(
        "welder_grounding",
        "电焊机位置符合防火防爆要求，距动火点不超过 10 米，且可靠接地",
        for_methods=_ELECTRIC,
    ),
    MeasureTemplate("no_nearby_hazards", "动火点周围规定距离内无易燃易爆品装卸、排放、喷漆等作业"),
    MeasureTemplate(
        "no_vertical_release", "动火点上下方规定范围内无可燃气体、液体排放或可燃粉尘作业"
    ),
    MeasureTemplate(
        "risk_analysis", "已开展作业危害分析，落实管控措施，交叉作业已明确协调人", always=True
    ),
    MeasureTemplate(
        "continuous_detector",
        "连续检测用的便携式可燃气体检测仪已配备到位",
        for_levels=frozenset({PermitLevel.SPECIAL}),
    ),
    MeasureTemplate("recording", "摄录设备已到位，防爆级别满足要求"),
    MeasureTemplate("cordon", "其他特殊作业已办理作业票，作业现场已设警戒区"),
    MeasureTemplate("other", "其他安全措施"),
)


def mandatory_measure_codes(
    methods: frozenset[HotWorkMethod], level: PermitLevel
) -> tuple[str, ...]:
    """The standard measures a permit with ``methods`` at ``level`` must carry as
    applicable, in form order."""
    return tuple(
        t.code
        for t in STANDARD_SAFETY_MEASURES
        if t.always or (t.for_methods & methods) or level in t.for_levels
    )
