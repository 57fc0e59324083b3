"""Why a permit rule refuses: stable codes and plain-Chinese messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from enum import StrEnum

__all__ = ["PermitReason", "PermitReasonCode"]


class PermitReasonCode(StrEnum):
    """Stable identifiers of the permit rules' reasons.

    Stored with refused actions and counted, so the values never change; new
    codes are added, old ones are not renamed.
    """

    # The permit's content (submission, approval).
    MISSING_FIELD = "MISSING_FIELD"
    WINDOW_INVALID = "WINDOW_INVALID"
    VALIDITY_EXCEEDED = "VALIDITY_EXCEEDED"
    WINDOW_PASSED = "WINDOW_PASSED"
    LEVEL_NOT_RAISED = "LEVEL_NOT_RAISED"
    UNKNOWN_PROCESS = "UNKNOWN_PROCESS"
    METHOD_MISMATCH = "METHOD_MISMATCH"
    MACHINE_DUPLICATED = "MACHINE_DUPLICATED"
    WELDER_DUPLICATED = "WELDER_DUPLICATED"
    CERT_MISSING = "CERT_MISSING"
    CERT_HOLDER_MISMATCH = "CERT_HOLDER_MISMATCH"
    CERT_NOT_FIT = "CERT_NOT_FIT"
    CERT_NOT_USABLE = "CERT_NOT_USABLE"
    FIRE_WATCH_CONFLICT = "FIRE_WATCH_CONFLICT"
    FIRE_WATCH_NOT_TRAINED = "FIRE_WATCH_NOT_TRAINED"
    CHECK_IN_INTERVAL_INVALID = "CHECK_IN_INTERVAL_INVALID"
    MEASURE_MISSING = "MEASURE_MISSING"
    CROWDED_OPENING_HOURS = "CROWDED_OPENING_HOURS"
    CROWDED_HOURS_UNKNOWN = "CROWDED_HOURS_UNKNOWN"
    CROWDED_EXCEPTION_NOT_ALLOWED = "CROWDED_EXCEPTION_NOT_ALLOWED"
    CROWDED_EXCEPTION_INCOMPLETE = "CROWDED_EXCEPTION_INCOMPLETE"
    # The workflow.
    STEP_OUT_OF_ORDER = "STEP_OUT_OF_ORDER"
    EDIT_AFTER_APPROVAL = "EDIT_AFTER_APPROVAL"
    SITE_SURVEY_MISSING = "SITE_SURVEY_MISSING"
    RISK_CONFIRMATION_MISSING = "RISK_CONFIRMATION_MISSING"
    WRONG_PERSON = "WRONG_PERSON"
    SAME_PERSON = "SAME_PERSON"
    APPROVER_NOT_AUTHORISED = "APPROVER_NOT_AUTHORISED"
    PHOTO_MISSING = "PHOTO_MISSING"
    NOT_YET_VALID = "NOT_YET_VALID"
    PERMIT_EXPIRED = "PERMIT_EXPIRED"
    NOT_EXPIRED = "NOT_EXPIRED"
    UNKNOWN_MEASURE = "UNKNOWN_MEASURE"
    MEASURE_UNCONFIRMED = "MEASURE_UNCONFIRMED"
    NOTICE_MISSING = "NOTICE_MISSING"
    EMBERS_FOUND = "EMBERS_FOUND"
    WATCH_AFTER_WORK_TOO_SHORT = "WATCH_AFTER_WORK_TOO_SHORT"
    # Gas analysis.
    GAS_SAMPLE_MISSING = "GAS_SAMPLE_MISSING"
    GAS_SAMPLE_STALE = "GAS_SAMPLE_STALE"
    GAS_SAMPLE_IN_FUTURE = "GAS_SAMPLE_IN_FUTURE"
    GAS_SAMPLE_TOO_FAR = "GAS_SAMPLE_TOO_FAR"
    GAS_OVER_LIMIT = "GAS_OVER_LIMIT"
    GAS_RETEST_AFTER_PAUSE = "GAS_RETEST_AFTER_PAUSE"
    GAS_DAILY_RETEST = "GAS_DAILY_RETEST"
    MONITOR_MISSING = "MONITOR_MISSING"
    MONITOR_STALE = "MONITOR_STALE"
    MONITOR_OVER_LIMIT = "MONITOR_OVER_LIMIT"
    # The fire watch.
    FIRE_WATCH_NOT_CHECKED_IN = "FIRE_WATCH_NOT_CHECKED_IN"
    FIRE_WATCH_ABSENT = "FIRE_WATCH_ABSENT"
    FIRE_WATCH_TOO_FAR = "FIRE_WATCH_TOO_FAR"
    # Unlocking and machine bookings.
    PERMIT_NOT_STARTED = "PERMIT_NOT_STARTED"
    PERMIT_NOT_ACTIVE = "PERMIT_NOT_ACTIVE"
    OUTSIDE_WINDOW = "OUTSIDE_WINDOW"
    WELDER_NOT_NAMED = "WELDER_NOT_NAMED"
    MACHINE_NOT_NAMED = "MACHINE_NOT_NAMED"
    OUTSIDE_HOT_SPOT = "OUTSIDE_HOT_SPOT"
    MACHINE_POSITION_UNKNOWN = "MACHINE_POSITION_UNKNOWN"
    MACHINE_DOUBLE_BOOKED = "MACHINE_DOUBLE_BOOKED"

    @property
    def label(self) -> str:
        """Short Chinese name, for statistics, filters and alarm titles."""
        return _LABELS[self]


_LABELS: dict[PermitReasonCode, str] = {
    PermitReasonCode.MISSING_FIELD: "作业票内容不全",
    PermitReasonCode.WINDOW_INVALID: "作业时间无效",
    PermitReasonCode.VALIDITY_EXCEEDED: "超出作业票有效期上限",
    PermitReasonCode.WINDOW_PASSED: "作业时间已过",
    PermitReasonCode.LEVEL_NOT_RAISED: "动火级别未按规定升级",
    PermitReasonCode.UNKNOWN_PROCESS: "焊机工艺未知",
    PermitReasonCode.METHOD_MISMATCH: "焊机与动火方式不符",
    PermitReasonCode.MACHINE_DUPLICATED: "焊机重复登记",
    PermitReasonCode.WELDER_DUPLICATED: "作业人员重复登记",
    PermitReasonCode.CERT_MISSING: "作业人员无证书",
    PermitReasonCode.CERT_HOLDER_MISMATCH: "人证不符",
    PermitReasonCode.CERT_NOT_FIT: "证书与作业不符",
    PermitReasonCode.CERT_NOT_USABLE: "证书不可用",
    PermitReasonCode.FIRE_WATCH_CONFLICT: "监护人兼任作业人员",
    PermitReasonCode.FIRE_WATCH_NOT_TRAINED: "监护人未经培训",
    PermitReasonCode.CHECK_IN_INTERVAL_INVALID: "监护签到间隔无效",
    PermitReasonCode.MEASURE_MISSING: "缺少必备安全措施",
    PermitReasonCode.CROWDED_OPENING_HOURS: "人员密集场所营业时间动火",
    PermitReasonCode.CROWDED_HOURS_UNKNOWN: "人员密集场所营业时间未登记",
    PermitReasonCode.CROWDED_EXCEPTION_NOT_ALLOWED: "该场所不适用营业时间动火例外",
    PermitReasonCode.CROWDED_EXCEPTION_INCOMPLETE: "营业时间动火例外手续不全",
    PermitReasonCode.STEP_OUT_OF_ORDER: "作业步骤顺序错误",
    PermitReasonCode.EDIT_AFTER_APPROVAL: "审批后修改作业票",
    PermitReasonCode.SITE_SURVEY_MISSING: "审批人未现场勘查",
    PermitReasonCode.RISK_CONFIRMATION_MISSING: "动火负责人未确认风险",
    PermitReasonCode.WRONG_PERSON: "非指定人员",
    PermitReasonCode.SAME_PERSON: "双人确认须由不同人员",
    PermitReasonCode.APPROVER_NOT_AUTHORISED: "审批人权限不足",
    PermitReasonCode.PHOTO_MISSING: "缺少现场照片",
    PermitReasonCode.NOT_YET_VALID: "未到作业开始时间",
    PermitReasonCode.PERMIT_EXPIRED: "作业票已过期",
    PermitReasonCode.NOT_EXPIRED: "作业票尚未到期",
    PermitReasonCode.UNKNOWN_MEASURE: "安全措施不在作业票上",
    PermitReasonCode.MEASURE_UNCONFIRMED: "安全措施未确认",
    PermitReasonCode.NOTICE_MISSING: "未公告动火作业",
    PermitReasonCode.EMBERS_FOUND: "发现余火",
    PermitReasonCode.WATCH_AFTER_WORK_TOO_SHORT: "作业后监护时间不足",
    PermitReasonCode.GAS_SAMPLE_MISSING: "未进行气体分析",
    PermitReasonCode.GAS_SAMPLE_STALE: "气体分析超时",
    PermitReasonCode.GAS_SAMPLE_IN_FUTURE: "气体分析时间有误",
    PermitReasonCode.GAS_SAMPLE_TOO_FAR: "采样点距动火点过远",
    PermitReasonCode.GAS_OVER_LIMIT: "可燃气体浓度超标",
    PermitReasonCode.GAS_RETEST_AFTER_PAUSE: "作业中断后未复测",
    PermitReasonCode.GAS_DAILY_RETEST: "未每日复测",
    PermitReasonCode.MONITOR_MISSING: "无连续气体监测",
    PermitReasonCode.MONITOR_STALE: "连续气体监测中断",
    PermitReasonCode.MONITOR_OVER_LIMIT: "连续气体监测超标",
    PermitReasonCode.FIRE_WATCH_NOT_CHECKED_IN: "监护人未签到",
    PermitReasonCode.FIRE_WATCH_ABSENT: "监护人员离岗",
    PermitReasonCode.FIRE_WATCH_TOO_FAR: "监护人不在动火点",
    PermitReasonCode.PERMIT_NOT_STARTED: "作业票未开始动火",
    PermitReasonCode.PERMIT_NOT_ACTIVE: "作业票不在动火状态",
    PermitReasonCode.OUTSIDE_WINDOW: "不在作业票时间内",
    PermitReasonCode.WELDER_NOT_NAMED: "作业人员中没有该焊工",
    PermitReasonCode.MACHINE_NOT_NAMED: "作业票未包含该焊机",
    PermitReasonCode.OUTSIDE_HOT_SPOT: "焊机不在动火点范围内",
    PermitReasonCode.MACHINE_POSITION_UNKNOWN: "焊机位置未知",
    PermitReasonCode.MACHINE_DOUBLE_BOOKED: "焊机作业票时间重叠",
}


@dataclass(frozen=True)
class PermitReason:
    """One failed rule: a stable code and a plain-Chinese message with the specifics."""

    code: PermitReasonCode
    message: str

    @property
    def label(self) -> str:
        """Short Chinese name of the code."""
        return self.code.label


def local_text(moment: datetime, tz: tzinfo) -> str:
    """``2026-11-23 10:00`` in local time; seconds only when they are not zero, so
    that a boundary off by one second is visible in the message."""
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")


def duration_text(span: timedelta) -> str:
    """``8 小时``, ``30 分钟``, ``1 小时 30 分钟 5 秒``."""
    seconds = int(span.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{hours} 小时")
    if minutes:
        parts.append(f"{minutes} 分钟")
    if secs or not parts:
        parts.append(f"{secs} 秒")
    return sign + " ".join(parts)
