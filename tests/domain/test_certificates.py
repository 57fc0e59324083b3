"""Tests of weldguard.domain.certificates: kinds, policy, derived dates and status."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from weldguard.domain.certificates import (
    DEFAULT_POLICY,
    SPECIAL_OPERATION_CATEGORY,
    CertificateFacts,
    CertificateKind,
    CertificatePolicy,
    CertificateStatus,
    add_months,
    add_years,
    certificate_status,
    certificate_status_reason,
    days_until_deadline,
    default_expiry_date,
    effective_expiry_date,
    expected_special_operation_number,
    holder_matches_number,
    kind_from_label,
    next_review_due,
    review_application_from,
    validate_item,
)
from weldguard.domain.ids import InvalidIdNumber, make_id_number

SO = CertificateKind.SPECIAL_OPERATION
SE = CertificateKind.SPECIAL_EQUIPMENT
CO = CertificateKind.CONSTRUCTION
S = CertificateStatus

# --------------------------------------------------------------------------
# Calendar arithmetic
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "years", "expected"),
    [
        (date(2020, 2, 29), 1, date(2021, 2, 28)),
        (date(2020, 2, 29), 4, date(2024, 2, 29)),
        (date(2020, 2, 29), 6, date(2026, 2, 28)),
        (date(2020, 2, 29), -1, date(2019, 2, 28)),
        (date(2021, 3, 1), 3, date(2024, 3, 1)),
        (date(2023, 12, 31), 2, date(2025, 12, 31)),
    ],
)
def test_add_years(start: date, years: int, expected: date) -> None:
    assert add_years(start, years) == expected


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 5, 31), 1, date(2024, 6, 30)),
        (date(2024, 5, 31), -3, date(2024, 2, 29)),
        (date(2023, 5, 31), -3, date(2023, 2, 28)),
        (date(2024, 1, 15), -1, date(2023, 12, 15)),
        (date(2024, 12, 1), 1, date(2025, 1, 1)),
        (date(2024, 3, 1), -3, date(2023, 12, 1)),
        (date(2024, 3, 1), 0, date(2024, 3, 1)),
    ],
)
def test_add_months(start: date, months: int, expected: date) -> None:
    assert add_months(start, months) == expected


@given(st.dates(min_value=date(1901, 1, 1), max_value=date(2200, 12, 31)), st.integers(0, 50))
def test_add_years_properties(day: date, years: int) -> None:
    shifted = add_years(day, years)
    assert shifted.year == day.year + years
    assert shifted.month == day.month
    if (day.month, day.day) == (2, 29):
        assert shifted.day in (28, 29)
    else:
        assert shifted.day == day.day
        assert add_years(shifted, -years) == day


@given(st.dates(min_value=date(1901, 1, 1), max_value=date(2200, 12, 31)), st.integers(-240, 240))
def test_add_months_never_overflows_the_month(day: date, months: int) -> None:
    shifted = add_months(day, months)
    assert (shifted.year * 12 + shifted.month) - (day.year * 12 + day.month) == months
    assert shifted.day <= day.day


# --------------------------------------------------------------------------
# Kinds and items
# --------------------------------------------------------------------------


def test_kind_values_labels_and_issuers() -> None:
    assert [k.value for k in CertificateKind] == [
        "special_operation",
        "special_equipment",
        "construction",
    ]
    assert SO.label == "特种作业操作证"
    assert SE.label == "特种设备安全管理和作业人员证"
    assert CO.label == "建筑施工特种作业操作资格证"
    assert SO.issuer_label == "应急管理部门"
    assert SE.issuer_label == "市场监管部门"
    assert CO.issuer_label == "住建部门"


def test_kind_items() -> None:
    assert SO.items == ("熔化焊接与热切割作业", "压力焊作业", "钎焊作业")
    assert SE.items == ("金属焊接操作", "非金属焊接操作")
    assert CO.items == ("建筑焊工",)
    assert SPECIAL_OPERATION_CATEGORY == "焊接与热切割作业"


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("特种作业操作证", SO),
        (" 特种作业操作证 ", SO),
        ("特种作业证", SO),
        ("special_operation", SO),
        ("SPECIAL_OPERATION", SO),
        ("特种设备安全管理和作业人员证", SE),
        ("特种设备作业人员证", SE),
        ("special_equipment", SE),
        ("建筑施工特种作业操作资格证", CO),
        ("建筑施工特种作业人员操作资格证", CO),
        ("construction", CO),
        ("ｃｏｎｓｔｒｕｃｔｉｏｎ", CO),
    ],
)
def test_kind_from_label(text: str, kind: CertificateKind) -> None:
    assert kind_from_label(text) is kind


def test_kind_from_label_accepts_every_label_and_value() -> None:
    for kind in CertificateKind:
        assert kind_from_label(kind.label) is kind
        assert kind_from_label(kind.value) is kind
        assert kind_from_label(str(kind)) is kind


def test_kind_from_label_errors() -> None:
    with pytest.raises(ValueError, match="不能为空"):
        kind_from_label("  ")
    with pytest.raises(ValueError, match="无法识别的证书类型“电工证”") as info:
        kind_from_label("电工证")
    assert "特种作业操作证" in str(info.value)


@pytest.mark.parametrize(
    ("kind", "item", "expected"),
    [
        (SO, "熔化焊接与热切割作业", "熔化焊接与热切割作业"),
        (SO, " 熔化焊接与热切割 ", "熔化焊接与热切割作业"),
        (SO, "压力焊作业", "压力焊作业"),
        (SO, "压力焊", "压力焊作业"),
        (SO, "钎焊作业", "钎焊作业"),
        (SE, "金属焊接操作", "金属焊接操作"),
        (SE, "非金属焊接操作", "非金属焊接操作"),
        (CO, "建筑焊工", "建筑焊工"),
    ],
)
def test_validate_item(kind: CertificateKind, item: str, expected: str) -> None:
    assert validate_item(kind, item) == expected


def test_validate_item_every_item_of_its_kind() -> None:
    for kind in CertificateKind:
        for item in kind.items:
            assert validate_item(kind, item) == item
            for other in CertificateKind:
                if other is not kind:
                    with pytest.raises(ValueError, match=f"属于{kind.label}"):
                        validate_item(other, item)


def test_validate_item_errors() -> None:
    with pytest.raises(ValueError, match="准操项目不能为空"):
        validate_item(SO, "")
    with pytest.raises(ValueError, match="特种作业操作证的准操项目应为") as info:
        validate_item(SO, "低压电工作业")
    assert "熔化焊接与热切割作业" in str(info.value)
    with pytest.raises(ValueError, match="不是建筑施工特种作业操作资格证的准操项目"):
        validate_item(CO, "金属焊接操作")


# --------------------------------------------------------------------------
# Status enum
# --------------------------------------------------------------------------


def test_status_labels() -> None:
    assert {s.value: s.label for s in CertificateStatus} == {
        "valid": "有效",
        "expiring": "临期",
        "review_overdue": "逾期未复审",
        "expired": "已过期",
        "revoked": "已吊销",
        "pending_verification": "待核验",
    }


def test_status_usability() -> None:
    assert {s for s in CertificateStatus if s.is_usable} == {S.VALID, S.EXPIRING}
    assert {s for s in CertificateStatus if s.requires_confirmation} == {S.PENDING_VERIFICATION}
    assert {s for s in CertificateStatus if s.usable_with_confirmation} == {
        S.VALID,
        S.EXPIRING,
        S.PENDING_VERIFICATION,
    }
    assert S.PENDING_VERIFICATION.allows_work(confirmed_by_enterprise=True)
    assert not S.PENDING_VERIFICATION.allows_work()
    assert S.VALID.allows_work()
    for status in (S.EXPIRED, S.REVOKED, S.REVIEW_OVERDUE):
        assert not status.allows_work(confirmed_by_enterprise=True)
        assert not status.usable_with_confirmation


# --------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------


def test_default_policy_values() -> None:
    p = DEFAULT_POLICY
    assert p.expiring_within_days == 30
    assert [p.validity_years(k) for k in (SO, SE, CO)] == [6, 4, 2]
    assert [p.review_interval_years(k) for k in (SO, SE, CO)] == [3, 4, 2]
    assert p.review_interval_years(SO, clean_years=9) == 3
    assert p.review_interval_years(SO, clean_years=10) == 6
    assert p.review_interval_years(SE, clean_years=20) == 4
    assert p.construction_renewal_window_months == 3
    assert p.special_operation_review_window_days == 60
    assert p.special_equipment_review_window_months == 3
    assert hash(p) == hash(CertificatePolicy())


def test_policy_is_frozen_and_validated() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT_POLICY.expiring_within_days = 10  # type: ignore[misc]
    with pytest.raises(ValueError, match="construction_validity_years"):
        CertificatePolicy(construction_validity_years=0)
    with pytest.raises(ValueError, match="expiring_within_days"):
        CertificatePolicy(expiring_within_days=-1)
    assert CertificatePolicy(expiring_within_days=0).expiring_within_days == 0


def test_facts_validation() -> None:
    with pytest.raises(ValueError, match="expiry_date"):
        CertificateFacts(SO, date(2024, 1, 2), expiry_date=date(2024, 1, 1))
    with pytest.raises(ValueError, match="clean_years"):
        CertificateFacts(SO, date(2024, 1, 2), clean_years=-1)


# --------------------------------------------------------------------------
# Derived dates
# --------------------------------------------------------------------------


def test_default_expiry_dates() -> None:
    issued = date(2021, 3, 1)
    assert default_expiry_date(SO, issued) == date(2027, 3, 1)
    assert default_expiry_date(SE, issued) == date(2025, 3, 1)
    assert default_expiry_date(CO, issued) == date(2023, 3, 1)
    leap = date(2020, 2, 29)
    assert default_expiry_date(SO, leap) == date(2026, 2, 28)
    assert default_expiry_date(SE, leap) == date(2024, 2, 29)
    assert default_expiry_date(CO, leap) == date(2022, 2, 28)
    custom = CertificatePolicy(construction_validity_years=3)
    assert default_expiry_date(CO, issued, custom) == date(2024, 3, 1)


def test_effective_expiry_prefers_recorded_date() -> None:
    facts = CertificateFacts(SO, date(2021, 3, 1), expiry_date=date(2027, 2, 28))
    assert effective_expiry_date(facts) == date(2027, 2, 28)
    assert effective_expiry_date(CertificateFacts(SO, date(2021, 3, 1))) == date(2027, 3, 1)


def test_next_review_due_special_operation() -> None:
    issued = date(2021, 3, 1)
    assert next_review_due(CertificateFacts(SO, issued)) == date(2024, 3, 1)
    # After the 3-year review, the next review would be at expiry: none separate.
    reviewed = CertificateFacts(SO, issued, last_review_date=date(2024, 2, 10))
    assert next_review_due(reviewed) is None
    # A late review also satisfies the 2024 anchor.
    late = CertificateFacts(SO, issued, last_review_date=date(2024, 9, 1))
    assert next_review_due(late) is None
    # A review recorded before issue (bad data) is ignored.
    odd = CertificateFacts(SO, issued, last_review_date=date(2020, 1, 1))
    assert next_review_due(odd) == date(2024, 3, 1)


def test_next_review_due_leap_day() -> None:
    facts = CertificateFacts(SO, date(2020, 2, 29))
    assert next_review_due(facts) == date(2023, 2, 28)
    assert effective_expiry_date(facts) == date(2026, 2, 28)


def test_review_schedule_is_anchored_at_issue_date() -> None:
    # A 12-year certificate with 3-year reviews: anchors 2024, 2027, 2030 (expiry 2033).
    policy = CertificatePolicy(special_operation_validity_years=12)
    issued = date(2021, 3, 1)
    facts = CertificateFacts(SO, issued)
    assert next_review_due(facts, policy) == date(2024, 3, 1)
    for reviewed, due in [
        (date(2024, 1, 5), date(2027, 3, 1)),  # early, within the window
        (date(2024, 3, 1), date(2027, 3, 1)),  # on time
        (date(2024, 10, 1), date(2027, 3, 1)),  # late
        (date(2027, 2, 1), date(2030, 3, 1)),
        (date(2030, 3, 1), None),  # the next anchor is the expiry
    ]:
        assert next_review_due(dataclasses.replace(facts, last_review_date=reviewed), policy) == due


def test_next_review_due_long_clean_record() -> None:
    issued = date(2021, 3, 1)
    assert next_review_due(CertificateFacts(SO, issued, clean_years=10)) is None
    assert next_review_due(CertificateFacts(SO, issued, clean_years=9)) == date(2024, 3, 1)
    # A longer custom validity makes the 6-year review a separate one again.
    long_validity = CertificatePolicy(special_operation_validity_years=12)
    assert next_review_due(CertificateFacts(SO, issued, clean_years=12), long_validity) == date(
        2027, 3, 1
    )


@pytest.mark.parametrize("kind", [SE, CO])
def test_other_kinds_have_no_separate_review(kind: CertificateKind) -> None:
    assert next_review_due(CertificateFacts(kind, date(2021, 3, 1))) is None
    assert (
        next_review_due(CertificateFacts(kind, date(2021, 3, 1), last_review_date=date(2022, 1, 1)))
        is None
    )


def test_recorded_review_due_wins() -> None:
    issued = date(2021, 3, 1)
    facts = CertificateFacts(SO, issued, review_due_date=date(2024, 5, 1))
    assert next_review_due(facts) == date(2024, 5, 1)
    facts_se = CertificateFacts(SE, issued, review_due_date=date(2023, 1, 1))
    assert next_review_due(facts_se) == date(2023, 1, 1)
    # A recorded due date on or after expiry coincides with the renewal.
    at_expiry = CertificateFacts(SO, issued, review_due_date=date(2027, 3, 1))
    assert next_review_due(at_expiry) is None
    after = CertificateFacts(SO, issued, review_due_date=date(2028, 1, 1))
    assert next_review_due(after) is None


def test_review_due_respects_recorded_expiry() -> None:
    facts = CertificateFacts(SO, date(2021, 3, 1), expiry_date=date(2023, 12, 31))
    assert next_review_due(facts) is None


def test_review_application_from() -> None:
    issued = date(2021, 3, 1)
    assert review_application_from(CertificateFacts(SO, issued)) == date(2024, 3, 1) - timedelta(
        days=60
    )
    assert review_application_from(CertificateFacts(SO, issued, clean_years=10)) == date(
        2027, 3, 1
    ) - timedelta(days=60)
    assert review_application_from(CertificateFacts(SE, issued)) == date(2024, 12, 1)
    assert review_application_from(CertificateFacts(CO, issued)) == date(2022, 12, 1)
    assert review_application_from(
        CertificateFacts(CO, date(2022, 5, 31)),
        CertificatePolicy(construction_renewal_window_months=1),
    ) == date(2024, 4, 30)


# --------------------------------------------------------------------------
# Status boundaries
# --------------------------------------------------------------------------

# Construction certificate: no separate review, expiry 2023-03-01.
CO_FACTS = CertificateFacts(CO, date(2021, 3, 1))
CO_EXPIRY = date(2023, 3, 1)


@pytest.mark.parametrize(
    ("offset", "status"),
    [
        (-400, S.VALID),
        (-31, S.VALID),
        (-30, S.EXPIRING),
        (-29, S.EXPIRING),
        (-1, S.EXPIRING),
        (0, S.EXPIRING),
        (1, S.EXPIRED),
        (400, S.EXPIRED),
    ],
)
def test_expiry_boundaries(offset: int, status: CertificateStatus) -> None:
    today = CO_EXPIRY + timedelta(days=offset)
    assert certificate_status(CO_FACTS, today) is status
    assert days_until_deadline(CO_FACTS, today) == -offset


def test_expiring_window_is_configurable() -> None:
    today = CO_EXPIRY - timedelta(days=45)
    assert certificate_status(CO_FACTS, today) is S.VALID
    wide = CertificatePolicy(expiring_within_days=60)
    assert certificate_status(CO_FACTS, today, wide) is S.EXPIRING
    none = CertificatePolicy(expiring_within_days=0)
    assert certificate_status(CO_FACTS, CO_EXPIRY - timedelta(days=1), none) is S.VALID
    assert certificate_status(CO_FACTS, CO_EXPIRY, none) is S.EXPIRING


# Special operation: review due 2024-03-01, expiry 2027-03-01.
SO_FACTS = CertificateFacts(SO, date(2021, 3, 1))
SO_REVIEW = date(2024, 3, 1)
SO_EXPIRY = date(2027, 3, 1)


@pytest.mark.parametrize(
    ("today", "status"),
    [
        (SO_REVIEW - timedelta(days=31), S.VALID),
        (SO_REVIEW - timedelta(days=30), S.EXPIRING),
        (SO_REVIEW, S.EXPIRING),
        (SO_REVIEW + timedelta(days=1), S.REVIEW_OVERDUE),
        (SO_EXPIRY, S.REVIEW_OVERDUE),
        (SO_EXPIRY + timedelta(days=1), S.EXPIRED),
    ],
)
def test_review_boundaries(today: date, status: CertificateStatus) -> None:
    assert certificate_status(SO_FACTS, today) is status


def test_review_done_restores_validity() -> None:
    reviewed = dataclasses.replace(SO_FACTS, last_review_date=date(2024, 2, 1))
    assert certificate_status(reviewed, SO_REVIEW + timedelta(days=1)) is S.VALID
    assert certificate_status(reviewed, SO_EXPIRY - timedelta(days=30)) is S.EXPIRING
    assert certificate_status(reviewed, SO_EXPIRY + timedelta(days=1)) is S.EXPIRED


def test_long_clean_record_means_no_review_overdue() -> None:
    clean = dataclasses.replace(SO_FACTS, clean_years=10)
    assert certificate_status(clean, SO_REVIEW + timedelta(days=100)) is S.VALID


def test_expired_beats_review_overdue() -> None:
    facts = CertificateFacts(
        SO, date(2021, 3, 1), expiry_date=date(2024, 6, 1), review_due_date=date(2024, 3, 1)
    )
    assert certificate_status(facts, date(2024, 5, 1)) is S.REVIEW_OVERDUE
    assert certificate_status(facts, date(2024, 6, 2)) is S.EXPIRED


def test_revoked_wins_over_everything() -> None:
    revoked = dataclasses.replace(SO_FACTS, revoked=True, verified=False)
    for today in (date(2021, 3, 1), SO_REVIEW + timedelta(days=5), SO_EXPIRY + timedelta(days=5)):
        assert certificate_status(revoked, today) is S.REVOKED
        assert days_until_deadline(revoked, today) is None
        assert certificate_status_reason(revoked, today) == "证书已被发证机关吊销"


def test_pending_verification_precedence() -> None:
    pending = dataclasses.replace(CO_FACTS, verified=False)
    assert certificate_status(pending, date(2021, 3, 2)) is S.PENDING_VERIFICATION
    # Beats expiring...
    assert certificate_status(pending, CO_EXPIRY - timedelta(days=3)) is S.PENDING_VERIFICATION
    # ...but loses to expired and review overdue.
    assert certificate_status(pending, CO_EXPIRY + timedelta(days=1)) is S.EXPIRED
    pending_so = dataclasses.replace(SO_FACTS, verified=False)
    assert certificate_status(pending_so, SO_REVIEW + timedelta(days=1)) is S.REVIEW_OVERDUE


def test_days_until_deadline_uses_the_nearer_date() -> None:
    assert days_until_deadline(SO_FACTS, SO_REVIEW - timedelta(days=10)) == 10
    assert days_until_deadline(SO_FACTS, SO_REVIEW + timedelta(days=40)) == -40
    reviewed = dataclasses.replace(SO_FACTS, last_review_date=date(2024, 2, 1))
    assert days_until_deadline(reviewed, SO_EXPIRY - timedelta(days=12)) == 12


def test_leap_year_certificate_status() -> None:
    facts = CertificateFacts(CO, date(2020, 2, 29))  # expires 2022-02-28
    assert certificate_status(facts, date(2022, 2, 28)) is S.EXPIRING
    assert certificate_status(facts, date(2022, 3, 1)) is S.EXPIRED
    assert certificate_status(facts, date(2022, 1, 29)) is S.EXPIRING  # exactly 30 days
    assert certificate_status(facts, date(2022, 1, 28)) is S.VALID


# --------------------------------------------------------------------------
# Reasons
# --------------------------------------------------------------------------


def test_status_reasons() -> None:
    assert certificate_status_reason(CO_FACTS, CO_EXPIRY - timedelta(days=12)) == (
        "距到期还有 12 天（2023-03-01）"
    )
    assert certificate_status_reason(CO_FACTS, CO_EXPIRY) == "证书今天到期（2023-03-01）"
    assert certificate_status_reason(CO_FACTS, CO_EXPIRY + timedelta(days=40)) == (
        "证书已过期 40 天（有效期至 2023-03-01）"
    )
    assert certificate_status_reason(SO_FACTS, SO_REVIEW + timedelta(days=40)) == (
        "复审已逾期 40 天（应于 2024-03-01 前复审）"
    )
    assert certificate_status_reason(SO_FACTS, SO_REVIEW - timedelta(days=5)) == (
        "距复审还有 5 天（2024-03-01）"
    )
    assert "复审截止日" in certificate_status_reason(SO_FACTS, SO_REVIEW)
    assert certificate_status_reason(SO_FACTS, date(2022, 1, 1)) == (
        "有效期至 2027-03-01，下次复审 2024-03-01"
    )
    assert certificate_status_reason(CO_FACTS, date(2022, 1, 1)) == "有效期至 2023-03-01"
    pending = certificate_status_reason(
        dataclasses.replace(CO_FACTS, verified=False), CO_EXPIRY - timedelta(days=3)
    )
    assert pending.startswith("证书尚未在全国查询系统中核验")
    assert "人工确认" in pending
    assert "距到期还有 3 天" in pending


# --------------------------------------------------------------------------
# Holder matching
# --------------------------------------------------------------------------

ID = "11010519491231002X"


def test_expected_special_operation_number() -> None:
    assert expected_special_operation_number(ID) == "T11010519491231002X"
    assert expected_special_operation_number("11010519491231002x") == "T11010519491231002X"
    with pytest.raises(InvalidIdNumber):
        expected_special_operation_number("110105194912310021")


def test_holder_matches_number() -> None:
    assert holder_matches_number(SO, "T11010519491231002X", ID)
    assert holder_matches_number(SO, " t11010519491231002x ", ID)
    assert holder_matches_number(SO, "Ｔ１１０１０５１９４９１２３１００２Ｘ", ID)
    assert not holder_matches_number(SO, "11010519491231002X", ID)
    other = make_id_number("11010519800101001")
    assert not holder_matches_number(SO, "T" + other, ID)
    assert not holder_matches_number(SO, "T110105194912310021", "110105194912310021")
    assert holder_matches_number(SE, "TS1234567", ID)
    assert holder_matches_number(CO, "豫A042020001234", ID)


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

facts_strategy = st.builds(
    CertificateFacts,
    kind=st.sampled_from(list(CertificateKind)),
    issue_date=st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)),
    last_review_date=st.none() | st.dates(min_value=date(2000, 1, 1), max_value=date(2035, 12, 31)),
    revoked=st.booleans(),
    verified=st.booleans(),
    clean_years=st.integers(0, 20),
)
todays = st.dates(min_value=date(1999, 1, 1), max_value=date(2045, 12, 31))


@given(facts_strategy, todays)
def test_status_is_consistent_with_dates(facts: CertificateFacts, today: date) -> None:
    status = certificate_status(facts, today)
    expiry = effective_expiry_date(facts)
    review = next_review_due(facts)
    days = days_until_deadline(facts, today)
    reason = certificate_status_reason(facts, today)
    assert reason
    if facts.revoked:
        assert status is S.REVOKED
        assert days is None
        return
    assert days is not None
    assert (status is S.EXPIRED) == (today > expiry)
    if review is not None:
        assert review < expiry
        assert review > facts.issue_date
    if status is S.REVIEW_OVERDUE:
        assert review is not None and today > review
        assert days < 0
    if status is S.EXPIRING:
        assert 0 <= days <= 30
        assert facts.verified
    if status is S.VALID:
        assert days > 30
        assert facts.verified
    if status is S.PENDING_VERIFICATION:
        assert not facts.verified
        assert days >= 0
    assert str(facts.issue_date.year) not in reason or status is not S.REVOKED


@given(facts_strategy)
def test_status_moves_forward_in_time(facts: CertificateFacts) -> None:
    """Day by day a verified certificate never goes back to a better status."""
    facts = dataclasses.replace(facts, revoked=False, verified=True)
    rank = {S.VALID: 0, S.EXPIRING: 1, S.REVIEW_OVERDUE: 2, S.EXPIRED: 3}
    expiry = effective_expiry_date(facts)
    review = next_review_due(facts)
    probes = sorted(
        {d + timedelta(days=k) for d in (expiry, review or expiry) for k in (-31, -30, -1, 0, 1, 2)}
    )
    statuses = [certificate_status(facts, d) for d in probes]
    if review is None:
        assert [rank[s] for s in statuses] == sorted(rank[s] for s in statuses)
    assert statuses[-1] is S.EXPIRED
    assert certificate_status(facts, expiry) in (S.EXPIRING, S.REVIEW_OVERDUE)
    assert certificate_status(facts, expiry - timedelta(days=30)) is not S.VALID


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2030, 12, 31)))
def test_derived_expiry_and_review_for_every_issue_date(issued: date) -> None:
    so = CertificateFacts(SO, issued)
    assert effective_expiry_date(so) == add_years(issued, 6)
    assert next_review_due(so) == add_years(issued, 3)
    assert effective_expiry_date(CertificateFacts(SE, issued)) == add_years(issued, 4)
    assert effective_expiry_date(CertificateFacts(CO, issued)) == add_years(issued, 2)
    assert certificate_status(so, issued) is S.VALID
