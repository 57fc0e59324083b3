"""Hot-work permits (动火作业票): the pure rules.

No I/O, no ORM, no clock reads: ``now`` is always passed in (timezone-aware), and
local rules (night, rest days, opening hours, the daily gas re-test) read it in
China Standard Time (:attr:`PermitPolicy.timezone`). Every refusal names *every*
failing rule, each a :class:`PermitReason` with a stable code and a plain-Chinese
message. Sources: DOMAIN.md "Hot-work permits" and "Crowded places"; GB 30871-2022.

One hot work, one permit, one set of safety measures. Five steps, each signed
with its time, person and photos: 审批 → 清理 → 动火 → 监护 → 处置.

States (:class:`PermitStatus`) and events (:mod:`.workflow`)::

    draft ──Submit──> submitted ──Approve──> approved ──Clear──> cleared ──StartWork──> in_progress
      ^  │               │
      │  └─Edit─> draft  ├─ RecordSiteSurvey, ConfirmRisks (stay submitted)
      └── Reject, Edit ──┘

    in_progress ──PauseWork──> paused ──ResumeWork──> in_progress
    in_progress, paused ──Suspend──> suspended ──Reinstate──> paused
        (Suspend: the rules (watch absent, gas, monitor, opening hours) or a person)
    in_progress, paused, suspended ──EndWork or Expire──> watching
    watching ──Dispose (the watch, ≥ 30 min after the work, no embers)──> disposed
    disposed ──Close (the lead or the approver)──> closed
    draft, submitted, approved, cleared ──Cancel──> cancelled
    draft, submitted, approved, cleared ──Expire (at the window's end)──> expired
    any status after approval ──Edit──> refused (EDIT_AFTER_APPROVAL)

Recorded without a change of status: RecordSiteSurvey and ConfirmRisks
(submitted), ConfirmMeasure and ConfirmNotice (submitted to cleared),
RecordGasSample (submitted to suspended; a failed sample while in progress
suspends), CheckIn (approved to watching; a late check-in while in progress
suspends). Edits after approval are refused: a change of content, scope or place
needs a new permit. Expiry while the work runs ends the work at the window's end
and the post-work watch still follows. Only ``in_progress`` unlocks machines
(:func:`unlock_state`); :func:`machines_to_lock` names the machines to lock when a
permit leaves it. :func:`supervise` says when the platform must expire or
suspend a permit (and when the watch is away during the post-work watch).

Modules: :mod:`.model` (records), :mod:`.policy` (figures, standard measures),
:mod:`.levels` (level upgrade, validity, approval authority), :mod:`.gas`,
:mod:`.fire_watch`, :mod:`.crowded`, :mod:`.content` (submission checks, with the
unlock decision's certificate table), :mod:`.workflow`, :mod:`.overlap` (machine
double bookings), :mod:`.unlock` (coverage and the unlock decision's
:class:`~weldguard.domain.authorization.PermitFacts`).

Whether a place needs a permit at all is the unlock decision's
:func:`weldguard.domain.authorization.permit_required` (per sector and per
enterprise), not repeated here.
"""

from weldguard.domain.permits.content import (
    check_certificates,
    check_content,
    check_machines,
    check_measures,
)
from weldguard.domain.permits.crowded import (
    check_crowded_window,
    check_notices,
    crowded_place_allows,
    exception_allowed,
)
from weldguard.domain.permits.fire_watch import (
    check_check_in,
    check_watch_after_work,
    check_watch_present,
    continuous_presence_since,
    last_check_in,
    missed_check_in,
    next_check_in_due,
)
from weldguard.domain.permits.gas import (
    check_gas,
    check_monitor,
    check_sample,
    gas_limit_percent,
    latest_per_gas,
    within_limit,
)
from weldguard.domain.permits.levels import (
    LevelAssessment,
    assess_level,
    check_approver,
    check_window,
    effective_level,
    may_approve,
    required_role,
    validity_limit,
)
from weldguard.domain.permits.model import (
    DEFAULT_CHECK_IN_INTERVAL,
    DEFAULT_HOT_SPOT_RADIUS_M,
    Approval,
    ApproverRole,
    CrowdedPlaceException,
    FireWatch,
    FireWatchCheckIn,
    GasSample,
    HotSpot,
    HotWorkMethod,
    MeasureConfirmation,
    MonitorReading,
    NoticeConfirmation,
    NoticeLocation,
    Pause,
    Permit,
    PermitContent,
    PermitLevel,
    PermitMachine,
    PermitStatus,
    PermitWelder,
    Person,
    SafetyMeasure,
    Step,
    StepRecord,
    SuspendCause,
    Suspension,
)
from weldguard.domain.permits.overlap import (
    CLAIMING_STATUSES,
    MachineClaim,
    Overlap,
    check_overlap,
    claim_of_content,
    machine_claim,
    overlapping,
)
from weldguard.domain.permits.policy import (
    DEFAULT_NIGHT,
    DEFAULT_PERMIT_POLICY,
    STANDARD_SAFETY_MEASURES,
    MeasureTemplate,
    PermitPolicy,
    mandatory_measure_codes,
)
from weldguard.domain.permits.reasons import PermitReason, PermitReasonCode
from weldguard.domain.permits.unlock import covers, geofence, permit_facts, unlock_state
from weldguard.domain.permits.workflow import (
    Accepted,
    Approve,
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
    PauseWork,
    PermitEvent,
    RecordGasSample,
    RecordSiteSurvey,
    Refused,
    Reinstate,
    Reject,
    ResumeWork,
    StartWork,
    Submit,
    Supervision,
    Suspend,
    TransitionResult,
    allowed_from,
    machines_to_lock,
    new_permit,
    supervise,
    transition,
)

__all__ = [
    "CLAIMING_STATUSES",
    "DEFAULT_CHECK_IN_INTERVAL",
    "DEFAULT_HOT_SPOT_RADIUS_M",
    "DEFAULT_NIGHT",
    "DEFAULT_PERMIT_POLICY",
    "STANDARD_SAFETY_MEASURES",
    "Accepted",
    "Approval",
    "Approve",
    "ApproverRole",
    "Cancel",
    "CheckIn",
    "Clear",
    "Close",
    "ConfirmMeasure",
    "ConfirmNotice",
    "ConfirmRisks",
    "CrowdedPlaceException",
    "Dispose",
    "Edit",
    "EndWork",
    "Expire",
    "FireWatch",
    "FireWatchCheckIn",
    "GasSample",
    "HotSpot",
    "HotWorkMethod",
    "LevelAssessment",
    "MachineClaim",
    "MeasureConfirmation",
    "MeasureTemplate",
    "MonitorReading",
    "NoticeConfirmation",
    "NoticeLocation",
    "Overlap",
    "Pause",
    "PauseWork",
    "Permit",
    "PermitContent",
    "PermitEvent",
    "PermitLevel",
    "PermitMachine",
    "PermitPolicy",
    "PermitReason",
    "PermitReasonCode",
    "PermitStatus",
    "PermitWelder",
    "Person",
    "RecordGasSample",
    "RecordSiteSurvey",
    "Refused",
    "Reinstate",
    "Reject",
    "ResumeWork",
    "SafetyMeasure",
    "StartWork",
    "Step",
    "StepRecord",
    "Submit",
    "Supervision",
    "Suspend",
    "SuspendCause",
    "Suspension",
    "TransitionResult",
    "allowed_from",
    "assess_level",
    "check_approver",
    "check_certificates",
    "check_check_in",
    "check_content",
    "check_crowded_window",
    "check_gas",
    "check_machines",
    "check_measures",
    "check_monitor",
    "check_notices",
    "check_overlap",
    "check_sample",
    "check_watch_after_work",
    "check_watch_present",
    "check_window",
    "claim_of_content",
    "continuous_presence_since",
    "covers",
    "crowded_place_allows",
    "effective_level",
    "exception_allowed",
    "gas_limit_percent",
    "geofence",
    "last_check_in",
    "latest_per_gas",
    "machine_claim",
    "machines_to_lock",
    "mandatory_measure_codes",
    "may_approve",
    "missed_check_in",
    "new_permit",
    "next_check_in_due",
    "overlapping",
    "permit_facts",
    "required_role",
    "supervise",
    "transition",
    "unlock_state",
    "validity_limit",
    "within_limit",
]
