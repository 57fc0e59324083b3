"""The enterprise register's fields: the import template's columns and the
validation of one record, shared by the spreadsheet import and the API."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from weldguard.domain.ids import InvalidIdentifier, normalize_credit_code, normalize_phone
from weldguard.errors import ErrorDetail
from weldguard.jurisdiction.models import Jurisdiction, Level
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.jurisdiction.service import CROWDED, CROWDED_SUBTYPES, SECTORS

# The Zhengzhou 涉焊企业导入模板, in its order. Keys are our field names.
TEMPLATE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("row_number", "序号"),
    ("name", "企业名称"),
    ("credit_code", "统一社会信用代码"),
    ("sector", "企业类型"),
    ("city", "所属地市"),
    ("district", "所属区县"),
    ("street", "所属镇街"),
    ("address", "企业地址"),
    ("crowded_subtype", "人密场所子类"),
    ("legal_rep_name", "企业法人姓名"),
    ("legal_rep_phone", "法人联系方式"),
    ("contact_phone", "联系人电话"),
    ("production_status", "生产状态"),
    ("involves_welding", "是否涉焊单位"),
    ("mobile_work", "是否流动作业"),
    ("declared_machine_count", "电焊设备数量（单位：台）"),
    ("declared_welder_count", "特种作业人员数量（单位：人）"),
)
HEADER_OF = dict(TEMPLATE_COLUMNS)
REQUIRED_HEADERS = tuple(h for key, h in TEMPLATE_COLUMNS if key != "row_number")

PRODUCTION_STATUSES = ("在产", "停产", "半停产", "筹建", "歇业")
YES = ("是", "Y", "y", "YES", "yes", "1", "true", "TRUE", "True")
NO = ("否", "N", "n", "NO", "no", "0", "false", "FALSE", "False")

MAX_LENGTH = {
    "name": 128,
    "address": 256,
    "legal_rep_name": 64,
}
MAX_COUNT = 100_000


@dataclass
class EnterpriseData:
    name: str
    credit_code: str
    sector: str
    crowded_subtype: str | None
    jurisdiction: Jurisdiction
    address: str
    legal_rep_name: str
    legal_rep_phone: str
    contact_phone: str
    production_status: str
    involves_welding: bool
    mobile_work: bool
    declared_machine_count: int
    declared_welder_count: int


class PlaceResolver:
    """Finds city → district → street by name, caching the (small) tree."""

    def __init__(self, session: Session) -> None:
        self._by_parent: dict[int | None, dict[str, Jurisdiction]] = {}
        self._cities: dict[str, Jurisdiction] = {}
        for node in JurisdictionRepository(session).all():
            self._by_parent.setdefault(node.parent_id, {})[node.name] = node
            if node.level == Level.CITY:
                self._cities[node.name] = node

    def resolve(
        self, city: str, district: str, street: str
    ) -> tuple[Jurisdiction | None, ErrorDetail | None]:
        city_node = self._cities.get(city)
        if city_node is None:
            return None, ErrorDetail(f"未知的地市“{city}”", field="city", column=HEADER_OF["city"])
        district_node = self._by_parent.get(city_node.id, {}).get(district)
        if district_node is None:
            return None, ErrorDetail(
                f"{city}下没有区县“{district}”", field="district", column=HEADER_OF["district"]
            )
        if not street:
            return district_node, None
        street_node = self._by_parent.get(district_node.id, {}).get(street)
        if street_node is None:
            return None, ErrorDetail(
                f"{district}下没有镇街“{street}”", field="street", column=HEADER_OF["street"]
            )
        return street_node, None


def cell_text(raw: Mapping[str, Any], key: str) -> str:
    """A spreadsheet cell (or JSON value) as trimmed text; 12.0 reads as "12"."""
    value = raw.get(key)
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def validate_enterprise(
    raw: Mapping[str, Any], places: PlaceResolver
) -> tuple[EnterpriseData | None, list[ErrorDetail]]:
    """Checks one record given as {field: raw value}. Returns the data or every
    problem found (not only the first), each naming its field and column."""
    errors: list[ErrorDetail] = []

    def err(key: str, reason: str) -> None:
        errors.append(ErrorDetail(reason, field=key, column=HEADER_OF[key]))

    values = {key: cell_text(raw, key) for key, _ in TEMPLATE_COLUMNS}
    for key in ("name", "credit_code", "sector", "city", "district"):
        if not values[key]:
            err(key, "不能为空")
    for key, limit in MAX_LENGTH.items():
        if len(values[key]) > limit:
            err(key, f"超过 {limit} 个字符（{len(values[key])}）")

    credit_code = ""
    if values["credit_code"]:
        try:
            credit_code = normalize_credit_code(values["credit_code"])
        except InvalidIdentifier as exc:
            err("credit_code", exc.reason)

    sector = values["sector"]
    subtype: str | None = values["crowded_subtype"] or None
    if sector in CROWDED_SUBTYPES:
        # Some districts put the crowded-place sub-type straight into 企业类型.
        subtype = subtype or sector
        sector = CROWDED
    if sector and sector not in SECTORS:
        err("sector", f"未知的企业类型“{sector}”，可选：{'、'.join(SECTORS)}")
    if subtype is not None and subtype not in CROWDED_SUBTYPES:
        err(
            "crowded_subtype", f"未知的人密场所子类“{subtype}”，可选：{'、'.join(CROWDED_SUBTYPES)}"
        )
    if sector == CROWDED and subtype is None:
        err("crowded_subtype", "人员密集场所必须填写人密场所子类")

    phones: dict[str, str] = {}
    for key in ("legal_rep_phone", "contact_phone"):
        if values[key]:
            try:
                phones[key] = normalize_phone(values[key])
            except InvalidIdentifier as exc:
                err(key, exc.reason)
        else:
            phones[key] = ""

    status = values["production_status"] or "在产"
    if status not in PRODUCTION_STATUSES:
        err(
            "production_status", f"未知的生产状态“{status}”，可选：{'、'.join(PRODUCTION_STATUSES)}"
        )

    flags: dict[str, bool] = {}
    for key, default in (("involves_welding", True), ("mobile_work", False)):
        text = values[key]
        if not text:
            flags[key] = default
        elif text in YES:
            flags[key] = True
        elif text in NO:
            flags[key] = False
        else:
            err(key, f"应填“是”或“否”，而不是“{text}”")

    counts: dict[str, int] = {}
    for key in ("declared_machine_count", "declared_welder_count"):
        text = values[key]
        if not text:
            counts[key] = 0
            continue
        try:
            number = int(text)
        except ValueError:
            err(key, f"不是整数：“{text}”")
            continue
        if not 0 <= number <= MAX_COUNT:
            err(key, f"应在 0 到 {MAX_COUNT} 之间")
            continue
        counts[key] = number

    jurisdiction = None
    if values["city"] and values["district"]:
        jurisdiction, place_error = places.resolve(
            values["city"], values["district"], values["street"]
        )
        if place_error is not None:
            errors.append(place_error)

    if errors or jurisdiction is None:
        return None, errors
    return (
        EnterpriseData(
            name=values["name"],
            credit_code=credit_code,
            sector=sector,
            crowded_subtype=subtype,
            jurisdiction=jurisdiction,
            address=values["address"],
            legal_rep_name=values["legal_rep_name"],
            legal_rep_phone=phones["legal_rep_phone"],
            contact_phone=phones["contact_phone"],
            production_status=status,
            involves_welding=flags["involves_welding"],
            mobile_work=flags["mobile_work"],
            declared_machine_count=counts["declared_machine_count"],
            declared_welder_count=counts["declared_welder_count"],
        ),
        [],
    )


def apply(enterprise_data: EnterpriseData, target: Any) -> None:
    """Copies validated data onto an Enterprise (new or existing)."""
    for key in (
        "name",
        "credit_code",
        "sector",
        "crowded_subtype",
        "address",
        "legal_rep_name",
        "legal_rep_phone",
        "contact_phone",
        "production_status",
        "involves_welding",
        "mobile_work",
        "declared_machine_count",
        "declared_welder_count",
    ):
        setattr(target, key, getattr(enterprise_data, key))
    target.jurisdiction_id = enterprise_data.jurisdiction.id
    target.area_path = enterprise_data.jurisdiction.path
