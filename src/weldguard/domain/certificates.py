"""Welding certificates (证书匹配): kinds, items, validity, review and status.

Pure rules: "today" is always a parameter. Dates are calendar dates; an expiry
date or a review due date is the last day on which the certificate is still in
order (a certificate with expiry 2026-03-01 is expired from 2026-03-02 on).

Three certificate kinds allow electric or gas welding and cutting:

==================  ============================  ==========  =====================
kind                certificate                   issuer      welding items
==================  ============================  ==========  =====================
special_operation   特种作业操作证                 应急管理部门  熔化焊接与热切割作业,
                                                              压力焊作业, 钎焊作业
special_equipment   特种设备安全管理和作业人员证     市场监管部门  金属焊接操作,
                                                              非金属焊接操作
construction        建筑施工特种作业操作资格证       住建部门     建筑焊工
==================  ============================  ==========  =====================
"""

from __future__ import annotations

import calendar
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from weldguard.domain.ids import InvalidIdNumber, normalize_id_number

__all__ = [
    "DEFAULT_POLICY",
    "SPECIAL_OPERATION_CATEGORY",
    "CertificateFacts",
    "CertificateKind",
    "CertificatePolicy",
    "CertificateStatus",
    "add_months",
    "add_years",
    "certificate_status",
    "certificate_status_reason",
    "days_until_deadline",
    "default_expiry_date",
    "effective_expiry_date",
    "expected_special_operation_number",
    "holder_matches_number",
    "kind_from_label",
    "next_review_due",
    "review_application_from",
    "validate_item",
]


# --------------------------------------------------------------------------
# Calendar arithmetic
# --------------------------------------------------------------------------


def add_months(day: date, months: int) -> date:
    """``day`` shifted by ``months`` (may be negative), clamped to the month's end.

    2024-05-31 + 1 month = 2024-06-30; 2024-02-29 + 12 months = 2025-02-28.
    """
    index = day.year * 12 + (day.month - 1) + months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    last = calendar.monthrange(year, month)[1]
    return date(year, month, min(day.day, last))


def add_years(day: date, years: int) -> date:
    """``day`` shifted by ``years``; Feb 29 becomes Feb 28 in a common year."""
    return add_months(day, 12 * years)


# --------------------------------------------------------------------------
# Kinds and items
# --------------------------------------------------------------------------


class CertificateKind(StrEnum):
    """The three certificates that allow welding and cutting."""

    SPECIAL_OPERATION = "special_operation"
    SPECIAL_EQUIPMENT = "special_equipment"
    CONSTRUCTION = "construction"

    @property
    def label(self) -> str:
        """Chinese name of the certificate."""
        return _KIND_LABELS[self]

    @property
    def issuer_label(self) -> str:
        """Chinese name of the issuing authority."""
        return _KIND_ISSUERS[self]

    @property
    def items(self) -> tuple[str, ...]:
        """The welding items (准操项目) a certificate of this kind can carry."""
        return _KIND_ITEMS[self]


_KIND_LABELS: dict[CertificateKind, str] = {
    CertificateKind.SPECIAL_OPERATION: "特种作业操作证",
    CertificateKind.SPECIAL_EQUIPMENT: "特种设备安全管理和作业人员证",
    CertificateKind.CONSTRUCTION: "建筑施工特种作业操作资格证",
}

_KIND_ISSUERS: dict[CertificateKind, str] = {
    CertificateKind.SPECIAL_OPERATION: "应急管理部门",
    CertificateKind.SPECIAL_EQUIPMENT: "市场监管部门",
    CertificateKind.CONSTRUCTION: "住建部门",
}

#: 特种作业 category 焊接与热切割作业 and its three operation items.
SPECIAL_OPERATION_CATEGORY = "焊接与热切割作业"

_KIND_ITEMS: dict[CertificateKind, tuple[str, ...]] = {
    CertificateKind.SPECIAL_OPERATION: ("熔化焊接与热切割作业", "压力焊作业", "钎焊作业"),
    CertificateKind.SPECIAL_EQUIPMENT: ("金属焊接操作", "非金属焊接操作"),
    CertificateKind.CONSTRUCTION: ("建筑焊工",),
}


def _normalize_text(text: str) -> str:
    """NFKC (full-width to half-width), no whitespace, lowercase latin letters."""
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if not ch.isspace()).lower()


_KIND_ALIASES: dict[str, CertificateKind] = {
    _normalize_text(alias): kind
    for kind, aliases in {
        CertificateKind.SPECIAL_OPERATION: (
            "special_operation",
            "特种作业操作证",
            "特种作业证",
            "特种作业人员操作证",
            "中华人民共和国特种作业操作证",
            "应急管理部门特种作业操作证",
        ),
        CertificateKind.SPECIAL_EQUIPMENT: (
            "special_equipment",
            "特种设备安全管理和作业人员证",
            "特种设备作业人员证",
            "特种设备安全管理和作业人员资格证",
            "特种设备作业人员资格证",
            "特种设备证",
        ),
        CertificateKind.CONSTRUCTION: (
            "construction",
            "建筑施工特种作业操作资格证",
            "建筑施工特种作业人员操作资格证",
            "建筑施工特种作业操作资格证书",
            "建筑施工特种作业证",
            "建筑焊工证",
        ),
    }.items()
    for alias in aliases
}


def kind_from_label(text: str) -> CertificateKind:
    """The kind named by ``text``: a Chinese certificate name or an enum value.

    Meant for spreadsheet import; full-width characters, spaces and letter case
    are ignored. Raises ``ValueError`` with a Chinese reason.
    """
    key = _normalize_text(text)
    if not key:
        raise ValueError("证书类型不能为空")
    kind = _KIND_ALIASES.get(key)
    if kind is None:
        names = "、".join(k.label for k in CertificateKind)
        raise ValueError(f"无法识别的证书类型“{text.strip()}”，应为：{names}")
    return kind


def validate_item(kind: CertificateKind, item: str) -> str:
    """The canonical welding item for ``kind``, or ``ValueError`` (Chinese reason).

    Full-width characters and spaces are ignored; for special-operation items a
    missing trailing "作业" is tolerated (熔化焊接与热切割 -> 熔化焊接与热切割作业).
    """
    key = _normalize_text(item)
    if not key:
        raise ValueError("准操项目不能为空")
    for allowed in kind.items:
        if key == allowed or key + "作业" == allowed:
            return allowed
    owner = next((k for k in CertificateKind if key in k.items), None)
    allowed_text = "、".join(kind.items)
    if owner is not None:
        raise ValueError(
            f"“{item.strip()}”属于{owner.label}，不是{kind.label}的准操项目，应为：{allowed_text}"
        )
    raise ValueError(f"{kind.label}的准操项目应为：{allowed_text}，而不是“{item.strip()}”")


# --------------------------------------------------------------------------
# Status
# --------------------------------------------------------------------------


class CertificateStatus(StrEnum):
    """Where a certificate stands on a given day (see :func:`certificate_status`)."""

    VALID = "valid"
    EXPIRING = "expiring"
    REVIEW_OVERDUE = "review_overdue"
    EXPIRED = "expired"
    REVOKED = "revoked"
    PENDING_VERIFICATION = "pending_verification"

    @property
    def label(self) -> str:
        """Chinese label."""
        return _STATUS_LABELS[self]

    @property
    def is_usable(self) -> bool:
        """Usable for work without further ado: valid or expiring."""
        return self in (CertificateStatus.VALID, CertificateStatus.EXPIRING)

    @property
    def requires_confirmation(self) -> bool:
        """Usable only after the enterprise's manual confirmation (pending verification).

        New certificates take about 3 days to appear in the national query
        service; meanwhile the enterprise may accept one provisionally.
        """
        return self is CertificateStatus.PENDING_VERIFICATION

    @property
    def usable_with_confirmation(self) -> bool:
        """Usable once the enterprise has manually confirmed the certificate.

        True for valid, expiring and pending verification: callers allow work
        when ``is_usable or (usable_with_confirmation and confirmed)``.
        """
        return self.is_usable or self.requires_confirmation

    def allows_work(self, confirmed_by_enterprise: bool = False) -> bool:
        """Whether work may go ahead, given the enterprise's manual confirmation."""
        return self.is_usable or (self.requires_confirmation and confirmed_by_enterprise)


_STATUS_LABELS: dict[CertificateStatus, str] = {
    CertificateStatus.VALID: "有效",
    CertificateStatus.EXPIRING: "临期",
    CertificateStatus.REVIEW_OVERDUE: "逾期未复审",
    CertificateStatus.EXPIRED: "已过期",
    CertificateStatus.REVOKED: "已吊销",
    CertificateStatus.PENDING_VERIFICATION: "待核验",
}


# --------------------------------------------------------------------------
# Policy and facts
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificatePolicy:
    """Configurable validity and review rules (defaults: DOMAIN.md, stricter readings).

    Attributes:
        expiring_within_days: a certificate is "expiring" when its expiry or its
            review due date is at most this many days away (inclusive).
        *_validity_years: validity of a certificate from its issue date.
        *_review_interval_years: interval between reviews (复审). When it is not
            shorter than the validity, the review coincides with the expiry (it is
            the renewal) and there is no separate review date.
        clean_record_years_for_extended_review / extended_review_interval_years:
            a 特种作业 holder with at least that many clean years of continuous
            work is reviewed every ``extended_review_interval_years`` instead.
        special_operation_review_window_days: 特种作业 holders apply for review
            within this many days before it is due.
        special_equipment_review_window_months: 特种设备 holders apply at least
            this many months before expiry.
        construction_renewal_window_months: 建筑施工 certificates are renewed in
            the last this-many months before expiry.
    """

    expiring_within_days: int = 30
    special_operation_validity_years: int = 6
    special_equipment_validity_years: int = 4
    construction_validity_years: int = 2
    special_operation_review_interval_years: int = 3
    special_equipment_review_interval_years: int = 4
    construction_review_interval_years: int = 2
    clean_record_years_for_extended_review: int = 10
    extended_review_interval_years: int = 6
    special_operation_review_window_days: int = 60
    special_equipment_review_window_months: int = 3
    # *(check)* DOMAIN.md is unclear about the construction renewal window; the
    # stricter reading is used: apply in the last 3 months before expiry, so
    # reminders start 3 months ahead. Configurable.
    construction_renewal_window_months: int = 3

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0 or (value == 0 and name != "expiring_within_days"):
                raise ValueError(f"CertificatePolicy.{name} must be positive, got {value}")

    def validity_years(self, kind: CertificateKind) -> int:
        """Validity of a certificate of ``kind``, in years from its issue date."""
        if kind is CertificateKind.SPECIAL_OPERATION:
            return self.special_operation_validity_years
        if kind is CertificateKind.SPECIAL_EQUIPMENT:
            return self.special_equipment_validity_years
        return self.construction_validity_years

    def review_interval_years(self, kind: CertificateKind, clean_years: int = 0) -> int:
        """Years between reviews, taking the long-clean-record rule into account."""
        if kind is CertificateKind.SPECIAL_OPERATION:
            if clean_years >= self.clean_record_years_for_extended_review:
                return self.extended_review_interval_years
            return self.special_operation_review_interval_years
        if kind is CertificateKind.SPECIAL_EQUIPMENT:
            return self.special_equipment_review_interval_years
        return self.construction_review_interval_years


DEFAULT_POLICY = CertificatePolicy()


@dataclass(frozen=True)
class CertificateFacts:
    """What is known about one certificate.

    Attributes:
        kind: the certificate kind.
        issue_date: date of issue (发证日期).
        expiry_date: last valid day as printed; ``None`` derives it from the
            policy (issue date + validity years).
        review_due_date: the next review due as recorded by the authority;
            ``None`` derives it from ``last_review_date`` or ``issue_date``.
        last_review_date: date of the last passed review, if any.
        revoked: revoked by the issuer (吊销/撤销).
        verified: ``False`` while the certificate is not yet seen in the
            national query service.
        clean_years: years of continuous work without violations (特种作业
            extended-review rule).
    """

    kind: CertificateKind
    issue_date: date
    expiry_date: date | None = None
    review_due_date: date | None = None
    last_review_date: date | None = None
    revoked: bool = False
    verified: bool = True
    clean_years: int = 0

    def __post_init__(self) -> None:
        if self.expiry_date is not None and self.expiry_date < self.issue_date:
            raise ValueError("expiry_date is before issue_date")
        if self.clean_years < 0:
            raise ValueError("clean_years must not be negative")


def default_expiry_date(
    kind: CertificateKind, issue_date: date, policy: CertificatePolicy = DEFAULT_POLICY
) -> date:
    """Issue date plus the kind's validity years (leap-day safe)."""
    return add_years(issue_date, policy.validity_years(kind))


def effective_expiry_date(
    facts: CertificateFacts, policy: CertificatePolicy = DEFAULT_POLICY
) -> date:
    """The recorded expiry date, or the one derived from the policy."""
    if facts.expiry_date is not None:
        return facts.expiry_date
    return default_expiry_date(facts.kind, facts.issue_date, policy)


def next_review_due(
    facts: CertificateFacts, policy: CertificatePolicy = DEFAULT_POLICY
) -> date | None:
    """The next review due date, or ``None`` when the review coincides with expiry.

    A recorded ``review_due_date`` wins. Otherwise reviews fall on a schedule
    anchored at the issue date: issue + k × interval (3 years, or 6 for 特种作业
    holders with enough clean years). Without a ``last_review_date`` the first
    anchor is due. A passed review satisfies the anchor nearest to it, early
    (within the application window) or late, so the next one is the first
    anchor more than half an interval after ``last_review_date``.

    A due date on or after the expiry date is no separate review (the renewal at
    expiry is the review), hence ``None``: always the case for 特种设备 and
    建筑施工 certificates under the default policy.
    """
    expiry = effective_expiry_date(facts, policy)
    if facts.review_due_date is not None:
        return facts.review_due_date if facts.review_due_date < expiry else None
    interval = policy.review_interval_years(facts.kind, facts.clean_years)
    satisfied_until = facts.issue_date
    if facts.last_review_date is not None:
        satisfied_until = max(satisfied_until, add_months(facts.last_review_date, interval * 6))
    k = 1
    due = add_years(facts.issue_date, interval)
    while due <= satisfied_until and due < expiry:
        k += 1
        due = add_years(facts.issue_date, interval * k)
    return due if due < expiry else None


def _deadlines(facts: CertificateFacts, policy: CertificatePolicy) -> tuple[date, date | None]:
    return effective_expiry_date(facts, policy), next_review_due(facts, policy)


def certificate_status(
    facts: CertificateFacts, today: date, policy: CertificatePolicy = DEFAULT_POLICY
) -> CertificateStatus:
    """The status of a certificate on ``today``.

    Precedence, first match wins:

    1. ``revoked``: revoked by the issuer;
    2. ``expired``: ``today`` is after the expiry date;
    3. ``review_overdue``: ``today`` is after the review due date;
    4. ``pending_verification``: not yet seen in the national query service;
    5. ``expiring``: the expiry or the review due date is at most
       ``policy.expiring_within_days`` days away (0 days, i.e. the deadline is
       today, counts as expiring);
    6. ``valid``.
    """
    if facts.revoked:
        return CertificateStatus.REVOKED
    expiry, review = _deadlines(facts, policy)
    if today > expiry:
        return CertificateStatus.EXPIRED
    if review is not None and today > review:
        return CertificateStatus.REVIEW_OVERDUE
    if not facts.verified:
        return CertificateStatus.PENDING_VERIFICATION
    nearest = expiry if review is None else min(expiry, review)
    if (nearest - today).days <= policy.expiring_within_days:
        return CertificateStatus.EXPIRING
    return CertificateStatus.VALID


def days_until_deadline(
    facts: CertificateFacts, today: date, policy: CertificatePolicy = DEFAULT_POLICY
) -> int | None:
    """Days from ``today`` to the nearer of expiry and review due (negative when past).

    ``None`` for a revoked certificate, which has no deadline left.
    """
    if facts.revoked:
        return None
    expiry, review = _deadlines(facts, policy)
    nearest = expiry if review is None else min(expiry, review)
    return (nearest - today).days


def review_application_from(
    facts: CertificateFacts, policy: CertificatePolicy = DEFAULT_POLICY
) -> date:
    """The day from which the holder should apply for the next review or renewal.

    The next deadline is the review due date, or the expiry date when there is
    no separate review. 特种作业: 60 days before it (the application window
    opens); 特种设备: 3 months before it (DOMAIN.md: apply at least 3 months
    before, so this is also the latest recommended day); 建筑施工: 3 months
    before expiry *(check)*. Reminders should start on this day.
    """
    expiry, review = _deadlines(facts, policy)
    deadline = review if review is not None else expiry
    if facts.kind is CertificateKind.SPECIAL_OPERATION:
        return deadline - timedelta(days=policy.special_operation_review_window_days)
    if facts.kind is CertificateKind.SPECIAL_EQUIPMENT:
        return add_months(deadline, -policy.special_equipment_review_window_months)
    return add_months(deadline, -policy.construction_renewal_window_months)


def certificate_status_reason(
    facts: CertificateFacts, today: date, policy: CertificatePolicy = DEFAULT_POLICY
) -> str:
    """A Chinese explanation of :func:`certificate_status`, e.g. "距到期还有 12 天"."""
    status = certificate_status(facts, today, policy)
    expiry, review = _deadlines(facts, policy)
    if status is CertificateStatus.REVOKED:
        return "证书已被发证机关吊销"
    if status is CertificateStatus.EXPIRED:
        return f"证书已过期 {(today - expiry).days} 天（有效期至 {expiry.isoformat()}）"
    if status is CertificateStatus.REVIEW_OVERDUE:
        assert review is not None
        return f"复审已逾期 {(today - review).days} 天（应于 {review.isoformat()} 前复审）"

    deadline_text = _deadline_text(expiry, review, today)
    if status is CertificateStatus.PENDING_VERIFICATION:
        return f"证书尚未在全国查询系统中核验，需企业人工确认后方可临时使用；{deadline_text}"
    if status is CertificateStatus.EXPIRING:
        return deadline_text
    text = f"有效期至 {expiry.isoformat()}"
    if review is not None:
        text += f"，下次复审 {review.isoformat()}"
    return text


def _deadline_text(expiry: date, review: date | None, today: date) -> str:
    """Chinese text for the nearer deadline: 距到期还有 N 天, 距复审还有 N 天, 今天到期."""
    if review is not None and review < expiry:
        days = (review - today).days
        if days == 0:
            return f"今天是复审截止日（{review.isoformat()}）"
        return f"距复审还有 {days} 天（{review.isoformat()}）"
    days = (expiry - today).days
    if days == 0:
        return f"证书今天到期（{expiry.isoformat()}）"
    return f"距到期还有 {days} 天（{expiry.isoformat()}）"


# --------------------------------------------------------------------------
# Holder matching
# --------------------------------------------------------------------------


def expected_special_operation_number(id_number: str) -> str:
    """The 特种作业操作证 number of a holder: "T" + ID number.

    Raises :class:`~weldguard.domain.ids.InvalidIdNumber` for an invalid ID number.
    """
    return "T" + normalize_id_number(id_number)


def holder_matches_number(kind: CertificateKind, number: str, id_number: str) -> bool:
    """Whether certificate ``number`` can belong to the person with ``id_number``.

    For 特种作业操作证 the number must be "T" + the holder's ID number (spaces,
    full-width characters and letter case are ignored); an invalid ID number
    never matches. Other kinds carry no such rule: always ``True``.
    """
    if kind is not CertificateKind.SPECIAL_OPERATION:
        return True
    try:
        expected = expected_special_operation_number(id_number)
    except InvalidIdNumber:
        return False
    return _normalize_text(number).upper() == expected
