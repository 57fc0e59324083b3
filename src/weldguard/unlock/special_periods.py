"""特殊时期: a regulator bans hot work (or requires a permit) in an area of its
jurisdiction for a time, e.g. during a major event. The scan decision reads the
periods that cover a place (``periods_for_place``); this module declares, lists
and ends them.

Who may declare: the admin anywhere, a regulator inside its jurisdiction and, for a
department limited to some sectors (住建 → 施工工地), only for those sectors.
Everyone else reads the periods that concern their reach: those inside their
subtree or covering it (a city-wide period concerns a district), and for an
enterprise or a welder those covering their enterprises.

Every input error is reported at once, each naming its field, and nothing is
written unless all are right. Ending early sets ``ends_at`` to now; a period
that had not started is thereby cancelled (its end before its start)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from weldguard.auth.scope import Action, Scope
from weldguard.clock import SHANGHAI
from weldguard.domain.authorization import SpecialPeriod as PeriodFacts
from weldguard.domain.authorization import SpecialPeriodKind
from weldguard.errors import Conflict, ErrorDetail, InvalidInput, NotFound, PermissionDenied
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.jurisdiction.service import SECTORS
from weldguard.pagination import Page
from weldguard.unlock.models import SpecialPeriod

__all__ = [
    "KIND_LABELS",
    "MAX_DURATION",
    "STATE_LABELS",
    "PeriodState",
    "SpecialPeriodInput",
    "SpecialPeriodService",
    "kind_label",
    "period_state",
    "periods_for_place",
]

KIND_LABELS: dict[str, str] = {
    SpecialPeriodKind.BAN_HOT_WORK.value: "禁止动火",
    SpecialPeriodKind.REQUIRE_PERMIT.value: "须持动火作业票",
}
MAX_DURATION = timedelta(days=366)
TITLE_MAX = 128


class PeriodState(StrEnum):
    UPCOMING = "upcoming"
    ACTIVE = "active"
    ENDED = "ended"
    CANCELLED = "cancelled"  # ended before it started


STATE_LABELS: dict[str, str] = {
    PeriodState.UPCOMING.value: "未开始",
    PeriodState.ACTIVE.value: "生效中",
    PeriodState.ENDED.value: "已结束",
    PeriodState.CANCELLED.value: "已取消",
}


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def period_state(period: SpecialPeriod, now: datetime) -> PeriodState:
    if period.ends_at <= period.starts_at:
        return PeriodState.CANCELLED
    if now < period.starts_at:
        return PeriodState.UPCOMING
    if now < period.ends_at:
        return PeriodState.ACTIVE
    return PeriodState.ENDED


@dataclass(frozen=True)
class SpecialPeriodInput:
    """What a regulator declares. ``area`` is a division code; ``sectors`` empty
    or None means every sector; datetimes must be timezone-aware."""

    title: str
    kind: str
    area: str
    starts_at: datetime | None
    ends_at: datetime | None
    sectors: Sequence[str] | None = None


def _ancestor_paths(path: str) -> list[str]:
    parts = path.rstrip("/").split("/")
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


def periods_for_place(session: Session, area_path: str, now: datetime) -> list[PeriodFacts]:
    """Periods not yet over whose area contains ``area_path``, as the decision's
    facts (the decision checks the sector and the time). Unscoped: the scan
    decision needs them for any place."""
    rows = session.scalars(
        select(SpecialPeriod)
        .where(
            SpecialPeriod.area_path.in_(_ancestor_paths(area_path)),
            SpecialPeriod.ends_at > now,
            SpecialPeriod.ends_at > SpecialPeriod.starts_at,
        )
        .order_by(SpecialPeriod.starts_at, SpecialPeriod.id)
    )
    return [
        PeriodFacts(
            id=p.id,
            title=p.title,
            area_path=p.area_path,
            starts_at=p.starts_at,
            ends_at=p.ends_at,
            kind=SpecialPeriodKind(p.kind),
            sectors=frozenset(p.sectors) if p.sectors else None,
        )
        for p in rows
    ]


class SpecialPeriodService:
    def __init__(self, session: Session) -> None:
        self.session = session

    # --- reads -----------------------------------------------------------------
    def _state_clause(self, state: str | None, now: datetime) -> list[ColumnElement[bool]]:
        real = SpecialPeriod.ends_at > SpecialPeriod.starts_at
        if state == PeriodState.ACTIVE:
            return [real, SpecialPeriod.starts_at <= now, SpecialPeriod.ends_at > now]
        if state == PeriodState.UPCOMING:
            return [real, SpecialPeriod.starts_at > now]
        if state == PeriodState.ENDED:
            return [real, SpecialPeriod.ends_at <= now]
        if state == PeriodState.CANCELLED:
            return [SpecialPeriod.ends_at <= SpecialPeriod.starts_at]
        return []

    def list_page(
        self, scope: Scope, now: datetime, state: str | None, page: int, size: int
    ) -> Page[tuple[SpecialPeriod, Jurisdiction]]:
        """Periods that concern the scope, those not over first (by start), then
        the past ones (latest first)."""
        where = [
            scope.area_overlap_filter(SpecialPeriod.area_path),
            *self._state_clause(state, now),
        ]
        size = max(1, min(size, 200))
        page = max(1, page)
        total = self.session.scalar(select(func.count(SpecialPeriod.id)).where(*where)) or 0
        over = SpecialPeriod.ends_at <= now
        rows = self.session.execute(
            select(SpecialPeriod, Jurisdiction)
            .join(Jurisdiction, Jurisdiction.id == SpecialPeriod.jurisdiction_id)
            .where(*where)
            .order_by(over, SpecialPeriod.starts_at.desc(), SpecialPeriod.id.desc())
            .limit(size)
            .offset((page - 1) * size)
        ).all()
        return Page(items=[(p, j) for p, j in rows], total=total, page=page, size=size)

    def get(self, scope: Scope, period_id: int) -> SpecialPeriod:
        period = self.session.scalars(
            select(SpecialPeriod).where(
                SpecialPeriod.id == period_id, scope.area_overlap_filter(SpecialPeriod.area_path)
            )
        ).one_or_none()
        if period is None:
            raise NotFound("特殊时期不存在")
        return period

    def may_manage(self, scope: Scope, period: SpecialPeriod) -> bool:
        """Whether the scope may end this period: a declarer whose reach covers
        its whole area and all its sectors."""
        if not scope.may(Action.DECLARE_SPECIAL_PERIOD):
            return False
        if scope.everything:
            return True
        if not scope.covers_path(period.area_path):
            return False
        if scope.sectors is None:
            return True
        return bool(period.sectors) and set(period.sectors or ()) <= scope.sectors

    # --- writes ----------------------------------------------------------------
    def declare(
        self, scope: Scope, data: SpecialPeriodInput, user_id: int | None, now: datetime
    ) -> SpecialPeriod:
        scope.require(Action.DECLARE_SPECIAL_PERIOD)
        errors: list[ErrorDetail] = []

        def err(field_name: str, reason: str) -> None:
            errors.append(ErrorDetail(reason=reason, field=field_name))

        title = (data.title or "").strip()
        if not title:
            err("title", "请填写特殊时期名称")
        elif len(title) > TITLE_MAX:
            err("title", f"名称不能超过 {TITLE_MAX} 个字")

        if data.kind not in KIND_LABELS:
            err(
                "kind",
                "类型无效，可选：" + "、".join(f"{v}（{k}）" for k, v in KIND_LABELS.items()),
            )

        node: Jurisdiction | None = None
        code = (data.area or "").strip()
        if not code:
            err("area", "请选择区域")
        else:
            node = JurisdictionRepository(self.session).by_code(code)
            if node is None:
                err("area", f"未知的区域代码“{code[:16]}”")
            elif not scope.covers_path(node.path):
                err("area", "区域不在您的辖区内")
                node = None

        sectors: list[str] | None = None
        wanted = [s.strip() for s in (data.sectors or ()) if s and s.strip()]
        unknown = [s for s in wanted if s not in SECTORS]
        if unknown:
            err("sectors", f"未知的行业“{'、'.join(unknown)}”，可选：{'、'.join(SECTORS)}")
        elif wanted:
            sectors = [s for s in SECTORS if s in set(wanted)]  # canonical order, no repeats
        if not unknown and scope.sectors is not None and not scope.everything:
            own = "、".join(s for s in SECTORS if s in scope.sectors)
            if sectors is None:
                err("sectors", f"您所在部门只能对本部门监管的行业声明特殊时期，请选择：{own}")
            elif not set(sectors) <= scope.sectors:
                outside = "、".join(s for s in sectors if s not in scope.sectors)
                err("sectors", f"行业“{outside}”不在您所在部门的监管范围内，可选：{own}")

        starts, ends = data.starts_at, data.ends_at
        for name, value, label in (
            ("starts_at", starts, "开始时间"),
            ("ends_at", ends, "结束时间"),
        ):
            if value is None:
                err(name, f"请填写{label}")
            elif value.tzinfo is None:
                err(name, f"{label}须带时区")
        if starts is not None and ends is not None and starts.tzinfo and ends.tzinfo:
            if ends <= starts:
                err("ends_at", "结束时间须晚于开始时间")
            elif ends <= now:
                err("ends_at", "结束时间已过，不能声明已经结束的特殊时期")
            elif ends - starts > MAX_DURATION:
                err("ends_at", "特殊时期最长 366 天")

        if errors:
            raise InvalidInput("特殊时期信息有误：" + "；".join(e.reason for e in errors), errors)
        assert node is not None and starts is not None and ends is not None
        period = SpecialPeriod(
            title=title,
            kind=data.kind,
            jurisdiction_id=node.id,
            area_path=node.path,
            sectors=sectors,
            starts_at=starts,
            ends_at=ends,
            declared_by_user_id=user_id,
            declared_at=now,
        )
        self.session.add(period)
        self.session.flush()
        return period

    def end_early(self, scope: Scope, period_id: int, now: datetime) -> SpecialPeriod:
        """Ends the period now (cancels it if it had not started)."""
        period = self.get(scope, period_id)
        if not self.may_manage(scope, period):
            raise PermissionDenied("当前账号无权结束该特殊时期")
        state = period_state(period, now)
        if state in (PeriodState.ENDED, PeriodState.CANCELLED):
            raise Conflict("该特殊时期已结束")
        # Before its start this cancels it (ends_at <= starts_at), and the
        # decision's lookup of periods not yet over no longer finds it.
        period.ends_at = now
        self.session.flush()
        return period


def local_label(value: datetime) -> str:
    return value.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
