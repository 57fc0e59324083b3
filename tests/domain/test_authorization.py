"""Tests of weldguard.domain.authorization: the scan-to-unlock decision.

One allowed baseline; each reason is produced by one mutation of it. Times are
given in UTC, the rules read them in Asia/Shanghai (UTC+8).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weldguard.domain.authorization import (
    CERTIFICATE_FIT,
    CONSTRUCTION_SECTOR,
    CROWDED_PLACE_SECTOR,
    DEFAULT_AUTHORIZATION_POLICY,
    HAZARDOUS_CHEMICALS_SECTOR,
    RETIRED_MACHINE_STATUS,
    AuthorizationPolicy,
    Decision,
    EmploymentPeriod,
    HeldCertificate,
    MachineFacts,
    MobileJob,
    OpeningWindow,
    PermitFacts,
    PermitRule,
    PermitState,
    PhonePosition,
    PlaceFacts,
    ReasonCode,
    ScanRequest,
    SpecialPeriod,
    SpecialPeriodKind,
    WelderFacts,
    WorkContext,
    accepted_certificates,
    decide,
    is_crowded_place,
    open_window_at,
    opening_windows_from_json,
    permit_required,
    work_context,
)
from weldguard.domain.certificates import CertificateKind, CertificateStatus
from weldguard.domain.geo import EARTH_MEAN_RADIUS_M, GeoPoint, haversine_m
from weldguard.jurisdiction.service import CROWDED, CROWDED_SUBTYPES, SECTORS
from weldguard.machine.models import PROCESS_LABELS, MachineStatus, WeldingProcess

R = ReasonCode
T = TypeVar("T")
SO = CertificateKind.SPECIAL_OPERATION
SE = CertificateKind.SPECIAL_EQUIPMENT
CO = CertificateKind.CONSTRUCTION
S = CertificateStatus

WELDER = 1
OTHER_WELDER = 2
ENTERPRISE = 10
CLIENT = 11
MACHINE = 100
OTHER_MACHINE = 101
SITE = 1000
AREA = "310000/310100/310105/310105002/"  # 上海市 长宁区 a street
DISTRICT = "310000/310100/310105/"
OTHER_DISTRICT = "310000/310100/310104/"

# Monday 2026-11-23 10:00 in Shanghai.
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
TODAY = date(2026, 11, 23)

MACHINE_POSITION = GeoPoint(31.2204, 121.4244)
METRES_PER_DEGREE_LAT = math.pi * EARTH_MEAN_RADIUS_M / 180


def north_of(point: GeoPoint, metres: float) -> GeoPoint:
    return GeoPoint(point.latitude + metres / METRES_PER_DEGREE_LAT, point.longitude)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """A Shanghai wall-clock time, given to the rules as UTC."""
    return datetime(y, mo, d, h, mi, tzinfo=UTC) - timedelta(hours=8)


def certificate(**changes: object) -> HeldCertificate:
    base = HeldCertificate(
        id=500,
        holder_welder_id=WELDER,
        kind=SO,
        item="熔化焊接与热切割作业",
        status=S.VALID,
        expiry_date=date(2029, 6, 30),
        review_due_date=date(2027, 6, 30),
        number_masked="T110***********1234",
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def permit(**changes: object) -> PermitFacts:
    base = PermitFacts(
        id=900,
        number="DH-2026-0001",
        state=PermitState.ACTIVE,
        enterprise_id=ENTERPRISE,
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(hours=7),
        welder_ids=frozenset({WELDER}),
        machine_ids=frozenset({MACHINE}),
        site_id=SITE,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def ban(**changes: object) -> SpecialPeriod:
    base = SpecialPeriod(
        id=1,
        title="进博会保障",
        area_path=DISTRICT,
        starts_at=NOW - timedelta(days=1),
        ends_at=NOW + timedelta(days=1),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


BASELINE = ScanRequest(
    welder=WelderFacts(id=WELDER),
    machine=MachineFacts(
        id=MACHINE,
        status="chip_fitted",
        process="manual_arc",
        enterprise_id=ENTERPRISE,
        chip_bound=True,
        chip_online=True,
        site_id=SITE,
        chip_last_seen=NOW - timedelta(seconds=20),
        chip_position=MACHINE_POSITION,
        code="WG0000001",
    ),
    place=PlaceFacts(enterprise_id=ENTERPRISE, sector="工贸", area_path=AREA),
    now=NOW,
    certificates=(certificate(),),
    employments=(EmploymentPeriod(ENTERPRISE, date(2024, 1, 1)),),
    phone_position=PhonePosition(north_of(MACHINE_POSITION, 100), accuracy_m=15),
)

ALL_DAYS = frozenset(range(1, 8))
HOSPITAL_HOURS = (OpeningWindow(ALL_DAYS, 8 * 60, 20 * 60),)


def with_machine(request: ScanRequest, **changes: object) -> ScanRequest:
    return dataclasses.replace(request, machine=dataclasses.replace(request.machine, **changes))  # type: ignore[arg-type]


def with_place(request: ScanRequest, **changes: object) -> ScanRequest:
    return dataclasses.replace(request, place=dataclasses.replace(request.place, **changes))  # type: ignore[arg-type]


def with_cert(request: ScanRequest, **changes: object) -> ScanRequest:
    return dataclasses.replace(request, certificates=(certificate(**changes),))


def hospital(request: ScanRequest, hours: tuple[OpeningWindow, ...] | None) -> ScanRequest:
    """The place becomes a hospital, with a valid permit (crowded places need one)."""
    request = with_place(request, sector=CROWDED, crowded_subtype="医院", opening_hours=hours)
    return dataclasses.replace(request, permits=(permit(),))


def replace(**changes: object) -> Callable[[ScanRequest], ScanRequest]:
    return lambda request: dataclasses.replace(request, **changes)  # type: ignore[arg-type]


Mutation = Callable[[ScanRequest], ScanRequest]

#: One mutation of the baseline per denial; each yields exactly its code.
DENIALS: dict[ReasonCode, Mutation] = {
    R.WELDER_INACTIVE: replace(welder=WelderFacts(id=WELDER, active=False)),
    R.NO_CERTIFICATE: replace(certificates=()),
    R.CERT_HOLDER_MISMATCH: lambda r: dataclasses.replace(
        r, certificates=(*r.certificates, certificate(id=501, holder_welder_id=OTHER_WELDER))
    ),
    R.UNKNOWN_PROCESS: lambda r: with_machine(r, process="laser"),
    R.CERT_KIND_MISMATCH: lambda r: with_cert(r, kind=SE, item="金属焊接操作"),
    R.CERT_ITEM_MISMATCH: lambda r: with_cert(r, item="钎焊作业"),
    R.CERT_REVOKED: lambda r: with_cert(r, status=S.REVOKED),
    R.CERT_EXPIRED: lambda r: with_cert(
        r, status=S.EXPIRED, expiry_date=date(2026, 11, 1), review_due_date=None
    ),
    R.CERT_REVIEW_OVERDUE: lambda r: with_cert(
        r, status=S.REVIEW_OVERDUE, review_due_date=date(2026, 11, 20)
    ),
    R.CERT_UNVERIFIED: lambda r: with_cert(r, status=S.PENDING_VERIFICATION),
    R.NOT_EMPLOYED: replace(employments=()),
    R.MOBILE_JOB_NOT_DECLARED: lambda r: with_place(r, enterprise_id=CLIENT),
    R.MACHINE_RETIRED: lambda r: with_machine(r, status=RETIRED_MACHINE_STATUS),
    R.NO_CHIP: lambda r: with_machine(r, chip_bound=False, chip_online=False),
    R.MACHINE_OFFLINE: lambda r: with_machine(r, chip_online=False),
    R.MACHINE_IN_USE: lambda r: with_machine(r, session_welder_id=OTHER_WELDER, locked=False),
    R.BUSY_ELSEWHERE: replace(other_session_machine_ids=frozenset({OTHER_MACHINE})),
    R.DURING_OPENING_HOURS: lambda r: hospital(r, HOSPITAL_HOURS),
    R.OPENING_HOURS_UNKNOWN: lambda r: hospital(r, None),
    R.SPECIAL_PERIOD: replace(special_periods=(ban(),)),
    R.TOO_FAR: replace(phone_position=PhonePosition(north_of(MACHINE_POSITION, 600), 10)),
    R.PERMIT_REQUIRED: lambda r: with_place(r, sector=HAZARDOUS_CHEMICALS_SECTOR),
    R.PERMIT_INVALID: lambda r: dataclasses.replace(
        with_place(r, sector=HAZARDOUS_CHEMICALS_SECTOR),
        permits=(permit(ends_at=NOW - timedelta(minutes=1)),),
    ),
}

#: Denials that only a non-default policy produces.
POLICY_DENIALS: dict[ReasonCode, tuple[AuthorizationPolicy, Mutation]] = {
    R.NO_POSITION: (AuthorizationPolicy(require_position=True), replace(phone_position=None)),
    R.NOT_IN_PRODUCTION: (
        AuthorizationPolicy(production_statuses_denied=frozenset({"停产"})),
        lambda r: with_place(r, production_status="停产"),
    ),
}

#: One mutation per warning; the scan stays allowed.
WARNINGS: dict[ReasonCode, Mutation] = {
    R.CERT_EXPIRING: lambda r: with_cert(
        r, status=S.EXPIRING, expiry_date=date(2026, 12, 10), review_due_date=None
    ),
    R.CERT_PROVISIONAL: lambda r: with_cert(
        r, status=S.PENDING_VERIFICATION, confirmed_by_enterprise_id=ENTERPRISE
    ),
    R.MACHINE_UNLOCKED_WITHOUT_SESSION: lambda r: with_machine(r, locked=False),
    R.NOT_IN_PRODUCTION: lambda r: with_place(r, production_status="停产"),
    R.NO_POSITION: replace(phone_position=None),
    R.POSITION_IMPRECISE: replace(
        phone_position=PhonePosition(north_of(MACHINE_POSITION, 100), accuracy_m=300)
    ),
    R.MACHINE_POSITION_UNKNOWN: lambda r: with_machine(r, chip_position=None, site_position=None),
}


# --------------------------------------------------------------------------
# Baseline and one reason each
# --------------------------------------------------------------------------


def test_baseline_is_allowed_without_warnings() -> None:
    decision = decide(BASELINE)
    assert decision == Decision(allowed=True, reasons=(), warnings=())


def test_every_code_has_a_test() -> None:
    covered = set(DENIALS) | set(POLICY_DENIALS) | set(WARNINGS)
    assert covered == set(ReasonCode)


@pytest.mark.parametrize("code", list(DENIALS), ids=str)
def test_each_denial_alone(code: ReasonCode) -> None:
    decision = decide(DENIALS[code](BASELINE))
    assert not decision.allowed
    assert decision.codes == (code,)
    reason = decision.reasons[0]
    assert reason.message
    assert reason.regulator_warning == (code.regulator_warning is not None)
    assert reason.label == code.label


@pytest.mark.parametrize("code", list(POLICY_DENIALS), ids=str)
def test_each_policy_denial_alone(code: ReasonCode) -> None:
    policy, mutation = POLICY_DENIALS[code]
    request = mutation(BASELINE)
    assert decide(request, policy).codes == (code,)
    # The same facts under the default policy are only a warning.
    default = decide(request)
    assert default.allowed
    assert default.warning_codes == (code,)


@pytest.mark.parametrize("code", list(WARNINGS), ids=str)
def test_each_warning_alone(code: ReasonCode) -> None:
    decision = decide(WARNINGS[code](BASELINE))
    assert decision.allowed
    assert decision.reasons == ()
    assert decision.warning_codes == (code,)
    assert decision.warnings[0].message


def test_codes_are_stable_english_identifiers() -> None:
    for code in ReasonCode:
        assert code.value == code.name
        assert code.value.isascii() and code.value.isupper()
        assert code.label


def test_regulator_warnings() -> None:
    flagged = {code for code in ReasonCode if code.regulator_warning is not None}
    assert flagged == {
        R.NO_CERTIFICATE,
        R.CERT_HOLDER_MISMATCH,
        R.CERT_REVOKED,
        R.CERT_EXPIRED,
        R.CERT_REVIEW_OVERDUE,
        R.MACHINE_RETIRED,
        R.DURING_OPENING_HOURS,
        R.SPECIAL_PERIOD,
        R.TOO_FAR,
    }
    assert R.TOO_FAR.regulator_warning == "远距离扫码作业"
    assert R.SPECIAL_PERIOD.regulator_warning == "特殊时期动火"
    assert R.CERT_EXPIRED.regulator_warning == "证书到期"
    request = DENIALS[R.TOO_FAR](DENIALS[R.NOT_EMPLOYED](BASELINE))
    decision = decide(request)
    assert decision.codes == (R.NOT_EMPLOYED, R.TOO_FAR)
    assert [r.code for r in decision.regulator_warnings] == [R.TOO_FAR]


# --------------------------------------------------------------------------
# Every failure is reported
# --------------------------------------------------------------------------


def test_all_failures_are_reported_in_order() -> None:
    request = BASELINE
    for code in (
        R.TOO_FAR,
        R.SPECIAL_PERIOD,
        R.WELDER_INACTIVE,
        R.CERT_EXPIRED,  # replaces the certificates: before the foreign one is added
        R.CERT_HOLDER_MISMATCH,
        R.NOT_EMPLOYED,
        R.MACHINE_RETIRED,
        R.MACHINE_OFFLINE,
        R.MACHINE_IN_USE,
        R.BUSY_ELSEWHERE,
    ):
        request = DENIALS[code](request)
    request = with_place(
        request,
        sector=CROWDED,
        crowded_subtype="商场（市场）",
        opening_hours=HOSPITAL_HOURS,
        production_status="歇业",
    )
    decision = decide(request)
    assert decision.codes == (
        R.WELDER_INACTIVE,
        R.CERT_HOLDER_MISMATCH,
        R.CERT_EXPIRED,
        R.NOT_EMPLOYED,
        R.MACHINE_RETIRED,
        R.MACHINE_OFFLINE,
        R.MACHINE_IN_USE,
        R.BUSY_ELSEWHERE,
        R.DURING_OPENING_HOURS,
        R.SPECIAL_PERIOD,
        R.TOO_FAR,
        R.PERMIT_REQUIRED,
    )
    assert decision.warning_codes == (R.NOT_IN_PRODUCTION,)
    assert decision.permit_id is None and decision.valid_until is None


def test_no_chip_makes_offline_moot() -> None:
    decision = decide(DENIALS[R.NO_CHIP](DENIALS[R.MACHINE_OFFLINE](BASELINE)))
    assert decision.codes == (R.NO_CHIP,)


def test_foreign_certificate_only_is_both_mismatch_and_no_certificate() -> None:
    request = dataclasses.replace(
        BASELINE, certificates=(certificate(holder_welder_id=OTHER_WELDER),)
    )
    assert decide(request).codes == (R.NO_CERTIFICATE, R.CERT_HOLDER_MISMATCH)


# --------------------------------------------------------------------------
# Messages carry the specifics
# --------------------------------------------------------------------------


def message(code: ReasonCode, request: ScanRequest) -> str:
    decision = decide(request)
    found = [r for r in (*decision.reasons, *decision.warnings) if r.code is code]
    assert len(found) == 1, decision
    return found[0].message


def test_expired_message_names_the_date_and_days() -> None:
    text = message(R.CERT_EXPIRED, DENIALS[R.CERT_EXPIRED](BASELINE))
    assert "2026-11-01" in text and "22 天" in text and "特种作业操作证" in text


def test_review_overdue_message() -> None:
    text = message(R.CERT_REVIEW_OVERDUE, DENIALS[R.CERT_REVIEW_OVERDUE](BASELINE))
    assert "2026-11-20" in text and "3 天" in text


def test_expiring_message_counts_days() -> None:
    text = message(R.CERT_EXPIRING, WARNINGS[R.CERT_EXPIRING](BASELINE))
    assert "17 天" in text and "2026-12-10" in text


def test_too_far_message_names_metres() -> None:
    text = message(R.TOO_FAR, DENIALS[R.TOO_FAR](BASELINE))
    assert "600 米" in text and "500 米" in text


def test_opening_hours_message_names_hours_and_local_time() -> None:
    text = message(R.DURING_OPENING_HOURS, DENIALS[R.DURING_OPENING_HOURS](BASELINE))
    assert "08:00–20:00" in text and "2026-11-23 10:00" in text and "医院" in text


def test_special_period_message_names_the_period() -> None:
    text = message(R.SPECIAL_PERIOD, DENIALS[R.SPECIAL_PERIOD](BASELINE))
    assert "进博会保障" in text and "2026-11-22 10:00" in text and "2026-11-24 10:00" in text


def test_offline_message_names_last_seen() -> None:
    request = with_machine(BASELINE, chip_online=False, chip_last_seen=utc(2026, 11, 22, 14, 5))
    assert "2026-11-22 22:05" in message(R.MACHINE_OFFLINE, request)
    never = with_machine(BASELINE, chip_online=False, chip_last_seen=None)
    assert "从未上线" in message(R.MACHINE_OFFLINE, never)


def test_kind_mismatch_message_names_what_is_needed() -> None:
    text = message(R.CERT_KIND_MISMATCH, DENIALS[R.CERT_KIND_MISMATCH](BASELINE))
    assert "特种作业操作证（熔化焊接与热切割作业）" in text
    assert "特种设备安全管理和作业人员证" in text


def test_several_failing_certificates_are_one_reason_per_status() -> None:
    request = dataclasses.replace(
        BASELINE,
        certificates=(
            certificate(id=2, status=S.EXPIRED, expiry_date=date(2026, 1, 1)),
            certificate(id=1, status=S.EXPIRED, expiry_date=date(2025, 1, 1)),
            certificate(id=3, status=S.REVOKED),
        ),
    )
    decision = decide(request)
    assert decision.codes == (R.CERT_REVOKED, R.CERT_EXPIRED)
    expired = decision.reasons[1].message
    assert expired.index("2025-01-01") < expired.index("2026-01-01")


# --------------------------------------------------------------------------
# Certificates fit the process and the place (DOMAIN.md)
# --------------------------------------------------------------------------

ARC = ("manual_arc", "mig_mag", "tig", "submerged_arc")
CUT = ("plasma_cutting", "gas_cutting")
FUSION = "熔化焊接与热切割作业"


@pytest.mark.parametrize("process", [*ARC, "gas_welding", *CUT])
def test_general_fusion_and_cutting(process: str) -> None:
    assert accepted_certificates(WorkContext.GENERAL, process) == ((SO, FUSION),)


def test_general_resistance_and_brazing() -> None:
    assert accepted_certificates(WorkContext.GENERAL, "resistance") == ((SO, "压力焊作业"),)
    assert accepted_certificates(WorkContext.GENERAL, "brazing") == ((SO, "钎焊作业"),)


@pytest.mark.parametrize("process", [p.value for p in WeldingProcess])
def test_construction_site_accepts_construction_welder_or_special_operation(process: str) -> None:
    accepted = accepted_certificates(WorkContext.CONSTRUCTION_SITE, process)
    assert accepted[0] == (CO, "建筑焊工")
    assert accepted[1:] == accepted_certificates(WorkContext.GENERAL, process)


@pytest.mark.parametrize("process", [p.value for p in WeldingProcess if p.value not in CUT])
def test_special_equipment_welding_needs_metal_welding(process: str) -> None:
    assert accepted_certificates(WorkContext.SPECIAL_EQUIPMENT, process) == ((SE, "金属焊接操作"),)


@pytest.mark.parametrize("process", CUT)
def test_cutting_on_special_equipment_is_special_operation(process: str) -> None:
    assert accepted_certificates(WorkContext.SPECIAL_EQUIPMENT, process) == ((SO, FUSION),)


def test_table_covers_every_process_and_uses_real_items() -> None:
    for process in WeldingProcess:
        for context in WorkContext:
            assert accepted_certificates(context, process.value), (context, process)
    for row in CERTIFICATE_FIT:
        assert row.item in row.kind.items
        assert row.processes <= {p.value for p in WeldingProcess}


def test_shared_values_agree_with_the_register() -> None:
    assert CROWDED_PLACE_SECTOR == CROWDED
    assert {CONSTRUCTION_SECTOR, HAZARDOUS_CHEMICALS_SECTOR, CROWDED_PLACE_SECTOR} <= set(SECTORS)
    assert MachineStatus.RETIRED.value == RETIRED_MACHINE_STATUS
    assert set(DEFAULT_AUTHORIZATION_POLICY.exception_subtypes) <= set(CROWDED_SUBTYPES)
    for process in WeldingProcess:  # messages use the same labels as the pages
        request = with_cert(with_machine(BASELINE, process=process.value), kind=CO, item="建筑焊工")
        assert PROCESS_LABELS[process] in message(R.CERT_KIND_MISMATCH, request)


def test_work_context() -> None:
    place = BASELINE.place
    assert work_context(place) is WorkContext.GENERAL
    site = dataclasses.replace(place, sector=CONSTRUCTION_SECTOR)
    assert work_context(site) is WorkContext.CONSTRUCTION_SITE
    boiler = dataclasses.replace(site, special_equipment=True)
    assert work_context(boiler) is WorkContext.SPECIAL_EQUIPMENT


def test_construction_certificate_on_a_construction_site() -> None:
    request = with_cert(with_place(BASELINE, sector=CONSTRUCTION_SECTOR), kind=CO, item="建筑焊工")
    request = dataclasses.replace(request, permits=(permit(),))
    assert decide(request).allowed
    elsewhere = with_cert(BASELINE, kind=CO, item="建筑焊工")
    assert decide(elsewhere).codes == (R.CERT_KIND_MISMATCH,)


def test_special_equipment_certificate_on_special_equipment() -> None:
    boiler = with_place(BASELINE, special_equipment=True)
    assert decide(boiler).codes == (R.CERT_KIND_MISMATCH,)
    assert decide(with_cert(boiler, kind=SE, item="金属焊接操作")).allowed
    assert decide(with_cert(boiler, kind=SE, item="非金属焊接操作")).codes == (
        R.CERT_ITEM_MISMATCH,
    )


def test_resistance_welding_needs_pressure_welding_item() -> None:
    request = with_machine(BASELINE, process="resistance")
    assert decide(request).codes == (R.CERT_ITEM_MISMATCH,)
    assert decide(with_cert(request, item="压力焊作业")).allowed


def test_one_fitting_certificate_among_others_is_enough() -> None:
    request = dataclasses.replace(
        BASELINE,
        certificates=(
            certificate(id=1, kind=SE, item="金属焊接操作"),
            certificate(id=2, status=S.EXPIRED),
            certificate(id=3),
        ),
    )
    assert decide(request) == Decision(allowed=True, reasons=())


def test_valid_certificate_is_preferred_over_an_expiring_one() -> None:
    request = dataclasses.replace(
        BASELINE, certificates=(certificate(id=1, status=S.EXPIRING), certificate(id=2))
    )
    assert decide(request).warnings == ()


def test_pending_certificate_confirmed_by_another_enterprise_does_not_count() -> None:
    request = with_cert(BASELINE, status=S.PENDING_VERIFICATION, confirmed_by_enterprise_id=99)
    assert decide(request).codes == (R.CERT_UNVERIFIED,)


def test_pending_certificate_confirmed_by_the_machine_owner_for_a_mobile_welder() -> None:
    request = with_cert(
        BASELINE, status=S.PENDING_VERIFICATION, confirmed_by_enterprise_id=ENTERPRISE
    )
    request = dataclasses.replace(
        request,
        employments=(EmploymentPeriod(CLIENT, date(2024, 1, 1)),),
        mobile_jobs=(MobileJob(1, ENTERPRISE, NOW - timedelta(hours=1), NOW + timedelta(hours=3)),),
    )
    decision = decide(request)
    assert decision.allowed and decision.warning_codes == (R.CERT_PROVISIONAL,)


# --------------------------------------------------------------------------
# Employment and mobile jobs
# --------------------------------------------------------------------------


def test_employment_end_date_is_a_local_day() -> None:
    ends_today = dataclasses.replace(
        BASELINE, employments=(EmploymentPeriod(ENTERPRISE, date(2024, 1, 1), TODAY),)
    )
    # 2026-11-23 23:59 in Shanghai is still the last day; 00:00 on the 24th is not.
    assert decide(dataclasses.replace(ends_today, now=local(2026, 11, 23, 23, 59))).allowed
    late = decide(dataclasses.replace(ends_today, now=local(2026, 11, 24, 0, 0)))
    assert late.codes == (R.NOT_EMPLOYED,)


def test_employment_starts_on_its_local_day() -> None:
    starts_tomorrow = dataclasses.replace(
        BASELINE, employments=(EmploymentPeriod(ENTERPRISE, date(2026, 11, 24)),)
    )
    # 16:00 UTC on the 23rd is 00:00 on the 24th in Shanghai.
    assert decide(dataclasses.replace(starts_tomorrow, now=utc(2026, 11, 23, 16, 0))).allowed
    assert decide(dataclasses.replace(starts_tomorrow, now=utc(2026, 11, 23, 15, 59))).codes == (
        R.NOT_EMPLOYED,
    )


def test_employment_elsewhere_does_not_count() -> None:
    request = dataclasses.replace(
        BASELINE, employments=(EmploymentPeriod(CLIENT, date(2024, 1, 1)),)
    )
    assert decide(request).codes == (R.NOT_EMPLOYED,)


def test_outside_welder_with_a_mobile_job_at_the_machine_enterprise() -> None:
    job = MobileJob(7, ENTERPRISE, NOW - timedelta(hours=1), NOW + timedelta(hours=3), SITE)
    request = dataclasses.replace(BASELINE, employments=(), mobile_jobs=(job,))
    decision = decide(request)
    assert decision.allowed and decision.valid_until == job.ends_at
    # The job's window is [starts_at, ends_at).
    assert decide(dataclasses.replace(request, now=job.ends_at)).codes == (R.NOT_EMPLOYED,)
    assert decide(dataclasses.replace(request, now=job.starts_at)).allowed
    # Another site of the same client is not covered.
    other_site = with_machine(request, site_id=SITE + 1)
    assert decide(other_site).codes == (R.NOT_EMPLOYED,)


def test_contractor_machine_at_a_client_needs_a_declared_job() -> None:
    at_client = with_place(BASELINE, enterprise_id=CLIENT)
    assert decide(at_client).codes == (R.MOBILE_JOB_NOT_DECLARED,)
    job = MobileJob(8, CLIENT, NOW - timedelta(hours=1), NOW + timedelta(hours=2))
    declared = dataclasses.replace(at_client, mobile_jobs=(job,))
    decision = decide(declared)
    assert decision.allowed and decision.valid_until == job.ends_at
    stranger = dataclasses.replace(declared, employments=())
    assert decide(stranger).codes == (R.NOT_EMPLOYED,)
    neither = dataclasses.replace(at_client, employments=())
    assert decide(neither).codes == (R.NOT_EMPLOYED, R.MOBILE_JOB_NOT_DECLARED)


# --------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------


def test_own_open_session_is_not_in_use() -> None:
    # A double tap or a retry by the same welder: the service reuses the session.
    request = with_machine(BASELINE, session_welder_id=WELDER, locked=False)
    assert decide(request) == Decision(allowed=True, reasons=())


def test_session_on_this_machine_is_not_busy_elsewhere() -> None:
    request = dataclasses.replace(BASELINE, other_session_machine_ids=frozenset({MACHINE}))
    assert decide(request).allowed


def test_busy_elsewhere_can_be_allowed_by_policy() -> None:
    request = DENIALS[R.BUSY_ELSEWHERE](BASELINE)
    assert decide(request, AuthorizationPolicy(refuse_when_busy_elsewhere=False)).allowed


def test_registered_status_with_a_chip_bound_is_fine() -> None:
    assert decide(with_machine(BASELINE, status=MachineStatus.REGISTERED.value)).allowed


def test_site_position_stands_in_for_a_missing_fix() -> None:
    request = with_machine(
        BASELINE, chip_position=None, site_position=north_of(MACHINE_POSITION, -450)
    )
    assert decide(request).codes == (R.TOO_FAR,)


# --------------------------------------------------------------------------
# Opening hours of crowded places (Asia/Shanghai, inputs in UTC)
# --------------------------------------------------------------------------

WEEKDAYS_9_TO_21 = (OpeningWindow(frozenset({1, 2, 3, 4, 5}), 9 * 60, 21 * 60),)
# A KTV opening Friday and Saturday evening until 02:00 the next morning.
KTV_NIGHTS = (OpeningWindow(frozenset({5, 6}), 18 * 60, 2 * 60),)


def at_crowded_place(
    hours: tuple[OpeningWindow, ...], now: datetime, subtype: str = "商场（市场）"
) -> ScanRequest:
    request = with_place(BASELINE, sector=CROWDED, crowded_subtype=subtype, opening_hours=hours)
    long_permit = permit(starts_at=now - timedelta(days=1), ends_at=now + timedelta(days=1))
    return dataclasses.replace(request, now=now, permits=(long_permit,))


def is_open(hours: tuple[OpeningWindow, ...], now: datetime, **policy: object) -> bool:
    decision = decide(at_crowded_place(hours, now), AuthorizationPolicy(**policy))  # type: ignore[arg-type]
    assert set(decision.codes) <= {R.DURING_OPENING_HOURS}
    return not decision.allowed


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # Monday 2026-11-23: opens 09:00 local = 01:00 UTC, closes 21:00 = 13:00 UTC.
        (utc(2026, 11, 23, 0, 59), False),
        (utc(2026, 11, 23, 1, 0), True),
        (utc(2026, 11, 23, 12, 59), True),
        (utc(2026, 11, 23, 13, 0), False),
        # Friday 21:00 local closes; Saturday is not an opening day.
        (local(2026, 11, 27, 20, 59), True),
        (local(2026, 11, 27, 21, 0), False),
        (local(2026, 11, 28, 9, 0), False),
        (local(2026, 11, 29, 12, 0), False),
        # The next Monday, 09:30 local.
        (utc(2026, 11, 30, 1, 30), True),
    ],
)
def test_weekday_window_edges(now: datetime, expected: bool) -> None:
    assert is_open(WEEKDAYS_9_TO_21, now) is expected


def test_weekday_is_the_local_one() -> None:
    # Monday 07:00 in Shanghai is Sunday 23:00 UTC: a Monday-only early window
    # must apply, although the UTC date is a Sunday.
    early_monday = (OpeningWindow(frozenset({1}), 6 * 60, 10 * 60),)
    sunday_utc = utc(2026, 11, 29, 23, 0)
    assert sunday_utc.weekday() == 6
    assert is_open(early_monday, sunday_utc)
    # And Sunday 23:00 local (15:00 UTC) is not Monday.
    assert not is_open(early_monday, utc(2026, 11, 29, 15, 0))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (local(2026, 11, 27, 17, 59), False),  # Friday before opening
        (local(2026, 11, 27, 18, 0), True),  # Friday opens
        (local(2026, 11, 27, 23, 59), True),
        (local(2026, 11, 28, 0, 0), True),  # past midnight, Friday's night
        (local(2026, 11, 28, 1, 59), True),
        (local(2026, 11, 28, 2, 0), False),  # closes 02:00 Saturday
        (local(2026, 11, 28, 17, 59), False),
        (local(2026, 11, 28, 18, 0), True),  # Saturday opens
        (local(2026, 11, 29, 1, 59), True),  # Saturday's night, on Sunday
        (local(2026, 11, 29, 2, 0), False),
        (local(2026, 11, 29, 18, 0), False),  # no Sunday night
        (local(2026, 11, 30, 1, 0), False),  # so Monday morning is closed
        (local(2026, 11, 27, 1, 0), False),  # nor Friday morning (no Thursday night)
    ],
)
def test_overnight_window(now: datetime, expected: bool) -> None:
    assert is_open(KTV_NIGHTS, now) is expected


def test_round_the_clock_windows() -> None:
    for hours in (
        (OpeningWindow(ALL_DAYS, 0, 24 * 60),),
        (OpeningWindow(ALL_DAYS, 8 * 60, 8 * 60),),
    ):
        for minute in range(0, 7 * 24 * 60, 97):
            assert is_open(hours, NOW + timedelta(minutes=minute))


def test_midnight_close_on_one_day_only() -> None:
    sunday_all_day = (OpeningWindow(frozenset({7}), 0, 24 * 60),)
    assert is_open(sunday_all_day, local(2026, 11, 29, 0, 0))
    assert is_open(sunday_all_day, local(2026, 11, 29, 23, 59))
    assert not is_open(sunday_all_day, local(2026, 11, 30, 0, 0))
    assert not is_open(sunday_all_day, local(2026, 11, 28, 23, 59))


def test_margin_widens_the_window_on_both_sides() -> None:
    margin = timedelta(minutes=30)
    assert not is_open(WEEKDAYS_9_TO_21, local(2026, 11, 23, 8, 29), opening_hours_margin=margin)
    assert is_open(WEEKDAYS_9_TO_21, local(2026, 11, 23, 8, 30), opening_hours_margin=margin)
    assert is_open(WEEKDAYS_9_TO_21, local(2026, 11, 23, 21, 29), opening_hours_margin=margin)
    assert not is_open(WEEKDAYS_9_TO_21, local(2026, 11, 23, 21, 30), opening_hours_margin=margin)
    assert is_open(KTV_NIGHTS, local(2026, 11, 29, 2, 29), opening_hours_margin=margin)
    assert not is_open(KTV_NIGHTS, local(2026, 11, 29, 2, 30), opening_hours_margin=margin)


def test_open_window_at_reports_the_span() -> None:
    hit = open_window_at(KTV_NIGHTS, local(2026, 11, 28, 1, 0))
    assert hit is not None
    window, opens, closes = hit
    assert window == KTV_NIGHTS[0]
    assert opens == local(2026, 11, 27, 18, 0) and closes == local(2026, 11, 28, 2, 0)
    assert window.label == "周五、周六 18:00–次日02:00"


@pytest.mark.parametrize(
    ("weekdays", "label"),
    [
        ({1, 2, 3, 4, 5, 6, 7}, "每天"),
        ({1, 2, 3, 4, 5}, "周一至周五"),
        ({6, 7}, "周六、周日"),
        ({1, 3, 4, 5, 7}, "周一、周三至周五、周日"),
    ],
)
def test_window_label(weekdays: set[int], label: str) -> None:
    assert OpeningWindow(frozenset(weekdays), 9 * 60, 21 * 60).label == f"{label} 09:00–21:00"


def test_recorded_as_never_open() -> None:
    assert not is_open((), NOW)


def test_no_opening_hours_can_be_allowed_by_policy() -> None:
    request = DENIALS[R.OPENING_HOURS_UNKNOWN](BASELINE)
    assert decide(request, AuthorizationPolicy(deny_crowded_place_without_hours=False)).allowed


def test_crowded_subtype_on_another_sector_counts() -> None:
    place = dataclasses.replace(BASELINE.place, sector="科研机构", crowded_subtype="学校")
    assert is_crowded_place(place)
    assert permit_required(place, "manual_arc")


def test_exception_path_in_a_hospital_during_opening_hours() -> None:
    request = at_crowded_place(HOSPITAL_HOURS, NOW, subtype="医院")
    assert decide(request).codes == (R.DURING_OPENING_HOURS,)
    exception = permit(id=901, crowded_place_exception=True)
    allowed = decide(dataclasses.replace(request, permits=(*request.permits, exception)))
    assert allowed.allowed and allowed.permit_id == 901
    # Not for a mall: DOMAIN.md names hospitals, care homes and schools.
    mall = with_place(
        dataclasses.replace(request, permits=(exception,)), crowded_subtype="商场（市场）"
    )
    assert decide(mall).codes == (R.DURING_OPENING_HOURS,)


def test_expired_exception_permit_does_not_lift_opening_hours() -> None:
    request = at_crowded_place(HOSPITAL_HOURS, NOW, subtype="医院")
    expired = permit(crowded_place_exception=True, ends_at=NOW)
    decision = decide(dataclasses.replace(request, permits=(expired,)))
    assert decision.codes == (R.DURING_OPENING_HOURS, R.PERMIT_INVALID)


def test_session_must_end_before_the_place_opens() -> None:
    # Monday 22:00 local at a hospital open 08:00-20:00: until Tuesday 08:00.
    request = at_crowded_place(HOSPITAL_HOURS, local(2026, 11, 23, 22, 0), subtype="医院")
    decision = decide(request)
    assert decision.allowed
    assert decision.valid_until == local(2026, 11, 24, 8, 0)


def test_opening_windows_from_json() -> None:
    windows = opening_windows_from_json(
        [
            {"days": [1, 2, 3, 4, 5], "open": "09:00", "close": "21:00"},
            {"days": [6, 7], "open": "18:00", "close": "02:00"},
            {"days": [7], "open": "00:00", "close": "24:00"},
        ]
    )
    assert windows == (
        OpeningWindow(frozenset({1, 2, 3, 4, 5}), 540, 1260),
        OpeningWindow(frozenset({6, 7}), 1080, 120),
        OpeningWindow(frozenset({7}), 0, 1440),
    )


@pytest.mark.parametrize(
    "entry",
    [
        {"days": [1], "open": "9", "close": "21:00"},
        {"days": [1], "open": "09:60", "close": "21:00"},
        {"days": [1], "open": "24:00", "close": "02:00"},
        {"days": [1], "open": "09:00", "close": "24:01"},
        {"days": [0], "open": "09:00", "close": "21:00"},
        {"days": [8], "open": "09:00", "close": "21:00"},
        {"days": [], "open": "09:00", "close": "21:00"},
    ],
)
def test_bad_opening_hours_are_refused(entry: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        opening_windows_from_json([entry])


# --------------------------------------------------------------------------
# Special periods
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "banned"),
    [
        (NOW, NOW + timedelta(hours=1), True),  # starts now: inclusive
        (NOW - timedelta(hours=1), NOW, False),  # ends now: exclusive
        (NOW - timedelta(hours=1), NOW + timedelta(microseconds=1), True),
        (NOW + timedelta(microseconds=1), NOW + timedelta(hours=1), False),
    ],
)
def test_special_period_boundaries(starts_at: datetime, ends_at: datetime, banned: bool) -> None:
    request = dataclasses.replace(
        BASELINE, special_periods=(ban(starts_at=starts_at, ends_at=ends_at),)
    )
    assert (decide(request).codes == (R.SPECIAL_PERIOD,)) is banned


@pytest.mark.parametrize(
    ("area_path", "applies"),
    [
        ("310000/", True),  # the whole city
        (DISTRICT, True),
        (AREA, True),
        (OTHER_DISTRICT, False),
        ("310000/310100/3101050", False),  # not a path prefix of a node
        (AREA + "x/", False),  # below the place
    ],
)
def test_special_period_area(area_path: str, applies: bool) -> None:
    request = dataclasses.replace(BASELINE, special_periods=(ban(area_path=area_path),))
    assert (not decide(request).allowed) is applies


def test_special_period_for_some_sectors() -> None:
    crowded_only = ban(sectors=frozenset({CROWDED}))
    assert decide(dataclasses.replace(BASELINE, special_periods=(crowded_only,))).allowed
    for_trade = ban(sectors=frozenset({"工贸"}))
    assert not decide(dataclasses.replace(BASELINE, special_periods=(for_trade,))).allowed


def test_special_period_requiring_a_permit() -> None:
    period = ban(kind=SpecialPeriodKind.REQUIRE_PERMIT)
    request = dataclasses.replace(BASELINE, special_periods=(period,))
    decision = decide(request)
    assert decision.codes == (R.PERMIT_REQUIRED,)
    assert "进博会保障" in decision.reasons[0].message
    assert decide(dataclasses.replace(request, permits=(permit(),))).allowed


def test_a_coming_special_period_ends_the_session() -> None:
    coming = ban(starts_at=NOW + timedelta(hours=3), ends_at=NOW + timedelta(days=2))
    decision = decide(dataclasses.replace(BASELINE, special_periods=(coming,)))
    assert decision.allowed and decision.valid_until == coming.starts_at


# --------------------------------------------------------------------------
# Distance (远距离扫码)
# --------------------------------------------------------------------------


def phone_at(latitude: float) -> ScanRequest:
    point = GeoPoint(latitude, MACHINE_POSITION.longitude)
    return dataclasses.replace(BASELINE, phone_position=PhonePosition(point, 5))


def test_exactly_500_metres_is_allowed_and_a_hair_more_is_not() -> None:
    # The largest latitude whose distance is still <= 500 m, found float by float.
    latitude = north_of(MACHINE_POSITION, 500).latitude
    while haversine_m(GeoPoint(latitude, MACHINE_POSITION.longitude), MACHINE_POSITION) > 500:
        latitude = math.nextafter(latitude, -math.inf)
    while (
        haversine_m(
            GeoPoint(math.nextafter(latitude, math.inf), MACHINE_POSITION.longitude),
            MACHINE_POSITION,
        )
        <= 500
    ):
        latitude = math.nextafter(latitude, math.inf)
    at_limit = haversine_m(GeoPoint(latitude, MACHINE_POSITION.longitude), MACHINE_POSITION)
    assert at_limit == pytest.approx(500, abs=1e-6)
    assert decide(phone_at(latitude)).allowed
    assert decide(phone_at(math.nextafter(latitude, math.inf))).codes == (R.TOO_FAR,)


@pytest.mark.parametrize(("metres", "allowed"), [(0, True), (499.9, True), (500.1, False)])
def test_distance_around_the_limit(metres: float, allowed: bool) -> None:
    request = phone_at(north_of(MACHINE_POSITION, metres).latitude)
    assert decide(request).allowed is allowed


def test_max_distance_is_configurable() -> None:
    request = DENIALS[R.TOO_FAR](BASELINE)  # 600 m
    assert decide(request, AuthorizationPolicy(max_distance_m=1000)).allowed
    near = BASELINE  # 100 m
    assert decide(near, AuthorizationPolicy(max_distance_m=50)).codes == (R.TOO_FAR,)


def test_far_and_imprecise_is_still_too_far() -> None:
    # The stricter reading: the reported distance counts, not distance - accuracy.
    request = dataclasses.replace(
        BASELINE, phone_position=PhonePosition(north_of(MACHINE_POSITION, 600), 2000)
    )
    decision = decide(request)
    assert decision.codes == (R.TOO_FAR,)
    assert decision.warning_codes == (R.POSITION_IMPRECISE,)


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_bad_max_distance_is_refused(value: float) -> None:
    with pytest.raises(ValueError):
        AuthorizationPolicy(max_distance_m=value)


# --------------------------------------------------------------------------
# Permits
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sector", "subtype", "required"),
    [
        ("工贸", None, False),
        ("危化", None, True),
        ("施工工地", None, True),
        ("科研机构", None, False),
        ("电力", None, False),
        ("航空航天", None, False),
        (CROWDED, "医院", True),
        (CROWDED, "其他人员密集场所", True),
    ],
)
def test_permit_required_by_sector(sector: str, subtype: str | None, required: bool) -> None:
    place = PlaceFacts(ENTERPRISE, sector, AREA, crowded_subtype=subtype)
    assert permit_required(place, "manual_arc") is required


def test_permit_rule_settings() -> None:
    trade = BASELINE.place
    assert permit_required(trade, "manual_arc", PermitRule(everywhere=True))
    gas_cutting = PermitRule(processes=frozenset({"gas_cutting"}))
    assert permit_required(trade, "gas_cutting", gas_cutting)
    assert not permit_required(trade, "manual_arc", gas_cutting)
    assert not permit_required(
        PlaceFacts(ENTERPRISE, "危化", AREA), "manual_arc", PermitRule(sectors=frozenset())
    )


def test_enterprise_setting_wins_over_the_rule() -> None:
    assert permit_required(
        dataclasses.replace(BASELINE.place, permit_required_override=True), "tig"
    )
    chemicals = PlaceFacts(ENTERPRISE, "危化", AREA, permit_required_override=False)
    assert not permit_required(chemicals, "tig")


def test_permit_required_by_policy_in_decide() -> None:
    policy = AuthorizationPolicy(permit_rule=PermitRule(everywhere=True))
    assert decide(BASELINE, policy).codes == (R.PERMIT_REQUIRED,)
    decision = decide(dataclasses.replace(BASELINE, permits=(permit(),)), policy)
    assert decision.allowed
    assert decision.permit_id == 900 and decision.valid_until == permit().ends_at


CHEMICALS = with_place(BASELINE, sector=HAZARDOUS_CHEMICALS_SECTOR)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"state": PermitState.NOT_STARTED}, "尚未开始动火"),
        ({"state": PermitState.SUSPENDED}, "已暂停"),
        ({"state": PermitState.CLOSED}, "已关闭"),
        ({"starts_at": NOW + timedelta(minutes=1)}, "自 2026-11-23 10:01 起生效"),
        ({"ends_at": NOW}, "已于 2026-11-23 10:00 到期"),
        ({"welder_ids": frozenset({OTHER_WELDER})}, "作业人员中没有您"),
        ({"machine_ids": frozenset({OTHER_MACHINE})}, "未包含该焊机"),
        ({"enterprise_id": CLIENT}, "动火地点与焊机所在地点不符"),
        ({"site_id": SITE + 1}, "动火地点与焊机所在地点不符"),
    ],
)
def test_each_permit_problem(changes: dict[str, object], problem: str) -> None:
    request = dataclasses.replace(CHEMICALS, permits=(permit(**changes),))
    decision = decide(request)
    assert decision.codes == (R.PERMIT_INVALID,)
    assert problem in decision.reasons[0].message
    assert "DH-2026-0001" in decision.reasons[0].message


def test_permit_window_starts_inclusive() -> None:
    request = dataclasses.replace(CHEMICALS, permits=(permit(starts_at=NOW),))
    assert decide(request).allowed


def test_one_valid_permit_among_invalid_ones() -> None:
    permits = (
        permit(id=1, number="A", ends_at=NOW),
        permit(id=2, number="B", ends_at=NOW + timedelta(hours=2)),
        permit(id=3, number="C", ends_at=NOW + timedelta(hours=5)),
    )
    decision = decide(dataclasses.replace(CHEMICALS, permits=permits))
    assert decision.allowed
    assert decision.permit_id == 3 and decision.valid_until == NOW + timedelta(hours=5)


def test_permit_is_not_looked_at_where_none_is_required() -> None:
    request = dataclasses.replace(BASELINE, permits=(permit(state=PermitState.CLOSED),))
    assert decide(request) == Decision(allowed=True, reasons=())


def test_permit_for_a_mobile_job_names_the_client() -> None:
    at_client = with_place(CHEMICALS, enterprise_id=CLIENT)
    job = MobileJob(8, CLIENT, NOW - timedelta(hours=1), NOW + timedelta(hours=2))
    request = dataclasses.replace(
        at_client, mobile_jobs=(job,), permits=(permit(enterprise_id=CLIENT, site_id=77),)
    )
    decision = decide(request)
    assert decision.allowed
    assert decision.valid_until == job.ends_at  # the job ends before the permit


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        dataclasses.replace(BASELINE, now=datetime(2026, 11, 23, 10, 0))


def test_other_timezones_are_the_same_instant() -> None:
    from zoneinfo import ZoneInfo

    in_berlin = NOW.astimezone(ZoneInfo("Europe/Berlin"))
    request = at_crowded_place(WEEKDAYS_9_TO_21, in_berlin)
    assert decide(request) == decide(at_crowded_place(WEEKDAYS_9_TO_21, NOW))


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

ENTERPRISES = st.sampled_from([ENTERPRISE, CLIENT])
MOMENTS = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)


@st.composite
def certificates(draw: st.DrawFn) -> tuple[HeldCertificate, ...]:
    count = draw(st.integers(0, 3))
    result = []
    for index in range(count):
        kind = draw(st.sampled_from(list(CertificateKind)))
        result.append(
            HeldCertificate(
                id=index + 1,
                holder_welder_id=draw(st.sampled_from([WELDER, WELDER, OTHER_WELDER])),
                kind=kind,
                item=draw(st.sampled_from([*kind.items, "钎焊作业"])),
                status=draw(st.sampled_from(list(CertificateStatus))),
                expiry_date=draw(st.dates(date(2025, 1, 1), date(2030, 1, 1))),
                review_due_date=draw(st.none() | st.dates(date(2025, 1, 1), date(2030, 1, 1))),
                confirmed_by_enterprise_id=draw(st.none() | ENTERPRISES),
            )
        )
    return tuple(result)


@st.composite
def windows(draw: st.DrawFn) -> tuple[OpeningWindow, ...]:
    return tuple(
        OpeningWindow(
            frozenset(draw(st.sets(st.integers(1, 7), min_size=1))),
            draw(st.integers(0, 1439)),
            draw(st.integers(0, 1440)),
        )
        for _ in range(draw(st.integers(0, 2)))
    )


@st.composite
def scan_requests(draw: st.DrawFn) -> ScanRequest:
    now = draw(MOMENTS)
    sector = draw(st.sampled_from(SECTORS))
    subtype = draw(st.sampled_from(CROWDED_SUBTYPES)) if sector == CROWDED else None

    def around(hours: int = 48) -> datetime:
        return now + timedelta(minutes=draw(st.integers(-hours * 60, hours * 60)))

    machine_position = draw(st.none() | st.just(MACHINE_POSITION))
    return ScanRequest(
        welder=WelderFacts(WELDER, active=draw(st.booleans())),
        machine=MachineFacts(
            id=MACHINE,
            status=draw(st.sampled_from([s.value for s in MachineStatus])),
            process=draw(st.sampled_from([*(p.value for p in WeldingProcess), "laser"])),
            enterprise_id=ENTERPRISE,
            chip_bound=draw(st.booleans()),
            chip_online=draw(st.booleans()),
            site_id=draw(st.none() | st.just(SITE)),
            chip_position=machine_position,
            locked=draw(st.none() | st.booleans()),
            session_welder_id=draw(st.none() | st.sampled_from([WELDER, OTHER_WELDER])),
        ),
        place=PlaceFacts(
            enterprise_id=draw(ENTERPRISES),
            sector=sector,
            area_path=draw(st.sampled_from([AREA, OTHER_DISTRICT + "310104003/"])),
            crowded_subtype=subtype,
            opening_hours=draw(st.none() | windows()),
            production_status=draw(st.sampled_from(["在产", "停产", "歇业"])),
            special_equipment=draw(st.booleans()),
        ),
        now=now,
        certificates=draw(certificates()),
        employments=tuple(
            EmploymentPeriod(
                draw(ENTERPRISES),
                draw(st.dates(date(2025, 1, 1), date(2027, 6, 1))),
                draw(st.none() | st.dates(date(2026, 1, 1), date(2028, 1, 1))),
            )
            for _ in range(draw(st.integers(0, 2)))
        ),
        mobile_jobs=tuple(
            MobileJob(i, draw(ENTERPRISES), (start := around()), start + timedelta(hours=8))
            for i in range(draw(st.integers(0, 2)))
        ),
        special_periods=tuple(
            SpecialPeriod(
                i,
                "特殊时期",
                draw(st.sampled_from([DISTRICT, OTHER_DISTRICT])),
                (start := around()),
                start + timedelta(hours=draw(st.integers(1, 72))),
                kind=draw(st.sampled_from(list(SpecialPeriodKind))),
            )
            for i in range(draw(st.integers(0, 2)))
        ),
        permits=tuple(
            PermitFacts(
                id=i,
                number=f"P{i}",
                state=draw(st.sampled_from(list(PermitState))),
                enterprise_id=draw(ENTERPRISES),
                starts_at=(start := around(12)),
                ends_at=start + timedelta(hours=draw(st.integers(1, 72))),
                welder_ids=frozenset(draw(st.sets(st.sampled_from([WELDER, OTHER_WELDER])))),
                machine_ids=frozenset(draw(st.sets(st.sampled_from([MACHINE, OTHER_MACHINE])))),
                crowded_place_exception=draw(st.booleans()),
            )
            for i in range(draw(st.integers(0, 2)))
        ),
        phone_position=draw(
            st.none()
            | st.builds(
                PhonePosition,
                st.floats(0, 1000).map(lambda m: north_of(MACHINE_POSITION, m)),
                st.none() | st.floats(1, 500),
            )
        ),
        other_session_machine_ids=frozenset(
            draw(st.sets(st.sampled_from([MACHINE, OTHER_MACHINE])))
        ),
    )


POLICIES = st.builds(
    AuthorizationPolicy,
    max_distance_m=st.floats(50, 2000),
    require_position=st.booleans(),
    refuse_when_busy_elsewhere=st.booleans(),
    deny_crowded_place_without_hours=st.booleans(),
    opening_hours_margin=st.sampled_from([timedelta(0), timedelta(minutes=30)]),
    production_statuses_denied=st.sampled_from([frozenset(), frozenset({"停产", "歇业"})]),
    permit_rule=st.sampled_from([PermitRule(), PermitRule(everywhere=True)]),
)


@settings(max_examples=150, deadline=None)
@given(scan_requests(), POLICIES)
def test_allowed_iff_no_reasons_and_reasons_are_ordered(
    request: ScanRequest, policy: AuthorizationPolicy
) -> None:
    decision = decide(request, policy)
    assert decision.allowed == (not decision.reasons)
    orders = [r.code.order for r in decision.reasons]
    assert orders == sorted(orders)
    assert len(set(decision.codes)) == len(decision.codes)
    assert not set(decision.codes) & set(decision.warning_codes)
    if not decision.allowed:
        assert decision.permit_id is None and decision.valid_until is None
    elif decision.valid_until is not None:
        assert decision.valid_until > request.now
    for reason in (*decision.reasons, *decision.warnings):
        assert reason.message
        assert reason.regulator_warning == (reason.code.regulator_warning is not None)


@settings(max_examples=100, deadline=None)
@given(scan_requests(), POLICIES, st.randoms(use_true_random=False))
def test_decision_is_deterministic_and_ignores_input_order(
    request: ScanRequest, policy: AuthorizationPolicy, rnd: random.Random
) -> None:
    def shuffled(items: tuple[T, ...]) -> tuple[T, ...]:
        copy = list(items)
        rnd.shuffle(copy)
        return tuple(copy)

    reordered = dataclasses.replace(
        request,
        certificates=shuffled(request.certificates),
        employments=shuffled(request.employments),
        mobile_jobs=shuffled(request.mobile_jobs),
        special_periods=shuffled(request.special_periods),
        permits=shuffled(request.permits),
    )
    assert decide(request, policy) == decide(request, policy)
    assert decide(reordered, policy) == decide(request, policy)


#: Mutations that only add a failing fact to whatever is there (unlike the
#: certificate mutations, which replace the certificates).
ADDITIVE: dict[ReasonCode, Mutation] = {
    R.WELDER_INACTIVE: DENIALS[R.WELDER_INACTIVE],
    R.CERT_HOLDER_MISMATCH: lambda r: dataclasses.replace(
        r, certificates=(*r.certificates, certificate(id=99, holder_welder_id=OTHER_WELDER))
    ),
    R.MACHINE_RETIRED: DENIALS[R.MACHINE_RETIRED],
    R.NO_CHIP: DENIALS[R.NO_CHIP],
    R.MACHINE_IN_USE: DENIALS[R.MACHINE_IN_USE],
    R.BUSY_ELSEWHERE: DENIALS[R.BUSY_ELSEWHERE],
    R.SPECIAL_PERIOD: lambda r: dataclasses.replace(
        r,
        special_periods=(
            *r.special_periods,
            ban(id=99, area_path="", starts_at=r.now, ends_at=r.now + timedelta(hours=1)),
        ),
    ),
    R.TOO_FAR: lambda r: dataclasses.replace(
        with_machine(r, chip_position=MACHINE_POSITION),
        phone_position=PhonePosition(north_of(MACHINE_POSITION, 5000), 10),
    ),
}
#: Codes a mutation may legitimately replace by its own.
SUPERSEDED: dict[ReasonCode, set[ReasonCode]] = {
    R.NO_CHIP: {R.MACHINE_OFFLINE},
    R.TOO_FAR: {R.NO_POSITION},
}


@settings(max_examples=150, deadline=None)
@given(scan_requests(), POLICIES, st.sampled_from(list(ADDITIVE)))
def test_adding_a_failing_fact_never_allows(
    request: ScanRequest, policy: AuthorizationPolicy, code: ReasonCode
) -> None:
    if code is R.BUSY_ELSEWHERE:
        policy = dataclasses.replace(policy, refuse_when_busy_elsewhere=True)
    if code is R.TOO_FAR:
        policy = dataclasses.replace(policy, max_distance_m=min(policy.max_distance_m, 2000))
    before = decide(request, policy)
    after = decide(ADDITIVE[code](request), policy)
    assert not after.allowed
    assert code in after.codes
    lost = set(before.codes) - set(after.codes)
    assert lost <= SUPERSEDED.get(code, set())


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(DENIALS)), st.sampled_from(list(DENIALS)))
def test_two_denials_from_the_baseline_deny(first: ReasonCode, second: ReasonCode) -> None:
    decision = decide(DENIALS[second](DENIALS[first](BASELINE)))
    assert not decision.allowed
