"""Use cases for the enterprise register. Services flush, never commit."""

from __future__ import annotations

from sqlalchemy.orm import Session

from weldguard.auth.scope import Action, Scope
from weldguard.enterprise.fields import EnterpriseData, apply
from weldguard.enterprise.models import Enterprise, Site
from weldguard.enterprise.repository import EnterpriseRepository
from weldguard.errors import ErrorDetail, InvalidInput, NotFound, PermissionDenied
from weldguard.jurisdiction.models import Level

OUTSIDE_AREA = "所属区域不在您的管辖范围内"
OUTSIDE_SECTORS = "企业类型不在您所在部门的监管行业范围内"
REGISTERED_ELSEWHERE = "该统一社会信用代码已由其他辖区登记"


def upsert_problem(
    scope: Scope, data: EnterpriseData, existing: Enterprise | None
) -> ErrorDetail | None:
    """Why this record may not be written by this user, or None. Pure, so that an
    import can check every row before writing any."""
    if existing is not None and not scope.covers_enterprise(existing):
        return ErrorDetail(REGISTERED_ELSEWHERE, field="credit_code", column="统一社会信用代码")
    if not scope.covers_area(data.jurisdiction.path, data.sector):
        if scope.covers_path(data.jurisdiction.path):
            return ErrorDetail(OUTSIDE_SECTORS, field="sector", column="企业类型")
        if data.jurisdiction.level == Level.STREET:
            return ErrorDetail(OUTSIDE_AREA, field="street", column="所属镇街")
        return ErrorDetail(OUTSIDE_AREA, field="district", column="所属区县")
    return None


class EnterpriseService:
    def __init__(self, session: Session) -> None:
        self.session = session
        self.repo = EnterpriseRepository(session)

    def upsert(self, scope: Scope, data: EnterpriseData) -> tuple[Enterprise, bool]:
        """Creates the enterprise or updates the one with the same credit code."""
        scope.require(Action.MANAGE_REGISTER)
        existing = self.repo.by_credit_code(data.credit_code)
        problem = upsert_problem(scope, data, existing)
        if problem is not None:
            raise InvalidInput("无法保存企业", [problem])
        enterprise = existing or Enterprise()
        apply(data, enterprise)
        if existing is None:
            self.repo.add(enterprise)
        else:
            self.session.flush()
        return enterprise, existing is None

    def get(self, scope: Scope, enterprise_id: int) -> Enterprise:
        enterprise = self.repo.visible(scope, enterprise_id)
        if enterprise is None:
            raise NotFound("企业不存在")
        return enterprise

    def set_opening_hours(
        self, scope: Scope, enterprise_id: int, hours: list[dict[str, object]]
    ) -> Enterprise:
        scope.require(Action.MANAGE_ENTERPRISE_ASSETS)
        enterprise = self.get(scope, enterprise_id)
        errors = validate_opening_hours(hours)
        if errors:
            raise InvalidInput("营业时间有误", errors)
        enterprise.opening_hours = hours
        self.session.flush()
        return enterprise

    def set_permit_requirement(
        self, scope: Scope, enterprise_id: int, required: bool | None
    ) -> Enterprise:
        """Whether hot work at the enterprise needs a permit, whatever its sector
        says (None: the sector rule again). A regulator of its area decides either
        way; the enterprise may only tighten it (require permits) for itself, never
        relax what the rule or a regulator asked for."""
        enterprise = self.get(scope, enterprise_id)
        if scope.may(Action.MANAGE_REGISTER):
            enterprise.permit_required = required
        elif scope.may(Action.MANAGE_ENTERPRISE_ASSETS) and required is True:
            enterprise.permit_required = True
        elif scope.may(Action.MANAGE_ENTERPRISE_ASSETS):
            raise PermissionDenied("企业只能提高要求（动火须持作业票），放宽须由监管部门设置")
        else:
            raise PermissionDenied("当前账号无权设置动火作业票要求")
        self.session.flush()
        return enterprise

    def add_site(
        self,
        scope: Scope,
        enterprise_id: int,
        name: str,
        address: str = "",
        latitude: float | None = None,
        longitude: float | None = None,
        polygon: list[list[float]] | None = None,
    ) -> Site:
        scope.require(Action.MANAGE_ENTERPRISE_ASSETS)
        enterprise = self.get(scope, enterprise_id)
        errors = validate_site(name, address, latitude, longitude, polygon)
        if errors:
            raise InvalidInput("作业场所信息有误", errors)
        return self.repo.add_site(
            Site(
                enterprise_id=enterprise.id,
                name=name.strip(),
                address=address.strip(),
                latitude=latitude,
                longitude=longitude,
                polygon=polygon,
            )
        )


def _hhmm(text: object) -> int | None:
    if not isinstance(text, str) or len(text) != 5 or text[2] != ":":
        return None
    hours, minutes = text[:2], text[3:]
    if not (hours.isdigit() and minutes.isdigit()):
        return None
    h, m = int(hours), int(minutes)
    if h > 24 or m > 59 or (h == 24 and m):
        return None
    return h * 60 + m


def validate_opening_hours(hours: list[dict[str, object]]) -> list[ErrorDetail]:
    errors = []
    for index, window in enumerate(hours):
        where = f"opening_hours[{index}]"
        days = window.get("days")
        if (
            not isinstance(days, list)
            or not days
            or any(not isinstance(d, int) or not 1 <= d <= 7 for d in days)
        ):
            errors.append(ErrorDetail("days 应为 1–7（周一至周日）的列表", field=f"{where}.days"))
        start, end = _hhmm(window.get("open")), _hhmm(window.get("close"))
        if start is None or end is None:
            errors.append(ErrorDetail("open/close 应为 HH:MM", field=where))
        elif start == end:
            errors.append(ErrorDetail("开始与结束时间相同", field=where))
    return errors


def validate_site(
    name: str,
    address: str,
    latitude: float | None,
    longitude: float | None,
    polygon: list[list[float]] | None,
) -> list[ErrorDetail]:
    errors = []
    if not name.strip() or len(name.strip()) > 128:
        errors.append(ErrorDetail("名称不能为空且不超过 128 个字符", field="name"))
    if len(address) > 256:
        errors.append(ErrorDetail("地址超过 256 个字符", field="address"))
    if (latitude is None) != (longitude is None):
        errors.append(ErrorDetail("经纬度须同时填写", field="latitude"))
    if latitude is not None and not -90 <= latitude <= 90:
        errors.append(ErrorDetail("纬度应在 -90 到 90 之间", field="latitude"))
    if longitude is not None and not -180 <= longitude <= 180:
        errors.append(ErrorDetail("经度应在 -180 到 180 之间", field="longitude"))
    if polygon is not None and (
        len(polygon) < 3
        or any(len(p) != 2 or not -90 <= p[0] <= 90 or not -180 <= p[1] <= 180 for p in polygon)
    ):
        errors.append(ErrorDetail("多边形至少 3 个 [纬度, 经度] 点", field="polygon"))
    return errors
