"""The permit's steps: :func:`transition` applies one event at ``now`` and returns
the changed permit or every reason it is refused; :func:`supervise` says what the
rules demand of a running permit at ``now`` (expire it, suspend it, raise an
alarm). The state diagram is in the package docstring.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, TypeAlias, assert_never

from weldguard.domain.calendar import WorkCalendar
from weldguard.domain.geo import GeoPoint
from weldguard.domain.permits.content import check_content
from weldguard.domain.permits.crowded import check_notices, crowded_place_allows
from weldguard.domain.permits.fire_watch import (
    check_check_in,
    check_watch_after_work,
    check_watch_present,
    missed_check_in,
    next_check_in_due,
)
from weldguard.domain.permits.gas import check_gas, check_monitor, check_sample, within_limit
from weldguard.domain.permits.levels import check_approver
from weldguard.domain.permits.model import (
    Approval,
    ApproverRole,
    FireWatchCheckIn,
    GasSample,
    MeasureConfirmation,
    MonitorReading,
    NoticeConfirmation,
    NoticeLocation,
    Pause,
    Permit,
    PermitContent,
    PermitStatus,
    Person,
    Step,
    StepRecord,
    SuspendCause,
    Suspension,
)
from weldguard.domain.permits.overlap import MachineClaim, check_overlap, claim_of_content
from weldguard.domain.permits.policy import DEFAULT_PERMIT_POLICY, PermitPolicy
from weldguard.domain.permits.reasons import PermitReason, PermitReasonCode, local_text

__all__ = [
    "Accepted",
    "Approve",
    "Cancel",
    "CheckIn",
    "Clear",
    "Close",
    "ConfirmMeasure",
    "ConfirmNotice",
    "ConfirmRisks",
    "Dispose",
    "Edit",
    "EndWork",
    "Expire",
    "PauseWork",
    "PermitEvent",
    "RecordGasSample",
    "RecordSiteSurvey",
    "Refused",
    "Reinstate",
    "Reject",
    "ResumeWork",
    "StartWork",
    "Submit",
    "Supervision",
    "Suspend",
    "TransitionResult",
    "allowed_from",
    "machines_to_lock",
    "new_permit",
    "supervise",
    "transition",
]

R = PermitReasonCode
S = PermitStatus

_BEFORE_WORK = frozenset({S.DRAFT, S.SUBMITTED, S.APPROVED, S.CLEARED})
_STARTED = frozenset({S.IN_PROGRESS, S.PAUSED, S.SUSPENDED})
_PREPARING = frozenset({S.SUBMITTED, S.APPROVED, S.CLEARED})


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Submit:
    """The applicant submits the draft for approval."""

    label: ClassVar[str] = "提交审批"
    by: Person


@dataclass(frozen=True)
class Edit:
    """New content for a draft, or for a submitted permit (back to draft)."""

    label: ClassVar[str] = "修改作业票"
    content: PermitContent
    by: Person


@dataclass(frozen=True)
class RecordSiteSurvey:
    """The approver's site survey (现场勘查), before approving."""

    label: ClassVar[str] = "现场勘查"
    by: Person
    photos: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class ConfirmRisks:
    """The hot-work lead confirms the risks (the second half of the double check)."""

    label: ClassVar[str] = "风险确认"
    by: Person
    photos: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Approve:
    """审批, signed as ``role``."""

    label: ClassVar[str] = "审批"
    by: Person
    role: ApproverRole
    photos: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Reject:
    """The approver sends the permit back to the applicant (back to draft)."""

    label: ClassVar[str] = "驳回"
    by: Person
    reason: str = ""


@dataclass(frozen=True)
class RecordGasSample:
    """A gas analysis result."""

    label: ClassVar[str] = "记录气体分析"
    sample: GasSample


@dataclass(frozen=True)
class CheckIn:
    """The fire watch checks in at ``now``."""

    label: ClassVar[str] = "监护签到"
    by: Person
    position: GeoPoint | None = None
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfirmMeasure:
    """A named person confirms one safety measure of the permit."""

    label: ClassVar[str] = "确认安全措施"
    code: str
    by: Person
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfirmNotice:
    """A crowded place's public notice is posted and photographed."""

    label: ClassVar[str] = "确认动火公告"
    location: NoticeLocation
    by: Person
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class Clear:
    """清理: combustibles cleared from the hot spot."""

    label: ClassVar[str] = "清理可燃物"
    by: Person
    photos: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class StartWork:
    """动火: the work starts; the machines may be unlocked from now."""

    label: ClassVar[str] = "开始动火"
    by: Person
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class PauseWork:
    """The work is interrupted (machines lock)."""

    label: ClassVar[str] = "中断作业"
    by: Person
    reason: str = ""


@dataclass(frozen=True)
class ResumeWork:
    """The work goes on after an interruption."""

    label: ClassVar[str] = "恢复作业"
    by: Person


@dataclass(frozen=True)
class Suspend:
    """A rule or a person in charge stops the work (``by`` ``None``: the platform)."""

    label: ClassVar[str] = "暂停作业票"
    cause: SuspendCause
    by: Person | None = None
    note: str = ""


@dataclass(frozen=True)
class Reinstate:
    """Someone with the approval authority for the level lifts a suspension once its
    cause is gone; the permit is then paused, and resumes like any pause."""

    label: ClassVar[str] = "解除暂停"
    by: Person
    role: ApproverRole


@dataclass(frozen=True)
class EndWork:
    """The work is finished (machines lock); the post-work watch begins."""

    label: ClassVar[str] = "作业结束"
    by: Person
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dispose:
    """处置: the fire watch, after the post-work watch, confirms there are no embers."""

    label: ClassVar[str] = "余火检查"
    by: Person
    no_embers: bool
    photos: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Close:
    """The lead or the approver closes the permit (完工验收)."""

    label: ClassVar[str] = "关闭作业票"
    by: Person
    photos: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cancel:
    """Withdraw a permit before any work under it."""

    label: ClassVar[str] = "取消作业票"
    by: Person
    reason: str = ""


@dataclass(frozen=True)
class Expire:
    """The validity window has ended (the platform applies it)."""

    label: ClassVar[str] = "到期"


PermitEvent: TypeAlias = (
    Submit
    | Edit
    | RecordSiteSurvey
    | ConfirmRisks
    | Approve
    | Reject
    | RecordGasSample
    | CheckIn
    | ConfirmMeasure
    | ConfirmNotice
    | Clear
    | StartWork
    | PauseWork
    | ResumeWork
    | Suspend
    | Reinstate
    | EndWork
    | Dispose
    | Close
    | Cancel
    | Expire
)

_ALLOWED_FROM: dict[type[PermitEvent], frozenset[PermitStatus]] = {
    Submit: frozenset({S.DRAFT}),
    Edit: frozenset({S.DRAFT, S.SUBMITTED}),
    RecordSiteSurvey: frozenset({S.SUBMITTED}),
    ConfirmRisks: frozenset({S.SUBMITTED}),
    Approve: frozenset({S.SUBMITTED}),
    Reject: frozenset({S.SUBMITTED}),
    RecordGasSample: _PREPARING | _STARTED,
    CheckIn: frozenset({S.APPROVED, S.CLEARED, S.WATCHING}) | _STARTED,
    ConfirmMeasure: _PREPARING,
    ConfirmNotice: _PREPARING,
    Clear: frozenset({S.APPROVED}),
    StartWork: frozenset({S.CLEARED}),
    PauseWork: frozenset({S.IN_PROGRESS}),
    ResumeWork: frozenset({S.PAUSED}),
    Suspend: frozenset({S.IN_PROGRESS, S.PAUSED}),
    Reinstate: frozenset({S.SUSPENDED}),
    EndWork: _STARTED,
    Dispose: frozenset({S.WATCHING}),
    Close: frozenset({S.DISPOSED}),
    Cancel: _BEFORE_WORK,
    Expire: _BEFORE_WORK | _STARTED,
}

#: Events refused once the window has ended (they would prepare or extend work).
_NEED_VALID_WINDOW: tuple[type[PermitEvent], ...] = (
    RecordSiteSurvey,
    ConfirmRisks,
    Approve,
    ConfirmMeasure,
    ConfirmNotice,
    Clear,
    StartWork,
    PauseWork,
    ResumeWork,
    Reinstate,
)


def allowed_from(event: type[PermitEvent]) -> frozenset[PermitStatus]:
    """The statuses in which ``event`` may be applied."""
    return _ALLOWED_FROM[event]


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """The event is applied: the permit as it is now."""

    permit: Permit


@dataclass(frozen=True)
class Refused:
    """The event is refused, with every reason; the permit is unchanged."""

    reasons: tuple[PermitReason, ...]

    @property
    def codes(self) -> tuple[PermitReasonCode, ...]:
        return tuple(r.code for r in self.reasons)


TransitionResult = Accepted | Refused


def new_permit(content: PermitContent) -> Permit:
    """A draft."""
    return Permit(content=content)


def machines_to_lock(before: Permit, after: Permit) -> frozenset[int]:
    """The machines to lock because the permit stopped covering work: it left
    ``in_progress`` (paused, suspended, ended, expired)."""
    if before.status is S.IN_PROGRESS and after.status is not S.IN_PROGRESS:
        return before.content.machine_ids
    return frozenset()


# --------------------------------------------------------------------------
# The transition
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    now: datetime
    calendar: WorkCalendar
    monitor: tuple[MonitorReading, ...]
    other_claims: tuple[MachineClaim, ...]
    policy: PermitPolicy


def transition(
    permit: Permit,
    event: PermitEvent,
    now: datetime,
    *,
    calendar: WorkCalendar,
    monitor: Sequence[MonitorReading] = (),
    other_claims: Sequence[MachineClaim] = (),
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> TransitionResult:
    """Apply ``event`` to ``permit`` at ``now`` (timezone-aware).

    ``calendar``: the working calendar (level upgrade on submission and approval);
    ``monitor``: the continuous monitor's readings (特级 start and resume);
    ``other_claims``: the other permits' machine bookings (submission and
    approval refuse a double booking of a machine).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    tz = policy.timezone
    status = permit.status
    allowed = _ALLOWED_FROM[type(event)]
    if status not in allowed:
        if isinstance(event, Edit) and permit.approval is not None:
            return Refused(
                (
                    PermitReason(
                        R.EDIT_AFTER_APPROVAL,
                        "作业票审批后不得修改内容、范围或地点；如有变化须重新办理作业票",
                    ),
                )
            )
        expected = "、".join(s.label for s in PermitStatus if s in allowed)
        return Refused(
            (
                PermitReason(
                    R.STEP_OUT_OF_ORDER,
                    f"作业票当前为“{status.label}”，不能{event.label}（须在{expected}时进行）",
                ),
            )
        )
    if isinstance(event, _NEED_VALID_WINDOW) and now >= permit.content.ends_at:
        return Refused(
            (
                PermitReason(
                    R.PERMIT_EXPIRED,
                    f"作业票已于 {local_text(permit.content.ends_at, tz)} 到期，不能{event.label}"
                    "；继续作业须重新办理作业票",
                ),
            )
        )
    context = _Context(now, calendar, tuple(monitor), tuple(other_claims), policy)
    return _dispatch(permit, event, context)


def _photos(step: Step, photos: tuple[str, ...], policy: PermitPolicy) -> list[PermitReason]:
    if step in policy.photos_required_for and not photos:
        return [PermitReason(R.PHOTO_MISSING, f"{step.label}须拍摄现场照片")]
    return []


def _result(permit: Permit, reasons: Sequence[PermitReason]) -> TransitionResult:
    return Refused(tuple(reasons)) if reasons else Accepted(permit)


def _lead_or_welder(person: Person, content: PermitContent) -> bool:
    return person.same_as(content.lead) or (
        person.welder_id is not None and person.welder_id in content.welder_ids
    )


def _must_be_lead_or_welder(
    person: Person, content: PermitContent, what: str
) -> list[PermitReason]:
    if _lead_or_welder(person, content):
        return []
    return [
        PermitReason(
            R.WRONG_PERSON,
            f"{what}须由动火作业负责人{content.lead.name}或作业票上的动火人操作，操作人为{person.name}",
        )
    ]


def _content_reasons(content: PermitContent, c: _Context) -> list[PermitReason]:
    reasons = list(check_content(content, c.calendar, c.policy))
    claim = claim_of_content(content)
    reasons.extend(check_overlap(claim, c.other_claims, c.policy.timezone))
    return reasons


def _submit(permit: Permit, event: Submit, c: _Context) -> TransitionResult:
    content = permit.content
    reasons = _content_reasons(content, c)
    if c.now >= content.ends_at:
        reasons.append(
            PermitReason(
                R.WINDOW_PASSED,
                f"申请的作业时间已于 {local_text(content.ends_at, c.policy.timezone)} 结束",
            )
        )
    return _result(
        dataclasses.replace(permit, status=S.SUBMITTED, submitted=StepRecord(c.now, event.by)),
        reasons,
    )


def _edit(permit: Permit, event: Edit, c: _Context) -> TransitionResult:
    if event.content.id != permit.content.id:
        raise ValueError("an edit keeps the permit's id")
    # The survey and the risk confirmation were of the old content: both again.
    return Accepted(
        dataclasses.replace(
            permit,
            content=event.content,
            status=S.DRAFT,
            submitted=None,
            site_survey=None,
            risk_confirmation=None,
        )
    )


def _site_survey(permit: Permit, event: RecordSiteSurvey, c: _Context) -> TransitionResult:
    reasons = _photos(Step.SITE_SURVEY, event.photos, c.policy)
    record = StepRecord(c.now, event.by, event.photos, event.note)
    return _result(dataclasses.replace(permit, site_survey=record), reasons)


def _confirm_risks(permit: Permit, event: ConfirmRisks, c: _Context) -> TransitionResult:
    reasons = _photos(Step.RISK_CONFIRMATION, event.photos, c.policy)
    lead = permit.content.lead
    if not event.by.same_as(lead):
        reasons.append(
            PermitReason(
                R.WRONG_PERSON,
                f"风险确认须由动火作业负责人{lead.name}本人进行，操作人为{event.by.name}",
            )
        )
    record = StepRecord(c.now, event.by, event.photos, event.note)
    return _result(dataclasses.replace(permit, risk_confirmation=record), reasons)


def _approve(permit: Permit, event: Approve, c: _Context) -> TransitionResult:
    content = permit.content
    reasons: list[PermitReason] = []
    survey = permit.site_survey
    if survey is None:
        reasons.append(PermitReason(R.SITE_SURVEY_MISSING, "审批前审批人须到动火现场勘查"))
    elif survey.by is None or not survey.by.same_as(event.by):
        surveyor = survey.by.name if survey.by is not None else "平台"
        reasons.append(
            PermitReason(
                R.WRONG_PERSON,
                f"现场勘查须由审批人本人进行：勘查人为{surveyor}，审批人为{event.by.name}",
            )
        )
    if permit.risk_confirmation is None:
        reasons.append(
            PermitReason(
                R.RISK_CONFIRMATION_MISSING,
                f"审批前动火作业负责人{content.lead.name}须确认作业风险",
            )
        )
    if event.by.same_as(content.lead) or (
        event.by.welder_id is not None and event.by.welder_id in content.welder_ids
    ):
        reasons.append(
            PermitReason(
                R.SAME_PERSON,
                f"审批人{event.by.name}是本作业票的动火作业负责人或动火人；"
                "审批与风险确认须由不同人员完成",
            )
        )
    reasons.extend(check_approver(content.level, event.role, content.exception_requested, c.policy))
    reasons.extend(_photos(Step.APPROVAL, event.photos, c.policy))
    reasons.extend(_content_reasons(content, c))
    approval = Approval(c.now, event.by, event.role, event.photos, event.note)
    return _result(dataclasses.replace(permit, status=S.APPROVED, approval=approval), reasons)


def _reject(permit: Permit, event: Reject, c: _Context) -> TransitionResult:
    record = StepRecord(c.now, event.by, note=event.reason)
    return Accepted(
        dataclasses.replace(
            permit,
            status=S.DRAFT,
            submitted=None,
            site_survey=None,
            risk_confirmation=None,
            rejections=(*permit.rejections, record),
        )
    )


def _gas_sample(permit: Permit, event: RecordGasSample, c: _Context) -> TransitionResult:
    sample = event.sample
    reasons = check_sample(sample, c.now, permit.content.hot_spot, c.policy)
    if reasons:
        return Refused(reasons)
    recorded = dataclasses.replace(permit, gas_samples=(*permit.gas_samples, sample))
    if permit.status is S.IN_PROGRESS and not within_limit(sample, c.policy):
        # A failed analysis stops the work at once, not at the next supervision.
        return Accepted(_suspended(recorded, SuspendCause.GAS_OVER_LIMIT, c.now, None, ""))
    return Accepted(recorded)


def _suspended(
    permit: Permit, cause: SuspendCause, since: datetime, by: Person | None, note: str
) -> Permit:
    return dataclasses.replace(
        permit,
        status=S.SUSPENDED,
        suspensions=(*permit.suspensions, Suspension(since, cause, by, note)),
        stopped_since=permit.stopped_since or since,
    )


def _check_in(permit: Permit, event: CheckIn, c: _Context) -> TransitionResult:
    content = permit.content
    check_in = FireWatchCheckIn(c.now, event.by, event.position, event.photos)
    reasons = check_check_in(check_in, content.fire_watch.person, content.hot_spot, c.policy)
    if reasons:
        return Refused(reasons)
    watch, interval = content.fire_watch.person, content.check_in_interval
    recorded = dataclasses.replace(permit, check_ins=(*permit.check_ins, check_in))
    if permit.status is S.IN_PROGRESS and missed_check_in(permit.check_ins, watch, interval, c.now):
        # The watch was away: the absence happened whether or not the platform's
        # supervision noticed it first, so a late check-in still suspends.
        due = next_check_in_due(permit.check_ins, watch, interval, c.now) or c.now
        note = f"监护人{watch.name}应于 {local_text(due, c.policy.timezone)} 前签到"
        return Accepted(_suspended(recorded, SuspendCause.FIRE_WATCH_ABSENT, due, None, note))
    return Accepted(recorded)


def _confirm_measure(permit: Permit, event: ConfirmMeasure, c: _Context) -> TransitionResult:
    codes = {m.code for m in permit.content.measures if m.applicable}
    if event.code not in codes:
        return Refused(
            (
                PermitReason(
                    R.UNKNOWN_MEASURE,
                    f"安全措施“{event.code}”不在本作业票上或已标为不涉及",
                ),
            )
        )
    confirmation = MeasureConfirmation(event.code, event.by, c.now, event.photos)
    return Accepted(
        dataclasses.replace(
            permit, measure_confirmations=(*permit.measure_confirmations, confirmation)
        )
    )


def _confirm_notice(permit: Permit, event: ConfirmNotice, c: _Context) -> TransitionResult:
    if not event.photos:
        return Refused(
            (PermitReason(R.PHOTO_MISSING, f"{event.location.label}的动火公告须拍照确认"),)
        )
    notice = NoticeConfirmation(event.location, event.by, c.now, event.photos)
    return Accepted(dataclasses.replace(permit, notices=(*permit.notices, notice)))


def _clear(permit: Permit, event: Clear, c: _Context) -> TransitionResult:
    reasons = _photos(Step.CLEARANCE, event.photos, c.policy)
    record = StepRecord(c.now, event.by, event.photos, event.note)
    return _result(dataclasses.replace(permit, status=S.CLEARED, clearance=record), reasons)


def _unconfirmed_measures(permit: Permit, now: datetime) -> list[PermitReason]:
    confirmed = {m.code for m in permit.measure_confirmations if m.at <= now}
    missing = [m for m in permit.content.measures if m.applicable and m.code not in confirmed]
    if not missing:
        return []
    return [
        PermitReason(
            R.MEASURE_UNCONFIRMED,
            "以下安全措施尚未由确认人签字确认：" + "；".join(m.text for m in missing),
        )
    ]


def _work_conditions(
    permit: Permit, c: _Context, *, starting: bool, interrupted_since: datetime | None
) -> list[PermitReason]:
    """What starting or resuming needs at ``now``: the watch on post, the gas, the
    monitor, and a crowded place closed (or the exception path)."""
    content, now = permit.content, c.now
    reasons = list(
        check_watch_present(
            permit.check_ins, content.fire_watch.person, content.check_in_interval, now, c.policy
        )
    )
    if content.gas_required:
        reasons.extend(
            check_gas(
                permit.gas_samples,
                content.level,
                now,
                starting=starting,
                interrupted_since=interrupted_since,
                policy=c.policy,
            )
        )
    if content.continuous_monitoring_required:
        reasons.extend(check_monitor(c.monitor, now, c.policy))
    reasons.extend(crowded_place_allows(content, now, permit.crowded_exception_taken, c.policy))
    return reasons


def _start(permit: Permit, event: StartWork, c: _Context) -> TransitionResult:
    content, now, tz = permit.content, c.now, c.policy.timezone
    reasons = _must_be_lead_or_welder(event.by, content, "开始动火")
    if now < content.starts_at:
        reasons.append(
            PermitReason(
                R.NOT_YET_VALID,
                f"作业票自 {local_text(content.starts_at, tz)} 起生效，"
                f"现在是 {local_text(now, tz)}",
            )
        )
    reasons.extend(_photos(Step.START, event.photos, c.policy))
    reasons.extend(_unconfirmed_measures(permit, now))
    if content.crowded:
        reasons.extend(check_notices(permit.notices, now))
    reasons.extend(_work_conditions(permit, c, starting=True, interrupted_since=None))
    record = StepRecord(now, event.by, event.photos)
    return _result(dataclasses.replace(permit, status=S.IN_PROGRESS, started=record), reasons)


def _pause(permit: Permit, event: PauseWork, c: _Context) -> TransitionResult:
    pause = Pause(c.now, event.by, event.reason)
    return Accepted(
        dataclasses.replace(
            permit, status=S.PAUSED, pauses=(*permit.pauses, pause), stopped_since=c.now
        )
    )


def _close_pause(permit: Permit, now: datetime) -> tuple[Pause, ...]:
    if permit.pauses and permit.pauses[-1].until is None:
        return (*permit.pauses[:-1], dataclasses.replace(permit.pauses[-1], until=now))
    return permit.pauses


def _resume(permit: Permit, event: ResumeWork, c: _Context) -> TransitionResult:
    reasons = _must_be_lead_or_welder(event.by, permit.content, "恢复作业")
    reasons.extend(
        _work_conditions(permit, c, starting=False, interrupted_since=permit.stopped_since)
    )
    resumed = dataclasses.replace(
        permit, status=S.IN_PROGRESS, pauses=_close_pause(permit, c.now), stopped_since=None
    )
    return _result(resumed, reasons)


def _suspend(permit: Permit, event: Suspend, c: _Context) -> TransitionResult:
    return Accepted(_suspended(permit, event.cause, c.now, event.by, event.note))


def _reinstate(permit: Permit, event: Reinstate, c: _Context) -> TransitionResult:
    content = permit.content
    suspension = permit.current_suspension
    assert suspension is not None
    reasons = list(check_approver(content.level, event.role, content.exception_requested, c.policy))
    cause = suspension.cause
    if cause is SuspendCause.FIRE_WATCH_ABSENT:
        reasons.extend(
            check_watch_present(
                permit.check_ins,
                content.fire_watch.person,
                content.check_in_interval,
                c.now,
                c.policy,
            )
        )
    elif cause in (SuspendCause.GAS_OVER_LIMIT, SuspendCause.GAS_RETEST_DUE):
        reasons.extend(
            check_gas(
                permit.gas_samples,
                content.level,
                c.now,
                interrupted_since=permit.stopped_since,
                policy=c.policy,
            )
        )
    elif cause is SuspendCause.MONITOR_FAILED:
        reasons.extend(check_monitor(c.monitor, c.now, c.policy))
    elif cause is SuspendCause.OPENING_HOURS:
        reasons.extend(
            crowded_place_allows(content, c.now, permit.crowded_exception_taken, c.policy)
        )
    lifted = dataclasses.replace(suspension, lifted=StepRecord(c.now, event.by))
    reinstated = dataclasses.replace(
        permit,
        status=S.PAUSED,
        suspensions=(*permit.suspensions[:-1], lifted),
        pauses=(*permit.pauses, Pause(c.now, event.by, "解除暂停，待恢复作业")),
    )
    return _result(reinstated, reasons)


def _end_work(permit: Permit, event: EndWork, c: _Context) -> TransitionResult:
    reasons = _photos(Step.END_WORK, event.photos, c.policy)
    ends_at = permit.content.ends_at
    # The machines locked themselves at the window's end: the work cannot have
    # gone on longer, and the post-work watch counts from there.
    record = StepRecord(min(c.now, ends_at), event.by, event.photos)
    ended = dataclasses.replace(
        permit,
        status=S.WATCHING,
        work_ended=record,
        ended_by_expiry=c.now > ends_at,
        pauses=_close_pause(permit, record.at),
        stopped_since=None,
    )
    return _result(ended, reasons)


def _dispose(permit: Permit, event: Dispose, c: _Context) -> TransitionResult:
    content = permit.content
    watch = content.fire_watch.person
    reasons: list[PermitReason] = []
    if not event.by.same_as(watch):
        reasons.append(
            PermitReason(
                R.WRONG_PERSON,
                f"余火检查须由监护人{watch.name}本人确认，操作人为{event.by.name}",
            )
        )
    if not event.no_embers:
        reasons.append(
            PermitReason(R.EMBERS_FOUND, "现场仍有余火或火种，须继续处置和监护，清除后再确认")
        )
    reasons.extend(_photos(Step.DISPOSAL, event.photos, c.policy))
    assert permit.work_ended is not None
    reasons.extend(
        check_watch_after_work(
            permit.check_ins,
            watch,
            content.check_in_interval,
            permit.work_ended.at,
            c.now,
            c.policy,
        )
    )
    record = StepRecord(c.now, event.by, event.photos, event.note)
    return _result(dataclasses.replace(permit, status=S.DISPOSED, disposal=record), reasons)


def _close(permit: Permit, event: Close, c: _Context) -> TransitionResult:
    content = permit.content
    approver = permit.approval.by if permit.approval is not None else None
    reasons = _photos(Step.CLOSURE, event.photos, c.policy)
    if not (
        event.by.same_as(content.lead) or (approver is not None and event.by.same_as(approver))
    ):
        reasons.append(
            PermitReason(
                R.WRONG_PERSON,
                f"关闭作业票须由动火作业负责人{content.lead.name}"
                + (f"或审批人{approver.name}" if approver is not None else "")
                + f"操作，操作人为{event.by.name}",
            )
        )
    record = StepRecord(c.now, event.by, event.photos)
    return _result(dataclasses.replace(permit, status=S.CLOSED, closure=record), reasons)


def _cancel(permit: Permit, event: Cancel, c: _Context) -> TransitionResult:
    record = StepRecord(c.now, event.by, note=event.reason)
    return Accepted(dataclasses.replace(permit, status=S.CANCELLED, cancellation=record))


def _expire(permit: Permit, event: Expire, c: _Context) -> TransitionResult:
    ends_at = permit.content.ends_at
    tz = c.policy.timezone
    if c.now < ends_at:
        return Refused(
            (
                PermitReason(
                    R.NOT_EXPIRED,
                    f"作业票有效至 {local_text(ends_at, tz)}，现在是 {local_text(c.now, tz)}",
                ),
            )
        )
    record = StepRecord(ends_at, None, note="作业票到期")
    if permit.status in _BEFORE_WORK:
        return Accepted(dataclasses.replace(permit, status=S.EXPIRED, expiry=record))
    # Work was under way: the machines lock, and the fire watch still owes the
    # post-work watch and the ember check.
    return Accepted(
        dataclasses.replace(
            permit,
            status=S.WATCHING,
            expiry=record,
            work_ended=record,
            ended_by_expiry=True,
            pauses=_close_pause(permit, ends_at),
            stopped_since=None,
        )
    )


def _dispatch(permit: Permit, event: PermitEvent, c: _Context) -> TransitionResult:
    match event:
        case Submit():
            return _submit(permit, event, c)
        case Edit():
            return _edit(permit, event, c)
        case RecordSiteSurvey():
            return _site_survey(permit, event, c)
        case ConfirmRisks():
            return _confirm_risks(permit, event, c)
        case Approve():
            return _approve(permit, event, c)
        case Reject():
            return _reject(permit, event, c)
        case RecordGasSample():
            return _gas_sample(permit, event, c)
        case CheckIn():
            return _check_in(permit, event, c)
        case ConfirmMeasure():
            return _confirm_measure(permit, event, c)
        case ConfirmNotice():
            return _confirm_notice(permit, event, c)
        case Clear():
            return _clear(permit, event, c)
        case StartWork():
            return _start(permit, event, c)
        case PauseWork():
            return _pause(permit, event, c)
        case ResumeWork():
            return _resume(permit, event, c)
        case Suspend():
            return _suspend(permit, event, c)
        case Reinstate():
            return _reinstate(permit, event, c)
        case EndWork():
            return _end_work(permit, event, c)
        case Dispose():
            return _dispose(permit, event, c)
        case Close():
            return _close(permit, event, c)
        case Cancel():
            return _cancel(permit, event, c)
        case Expire():
            return _expire(permit, event, c)
        case _:
            assert_never(event)


# --------------------------------------------------------------------------
# Supervision
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Supervision:
    """What the rules demand of a permit at ``now``.

    Attributes:
        event: the event to apply now (:class:`Expire` or :class:`Suspend`), or
            ``None``.
        reasons: why: every failing rule (for the alarm and the record). With no
            ``event`` these are alarms only (the fire watch away during the
            post-work watch: 监护人员离岗).
    """

    event: Expire | Suspend | None
    reasons: tuple[PermitReason, ...] = ()


_CAUSE_ORDER: tuple[tuple[frozenset[PermitReasonCode], SuspendCause], ...] = (
    (frozenset({R.FIRE_WATCH_ABSENT}), SuspendCause.FIRE_WATCH_ABSENT),
    (frozenset({R.GAS_OVER_LIMIT}), SuspendCause.GAS_OVER_LIMIT),
    (
        frozenset({R.MONITOR_MISSING, R.MONITOR_STALE, R.MONITOR_OVER_LIMIT}),
        SuspendCause.MONITOR_FAILED,
    ),
    (frozenset({R.GAS_DAILY_RETEST, R.GAS_SAMPLE_MISSING}), SuspendCause.GAS_RETEST_DUE),
    (
        frozenset({R.CROWDED_OPENING_HOURS, R.CROWDED_HOURS_UNKNOWN}),
        SuspendCause.OPENING_HOURS,
    ),
)


def supervise(
    permit: Permit,
    now: datetime,
    monitor: Sequence[MonitorReading] = (),
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> Supervision:
    """Run by the platform on every running permit, periodically and on new facts."""
    content, tz = permit.content, policy.timezone
    if permit.status in _ALLOWED_FROM[Expire] and now >= content.ends_at:
        return Supervision(
            Expire(),
            (
                PermitReason(
                    R.PERMIT_EXPIRED,
                    f"作业票已于 {local_text(content.ends_at, tz)} 到期",
                ),
            ),
        )
    watch, interval = content.fire_watch.person, content.check_in_interval
    if permit.status is S.WATCHING:
        if missed_check_in(permit.check_ins, watch, interval, now):
            return Supervision(None, (_absent(permit, now, policy),))
        return Supervision(None)
    if permit.status is not S.IN_PROGRESS:
        return Supervision(None)

    reasons: list[PermitReason] = []
    if missed_check_in(permit.check_ins, watch, interval, now):
        reasons.append(_absent(permit, now, policy))
    if content.gas_required:
        reasons.extend(check_gas(permit.gas_samples, content.level, now, policy=policy))
    if content.continuous_monitoring_required:
        reasons.extend(check_monitor(monitor, now, policy))
    reasons.extend(crowded_place_allows(content, now, permit.crowded_exception_taken, policy))
    if not reasons:
        return Supervision(None)
    codes = {r.code for r in reasons}
    cause = next(cause for group, cause in _CAUSE_ORDER if group & codes)
    note = "；".join(r.message for r in reasons)
    return Supervision(Suspend(cause, None, note), tuple(reasons))


def _absent(permit: Permit, now: datetime, policy: PermitPolicy) -> PermitReason:
    content = permit.content
    watch = content.fire_watch.person
    due = next_check_in_due(permit.check_ins, watch, content.check_in_interval, now)
    when = f"，应于 {local_text(due, policy.timezone)} 前签到" if due is not None else ""
    return PermitReason(R.FIRE_WATCH_ABSENT, f"监护人{watch.name}未按时签到{when}，视为离岗")
