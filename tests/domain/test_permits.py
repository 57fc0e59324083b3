"""Tests of weldguard.domain.permits: the hot-work permit (动火作业票) rules.

One baseline permit (危化, 一级, electric welding, Monday 2026-11-23 09:00-17:00
Shanghai time) is driven through the real transitions; each rule is exercised by
one change of it, at its boundaries. Times are Shanghai wall-clock times.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weldguard.clock import SHANGHAI
from weldguard.domain.authorization import (
    EmploymentPeriod,
    HeldCertificate,
    MachineFacts,
    OpeningWindow,
    PermitState,
    PhonePosition,
    PlaceFacts,
    ReasonCode,
    ScanRequest,
    WelderFacts,
    decide,
)
from weldguard.domain.calendar import WorkCalendar
from weldguard.domain.certificates import CertificateKind, CertificateStatus
from weldguard.domain.geo import EARTH_MEAN_RADIUS_M, GeoPoint
from weldguard.domain.permits import (
    CLAIMING_STATUSES,
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
    CrowdedPlaceException,
    Dispose,
    Edit,
    EndWork,
    Expire,
    FireWatch,
    FireWatchCheckIn,
    GasSample,
    HotSpot,
    HotWorkMethod,
    MachineClaim,
    MonitorReading,
    NoticeConfirmation,
    NoticeLocation,
    PauseWork,
    Permit,
    PermitContent,
    PermitEvent,
    PermitLevel,
    PermitMachine,
    PermitPolicy,
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
    SafetyMeasure,
    StartWork,
    Step,
    StepRecord,
    Submit,
    Suspend,
    SuspendCause,
    allowed_from,
    assess_level,
    check_approver,
    check_certificates,
    check_check_in,
    check_content,
    check_crowded_window,
    check_gas,
    check_monitor,
    check_notices,
    check_overlap,
    check_sample,
    check_watch_after_work,
    check_watch_present,
    check_window,
    claim_of_content,
    continuous_presence_since,
    covers,
    crowded_place_allows,
    effective_level,
    gas_limit_percent,
    latest_per_gas,
    machine_claim,
    machines_to_lock,
    mandatory_measure_codes,
    may_approve,
    missed_check_in,
    new_permit,
    next_check_in_due,
    overlapping,
    permit_facts,
    required_role,
    supervise,
    transition,
    unlock_state,
    validity_limit,
    within_limit,
)
from weldguard.machine.models import WeldingProcess

R = PermitReasonCode
S = PermitStatus
L = PermitLevel
A = ApproverRole
SO = CertificateKind.SPECIAL_OPERATION
SE = CertificateKind.SPECIAL_EQUIPMENT
CO = CertificateKind.CONSTRUCTION

SEC = timedelta(seconds=1)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)

ENTERPRISE = 10
CONTRACTOR = 11
SITE = 1000
MACHINE = 100
OTHER_MACHINE = 101
WELDER_ID = 1
OTHER_WELDER_ID = 2
AREA = "310000/310100/310105/310105002/"

HOT = GeoPoint(31.2204, 121.4244)
METRES_PER_DEGREE_LAT = math.pi * EARTH_MEAN_RADIUS_M / 180

# A made-up calendar: Wednesday 2026-11-25 a holiday, Saturday 2026-11-28 a
# swapped workday (调休上班); Sunday 2026-11-29 and Saturday 2026-12-05 rest days.
HOLIDAY = date(2026, 11, 25)
SWAPPED_SATURDAY = date(2026, 11, 28)
SUNDAY = date(2026, 11, 29)
SATURDAY = date(2026, 12, 5)
CAL = WorkCalendar(holidays=frozenset({HOLIDAY}), swapped_workdays=frozenset({SWAPPED_SATURDAY}))

LEAD = Person("李强", user_id=201)
WATCH = Person("王芳", user_id=202)
APPROVER = Person("赵敏", user_id=203)
LEADER = Person("钱总", user_id=204)
ANALYST = Person("孙工", user_id=205)
WELDER_PERSON = Person("张伟", user_id=206, welder_id=WELDER_ID)
STRANGER = Person("路人", user_id=299)
PHOTO = ("photo-1",)


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=SHANGHAI)


def at(h: int, mi: int = 0, s: int = 0, day: int = 23) -> datetime:
    """Monday 2026-11-23 (or another day of November 2026), Shanghai time."""
    return local(2026, 11, day, h, mi, s)


def north_of(point: GeoPoint, metres: float) -> GeoPoint:
    return GeoPoint(point.latitude + metres / METRES_PER_DEGREE_LAT, point.longitude)


def cert(**changes: Any) -> HeldCertificate:
    base = HeldCertificate(
        id=500,
        holder_welder_id=WELDER_ID,
        kind=SO,
        item="熔化焊接与热切割作业",
        status=CertificateStatus.VALID,
        expiry_date=date(2029, 6, 30),
        number_masked="T110***********1234",
    )
    return dataclasses.replace(base, **changes)


def measures(*codes: str) -> tuple[SafetyMeasure, ...]:
    return tuple(SafetyMeasure(t.code, t.text) for t in STANDARD_SAFETY_MEASURES if t.code in codes)


BASE_MEASURES = measures("purged", "extinguishers", "welder_grounding", "risk_analysis")
PLACE = PlaceFacts(enterprise_id=ENTERPRISE, sector="危化", area_path=AREA)

BASE = PermitContent(
    id=900,
    number="DH-2026-0001",
    place=PLACE,
    site_id=SITE,
    place_description="二号罐区东侧管廊",
    hot_spot=HotSpot(HOT),
    methods=frozenset({HotWorkMethod.ELECTRIC_WELDING}),
    base_level=L.FIRST,
    level=L.FIRST,
    starts_at=at(9),
    ends_at=at(17),
    welders=(PermitWelder(WELDER_ID, "张伟", (cert(),)),),
    machines=(PermitMachine(MACHINE, "manual_arc", ENTERPRISE, "WG0000001"),),
    lead=LEAD,
    fire_watch=FireWatch(WATCH, trained=True),
    hazards=("可燃气体泄漏", "火花飞溅"),
    measures=BASE_MEASURES,
    linked_permits=("GC-2026-0007",),
)


def content(**changes: Any) -> PermitContent:
    return dataclasses.replace(BASE, **changes)


def sample(
    taken_at: datetime, reading: float = 0.1, lel: float = 5.0, gas: str = "甲烷"
) -> GasSample:
    return GasSample(taken_at, gas, lel, reading, ANALYST)


def reading(
    taken_at: datetime, value: float = 0.05, lel: float = 5.0, gas: str = "甲烷"
) -> MonitorReading:
    return MonitorReading(taken_at, gas, lel, value, "GD-01")


def apply(permit: Permit, event: PermitEvent, now: datetime, **kw: Any) -> Permit:
    kw.setdefault("calendar", CAL)
    result = transition(permit, event, now, **kw)
    assert isinstance(result, Accepted), result
    return result.permit


def refuse(permit: Permit, event: PermitEvent, now: datetime, **kw: Any) -> Refused:
    kw.setdefault("calendar", CAL)
    result = transition(permit, event, now, **kw)
    assert isinstance(result, Refused), result
    return result


def codes(permit: Permit, event: PermitEvent, now: datetime, **kw: Any) -> set[PermitReasonCode]:
    return set(refuse(permit, event, now, **kw).codes)


# --------------------------------------------------------------------------
# Building permits in each status through the real transitions
# --------------------------------------------------------------------------


def submitted(c: PermitContent = BASE) -> Permit:
    return apply(new_permit(c), Submit(LEAD), at(8))


def surveyed(c: PermitContent = BASE, surveyor: Person = APPROVER) -> Permit:
    p = apply(submitted(c), RecordSiteSurvey(surveyor, PHOTO, "现场已勘查"), at(8, 10))
    return apply(p, ConfirmRisks(LEAD, PHOTO), at(8, 15))


def approved(
    c: PermitContent = BASE, by: Person = APPROVER, role: ApproverRole = A.SAFETY_DEPARTMENT
) -> Permit:
    return apply(surveyed(c, by), Approve(by, role), at(8, 20))


def cleared(c: PermitContent = BASE, **kw: Any) -> Permit:
    return apply(approved(c, **kw), Clear(LEAD, PHOTO), at(8, 30))


def ready(c: PermitContent = BASE, **kw: Any) -> Permit:
    """Cleared, measures confirmed, gas analysed at 08:45, the watch in at 08:50."""
    p = cleared(c, **kw)
    for m in c.measures:
        if m.applicable:
            p = apply(p, ConfirmMeasure(m.code, LEAD), at(8, 35))
    if c.crowded:
        for where in NoticeLocation:
            p = apply(p, ConfirmNotice(where, LEAD, PHOTO), at(8, 40))
    p = apply(p, RecordGasSample(sample(at(8, 45))), at(8, 45))
    return apply(p, CheckIn(WATCH, HOT, PHOTO), at(8, 50))


def started(c: PermitContent = BASE, **kw: Any) -> Permit:
    monitor = (reading(at(8, 59)),) if c.level is L.SPECIAL else ()
    return apply(ready(c, **kw), StartWork(LEAD, PHOTO), at(9), monitor=monitor)


def watching() -> Permit:
    p = apply(started(), CheckIn(WATCH, HOT, PHOTO), at(9, 20))
    return apply(p, EndWork(LEAD), at(9, 30))


def disposed() -> Permit:
    p = apply(watching(), CheckIn(WATCH, HOT, PHOTO), at(9, 45))
    return apply(p, Dispose(WATCH, no_embers=True, photos=PHOTO), at(10))


def in_status(status: PermitStatus) -> Permit:
    builders: dict[PermitStatus, Callable[[], Permit]] = {
        S.DRAFT: lambda: new_permit(BASE),
        S.SUBMITTED: submitted,
        S.APPROVED: approved,
        S.CLEARED: cleared,
        S.IN_PROGRESS: started,
        S.PAUSED: lambda: apply(started(), PauseWork(LEAD), at(9, 10)),
        S.SUSPENDED: lambda: apply(started(), Suspend(SuspendCause.ORDERED, APPROVER), at(9, 10)),
        S.WATCHING: watching,
        S.DISPOSED: disposed,
        S.CLOSED: lambda: apply(disposed(), Close(LEAD), at(10, 5)),
        S.CANCELLED: lambda: apply(new_permit(BASE), Cancel(LEAD, "不再需要"), at(8)),
        S.EXPIRED: lambda: apply(approved(), Expire(), at(17)),
    }
    permit = builders[status]()
    assert permit.status is status
    return permit


# --------------------------------------------------------------------------
# Vocabulary and records
# --------------------------------------------------------------------------


def test_levels_rank_and_raise() -> None:
    assert [lv.rank for lv in (L.SECOND, L.FIRST, L.SPECIAL)] == [0, 1, 2]
    assert L.SECOND.raised() is L.FIRST
    assert L.FIRST.raised() is L.SPECIAL
    assert L.SPECIAL.raised() is L.SPECIAL
    assert [lv.label for lv in L] == ["特级", "一级", "二级"]


def test_every_machine_process_belongs_to_exactly_one_method() -> None:
    for process in WeldingProcess:
        owners = [m for m in HotWorkMethod if process.value in m.processes]
        assert len(owners) == 1, process
    assert HotWorkMethod.OTHER.processes == frozenset()
    assert HotWorkMethod.GAS_WELDING_CUTTING.uses_gas_cylinders
    assert not HotWorkMethod.GAS_WELDING_CUTTING.electric


def test_labels_are_chinese_and_complete() -> None:
    for enum in (L, HotWorkMethod, A, S, Step, NoticeLocation, SuspendCause, R):
        for member in enum:
            assert member.label and not member.label.isascii()


def test_reason_codes_are_their_names() -> None:
    for code in R:
        assert code.value == code.name


def test_person_identity() -> None:
    assert Person("王芳", user_id=1).same_as(Person("王芳（监护）", user_id=1))
    assert not Person("王芳", user_id=1).same_as(Person("王芳", user_id=2))
    assert Person("张伟", welder_id=5).same_as(Person("张 伟", user_id=9, welder_id=5))
    # Without ids the name decides; a namesake counts as the same person.
    assert Person("王芳").same_as(Person(" 王芳 ", user_id=3))
    assert not Person("王芳").same_as(Person("李强"))
    with pytest.raises(ValueError):
        Person("  ")


def test_records_need_aware_times() -> None:
    naive = datetime(2026, 11, 23, 9)
    with pytest.raises(ValueError, match="timezone-aware"):
        StepRecord(naive, LEAD)
    with pytest.raises(ValueError, match="timezone-aware"):
        GasSample(naive, "甲烷", 5, 0.1, ANALYST)
    with pytest.raises(ValueError, match="timezone-aware"):
        FireWatchCheckIn(naive, WATCH)
    with pytest.raises(ValueError, match="timezone-aware"):
        content(starts_at=naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        transition(new_permit(BASE), Submit(LEAD), naive, calendar=CAL)


@pytest.mark.parametrize(("lel", "value"), [(0, 0.1), (101, 0.1), (5, -0.1), (5, 100.1)])
def test_gas_readings_out_of_range(lel: float, value: float) -> None:
    with pytest.raises(ValueError):
        GasSample(at(9), "甲烷", lel, value, ANALYST)
    with pytest.raises(ValueError):
        MonitorReading(at(9), "甲烷", lel, value)


def test_gas_needs_a_name() -> None:
    with pytest.raises(ValueError):
        GasSample(at(9), " ", 5, 0.1, ANALYST)
    with pytest.raises(ValueError):
        MonitorReading(at(9), "", 5, 0.1)


def test_hot_spot_validation_and_contains() -> None:
    with pytest.raises(ValueError):
        HotSpot(HOT, radius_m=0)
    with pytest.raises(ValueError):
        HotSpot(HOT, polygon=(HOT, north_of(HOT, 5), HOT))
    spot = HotSpot(HOT)
    assert spot.contains(HOT)
    assert spot.contains(north_of(HOT, 9.999))
    assert not spot.contains(north_of(HOT, 10.001))
    assert spot.label == "动火点 10 米范围"


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        PermitPolicy(special_validity=timedelta(0))
    with pytest.raises(ValueError):
        PermitPolicy(watch_after_work=-MIN)
    with pytest.raises(ValueError):
        PermitPolicy(min_check_in_interval=HOUR, max_check_in_interval=MIN * 30)
    with pytest.raises(ValueError):
        PermitPolicy(gas_sample_radius_m=0)
    with pytest.raises(ValueError):
        PermitPolicy(limit_low_lel_percent=0.6)
    with pytest.raises(ValueError):
        PermitPolicy(opening_hours_margin=-MIN)


def test_policy_follows_the_unlock_decision() -> None:
    from weldguard.domain.authorization import DEFAULT_AUTHORIZATION_POLICY as AUTH

    assert DEFAULT_PERMIT_POLICY.exception_subtypes == AUTH.exception_subtypes
    assert DEFAULT_PERMIT_POLICY.opening_hours_margin == AUTH.opening_hours_margin
    assert DEFAULT_PERMIT_POLICY.certificate_fit == AUTH.certificate_fit


def test_standard_measures() -> None:
    assert len(STANDARD_SAFETY_MEASURES) == 16
    assert len({t.code for t in STANDARD_SAFETY_MEASURES}) == 16
    electric = frozenset({HotWorkMethod.ELECTRIC_WELDING})
    gas = frozenset({HotWorkMethod.GAS_WELDING_CUTTING})
    assert mandatory_measure_codes(electric, L.FIRST) == (
        "extinguishers",
        "welder_grounding",
        "risk_analysis",
    )
    assert mandatory_measure_codes(gas, L.SECOND) == (
        "gas_cylinders",
        "extinguishers",
        "risk_analysis",
    )
    assert "continuous_detector" in mandatory_measure_codes(electric, L.SPECIAL)


# --------------------------------------------------------------------------
# Level upgrade, validity
# --------------------------------------------------------------------------


@pytest.mark.parametrize("base", list(L))
def test_weekday_daytime_keeps_the_level(base: PermitLevel) -> None:
    assessment = assess_level(base, at(9), at(17), CAL)
    assert assessment.level is base
    assert not assessment.raised
    assert assessment.because == ()


@pytest.mark.parametrize(
    ("day", "raised", "why"),
    [
        (date(2026, 11, 23), False, None),  # Monday
        (HOLIDAY, True, "2026-11-25 为节假日"),  # a holiday on a Wednesday
        (SWAPPED_SATURDAY, False, None),  # 调休上班
        (SUNDAY, True, "2026-11-29 为公休日"),
        (SATURDAY, True, "2026-12-05 为公休日"),
    ],
)
def test_rest_days_raise_the_level(day: date, raised: bool, why: str | None) -> None:
    starts = local(day.year, day.month, day.day, 9)
    assessment = assess_level(L.SECOND, starts, starts + 8 * HOUR, CAL)
    assert assessment.level is (L.FIRST if raised else L.SECOND)
    assert assessment.because == ((why,) if why else ())


def test_a_day_both_holiday_and_swapped_is_a_holiday() -> None:
    both = WorkCalendar(holidays=frozenset({SATURDAY}), swapped_workdays=frozenset({SATURDAY}))
    assert effective_level(L.SECOND, local(2026, 12, 5, 9), local(2026, 12, 5, 17), both) is L.FIRST


@pytest.mark.parametrize(
    ("starts", "ends", "night"),
    [
        (at(21), at(22), False),  # ends exactly when the night begins
        (at(21), at(22, 0, 1), True),
        (at(22), at(22, 0, 1), True),  # 22:00 is night
        (at(6), at(8), False),  # 06:00 is day
        (at(5, 59, 59), at(8), True),
        (at(23), at(23, 30), True),
        (at(0), at(1), True),
        (at(12), at(12, day=24), True),  # across a night
        (at(6), at(21, 59, 59), False),
    ],
)
def test_night_boundaries(starts: datetime, ends: datetime, night: bool) -> None:
    assessment = assess_level(L.SECOND, starts, ends, CAL)
    assert assessment.raised is night
    if night:
        assert "夜间" in assessment.because[-1]


def test_night_is_read_in_shanghai_time_whatever_the_input_zone() -> None:
    # 14:00 UTC is 22:00 in Shanghai.
    starts = datetime(2026, 11, 23, 13, 0, tzinfo=UTC)
    assert not assess_level(L.SECOND, starts, starts + HOUR, CAL).raised
    assert assess_level(L.SECOND, starts, starts + HOUR + SEC, CAL).raised


def test_rest_day_and_night_raise_by_one_only() -> None:
    sunday_night = local(2026, 11, 29, 21)
    assessment = assess_level(L.SECOND, sunday_night, sunday_night + 3 * HOUR, CAL)
    assert assessment.level is L.FIRST
    assert len(assessment.because) == 2


def test_special_stays_special() -> None:
    assert (
        effective_level(L.SPECIAL, local(2026, 11, 29, 9), local(2026, 11, 29, 17), CAL)
        is L.SPECIAL
    )


def test_window_ending_at_midnight_does_not_touch_the_next_day() -> None:
    friday = local(2026, 12, 4, 23)
    assessment = assess_level(L.SECOND, friday, local(2026, 12, 5), CAL)
    assert assessment.because == ("作业时间含夜间（每天 22:00–次日06:00，北京时间）",)
    assessment = assess_level(L.SECOND, friday, local(2026, 12, 5) + SEC, CAL)
    assert "2026-12-05 为公休日" in assessment.because


def test_night_hours_are_configurable() -> None:
    policy = PermitPolicy(night=OpeningWindow(frozenset(range(1, 8)), 20 * 60, 7 * 60))
    assert effective_level(L.SECOND, at(19), at(20), CAL, policy) is L.SECOND
    assert effective_level(L.SECOND, at(19), at(20, 0, 1), CAL, policy) is L.FIRST
    assert effective_level(L.SECOND, at(7), at(9), CAL, policy) is L.SECOND
    assert effective_level(L.SECOND, at(6, 59), at(9), CAL, policy) is L.FIRST


def test_an_empty_window_is_never_raised() -> None:
    assert assess_level(L.SECOND, at(23), at(23), CAL).level is L.SECOND


@pytest.mark.parametrize(
    ("level", "limit"), [(L.SPECIAL, 8 * HOUR), (L.FIRST, 8 * HOUR), (L.SECOND, 72 * HOUR)]
)
def test_validity_limit(level: PermitLevel, limit: timedelta) -> None:
    assert validity_limit(level) == limit
    assert check_window(at(9), at(9) + limit, level) == ()
    (reason,) = check_window(at(9), at(9) + limit + SEC, level)
    assert reason.code is R.VALIDITY_EXCEEDED
    assert level.label in reason.message


def test_validity_limit_is_configurable() -> None:
    policy = PermitPolicy(second_validity=24 * HOUR)
    assert check_window(at(9), at(9) + 24 * HOUR, L.SECOND, policy) == ()
    assert (
        check_window(at(9), at(9) + 24 * HOUR + SEC, L.SECOND, policy)[0].code
        is R.VALIDITY_EXCEEDED
    )


@pytest.mark.parametrize("ends", [at(9), at(8, 59)])
def test_empty_or_backwards_window(ends: datetime) -> None:
    (reason,) = check_window(at(9), ends, L.SECOND)
    assert reason.code is R.WINDOW_INVALID


# --------------------------------------------------------------------------
# Approval authority: every role against every level
# --------------------------------------------------------------------------

#: (level, role) -> may approve, exact role / higher authority allowed,
#: without and with the crowded-place exception.
AUTHORITY = {
    (L.SPECIAL, A.ENTERPRISE_LEADER): (True, True, True, True),
    (L.SPECIAL, A.SAFETY_DEPARTMENT): (False, False, False, False),
    (L.SPECIAL, A.UNIT): (False, False, False, False),
    (L.FIRST, A.ENTERPRISE_LEADER): (False, True, True, True),
    (L.FIRST, A.SAFETY_DEPARTMENT): (True, True, False, False),
    (L.FIRST, A.UNIT): (False, False, False, False),
    (L.SECOND, A.ENTERPRISE_LEADER): (False, True, False, True),
    (L.SECOND, A.SAFETY_DEPARTMENT): (False, True, True, True),
    (L.SECOND, A.UNIT): (True, True, False, False),
}


@pytest.mark.parametrize(("level", "role"), list(AUTHORITY))
def test_authority_matrix(level: PermitLevel, role: ApproverRole) -> None:
    exact_only = PermitPolicy(higher_authority_may_approve=False)
    exact, higher, exact_exc, higher_exc = AUTHORITY[(level, role)]
    assert may_approve(level, role, policy=exact_only) is exact
    assert may_approve(level, role) is higher
    assert may_approve(level, role, crowded_exception=True, policy=exact_only) is exact_exc
    assert may_approve(level, role, crowded_exception=True) is higher_exc
    reasons = check_approver(level, role)
    assert (reasons == ()) is higher
    if reasons:
        assert reasons[0].code is R.APPROVER_NOT_AUTHORISED
        assert required_role(level).label in reasons[0].message


def test_required_roles() -> None:
    assert required_role(L.SPECIAL) is A.ENTERPRISE_LEADER
    assert required_role(L.FIRST) is A.SAFETY_DEPARTMENT
    assert required_role(L.SECOND) is A.UNIT
    assert required_role(L.SPECIAL, True) is A.ENTERPRISE_LEADER
    assert required_role(L.FIRST, True) is A.ENTERPRISE_LEADER
    assert required_role(L.SECOND, True) is A.SAFETY_DEPARTMENT


@pytest.mark.parametrize(("level", "role"), list(AUTHORITY))
def test_approval_step_checks_the_authority(level: PermitLevel, role: ApproverRole) -> None:
    extra = measures("continuous_detector") if level is L.SPECIAL else ()
    c = content(base_level=level, level=level, measures=BASE_MEASURES + extra)
    permit = surveyed(c)
    result = transition(permit, Approve(APPROVER, role), at(8, 20), calendar=CAL)
    if AUTHORITY[(level, role)][1]:
        assert isinstance(result, Accepted)
        assert result.permit.status is S.APPROVED
        assert result.permit.approval is not None and result.permit.approval.role is role
    else:
        assert isinstance(result, Refused)
        assert result.codes == (R.APPROVER_NOT_AUTHORISED,)


# --------------------------------------------------------------------------
# Gas analysis
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lel", "limit"), [(4.0, 0.5), (5.0, 0.5), (100.0, 0.5), (3.99, 0.2), (1.2, 0.2)]
)
def test_gas_limit(lel: float, limit: float) -> None:
    assert gas_limit_percent(lel) == limit


@pytest.mark.parametrize(
    ("lel", "value", "passes"),
    [
        (4.0, 0.5, True),
        (4.0, 0.5000001, False),
        (5.0, 0.0, True),
        (3.99, 0.2, True),
        (3.99, 0.21, False),
        (3.99, 0.5, False),
    ],
)
def test_within_limit(lel: float, value: float, passes: bool) -> None:
    assert within_limit(sample(at(9), value, lel)) is passes
    assert within_limit(reading(at(9), value, lel)) is passes


def gas_codes(samples: list[GasSample], now: datetime, **kw: Any) -> list[PermitReasonCode]:
    kw.setdefault("level", L.FIRST)
    level = kw.pop("level")
    return [r.code for r in check_gas(samples, level, now, **kw)]


def test_starting_needs_a_sample() -> None:
    assert gas_codes([], at(9), starting=True) == [R.GAS_SAMPLE_MISSING]
    # A sample dated later than now cannot have been taken yet.
    assert gas_codes([sample(at(9, 1))], at(9), starting=True) == [R.GAS_SAMPLE_MISSING]


@pytest.mark.parametrize(
    ("age", "stale"), [(timedelta(0), False), (30 * MIN, False), (30 * MIN + SEC, True)]
)
def test_starting_sample_age(age: timedelta, stale: bool) -> None:
    found = gas_codes([sample(at(9) - age)], at(9), starting=True)
    assert found == ([R.GAS_SAMPLE_STALE] if stale else [])
    # Going on (not starting), age alone does not matter within the day.
    assert gas_codes([sample(at(9) - age)], at(9)) == []


def test_over_the_limit_and_stale_are_both_reported() -> None:
    found = gas_codes([sample(at(8), reading=0.6)], at(9), starting=True)
    assert found == [R.GAS_OVER_LIMIT, R.GAS_SAMPLE_STALE]


def test_the_latest_sample_of_each_gas_decides() -> None:
    bad_then_good = [sample(at(8, 40), 0.8), sample(at(8, 50), 0.1)]
    assert gas_codes(bad_then_good, at(9), starting=True) == []
    good_then_bad = [sample(at(8, 40), 0.1), sample(at(8, 50), 0.8)]
    assert gas_codes(good_then_bad, at(9), starting=True) == [R.GAS_OVER_LIMIT]
    # A fresh sample of one gas does not refresh another gas analysed earlier.
    two_gases = [sample(at(8), gas="氢气", lel=4.0), sample(at(8, 50), gas="甲烷")]
    reasons = check_gas(two_gases, L.FIRST, at(9), starting=True)
    assert [r.code for r in reasons] == [R.GAS_SAMPLE_STALE]
    assert "氢气" in reasons[0].message and "甲烷" not in reasons[0].message


def test_latest_per_gas_ignores_case_and_the_future() -> None:
    readings = [sample(at(8), gas="CO"), sample(at(8, 30), gas="co "), sample(at(10), gas="CO")]
    assert [s.taken_at for s in latest_per_gas(readings, at(9))] == [at(8, 30)]


@pytest.mark.parametrize(
    ("level", "limit"),
    [(L.SPECIAL, 30 * MIN), (L.FIRST, 30 * MIN), (L.SECOND, 60 * MIN)],
)
def test_pause_retest_boundaries(level: PermitLevel, limit: timedelta) -> None:
    paused = at(10)
    old = [sample(at(8, 45))]
    assert gas_codes(old, paused + limit, level=level, interrupted_since=paused) == []
    assert gas_codes(old, paused + limit + SEC, level=level, interrupted_since=paused) == [
        R.GAS_RETEST_AFTER_PAUSE
    ]
    # A sample taken during the pause, fresh at the resumption, passes.
    retested = [*old, sample(paused + limit - 10 * MIN)]
    assert gas_codes(retested, paused + limit + SEC, level=level, interrupted_since=paused) == []
    # ...but it must be fresh as when starting.
    late = paused + limit + 31 * MIN
    assert gas_codes(retested, late, level=level, interrupted_since=paused) == [R.GAS_SAMPLE_STALE]


def test_daily_retest() -> None:
    yesterday_late = local(2026, 11, 22, 23, 50)
    assert gas_codes([sample(yesterday_late)], at(0, 10)) == [R.GAS_DAILY_RETEST]
    assert gas_codes([sample(yesterday_late)], at(0, 10), starting=True) == [R.GAS_DAILY_RETEST]
    # Too old to start with: reported once, as stale.
    assert gas_codes([sample(local(2026, 11, 22, 23, 30))], at(0, 10), starting=True) == [
        R.GAS_SAMPLE_STALE
    ]
    assert gas_codes([sample(at(0))], at(23, 59)) == []


def test_sample_recording_checks() -> None:
    assert check_sample(sample(at(9)), at(9)) == ()
    assert [r.code for r in check_sample(sample(at(9) + SEC), at(9))] == [R.GAS_SAMPLE_IN_FUTURE]
    spot = HotSpot(HOT)
    near = dataclasses.replace(sample(at(9)), position=north_of(HOT, 9.99))
    far = dataclasses.replace(sample(at(9)), position=north_of(HOT, 10.5))
    assert check_sample(near, at(9), spot) == ()
    assert [r.code for r in check_sample(far, at(9), spot)] == [R.GAS_SAMPLE_TOO_FAR]


@pytest.mark.parametrize(
    ("age", "value", "expected"),
    [
        (timedelta(0), 0.05, []),
        (2 * MIN, 0.05, []),
        (2 * MIN + SEC, 0.05, [R.MONITOR_STALE]),
        (MIN, 0.6, [R.MONITOR_OVER_LIMIT]),
        (3 * MIN, 0.6, [R.MONITOR_STALE, R.MONITOR_OVER_LIMIT]),
    ],
)
def test_continuous_monitor(age: timedelta, value: float, expected: list[PermitReasonCode]) -> None:
    assert [r.code for r in check_monitor([reading(at(9) - age, value)], at(9))] == expected


def test_continuous_monitor_missing() -> None:
    assert [r.code for r in check_monitor([], at(9))] == [R.MONITOR_MISSING]
    assert [r.code for r in check_monitor([reading(at(9, 1))], at(9))] == [R.MONITOR_MISSING]


def test_monitor_judges_each_gas() -> None:
    feed = [reading(at(8, 50), gas="氢气", lel=4.0), reading(at(8, 59, 30))]
    reasons = check_monitor(feed, at(9))
    assert [r.code for r in reasons] == [R.MONITOR_STALE]
    assert "氢气" in reasons[0].message


# --------------------------------------------------------------------------
# Fire watch
# --------------------------------------------------------------------------


def checked(*times: datetime, by: Person = WATCH) -> list[FireWatchCheckIn]:
    return [FireWatchCheckIn(t, by) for t in times]


def test_check_in_due_and_missed() -> None:
    ins = checked(at(9), at(9, 20))
    assert next_check_in_due(ins, WATCH, 30 * MIN, at(9, 30)) == at(9, 50)
    assert not missed_check_in(ins, WATCH, 30 * MIN, at(9, 50))
    assert missed_check_in(ins, WATCH, 30 * MIN, at(9, 50, 1))
    assert next_check_in_due([], WATCH, 30 * MIN, at(9)) is None
    assert missed_check_in([], WATCH, 30 * MIN, at(9))


def test_only_the_named_watch_counts() -> None:
    ins = checked(at(9)) + checked(at(9, 40), by=STRANGER)
    assert missed_check_in(ins, WATCH, 30 * MIN, at(9, 45))
    # Check-ins later than now are not seen yet.
    assert missed_check_in(checked(at(10)), WATCH, 30 * MIN, at(9, 45))


def test_watch_present() -> None:
    assert check_watch_present(checked(at(8, 30)), WATCH, 30 * MIN, at(9)) == ()
    (stale,) = check_watch_present(checked(at(8, 30)), WATCH, 30 * MIN, at(9, 0, 1))
    assert stale.code is R.FIRE_WATCH_NOT_CHECKED_IN
    (never,) = check_watch_present([], WATCH, 30 * MIN, at(9))
    assert never.code is R.FIRE_WATCH_NOT_CHECKED_IN and "尚未到岗" in never.message


def test_recording_a_check_in() -> None:
    spot = HotSpot(HOT)
    good = FireWatchCheckIn(at(9), WATCH, north_of(HOT, 50), PHOTO)
    assert check_check_in(good, WATCH, spot) == ()
    far = FireWatchCheckIn(at(9), WATCH, north_of(HOT, 51), PHOTO)
    assert [r.code for r in check_check_in(far, WATCH, spot)] == [R.FIRE_WATCH_TOO_FAR]
    bare = FireWatchCheckIn(at(9), STRANGER)
    assert [r.code for r in check_check_in(bare, WATCH, spot)] == [R.WRONG_PERSON, R.PHOTO_MISSING]
    no_photo_rule = PermitPolicy(photos_required_for=frozenset())
    assert check_check_in(FireWatchCheckIn(at(9), WATCH), WATCH, spot, no_photo_rule) == ()


def test_continuous_presence() -> None:
    ins = checked(at(9), at(9, 30), at(10, 10), at(10, 30))
    assert continuous_presence_since(ins, WATCH, 30 * MIN, at(10, 40)) == at(10, 10)
    assert continuous_presence_since(ins, WATCH, 40 * MIN, at(10, 40)) == at(9)
    assert continuous_presence_since(ins, WATCH, 30 * MIN, at(11, 0, 1)) is None


@pytest.mark.parametrize(
    ("dispose_at", "ok"), [(at(10, 30), True), (at(10, 29, 59), False), (at(10, 45), True)]
)
def test_watch_after_work_thirty_minutes(dispose_at: datetime, ok: bool) -> None:
    ins = checked(at(9, 50), at(10, 15))
    reasons = check_watch_after_work(ins, WATCH, 30 * MIN, at(10), dispose_at)
    assert (reasons == ()) is ok
    if not ok:
        assert reasons[0].code is R.WATCH_AFTER_WORK_TOO_SHORT


def test_an_absence_after_the_work_restarts_the_watch() -> None:
    ins = checked(at(9, 50), at(10, 40))  # away from 10:20 to 10:40
    (reason,) = check_watch_after_work(ins, WATCH, 30 * MIN, at(10), at(11, 5))
    assert reason.code is R.WATCH_AFTER_WORK_TOO_SHORT
    assert "曾离岗" in reason.message
    assert check_watch_after_work(ins, WATCH, 30 * MIN, at(10), at(11, 10)) == ()


def test_watch_after_work_is_configurable() -> None:
    policy = PermitPolicy(watch_after_work=60 * MIN)
    ins = checked(at(9, 50), at(10, 20), at(10, 40))
    assert check_watch_after_work(ins, WATCH, 30 * MIN, at(10), at(10, 59, 59), policy)
    assert check_watch_after_work(ins, WATCH, 30 * MIN, at(10), at(11), policy) == ()


# --------------------------------------------------------------------------
# Crowded places
# --------------------------------------------------------------------------

ALL_DAYS = frozenset(range(1, 8))
HOSPITAL = PlaceFacts(
    enterprise_id=ENTERPRISE,
    sector="人员密集场所",
    area_path=AREA,
    crowded_subtype="医院",
    opening_hours=(OpeningWindow(ALL_DAYS, 8 * 60, 20 * 60),),
)
MALL = dataclasses.replace(HOSPITAL, crowded_subtype="商场（市场）")
EXCEPTION = CrowdedPlaceException(
    risk_assessment=StepRecord(at(7), LEADER, PHOTO, "风险评估报告 2026-11"),
    fire_separation=StepRecord(at(7, 30), LEAD, PHOTO, "防火板隔离"),
)


def crowded(place: PlaceFacts = HOSPITAL, **changes: Any) -> PermitContent:
    """A 二级 job in a crowded place, at night after closing (raised to 一级)."""
    changes.setdefault("starts_at", at(20))
    changes.setdefault("ends_at", at(23))
    changes.setdefault("level", L.FIRST)
    return content(place=place, base_level=L.SECOND, **changes)


def crowded_codes(c: PermitContent, **kw: Any) -> list[PermitReasonCode]:
    return [r.code for r in check_crowded_window(c, **kw)]


def test_crowded_window_outside_opening_hours() -> None:
    assert crowded_codes(crowded()) == []  # opens 08:00-20:00: 20:00 is closed
    assert crowded_codes(crowded(starts_at=at(19, 59, 59))) == [R.CROWDED_OPENING_HOURS]
    assert crowded_codes(crowded(starts_at=at(5), ends_at=at(8))) == []
    assert crowded_codes(crowded(starts_at=at(5), ends_at=at(8, 0, 1))) == [R.CROWDED_OPENING_HOURS]


def test_crowded_window_margin() -> None:
    policy = PermitPolicy(opening_hours_margin=30 * MIN)
    assert crowded_codes(crowded(), policy=policy) == [R.CROWDED_OPENING_HOURS]
    assert crowded_codes(crowded(starts_at=at(20, 30)), policy=policy) == []


def test_crowded_hours_unknown() -> None:
    unknown = dataclasses.replace(HOSPITAL, opening_hours=None)
    assert crowded_codes(crowded(unknown)) == [R.CROWDED_HOURS_UNKNOWN]
    lenient = PermitPolicy(crowded_hours_unknown_denies=False)
    assert crowded_codes(crowded(unknown), policy=lenient) == []
    assert [r.code for r in crowded_place_allows(crowded(unknown), at(21), False)] == [
        R.CROWDED_HOURS_UNKNOWN
    ]
    assert crowded_place_allows(crowded(unknown), at(21), False, lenient) == ()
    # Never open to the public: recorded as no windows.
    never = dataclasses.replace(HOSPITAL, opening_hours=())
    assert crowded_codes(crowded(never, starts_at=at(10), ends_at=at(12))) == []


def test_crowded_exception_path() -> None:
    daytime: dict[str, Any] = {"starts_at": at(10), "ends_at": at(12), "level": L.SECOND}
    assert crowded_codes(crowded(**daytime, crowded_exception=EXCEPTION)) == []
    assert crowded_codes(crowded(MALL, **daytime, crowded_exception=EXCEPTION)) == [
        R.CROWDED_EXCEPTION_NOT_ALLOWED,
        R.CROWDED_OPENING_HOURS,
    ]
    incomplete = CrowdedPlaceException(risk_assessment=EXCEPTION.risk_assessment)
    reasons = check_crowded_window(crowded(**daytime, crowded_exception=incomplete))
    assert [r.code for r in reasons] == [R.CROWDED_EXCEPTION_INCOMPLETE, R.CROWDED_OPENING_HOURS]
    assert "防火分隔" in reasons[0].message and "风险评估" not in reasons[0].message


def test_not_a_crowded_place_has_no_crowded_rules() -> None:
    assert check_crowded_window(content(starts_at=at(10), ends_at=at(12))) == ()
    assert crowded_place_allows(BASE, at(10), False) == ()


def test_crowded_place_allows_now() -> None:
    c = crowded()
    assert crowded_place_allows(c, at(20), False) == ()
    assert [r.code for r in crowded_place_allows(c, at(19, 59), False)] == [R.CROWDED_OPENING_HOURS]
    assert crowded_place_allows(c, at(19, 59), True) == ()
    # The exception does not help where the sub-type may not take it.
    assert crowded_place_allows(crowded(MALL), at(19, 59), True) != ()


def test_notices() -> None:
    entrance = NoticeConfirmation(NoticeLocation.ENTRANCE, LEAD, at(8), PHOTO)
    site = NoticeConfirmation(NoticeLocation.SITE, LEAD, at(8), PHOTO)
    assert check_notices([entrance, site], at(9)) == ()
    (reason,) = check_notices([entrance], at(9))
    assert reason.code is R.NOTICE_MISSING and "作业现场" in reason.message
    assert "主要出入口" not in reason.message
    (reason,) = check_notices([dataclasses.replace(entrance, photos=())], at(9))
    assert "主要出入口和作业现场" in reason.message
    assert check_notices([entrance, dataclasses.replace(site, at=at(9, 1))], at(9)) != ()


# --------------------------------------------------------------------------
# The content
# --------------------------------------------------------------------------


def content_codes(c: PermitContent, **kw: Any) -> list[PermitReasonCode]:
    return [r.code for r in check_content(c, CAL, **kw)]


def test_baseline_content_is_fine() -> None:
    assert check_content(BASE, CAL) == ()


def test_missing_fields_in_one_reason() -> None:
    c = content(place_description=" ", methods=frozenset(), welders=(), hazards=("",), measures=())
    reasons = check_content(c, CAL)
    assert reasons[0].code is R.MISSING_FIELD
    for field in ("动火地点", "动火方式", "动火人", "危害辨识", "安全措施"):
        assert field in reasons[0].message
    # Machines are needed for machine methods only.
    other = content(
        methods=frozenset({HotWorkMethod.OTHER}),
        machines=(),
        measures=measures("extinguishers", "risk_analysis"),
    )
    assert content_codes(other) == []
    assert content_codes(content(machines=())) == [R.MISSING_FIELD]


def test_level_must_be_raised_on_rest_days() -> None:
    sunday = {"starts_at": local(2026, 11, 29, 9), "ends_at": local(2026, 11, 29, 17)}
    reasons = check_content(content(**sunday), CAL)
    assert [r.code for r in reasons] == [R.LEVEL_NOT_RAISED, R.MEASURE_MISSING]
    assert "2026-11-29 为公休日" in reasons[0].message and "特级" in reasons[0].message
    raised = content(
        level=L.SPECIAL, measures=BASE_MEASURES + measures("continuous_detector"), **sunday
    )
    assert content_codes(raised) == []


def test_level_not_below_the_base() -> None:
    reasons = check_content(content(level=L.SECOND), CAL)
    assert [r.code for r in reasons] == [R.LEVEL_NOT_RAISED]
    assert "不得低于" in reasons[0].message


def test_a_stricter_level_than_needed_is_fine() -> None:
    c = content(base_level=L.SECOND, level=L.FIRST)
    assert content_codes(c) == []


def test_validity_follows_the_raised_level() -> None:
    # 二级 on a swapped Saturday: still 二级, 72 h allowed.
    swapped = local(2026, 11, 28, 7)
    assert (
        content_codes(
            content(
                base_level=L.SECOND, level=L.SECOND, starts_at=swapped, ends_at=swapped + 14 * HOUR
            )
        )
        == []
    )
    # 二级 on a Sunday is 一级: 8 h at most, reported with the missing raise.
    sunday = local(2026, 11, 29, 7)
    found = content_codes(
        content(base_level=L.SECOND, level=L.SECOND, starts_at=sunday, ends_at=sunday + 9 * HOUR)
    )
    assert found == [R.LEVEL_NOT_RAISED, R.VALIDITY_EXCEEDED]


def test_machines_rules() -> None:
    twice = BASE.machines * 2
    assert content_codes(content(machines=twice)) == [R.MACHINE_DUPLICATED]
    laser = (PermitMachine(MACHINE, "laser", ENTERPRISE, "WG0000001"),)
    assert content_codes(content(machines=laser)) == [R.UNKNOWN_PROCESS]
    cutter = (*BASE.machines, PermitMachine(OTHER_MACHINE, "gas_cutting", ENTERPRISE, "WG0000002"))
    reasons = check_content(content(machines=cutter), CAL)
    assert [r.code for r in reasons] == [R.METHOD_MISMATCH]
    assert "WG0000002" in reasons[0].message and "气割" in reasons[0].message


def test_gas_method_needs_the_cylinder_measure() -> None:
    gas = content(
        methods=frozenset({HotWorkMethod.GAS_WELDING_CUTTING}),
        machines=(PermitMachine(MACHINE, "gas_cutting", ENTERPRISE),),
    )
    reasons = check_content(gas, CAL)
    assert [r.code for r in reasons] == [R.MEASURE_MISSING]
    assert "乙炔" in reasons[0].message
    fixed = dataclasses.replace(
        gas, measures=measures("extinguishers", "risk_analysis", "gas_cylinders")
    )
    assert content_codes(fixed) == []


def test_mandatory_measure_marked_not_applicable() -> None:
    marked = tuple(
        dataclasses.replace(m, applicable=m.code != "extinguishers") for m in BASE_MEASURES
    )
    assert content_codes(content(measures=marked)) == [R.MEASURE_MISSING]


def welder_with(
    *certificates: HeldCertificate, welder_id: int = WELDER_ID
) -> tuple[PermitWelder, ...]:
    return (PermitWelder(welder_id, "张伟", certificates),)


@pytest.mark.parametrize(
    ("certificates", "expected"),
    [
        ((), [R.CERT_MISSING]),
        ((cert(holder_welder_id=OTHER_WELDER_ID),), [R.CERT_HOLDER_MISMATCH]),
        ((cert(), cert(id=501, holder_welder_id=OTHER_WELDER_ID)), [R.CERT_HOLDER_MISMATCH]),
        ((cert(kind=SE, item="金属焊接操作"),), [R.CERT_NOT_FIT]),
        ((cert(item="钎焊作业"),), [R.CERT_NOT_FIT]),
        ((cert(status=CertificateStatus.EXPIRED),), [R.CERT_NOT_USABLE]),
        ((cert(status=CertificateStatus.REVOKED),), [R.CERT_NOT_USABLE]),
        ((cert(status=CertificateStatus.REVIEW_OVERDUE),), [R.CERT_NOT_USABLE]),
        ((cert(status=CertificateStatus.PENDING_VERIFICATION),), [R.CERT_NOT_USABLE]),
        (
            (
                cert(
                    status=CertificateStatus.PENDING_VERIFICATION,
                    confirmed_by_enterprise_id=ENTERPRISE,
                ),
            ),
            [],
        ),
        (
            (cert(status=CertificateStatus.PENDING_VERIFICATION, confirmed_by_enterprise_id=99),),
            [R.CERT_NOT_USABLE],
        ),
        ((cert(status=CertificateStatus.EXPIRING),), []),
        ((cert(status=CertificateStatus.EXPIRED), cert(id=501)), []),
    ],
)
def test_certificate_fit(
    certificates: tuple[HeldCertificate, ...], expected: list[PermitReasonCode]
) -> None:
    assert [
        r.code for r in check_certificates(content(welders=welder_with(*certificates)))
    ] == expected


def test_certificate_context_follows_the_place() -> None:
    site = dataclasses.replace(PLACE, sector="施工工地")
    construction = welder_with(cert(kind=CO, item="建筑焊工"))
    assert check_certificates(content(place=site, welders=construction)) == ()
    assert check_certificates(content(welders=construction))[0].code is R.CERT_NOT_FIT
    boiler = dataclasses.replace(PLACE, special_equipment=True)
    reasons = check_certificates(content(place=boiler))
    assert [r.code for r in reasons] == [R.CERT_NOT_FIT]
    assert "金属焊接操作" in reasons[0].message
    assert (
        check_certificates(
            content(place=boiler, welders=welder_with(cert(kind=SE, item="金属焊接操作")))
        )
        == ()
    )


def test_a_contractor_machine_owner_may_confirm_a_pending_certificate() -> None:
    pending = cert(
        status=CertificateStatus.PENDING_VERIFICATION, confirmed_by_enterprise_id=CONTRACTOR
    )
    machines = (PermitMachine(MACHINE, "manual_arc", CONTRACTOR),)
    assert check_certificates(content(welders=welder_with(pending), machines=machines)) == ()


def test_each_welder_fits_every_machine() -> None:
    two = (*BASE.machines, PermitMachine(OTHER_MACHINE, "brazing", ENTERPRISE, "WG0000002"))
    mixed = content(
        machines=two, methods=frozenset({HotWorkMethod.ELECTRIC_WELDING, HotWorkMethod.BRAZING})
    )
    reasons = check_certificates(mixed)
    assert [r.code for r in reasons] == [R.CERT_NOT_FIT]
    assert "钎焊" in reasons[0].message
    lenient = PermitPolicy(each_welder_fits_every_machine=False)
    assert check_certificates(mixed, lenient) == ()
    both = welder_with(cert(), cert(id=501, item="钎焊作业"))
    assert check_certificates(dataclasses.replace(mixed, welders=both)) == ()


def test_duplicated_welder() -> None:
    twice = BASE.welders * 2
    assert [r.code for r in check_certificates(content(welders=twice))] == [R.WELDER_DUPLICATED]


def test_fire_watch_rules() -> None:
    assert content_codes(content(fire_watch=FireWatch(WATCH, trained=False))) == [
        R.FIRE_WATCH_NOT_TRAINED
    ]
    assert content_codes(content(fire_watch=FireWatch(WELDER_PERSON, trained=True))) == [
        R.FIRE_WATCH_CONFLICT
    ]
    assert content_codes(content(fire_watch=FireWatch(LEAD, trained=True))) == [
        R.FIRE_WATCH_CONFLICT
    ]


@pytest.mark.parametrize(
    ("interval", "ok"),
    [(5 * MIN, True), (5 * MIN - SEC, False), (60 * MIN, True), (61 * MIN, False)],
)
def test_check_in_interval_bounds(interval: timedelta, ok: bool) -> None:
    assert (content_codes(content(check_in_interval=interval)) == []) is ok


def test_every_content_problem_is_reported() -> None:
    c = content(
        level=L.SECOND,
        ends_at=at(9) + 9 * HOUR,
        machines=BASE.machines * 2,
        welders=welder_with(cert(item="钎焊作业")),
        fire_watch=FireWatch(LEAD, trained=False),
        check_in_interval=2 * HOUR,
        measures=(),
    )
    assert content_codes(c) == [
        R.MISSING_FIELD,
        R.LEVEL_NOT_RAISED,
        R.VALIDITY_EXCEEDED,
        R.MACHINE_DUPLICATED,
        R.CERT_NOT_FIT,
        R.FIRE_WATCH_NOT_TRAINED,
        R.FIRE_WATCH_CONFLICT,
        R.CHECK_IN_INTERVAL_INVALID,
        R.MEASURE_MISSING,
    ]


# --------------------------------------------------------------------------
# The workflow: the happy path
# --------------------------------------------------------------------------


def test_the_five_steps() -> None:
    p = new_permit(BASE)
    assert p.status is S.DRAFT
    p = submitted()
    assert p.status is S.SUBMITTED and p.submitted == StepRecord(at(8), LEAD)
    p = surveyed()
    assert p.status is S.SUBMITTED
    assert p.site_survey is not None and p.site_survey.by == APPROVER
    p = approved()
    assert p.status is S.APPROVED
    p = cleared()
    assert p.status is S.CLEARED and p.clearance == StepRecord(at(8, 30), LEAD, PHOTO)
    p = started()
    assert p.status is S.IN_PROGRESS and p.started is not None and p.started.at == at(9)
    p = apply(p, CheckIn(WATCH, HOT, PHOTO), at(9, 20))
    p = apply(p, CheckIn(WATCH, HOT, PHOTO), at(9, 45))
    assert p.status is S.IN_PROGRESS
    before_end = p
    p = apply(p, EndWork(WELDER_PERSON), at(10))
    assert p.status is S.WATCHING and p.work_ended is not None and p.work_ended.at == at(10)
    assert machines_to_lock(before_end, p) == frozenset({MACHINE})
    p = apply(p, CheckIn(WATCH, HOT, PHOTO), at(10, 15))
    p = apply(p, Dispose(WATCH, no_embers=True, photos=PHOTO), at(10, 30))
    assert p.status is S.DISPOSED
    p = apply(p, Close(LEAD), at(10, 35))
    assert p.status is S.CLOSED and p.status.terminal
    assert [c.at for c in p.check_ins] == [at(8, 50), at(9, 20), at(9, 45), at(10, 15)]


def test_machines_to_lock_only_when_leaving_in_progress() -> None:
    p = started()
    assert machines_to_lock(cleared(), p) == frozenset()
    paused = apply(p, PauseWork(LEAD), at(10))
    assert machines_to_lock(p, paused) == frozenset({MACHINE})
    assert machines_to_lock(paused, paused) == frozenset()


# --------------------------------------------------------------------------
# Steps out of order: every event in every status
# --------------------------------------------------------------------------

BEFORE_WORK = {S.DRAFT, S.SUBMITTED, S.APPROVED, S.CLEARED}
STARTED = {S.IN_PROGRESS, S.PAUSED, S.SUSPENDED}
PREPARING = {S.SUBMITTED, S.APPROVED, S.CLEARED}

EVENTS: dict[type[Any], PermitEvent] = {
    Submit: Submit(LEAD),
    Edit: Edit(BASE, LEAD),
    RecordSiteSurvey: RecordSiteSurvey(APPROVER, PHOTO),
    ConfirmRisks: ConfirmRisks(LEAD, PHOTO),
    Approve: Approve(APPROVER, A.SAFETY_DEPARTMENT),
    Reject: Reject(APPROVER, "措施不全"),
    RecordGasSample: RecordGasSample(sample(at(9, 5))),
    CheckIn: CheckIn(WATCH, HOT, PHOTO),
    ConfirmMeasure: ConfirmMeasure("purged", LEAD),
    ConfirmNotice: ConfirmNotice(NoticeLocation.SITE, LEAD, PHOTO),
    Clear: Clear(LEAD, PHOTO),
    StartWork: StartWork(LEAD, PHOTO),
    PauseWork: PauseWork(LEAD),
    ResumeWork: ResumeWork(LEAD),
    Suspend: Suspend(SuspendCause.ORDERED, APPROVER),
    Reinstate: Reinstate(APPROVER, A.SAFETY_DEPARTMENT),
    EndWork: EndWork(LEAD),
    Dispose: Dispose(WATCH, no_embers=True, photos=PHOTO),
    Close: Close(LEAD),
    Cancel: Cancel(LEAD),
    Expire: Expire(),
}

#: The specification of the state diagram, written out independently of the code.
EXPECTED_ALLOWED: dict[type[Any], set[PermitStatus]] = {
    Submit: {S.DRAFT},
    Edit: {S.DRAFT, S.SUBMITTED},
    RecordSiteSurvey: {S.SUBMITTED},
    ConfirmRisks: {S.SUBMITTED},
    Approve: {S.SUBMITTED},
    Reject: {S.SUBMITTED},
    RecordGasSample: PREPARING | STARTED,
    CheckIn: {S.APPROVED, S.CLEARED, S.WATCHING} | STARTED,
    ConfirmMeasure: PREPARING,
    ConfirmNotice: PREPARING,
    Clear: {S.APPROVED},
    StartWork: {S.CLEARED},
    PauseWork: {S.IN_PROGRESS},
    ResumeWork: {S.PAUSED},
    Suspend: {S.IN_PROGRESS, S.PAUSED},
    Reinstate: {S.SUSPENDED},
    EndWork: STARTED,
    Dispose: {S.WATCHING},
    Close: {S.DISPOSED},
    Cancel: BEFORE_WORK,
    Expire: BEFORE_WORK | STARTED,
}


def test_every_event_type_is_specified() -> None:
    assert set(EVENTS) == set(EXPECTED_ALLOWED) == set(typing.get_args(PermitEvent))
    for event_type, statuses in EXPECTED_ALLOWED.items():
        assert allowed_from(event_type) == statuses, event_type


PERMITS_BY_STATUS: dict[PermitStatus, Permit] = {}


def permit_in(status: PermitStatus) -> Permit:
    if status not in PERMITS_BY_STATUS:
        PERMITS_BY_STATUS[status] = in_status(status)
    return PERMITS_BY_STATUS[status]


@pytest.mark.parametrize("status", list(S))
@pytest.mark.parametrize("event_type", list(EVENTS), ids=lambda t: t.__name__)
def test_steps_out_of_order(status: PermitStatus, event_type: type[Any]) -> None:
    permit = permit_in(status)
    result = transition(permit, EVENTS[event_type], at(9, 10), calendar=CAL)
    if status in EXPECTED_ALLOWED[event_type]:
        assert not (isinstance(result, Refused) and R.STEP_OUT_OF_ORDER in result.codes)
        return
    assert isinstance(result, Refused)
    if event_type is Edit and permit.approval is not None:
        assert result.codes == (R.EDIT_AFTER_APPROVAL,)
        assert "重新办理" in result.reasons[0].message
    else:
        assert result.codes == (R.STEP_OUT_OF_ORDER,)
        assert status.label in result.reasons[0].message


def test_edit_after_approval_in_every_later_status() -> None:
    for status in (
        S.APPROVED,
        S.CLEARED,
        S.IN_PROGRESS,
        S.PAUSED,
        S.SUSPENDED,
        S.WATCHING,
        S.DISPOSED,
        S.CLOSED,
        S.EXPIRED,
    ):
        assert codes(permit_in(status), Edit(content(hazards=("新增",)), LEAD), at(9, 10)) == {
            R.EDIT_AFTER_APPROVAL
        }


# --------------------------------------------------------------------------
# Submission, edits, rejection
# --------------------------------------------------------------------------


def test_submission_reports_every_content_problem() -> None:
    c = content(fire_watch=FireWatch(WATCH, trained=False), measures=measures("purged"))
    assert codes(new_permit(c), Submit(LEAD), at(8)) == {
        R.FIRE_WATCH_NOT_TRAINED,
        R.MEASURE_MISSING,
    }


def test_submission_after_the_window() -> None:
    assert codes(new_permit(BASE), Submit(LEAD), at(17)) == {R.WINDOW_PASSED}
    assert apply(new_permit(BASE), Submit(LEAD), at(16, 59, 59)).status is S.SUBMITTED


def test_submission_refuses_a_double_booked_machine() -> None:
    other = MachineClaim(901, "DH-2026-0002", frozenset({MACHINE}), at(16), at(20))
    refused = refuse(new_permit(BASE), Submit(LEAD), at(8), other_claims=[other])
    assert refused.codes == (R.MACHINE_DOUBLE_BOOKED,)
    assert (
        "DH-2026-0002" in refused.reasons[0].message and "WG0000001" in refused.reasons[0].message
    )
    touching = dataclasses.replace(other, starts_at=at(17))
    assert (
        apply(new_permit(BASE), Submit(LEAD), at(8), other_claims=[touching]).status is S.SUBMITTED
    )


def test_edit_in_draft_and_submitted() -> None:
    changed = content(hazards=("动火点下方有电缆沟",))
    p = apply(new_permit(BASE), Edit(changed, LEAD), at(7))
    assert p.status is S.DRAFT and p.content == changed
    p = apply(surveyed(), Edit(changed, LEAD), at(8, 16))
    assert p.status is S.DRAFT and p.site_survey is None and p.risk_confirmation is None
    with pytest.raises(ValueError):
        transition(p, Edit(content(id=901), LEAD), at(8, 17), calendar=CAL)


def test_reject_returns_to_draft() -> None:
    p = apply(surveyed(), Reject(APPROVER, "气体分析点不足"), at(8, 20))
    assert p.status is S.DRAFT
    assert p.site_survey is None and p.risk_confirmation is None and p.submitted is None
    assert p.rejections[-1].note == "气体分析点不足"
    p = apply(p, Submit(LEAD), at(8, 25))
    assert codes(p, Approve(APPROVER, A.SAFETY_DEPARTMENT), at(8, 30)) == {
        R.SITE_SURVEY_MISSING,
        R.RISK_CONFIRMATION_MISSING,
    }


# --------------------------------------------------------------------------
# Approval: the double check
# --------------------------------------------------------------------------


def test_approval_needs_the_survey_and_the_risk_confirmation() -> None:
    assert codes(submitted(), Approve(APPROVER, A.SAFETY_DEPARTMENT), at(8, 20)) == {
        R.SITE_SURVEY_MISSING,
        R.RISK_CONFIRMATION_MISSING,
    }


def test_the_survey_is_the_approvers_own() -> None:
    p = surveyed(surveyor=STRANGER)
    refused = refuse(p, Approve(APPROVER, A.SAFETY_DEPARTMENT), at(8, 20))
    assert refused.codes == (R.WRONG_PERSON,)
    assert "路人" in refused.reasons[0].message


def test_the_risks_are_confirmed_by_the_lead() -> None:
    p = apply(submitted(), RecordSiteSurvey(APPROVER, PHOTO), at(8, 10))
    assert codes(p, ConfirmRisks(STRANGER, PHOTO), at(8, 15)) == {R.WRONG_PERSON}
    assert apply(p, ConfirmRisks(LEAD), at(8, 15)).risk_confirmation is not None  # no photo


def test_survey_needs_a_photo() -> None:
    assert codes(submitted(), RecordSiteSurvey(APPROVER), at(8, 10)) == {R.PHOTO_MISSING}


def test_approver_is_not_the_lead_or_a_welder() -> None:
    for who in (LEAD, WELDER_PERSON):
        p = apply(submitted(), RecordSiteSurvey(who, PHOTO), at(8, 10))
        p = apply(p, ConfirmRisks(LEAD, PHOTO), at(8, 15))
        assert codes(p, Approve(who, A.SAFETY_DEPARTMENT), at(8, 20)) == {R.SAME_PERSON}


def test_approval_rechecks_content_and_bookings() -> None:
    p = surveyed()
    other = MachineClaim(901, "DH-2026-0002", frozenset({MACHINE}), at(8), at(10))
    assert codes(p, Approve(APPROVER, A.SAFETY_DEPARTMENT), at(8, 20), other_claims=[other]) == {
        R.MACHINE_DOUBLE_BOOKED
    }
    # The calendar changed since submission: today became a holiday.
    holiday = WorkCalendar(holidays=frozenset({date(2026, 11, 23)}))
    assert codes(p, Approve(APPROVER, A.SAFETY_DEPARTMENT), at(8, 20), calendar=holiday) == {
        R.LEVEL_NOT_RAISED,
        R.MEASURE_MISSING,  # 特级 needs the continuous detector
    }


def test_approval_photos_when_the_policy_asks() -> None:
    policy = PermitPolicy(photos_required_for=frozenset({Step.APPROVAL}))
    assert codes(surveyed(), Approve(APPROVER, A.SAFETY_DEPARTMENT), at(8, 20), policy=policy) == {
        R.PHOTO_MISSING
    }


def test_every_approval_problem_at_once() -> None:
    p = apply(submitted(), RecordSiteSurvey(LEAD, PHOTO), at(8, 10))
    assert codes(p, Approve(APPROVER, A.UNIT), at(8, 20)) == {
        R.WRONG_PERSON,
        R.RISK_CONFIRMATION_MISSING,
        R.APPROVER_NOT_AUTHORISED,
    }


def test_crowded_exception_needs_the_higher_authority() -> None:
    c = crowded(starts_at=at(10), ends_at=at(12), level=L.SECOND, crowded_exception=EXCEPTION)
    p = surveyed(c)
    assert codes(p, Approve(APPROVER, A.UNIT), at(8, 20)) == {R.APPROVER_NOT_AUTHORISED}
    assert apply(p, Approve(APPROVER, A.SAFETY_DEPARTMENT), at(8, 20)).status is S.APPROVED


def test_clearance_needs_a_photo() -> None:
    assert codes(approved(), Clear(LEAD), at(8, 30)) == {R.PHOTO_MISSING}


def test_steps_after_the_window_are_refused() -> None:
    assert codes(surveyed(), Approve(APPROVER, A.SAFETY_DEPARTMENT), at(17)) == {R.PERMIT_EXPIRED}
    assert codes(approved(), Clear(LEAD, PHOTO), at(17)) == {R.PERMIT_EXPIRED}
    assert codes(ready(), StartWork(LEAD, PHOTO), at(17)) == {R.PERMIT_EXPIRED}


# --------------------------------------------------------------------------
# Measures, notices, start
# --------------------------------------------------------------------------


def test_confirming_an_unknown_measure() -> None:
    assert codes(cleared(), ConfirmMeasure("gas_cylinders", LEAD), at(8, 35)) == {R.UNKNOWN_MEASURE}
    marked = content(
        measures=(*BASE_MEASURES, SafetyMeasure("spark_shield", "高处防火花", applicable=False))
    )
    assert codes(cleared(marked), ConfirmMeasure("spark_shield", LEAD), at(8, 35)) == {
        R.UNKNOWN_MEASURE
    }


def test_notice_needs_a_photo() -> None:
    assert codes(cleared(), ConfirmNotice(NoticeLocation.ENTRANCE, LEAD), at(8, 40)) == {
        R.PHOTO_MISSING
    }


def test_start_in_the_window_only() -> None:
    p = ready(content(starts_at=at(9, 30)))
    refused = refuse(p, StartWork(LEAD, PHOTO), at(9, 10))
    assert refused.codes == (R.NOT_YET_VALID,)
    assert "2026-11-23 09:30" in refused.reasons[0].message
    p = apply(p, RecordGasSample(sample(at(9, 20))), at(9, 20))
    p = apply(p, CheckIn(WATCH, HOT, PHOTO), at(9, 20))
    assert apply(p, StartWork(LEAD, PHOTO), at(9, 30)).status is S.IN_PROGRESS


def test_start_reports_everything_missing() -> None:
    p = cleared()  # no measures confirmed, no gas, no watch
    assert codes(p, StartWork(STRANGER), at(9)) == {
        R.WRONG_PERSON,
        R.PHOTO_MISSING,
        R.MEASURE_UNCONFIRMED,
        R.FIRE_WATCH_NOT_CHECKED_IN,
        R.GAS_SAMPLE_MISSING,
    }


def test_a_welder_on_the_permit_may_start() -> None:
    assert apply(ready(), StartWork(WELDER_PERSON, PHOTO), at(9)).status is S.IN_PROGRESS


@pytest.mark.parametrize(("start", "ok"), [(at(9, 15), True), (at(9, 15, 1), False)])
def test_start_gas_sample_age(start: datetime, ok: bool) -> None:
    # The sample of ready() is from 08:45; the watch checked in at 08:50.
    p = ready(content(starts_at=at(9, 15)))
    p = apply(p, CheckIn(WATCH, HOT, PHOTO), at(9, 14))
    result = transition(p, StartWork(LEAD, PHOTO), start, calendar=CAL)
    if ok:
        assert isinstance(result, Accepted)
    else:
        assert isinstance(result, Refused) and result.codes == (R.GAS_SAMPLE_STALE,)


def test_start_refuses_a_gas_reading_over_the_limit() -> None:
    p = apply(ready(), RecordGasSample(sample(at(8, 55), reading=0.51, lel=4.0)), at(8, 55))
    refused = refuse(p, StartWork(LEAD, PHOTO), at(9))
    assert refused.codes == (R.GAS_OVER_LIMIT,)
    assert "0.51%" in refused.reasons[0].message and "≤ 0.5%" in refused.reasons[0].message
    p = apply(ready(), RecordGasSample(sample(at(8, 55), reading=0.5, lel=4.0)), at(8, 55))
    assert apply(p, StartWork(LEAD, PHOTO), at(9)).status is S.IN_PROGRESS


def test_low_lel_gas_limit_at_start() -> None:
    hydrogen = sample(at(8, 55), reading=0.21, lel=3.9, gas="丙烯腈")
    p = apply(ready(), RecordGasSample(hydrogen), at(8, 55))
    assert codes(p, StartWork(LEAD, PHOTO), at(9)) == {R.GAS_OVER_LIMIT}


def test_second_level_without_gas_analysis_needs_none() -> None:
    c = content(base_level=L.SECOND, level=L.SECOND)
    p = cleared(c, role=A.UNIT)
    for m in c.measures:
        p = apply(p, ConfirmMeasure(m.code, LEAD), at(8, 35))
    p = apply(p, CheckIn(WATCH, HOT, PHOTO), at(8, 50))
    assert apply(p, StartWork(LEAD, PHOTO), at(9)).status is S.IN_PROGRESS
    # Unless the place calls for it.
    c = dataclasses.replace(c, gas_analysis_required=True)
    p = cleared(c, role=A.UNIT)
    for m in c.measures:
        p = apply(p, ConfirmMeasure(m.code, LEAD), at(8, 35))
    p = apply(p, CheckIn(WATCH, HOT, PHOTO), at(8, 50))
    assert codes(p, StartWork(LEAD, PHOTO), at(9)) == {R.GAS_SAMPLE_MISSING}


@pytest.mark.parametrize(("watch_in", "ok"), [(at(8, 30), True), (at(8, 29, 59), False)])
def test_start_needs_the_watch_on_post(watch_in: datetime, ok: bool) -> None:
    p = cleared()
    for m in BASE.measures:
        p = apply(p, ConfirmMeasure(m.code, LEAD), at(8, 29))
    p = apply(p, RecordGasSample(sample(at(8, 45))), at(8, 45))
    p = dataclasses.replace(p, check_ins=(FireWatchCheckIn(watch_in, WATCH, HOT, PHOTO),))
    result = transition(p, StartWork(LEAD, PHOTO), at(9), calendar=CAL)
    assert isinstance(result, Accepted) is ok
    if not ok:
        assert isinstance(result, Refused) and result.codes == (R.FIRE_WATCH_NOT_CHECKED_IN,)


SPECIAL = content(
    base_level=L.SPECIAL,
    level=L.SPECIAL,
    measures=BASE_MEASURES + measures("continuous_detector"),
)


def test_special_level_needs_the_continuous_monitor() -> None:
    p = ready(SPECIAL, by=LEADER, role=A.ENTERPRISE_LEADER)
    assert codes(p, StartWork(LEAD, PHOTO), at(9)) == {R.MONITOR_MISSING}
    assert codes(p, StartWork(LEAD, PHOTO), at(9), monitor=[reading(at(8, 57, 59))]) == {
        R.MONITOR_STALE
    }
    assert codes(p, StartWork(LEAD, PHOTO), at(9), monitor=[reading(at(8, 59), 0.7)]) == {
        R.MONITOR_OVER_LIMIT
    }
    started_ = apply(p, StartWork(LEAD, PHOTO), at(9), monitor=[reading(at(8, 58))])
    assert started_.status is S.IN_PROGRESS


def test_crowded_place_start_needs_the_notices_and_closed_hours() -> None:
    c = crowded()
    p = cleared(c, role=A.SAFETY_DEPARTMENT)
    for m in c.measures:
        p = apply(p, ConfirmMeasure(m.code, LEAD), at(8, 35))
    p = apply(p, ConfirmNotice(NoticeLocation.ENTRANCE, LEAD, PHOTO), at(19))
    p = apply(p, RecordGasSample(sample(at(19, 55))), at(19, 55))
    p = apply(p, CheckIn(WATCH, HOT, PHOTO), at(19, 55))
    assert codes(p, StartWork(LEAD, PHOTO), at(20)) == {R.NOTICE_MISSING}
    p = apply(p, ConfirmNotice(NoticeLocation.SITE, LEAD, PHOTO), at(19, 58))
    assert apply(p, StartWork(LEAD, PHOTO), at(20)).status is S.IN_PROGRESS


def test_crowded_place_opening_hours_changed_after_approval() -> None:
    c = crowded()
    p = ready(c)
    # The hospital now opens until 21:00 (the content keeps its place facts: the
    # rule reads whatever place the service passes; here the permit's own).
    later = dataclasses.replace(HOSPITAL, opening_hours=(OpeningWindow(ALL_DAYS, 8 * 60, 21 * 60),))
    p = dataclasses.replace(p, content=dataclasses.replace(p.content, place=later))
    p = apply(p, RecordGasSample(sample(at(20))), at(20))
    p = apply(p, CheckIn(WATCH, HOT, PHOTO), at(20))
    assert codes(p, StartWork(LEAD, PHOTO), at(20, 5)) == {R.CROWDED_OPENING_HOURS}


def test_crowded_exception_work_in_opening_hours() -> None:
    c = crowded(starts_at=at(10), ends_at=at(12), level=L.SECOND, crowded_exception=EXCEPTION)
    p = ready(dataclasses.replace(c, starts_at=at(8, 50)), role=A.SAFETY_DEPARTMENT)
    p = apply(p, StartWork(LEAD, PHOTO), at(9))
    assert p.status is S.IN_PROGRESS
    assert p.crowded_exception_taken
    facts = permit_facts(p)
    assert facts.crowded_place_exception and facts.state is PermitState.ACTIVE


# --------------------------------------------------------------------------
# Pause, suspension, reinstatement
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "limit"), [(L.FIRST, 30 * MIN), (L.SECOND, 60 * MIN)])
def test_resume_after_a_pause(level: PermitLevel, limit: timedelta) -> None:
    role = A.SAFETY_DEPARTMENT
    c = content(base_level=level, level=level, gas_analysis_required=True)
    p = apply(started(c, role=role), PauseWork(LEAD, "午休"), at(10))
    assert p.status is S.PAUSED and p.stopped_since == at(10)
    resume_at = at(10) + limit
    p1 = apply(p, CheckIn(WATCH, HOT, PHOTO), resume_at)
    resumed = apply(p1, ResumeWork(LEAD), resume_at)
    assert resumed.status is S.IN_PROGRESS and resumed.stopped_since is None
    assert resumed.pauses[-1].until == resume_at
    late = resume_at + SEC
    p2 = apply(p, CheckIn(WATCH, HOT, PHOTO), late)
    assert codes(p2, ResumeWork(LEAD), late) == {R.GAS_RETEST_AFTER_PAUSE}
    p3 = apply(p2, RecordGasSample(sample(late - 5 * MIN)), late)
    assert apply(p3, ResumeWork(LEAD), late).status is S.IN_PROGRESS


def test_resume_needs_the_watch() -> None:
    p = apply(started(), PauseWork(LEAD), at(9, 10))
    assert codes(p, ResumeWork(LEAD), at(9, 30)) == {R.FIRE_WATCH_NOT_CHECKED_IN}
    assert codes(p, ResumeWork(STRANGER), at(9, 15)) == {R.WRONG_PERSON}


def test_a_failed_sample_during_work_suspends() -> None:
    p = started()
    bad = apply(p, RecordGasSample(sample(at(9, 30), reading=0.9)), at(9, 31))
    assert bad.status is S.SUSPENDED
    suspension = bad.current_suspension
    assert suspension is not None and suspension.cause is SuspendCause.GAS_OVER_LIMIT
    assert machines_to_lock(p, bad) == frozenset({MACHINE})
    # While paused it is recorded, and the resumption will refuse it.
    paused = apply(p, PauseWork(LEAD), at(9, 20))
    still = apply(paused, RecordGasSample(sample(at(9, 30), reading=0.9)), at(9, 31))
    assert still.status is S.PAUSED
    still = apply(still, CheckIn(WATCH, HOT, PHOTO), at(9, 32))
    assert codes(still, ResumeWork(LEAD), at(9, 33)) == {R.GAS_OVER_LIMIT}


def test_a_sample_in_the_future_is_refused() -> None:
    assert codes(started(), RecordGasSample(sample(at(9, 31))), at(9, 30)) == {
        R.GAS_SAMPLE_IN_FUTURE
    }


@pytest.mark.parametrize(("check_in_at", "suspends"), [(at(9, 20), False), (at(9, 20, 1), True)])
def test_a_late_check_in_suspends(check_in_at: datetime, suspends: bool) -> None:
    p = started()  # the watch checked in at 08:50, interval 30 min
    after = apply(p, CheckIn(WATCH, HOT, PHOTO), check_in_at)
    assert (after.status is S.SUSPENDED) is suspends
    if suspends:
        suspension = after.current_suspension
        assert suspension is not None
        assert suspension.cause is SuspendCause.FIRE_WATCH_ABSENT
        assert suspension.since == at(9, 20)
        assert after.stopped_since == at(9, 20)


def test_a_check_in_by_someone_else_is_refused() -> None:
    assert codes(started(), CheckIn(STRANGER, HOT, PHOTO), at(9, 10)) == {R.WRONG_PERSON}
    assert codes(started(), CheckIn(WATCH, north_of(HOT, 80), PHOTO), at(9, 10)) == {
        R.FIRE_WATCH_TOO_FAR
    }


def test_reinstatement() -> None:
    p = apply(started(), CheckIn(WATCH, HOT, PHOTO), at(9, 25))  # late: suspended since 09:20
    assert p.status is S.SUSPENDED
    # The 09:25 check-in is the watch's return.
    assert codes(p, Reinstate(APPROVER, A.UNIT), at(9, 30)) == {R.APPROVER_NOT_AUTHORISED}
    assert codes(p, Reinstate(APPROVER, A.SAFETY_DEPARTMENT), at(9, 56)) == {
        R.FIRE_WATCH_NOT_CHECKED_IN
    }
    p = apply(p, Reinstate(APPROVER, A.SAFETY_DEPARTMENT), at(9, 30))
    assert p.status is S.PAUSED
    assert p.suspensions[-1].lifted is not None
    assert p.stopped_since == at(9, 20)
    # The interruption counts from 09:20: more than 30 min at 09:50:01, so re-test.
    p = apply(p, CheckIn(WATCH, HOT, PHOTO), at(9, 50))
    assert apply(p, ResumeWork(LEAD), at(9, 50)).status is S.IN_PROGRESS
    assert codes(p, ResumeWork(LEAD), at(9, 50, 1)) == {R.GAS_RETEST_AFTER_PAUSE}


def test_reinstatement_after_a_gas_suspension_needs_a_good_sample() -> None:
    p = apply(started(), RecordGasSample(sample(at(9, 30), reading=0.9)), at(9, 30))
    assert codes(p, Reinstate(APPROVER, A.SAFETY_DEPARTMENT), at(9, 40)) == {R.GAS_OVER_LIMIT}
    p = apply(p, RecordGasSample(sample(at(9, 45))), at(9, 45))
    assert apply(p, Reinstate(APPROVER, A.SAFETY_DEPARTMENT), at(9, 46)).status is S.PAUSED


def test_reinstatement_after_a_monitor_failure() -> None:
    p = started(SPECIAL, by=LEADER, role=A.ENTERPRISE_LEADER)
    p = apply(p, Suspend(SuspendCause.MONITOR_FAILED), at(9, 10))
    assert codes(p, Reinstate(LEADER, A.ENTERPRISE_LEADER), at(9, 12)) == {R.MONITOR_MISSING}
    ok = apply(p, Reinstate(LEADER, A.ENTERPRISE_LEADER), at(9, 12), monitor=[reading(at(9, 11))])
    assert ok.status is S.PAUSED


def test_suspension_during_a_pause_keeps_the_first_stop() -> None:
    p = apply(started(), PauseWork(LEAD), at(9, 10))
    p = apply(p, Suspend(SuspendCause.ORDERED, LEADER, "上级检查"), at(9, 20))
    assert p.status is S.SUSPENDED and p.stopped_since == at(9, 10)


# --------------------------------------------------------------------------
# End of work, the watch, disposal, closure
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("dispose_at", "ok"), [(at(10), True), (at(9, 59, 59), False)])
def test_disposal_after_thirty_minutes(dispose_at: datetime, ok: bool) -> None:
    p = apply(watching(), CheckIn(WATCH, HOT, PHOTO), at(9, 45))  # work ended 09:30
    result = transition(p, Dispose(WATCH, no_embers=True, photos=PHOTO), dispose_at, calendar=CAL)
    if ok:
        assert isinstance(result, Accepted) and result.permit.status is S.DISPOSED
    else:
        assert isinstance(result, Refused) and result.codes == (R.WATCH_AFTER_WORK_TOO_SHORT,)


def test_disposal_refusals() -> None:
    p = apply(watching(), CheckIn(WATCH, HOT, PHOTO), at(9, 45))
    assert codes(p, Dispose(STRANGER, no_embers=False), at(10)) == {
        R.WRONG_PERSON,
        R.EMBERS_FOUND,
        R.PHOTO_MISSING,
    }


def test_the_watch_away_after_the_work() -> None:
    p = watching()  # last check-in 09:20, work ended 09:30
    assert codes(p, Dispose(WATCH, no_embers=True, photos=PHOTO), at(10)) == {
        R.WATCH_AFTER_WORK_TOO_SHORT
    }
    alarm = supervise(p, at(9, 50, 1))
    assert alarm.event is None and [r.code for r in alarm.reasons] == [R.FIRE_WATCH_ABSENT]
    assert supervise(p, at(9, 50)).reasons == ()
    p = apply(p, CheckIn(WATCH, HOT, PHOTO), at(10, 5))
    assert codes(p, Dispose(WATCH, no_embers=True, photos=PHOTO), at(10, 34)) == {
        R.WATCH_AFTER_WORK_TOO_SHORT
    }
    assert apply(p, Dispose(WATCH, no_embers=True, photos=PHOTO), at(10, 35)).status is S.DISPOSED


def test_closure_by_the_lead_or_the_approver() -> None:
    p = disposed()
    assert codes(p, Close(STRANGER), at(10, 5)) == {R.WRONG_PERSON}
    assert apply(p, Close(LEAD), at(10, 5)).status is S.CLOSED
    assert apply(p, Close(APPROVER), at(10, 5)).status is S.CLOSED


def test_end_work_from_a_pause_or_a_suspension() -> None:
    paused = apply(started(), PauseWork(LEAD), at(9, 10))
    ended = apply(paused, EndWork(LEAD), at(9, 40))
    assert ended.status is S.WATCHING and ended.pauses[-1].until == at(9, 40)
    suspended = apply(started(), Suspend(SuspendCause.ORDERED, LEADER), at(9, 10))
    assert apply(suspended, EndWork(LEAD), at(9, 40)).status is S.WATCHING


def test_end_work_after_the_window_counts_from_its_end() -> None:
    p = apply(started(), EndWork(LEAD), at(17, 20))
    assert p.work_ended is not None and p.work_ended.at == at(17)
    assert p.ended_by_expiry


# --------------------------------------------------------------------------
# Cancel and expiry
# --------------------------------------------------------------------------


@pytest.mark.parametrize("status", [S.DRAFT, S.SUBMITTED, S.APPROVED, S.CLEARED])
def test_cancel_before_work(status: PermitStatus) -> None:
    p = apply(permit_in(status), Cancel(LEAD, "改期"), at(8, 50))
    assert p.status is S.CANCELLED and p.cancellation is not None
    assert machine_claim(p) is None


@pytest.mark.parametrize("status", [S.DRAFT, S.SUBMITTED, S.APPROVED, S.CLEARED])
def test_expiry_before_work(status: PermitStatus) -> None:
    p = permit_in(status)
    assert codes(p, Expire(), at(16, 59, 59)) == {R.NOT_EXPIRED}
    expired = apply(p, Expire(), at(17))
    assert expired.status is S.EXPIRED
    assert expired.expiry is not None and expired.expiry.at == at(17) and expired.expiry.by is None


@pytest.mark.parametrize("status", [S.IN_PROGRESS, S.PAUSED, S.SUSPENDED])
def test_expiry_during_work_leads_to_the_watch(status: PermitStatus) -> None:
    p = permit_in(status)
    expired = apply(p, Expire(), at(17, 3))
    assert expired.status is S.WATCHING and expired.ended_by_expiry
    assert expired.work_ended is not None and expired.work_ended.at == at(17)
    assert expired.stopped_since is None
    assert machines_to_lock(p, expired) == (
        frozenset({MACHINE}) if status is S.IN_PROGRESS else frozenset()
    )


# --------------------------------------------------------------------------
# Supervision
# --------------------------------------------------------------------------


def test_supervise_a_healthy_permit() -> None:
    p = started()
    assert supervise(p, at(9, 20)) == supervise(p, at(9, 20))
    assert supervise(p, at(9, 20)).event is None
    assert supervise(p, at(9, 20)).reasons == ()


def test_supervise_expiry() -> None:
    p = started()
    assert supervise(p, at(16, 59, 59)).event is not None  # the watch is long overdue
    p = dataclasses.replace(p, check_ins=(*p.check_ins, FireWatchCheckIn(at(16, 50), WATCH)))
    assert supervise(p, at(16, 59, 59)).event is None
    verdict = supervise(p, at(17))
    assert isinstance(verdict.event, Expire)
    assert [r.code for r in verdict.reasons] == [R.PERMIT_EXPIRED]
    assert isinstance(supervise(approved(), at(17)).event, Expire)
    assert supervise(approved(), at(16)).event is None


@pytest.mark.parametrize(("now", "suspends"), [(at(9, 20), False), (at(9, 20, 1), True)])
def test_supervise_missed_check_in(now: datetime, suspends: bool) -> None:
    verdict = supervise(started(), now)
    if suspends:
        assert isinstance(verdict.event, Suspend)
        assert verdict.event.cause is SuspendCause.FIRE_WATCH_ABSENT
        assert [r.code for r in verdict.reasons] == [R.FIRE_WATCH_ABSENT]
        assert "监护人王芳未按时签到" in verdict.reasons[0].message
        after = apply(started(), verdict.event, now)
        assert after.status is S.SUSPENDED
    else:
        assert verdict.event is None


def test_supervise_daily_retest_at_midnight() -> None:
    c = content(
        base_level=L.SECOND,
        level=L.FIRST,
        gas_analysis_required=True,
        starts_at=at(20),
        ends_at=at(4, day=24),
    )
    p = night_start(c)
    p = dataclasses.replace(p, check_ins=(FireWatchCheckIn(at(23, 59, 30), WATCH),))
    assert supervise(p, at(23, 59, 59)).event is None
    verdict = supervise(p, at(0, 0, 0, day=24))
    assert isinstance(verdict.event, Suspend) and verdict.event.cause is SuspendCause.GAS_RETEST_DUE
    assert [r.code for r in verdict.reasons] == [R.GAS_DAILY_RETEST]


def night_start(c: PermitContent) -> Permit:
    """Prepared in the morning, started at 20:00."""
    p = cleared(c)
    for m in c.measures:
        p = apply(p, ConfirmMeasure(m.code, LEAD), at(8, 35))
    if c.crowded:
        for where in NoticeLocation:
            p = apply(p, ConfirmNotice(where, LEAD, PHOTO), at(19, 40))
    p = apply(p, RecordGasSample(sample(at(19, 50))), at(19, 50))
    p = apply(p, CheckIn(WATCH, HOT, PHOTO), at(19, 50))
    return apply(p, StartWork(LEAD, PHOTO), at(20))


def test_supervise_special_monitor() -> None:
    p = started(SPECIAL, by=LEADER, role=A.ENTERPRISE_LEADER)
    verdict = supervise(p, at(9, 1), monitor=[reading(at(8, 59))])
    assert verdict.event is None
    verdict = supervise(p, at(9, 1, 1), monitor=[reading(at(8, 59))])
    assert isinstance(verdict.event, Suspend) and verdict.event.cause is SuspendCause.MONITOR_FAILED
    verdict = supervise(p, at(9, 1), monitor=[reading(at(9, 0, 30), 0.6)])
    assert [r.code for r in verdict.reasons] == [R.MONITOR_OVER_LIMIT]


def test_supervise_names_every_cause_and_picks_the_first() -> None:
    p = started(SPECIAL, by=LEADER, role=A.ENTERPRISE_LEADER)
    verdict = supervise(p, at(9, 30), monitor=[])
    assert isinstance(verdict.event, Suspend)
    assert verdict.event.cause is SuspendCause.FIRE_WATCH_ABSENT
    assert [r.code for r in verdict.reasons] == [R.FIRE_WATCH_ABSENT, R.MONITOR_MISSING]
    assert "特级" in verdict.event.note


def test_supervise_crowded_place_opening() -> None:
    p = night_start(crowded())
    assert supervise(p, at(20, 6)).event is None
    # The hospital's hours, as the service passes them, now run until 22:00.
    later = dataclasses.replace(HOSPITAL, opening_hours=(OpeningWindow(ALL_DAYS, 8 * 60, 22 * 60),))
    p = dataclasses.replace(p, content=dataclasses.replace(p.content, place=later))
    verdict = supervise(p, at(20, 6))
    assert isinstance(verdict.event, Suspend) and verdict.event.cause is SuspendCause.OPENING_HOURS
    assert [r.code for r in verdict.reasons] == [R.CROWDED_OPENING_HOURS]


def test_supervise_leaves_other_statuses_alone() -> None:
    for status in (S.DRAFT, S.PAUSED, S.SUSPENDED, S.DISPOSED, S.CLOSED, S.CANCELLED, S.EXPIRED):
        assert supervise(permit_in(status), at(12)).event is None


# --------------------------------------------------------------------------
# Unlocking
# --------------------------------------------------------------------------


def cover_codes(permit: Permit, **kw: Any) -> list[PermitReasonCode]:
    args: dict[str, Any] = {
        "welder_id": WELDER_ID,
        "machine_id": MACHINE,
        "machine_position": north_of(HOT, 5),
        "now": at(10),
    }
    args.update(kw)
    return [r.code for r in covers(permit, **args)]


def test_covers_a_started_permit() -> None:
    assert cover_codes(started()) == []
    assert cover_codes(started(), now=at(9)) == []
    assert cover_codes(started(), now=at(16, 59, 59)) == []


def test_covers_reasons() -> None:
    p = started()
    assert cover_codes(p, now=at(17)) == [R.OUTSIDE_WINDOW]
    assert cover_codes(p, welder_id=OTHER_WELDER_ID) == [R.WELDER_NOT_NAMED]
    assert cover_codes(p, machine_id=OTHER_MACHINE) == [R.MACHINE_NOT_NAMED]
    assert cover_codes(p, machine_position=north_of(HOT, 10.001)) == [R.OUTSIDE_HOT_SPOT]
    assert cover_codes(p, machine_position=north_of(HOT, 9.999)) == []
    assert cover_codes(p, machine_position=None) == [R.MACHINE_POSITION_UNKNOWN]
    lenient = PermitPolicy(machine_position_required=False)
    assert cover_codes(p, machine_position=None, policy=lenient) == []
    assert cover_codes(permit_in(S.CLEARED)) == [R.PERMIT_NOT_STARTED]
    assert cover_codes(permit_in(S.PAUSED)) == [R.PERMIT_NOT_ACTIVE]
    assert cover_codes(permit_in(S.SUSPENDED)) == [R.PERMIT_NOT_ACTIVE]
    assert cover_codes(permit_in(S.WATCHING)) == [R.PERMIT_NOT_ACTIVE]
    assert cover_codes(
        permit_in(S.EXPIRED),
        welder_id=OTHER_WELDER_ID,
        machine_id=OTHER_MACHINE,
        machine_position=north_of(HOT, 30),
        now=at(17),
    ) == [
        R.PERMIT_NOT_ACTIVE,
        R.OUTSIDE_WINDOW,
        R.WELDER_NOT_NAMED,
        R.MACHINE_NOT_NAMED,
        R.OUTSIDE_HOT_SPOT,
    ]


def test_covers_with_a_polygon() -> None:
    square = (
        north_of(HOT, -20),
        north_of(HOT, 40),
        GeoPoint(HOT.latitude + 40 / METRES_PER_DEGREE_LAT, HOT.longitude + 0.001),
        GeoPoint(HOT.latitude - 20 / METRES_PER_DEGREE_LAT, HOT.longitude + 0.001),
    )
    p = started(content(hot_spot=HotSpot(HOT, polygon=square)))
    assert (
        cover_codes(
            p,
            machine_position=GeoPoint(
                HOT.latitude + 30 / METRES_PER_DEGREE_LAT, HOT.longitude + 0.0005
            ),
        )
        == []
    )
    assert cover_codes(p, machine_position=north_of(HOT, 41)) == [R.OUTSIDE_HOT_SPOT]


EXPECTED_UNLOCK_STATE = {
    S.DRAFT: PermitState.NOT_STARTED,
    S.SUBMITTED: PermitState.NOT_STARTED,
    S.APPROVED: PermitState.NOT_STARTED,
    S.CLEARED: PermitState.NOT_STARTED,
    S.IN_PROGRESS: PermitState.ACTIVE,
    S.PAUSED: PermitState.SUSPENDED,
    S.SUSPENDED: PermitState.SUSPENDED,
    S.WATCHING: PermitState.CLOSED,
    S.DISPOSED: PermitState.CLOSED,
    S.CLOSED: PermitState.CLOSED,
    S.CANCELLED: PermitState.CLOSED,
    S.EXPIRED: PermitState.CLOSED,
}


@pytest.mark.parametrize("status", list(S))
def test_unlock_state(status: PermitStatus) -> None:
    assert unlock_state(status) is EXPECTED_UNLOCK_STATE[status]


def test_permit_facts() -> None:
    facts = permit_facts(started())
    assert facts.id == 900 and facts.number == "DH-2026-0001"
    assert facts.state is PermitState.ACTIVE
    assert facts.enterprise_id == ENTERPRISE and facts.site_id == SITE
    assert (facts.starts_at, facts.ends_at) == (at(9), at(17))
    assert facts.welder_ids == frozenset({WELDER_ID})
    assert facts.machine_ids == frozenset({MACHINE})
    assert not facts.crowded_place_exception


def scan(permit: Permit, now: datetime) -> ScanRequest:
    return ScanRequest(
        welder=WelderFacts(id=WELDER_ID),
        machine=MachineFacts(
            id=MACHINE,
            status="chip_fitted",
            process="manual_arc",
            enterprise_id=ENTERPRISE,
            chip_bound=True,
            chip_online=True,
            site_id=SITE,
            chip_last_seen=now - 20 * SEC,
            chip_position=north_of(HOT, 5),
            code="WG0000001",
        ),
        place=PLACE,
        now=now,
        certificates=(cert(),),
        employments=(EmploymentPeriod(ENTERPRISE, date(2024, 1, 1)),),
        permits=(permit_facts(permit),),
        phone_position=PhonePosition(north_of(HOT, 8), accuracy_m=10),
    )


def test_the_unlock_decision_reads_the_adapter() -> None:
    decision = decide(scan(started(), at(10)))
    assert decision.allowed and decision.permit_id == 900
    assert decision.valid_until == at(17)
    paused = decide(scan(permit_in(S.PAUSED), at(10)))
    assert paused.codes == (ReasonCode.PERMIT_INVALID,)
    assert decide(scan(started(), at(17))).codes == (ReasonCode.PERMIT_INVALID,)


def test_the_hot_spot_geofence_reaches_the_unlock_decision() -> None:
    """The decision cannot measure the machine against the hot spot itself:
    permit_facts brings the geofence's verdict along when given the chip's fix."""
    permit = started()
    inside = permit_facts(permit, north_of(HOT, 5), at(10))
    assert inside.problems == ()
    request = scan(permit, at(10))
    far = dataclasses.replace(request, permits=(permit_facts(permit, north_of(HOT, 40), at(10)),))
    decision = decide(far)
    assert decision.codes == (ReasonCode.PERMIT_INVALID,)
    assert "不在作业票的" in decision.reasons[0].message
    unknown = permit_facts(permit, None, at(10))
    assert len(unknown.problems) == 1 and "没有定位" in unknown.problems[0]
    # Without a time the adapter does not judge the geofence at all.
    assert permit_facts(permit, north_of(HOT, 40)).problems == ()


# --------------------------------------------------------------------------
# Machine bookings
# --------------------------------------------------------------------------


def claim(pid: int, machines: set[int], starts: datetime, ends: datetime) -> MachineClaim:
    return MachineClaim(pid, f"DH-{pid}", frozenset(machines), starts, ends)


def test_overlapping_pairs() -> None:
    a = claim(1, {MACHINE}, at(9), at(12))
    b = claim(2, {MACHINE, OTHER_MACHINE}, at(11), at(14))
    c = claim(3, {OTHER_MACHINE}, at(14), at(16))  # touches b
    d = claim(4, {OTHER_MACHINE}, at(8), at(9, 30))  # other machine than a
    found = overlapping([c, b, a, d])
    assert [(o.first.permit_id, o.second.permit_id) for o in found] == [(1, 2)]
    (hit,) = found
    assert hit.machine_ids == frozenset({MACHINE})
    assert (hit.starts_at, hit.ends_at) == (at(11), at(12))
    assert overlapping([a, dataclasses.replace(a, number="same permit")]) == ()


def test_check_overlap_names_every_clash() -> None:
    candidate = claim_of_content(
        content(
            machines=(
                *BASE.machines,
                PermitMachine(OTHER_MACHINE, "manual_arc", ENTERPRISE, "WG0000002"),
            )
        )
    )
    others = [
        claim(2, {MACHINE}, at(16), at(18)),
        claim(3, {OTHER_MACHINE}, at(8), at(9, 1)),
        claim(4, {OTHER_MACHINE}, at(17), at(18)),
    ]
    (reason,) = check_overlap(candidate, others)
    assert reason.code is R.MACHINE_DOUBLE_BOOKED
    assert "DH-2" in reason.message and "DH-3" in reason.message and "DH-4" not in reason.message
    assert reason.message.index("DH-3") < reason.message.index("DH-2")


def test_which_permits_claim_machines() -> None:
    for status in S:
        claimed = machine_claim(permit_in(status))
        assert (claimed is not None) is (status in CLAIMING_STATUSES)
    assert CLAIMING_STATUSES == PREPARING | STARTED


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

moments = st.integers(min_value=0, max_value=14 * 24 * 60).map(
    lambda m: local(2026, 11, 22) + m * MIN
)
spans = st.integers(min_value=1, max_value=4 * 24 * 60).map(lambda m: m * MIN)


def _brute_force_raised(starts: datetime, ends: datetime) -> bool:
    moment = starts
    while moment < ends:
        here = moment.astimezone(SHANGHAI)
        if CAL.is_rest_day(here.date()) or here.hour >= 22 or here.hour < 6:
            return True
        moment += MIN
    return False


@settings(max_examples=200, deadline=None)
@given(moments, spans, st.sampled_from(list(L)))
def test_level_raised_exactly_when_some_minute_is_rest_or_night(
    starts: datetime, length: timedelta, base: PermitLevel
) -> None:
    assessment = assess_level(base, starts, starts + length, CAL)
    assert assessment.raised is _brute_force_raised(starts, starts + length)
    assert assessment.level is (base.raised() if assessment.raised else base)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 6),
            st.frozensets(st.integers(1, 4), min_size=1, max_size=3),
            moments,
            spans,
        ),
        max_size=6,
    )
)
def test_overlapping_agrees_with_a_minute_by_minute_check(
    raw: list[tuple[int, frozenset[int], datetime, timedelta]],
) -> None:
    claims = [
        MachineClaim(i, f"N{i}", machines, starts, starts + length)
        for i, (_, machines, starts, length) in enumerate(raw)
    ]
    found = {(o.first.permit_id, o.second.permit_id) for o in overlapping(claims)}
    expected = {
        (a.permit_id, b.permit_id)
        for a in claims
        for b in claims
        if a.permit_id < b.permit_id
        and a.machine_ids & b.machine_ids
        and a.starts_at < b.ends_at
        and b.starts_at < a.ends_at
    }
    assert found == expected
    for a in claims:
        others = [c for c in claims if c.permit_id != a.permit_id]
        assert bool(check_overlap(a, others)) is any(a.permit_id in pair for pair in expected)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 240), max_size=8),
    st.integers(5, 60),
    st.integers(0, 300),
)
def test_missed_check_in_matches_its_definition(
    offsets: list[int], interval_min: int, now_min: int
) -> None:
    start = at(8)
    ins = checked(*(start + m * MIN for m in offsets))
    now = start + now_min * MIN
    seen = [c.at for c in ins if c.at <= now]
    interval = interval_min * MIN
    assert missed_check_in(ins, WATCH, interval, now) is (not seen or now > max(seen) + interval)
    assert (check_watch_present(ins, WATCH, interval, now) == ()) is (
        not missed_check_in(ins, WATCH, interval, now)
    )


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=0.1, max_value=100, allow_nan=False),
    st.floats(min_value=0, max_value=100, allow_nan=False),
    st.integers(0, 90 * 60),
)
def test_gas_start_matches_its_definition(lel: float, value: float, age_s: int) -> None:
    now = at(12)
    reasons = check_gas([sample(now - age_s * SEC, value, lel)], L.FIRST, now, starting=True)
    limit = 0.5 if lel >= 4 else 0.2
    expected = []
    if value > limit:
        expected.append(R.GAS_OVER_LIMIT)
    if age_s > 30 * 60:
        expected.append(R.GAS_SAMPLE_STALE)
    assert [r.code for r in reasons] == expected
