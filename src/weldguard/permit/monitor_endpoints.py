"""/api/v1/permits/{id}/monitor-readings (连续监测) and /api/v1/permit-alarms
(作业票报警).

Monitor readings: a batch from the continuous gas monitor of a permit (required
for 特级 work), sent by the enterprise's admin or safety officer (or its system
signed in as one). The permit is found within the caller's scope (outside it:
404); anyone else who sees it gets 403. Every reading is checked before any is
written: a 422 names each bad field with its index (``readings[2].lel_percent``)
and nothing of the batch is kept. The supervisor and the steps that start or
resume 特级 work read each gas's latest reading.

Permit alarms: the alarms of the permits in the caller's scope, newest first."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from weldguard.auth.models import Role
from weldguard.deps import CurrentScope, CurrentUser, DbSession, Now
from weldguard.domain.permits import PermitStatus, RecordGasSample, allowed_from
from weldguard.errors import Conflict, FieldErrors, NotFound, PermissionDenied, invalid
from weldguard.pagination import PageNumber, PageSize
from weldguard.permit.alarm_models import PermitAlarmKind, PermitMonitorReading
from weldguard.permit.alarm_repository import (
    AlarmRow,
    MonitorRepository,
    PermitAlarmFilter,
    PermitAlarmRepository,
)
from weldguard.permit.repository import PermitRepository
from weldguard.schemas import PageOut

router = APIRouter(tags=["hot-work permits"])

DEFAULT_SIZE = 20
MAX_BATCH = 500
GAS_MAX = 32
DEVICE_MAX = 64
# A monitor's clock may run a little ahead of ours; more is a wrong clock.
CLOCK_SKEW = timedelta(minutes=1)
WRITERS = frozenset({Role.ENTERPRISE_ADMIN, Role.SAFETY_OFFICER})
# Readings matter from the preparation (the start needs them) until the work ends,
# the statuses in which gas samples are recorded too.
OPEN_STATUSES = allowed_from(RecordGasSample)


class MonitorBatchIn(BaseModel):
    readings: Any = Field(
        default=None,
        description=(
            f"1–{MAX_BATCH} readings: taken_at (ISO 8601 with offset), gas, "
            "lel_percent (0–100, the gas's lower explosive limit), reading_percent "
            "(0–100, % by volume), device (optional)"
        ),
    )


class MonitorReadingOut(BaseModel):
    id: int
    permit_id: int
    taken_at: datetime
    gas: str
    lel_percent: float
    reading_percent: float
    device: str
    received_at: datetime

    @classmethod
    def of(cls, r: PermitMonitorReading) -> MonitorReadingOut:
        return cls(
            id=r.id,
            permit_id=r.permit_id,
            taken_at=r.taken_at,
            gas=r.gas,
            lel_percent=r.lel_percent,
            reading_percent=r.reading_percent,
            device=r.device,
            received_at=r.received_at,
        )


class MonitorBatchOut(BaseModel):
    accepted: int
    readings: list[MonitorReadingOut]


class PermitAlarmOut(BaseModel):
    id: int
    permit_id: int
    permit_number: str
    enterprise_id: int
    enterprise_name: str
    area_path: str
    kind: str
    kind_label: str
    message: str
    raised_at: datetime
    last_seen_at: datetime
    count: int
    cleared_at: datetime | None

    @classmethod
    def of(cls, row: AlarmRow) -> PermitAlarmOut:
        a = row.alarm
        return cls(
            id=a.id,
            permit_id=a.permit_id,
            permit_number=row.permit_number,
            enterprise_id=a.enterprise_id,
            enterprise_name=row.enterprise_name,
            area_path=a.area_path,
            kind=a.kind,
            kind_label=kind_label(a.kind),
            message=a.message,
            raised_at=a.raised_at,
            last_seen_at=a.last_seen_at,
            count=a.count,
            cleared_at=a.cleared_at,
        )


def kind_label(kind: str) -> str:
    try:
        return PermitAlarmKind(kind).label
    except ValueError:
        return kind


def _number(
    value: Any, name: str, low: float, high: float, low_open: bool, p: FieldErrors
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        p.add(name, "应为数字")
        return 0.0
    below = value <= low if low_open else value < low
    if below or value > high:
        p.add(name, f"应在 {low:g}–{high:g}% 之间" + ("（不含 0）" if low_open else ""))
    return float(value)


def _taken_at(value: Any, name: str, now: datetime, p: FieldErrors) -> datetime | None:
    taken: datetime | None = None
    if isinstance(value, str):
        try:
            taken = datetime.fromisoformat(value)
        except ValueError:
            taken = None
    if taken is None or taken.tzinfo is None or taken.utcoffset() is None:
        p.add(name, "请填写带时区的监测时间（ISO 8601，如 2026-11-22T12:00:00+08:00）")
        return None
    if taken > now + CLOCK_SKEW:
        p.add(name, "监测时间晚于当前时间，请检查监测设备的时钟")
        return None
    # Answered as it will read back: in UTC.
    return taken.astimezone(UTC)


def _text(value: Any, name: str, limit: int, p: FieldErrors, *, required: bool) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str):
        p.add(name, "应为文字")
        return ""
    text = value.strip()
    if required and not text:
        p.add(name, "不能为空")
    elif len(text) > limit:
        p.add(name, f"最长 {limit} 个字符")
    return text


def readings_of(data: Any, permit_id: int, now: datetime) -> list[PermitMonitorReading]:
    """The batch as rows, or InvalidInput naming every bad field of every reading."""
    p = FieldErrors()
    if not isinstance(data, list) or not data:
        p.add("readings", "请提供监测数据列表（至少 1 条）")
        p.raise_if_any("连续监测数据")
    assert isinstance(data, list)
    if len(data) > MAX_BATCH:
        p.add("readings", f"一次最多上报 {MAX_BATCH} 条监测数据")
        p.raise_if_any("连续监测数据")
    rows = []
    for i, item in enumerate(data):
        at = f"readings[{i}]"
        if not isinstance(item, dict):
            p.add(at, "应为一条监测数据（taken_at、gas、lel_percent、reading_percent）")
            continue
        taken = _taken_at(item.get("taken_at"), f"{at}.taken_at", now, p)
        gas = _text(item.get("gas"), f"{at}.gas", GAS_MAX, p, required=True)
        lel = _number(item.get("lel_percent"), f"{at}.lel_percent", 0, 100, True, p)
        reading = _number(item.get("reading_percent"), f"{at}.reading_percent", 0, 100, False, p)
        device = _text(item.get("device"), f"{at}.device", DEVICE_MAX, p, required=False)
        if taken is not None:
            rows.append(
                PermitMonitorReading(
                    permit_id=permit_id,
                    taken_at=taken,
                    gas=gas,
                    lel_percent=lel,
                    reading_percent=reading,
                    device=device,
                    received_at=now,
                )
            )
    p.raise_if_any("连续监测数据")
    return rows


@router.post(
    "/permits/{permit_id}/monitor-readings", response_model=MonitorBatchOut, status_code=201
)
def add_monitor_readings(
    permit_id: int,
    body: MonitorBatchIn,
    session: DbSession,
    scope: CurrentScope,
    user: CurrentUser,
    now: Now,
) -> MonitorBatchOut:
    """A batch of continuous gas monitor readings (all or nothing)."""
    permit = PermitRepository(session).get(scope, permit_id)
    if permit is None:
        raise NotFound("作业票不存在")
    if Role(user.role) not in WRITERS or scope.enterprise_id != permit.enterprise_id:
        raise PermissionDenied("只有作业票所属企业的管理员或安全管理员可以上报连续监测数据")
    rows = readings_of(body.readings, permit.id, now)
    status = PermitStatus(permit.status)
    if status not in OPEN_STATUSES:
        raise Conflict(f"作业票当前为“{status.label}”，不再接收连续监测数据")
    MonitorRepository(session).add(rows)
    return MonitorBatchOut(accepted=len(rows), readings=[MonitorReadingOut.of(r) for r in rows])


@router.get("/permits/{permit_id}/monitor-readings", response_model=list[MonitorReadingOut])
def list_monitor_readings(
    permit_id: int,
    session: DbSession,
    scope: CurrentScope,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[MonitorReadingOut]:
    """The permit's latest readings, newest first."""
    permit = PermitRepository(session).get(scope, permit_id)
    if permit is None:
        raise NotFound("作业票不存在")
    return [MonitorReadingOut.of(r) for r in MonitorRepository(session).recent(permit.id, limit)]


@router.get("/permit-alarms", response_model=PageOut[PermitAlarmOut])
def list_permit_alarms(
    session: DbSession,
    scope: CurrentScope,
    state: Annotated[
        Literal["open", "cleared"] | None, Query(description="open 未消除 | cleared 已消除")
    ] = None,
    kind: Annotated[
        str | None, Query(description=" | ".join(k.value for k in PermitAlarmKind))
    ] = None,
    enterprise_id: int | None = None,
    permit_id: int | None = None,
    page: PageNumber = 1,
    size: PageSize = DEFAULT_SIZE,
) -> PageOut[PermitAlarmOut]:
    """The alarms of the permits in your scope, the latest raised first."""
    if kind is not None and kind not in {k.value for k in PermitAlarmKind}:
        raise invalid(
            "kind",
            "报警类型无效，可选：" + "、".join(f"{k.value}（{k.label}）" for k in PermitAlarmKind),
        )
    f = PermitAlarmFilter(state=state, kind=kind, enterprise_id=enterprise_id, permit_id=permit_id)
    result = PermitAlarmRepository(session).page(scope, f, page, size)
    return PageOut.of(result, [PermitAlarmOut.of(r) for r in result.items])
