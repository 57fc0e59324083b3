"""Building the jurisdiction tree and the department catalogue."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from weldguard.errors import Conflict, NotFound
from weldguard.jurisdiction.models import Department, Jurisdiction, Level
from weldguard.jurisdiction.repository import DepartmentRepository, JurisdictionRepository

SECTORS = ("工贸", "危化", "施工工地", "科研机构", "电力", "航空航天", "人员密集场所")
CROWDED_SUBTYPES = (
    "医院",
    "养老院",
    "学校",
    "商场（市场）",
    "宾馆饭店",
    "休闲娱乐场所",
    "其他人员密集场所",
)
CROWDED = "人员密集场所"


@dataclass(frozen=True)
class DepartmentSpec:
    code: str
    name: str
    short_name: str
    sectors: tuple[str, ...] | None  # None: every sector


# Who oversees what. Sectors name the template's 企业类型; crowded places are one
# sector whose sub-types are told apart elsewhere.
DEPARTMENTS: tuple[DepartmentSpec, ...] = (
    DepartmentSpec("emergency", "应急管理局", "应急", None),
    DepartmentSpec("housing_construction", "住房和城乡建设委员会", "住建", ("施工工地",)),
    DepartmentSpec("housing_management", "房屋管理局", "房管", (CROWDED, "施工工地")),
    DepartmentSpec("market_regulation", "市场监督管理局", "市场监管", ("工贸", "危化", CROWDED)),
    DepartmentSpec("fire_rescue", "消防救援支队", "消防", (CROWDED, "危化")),
    DepartmentSpec("public_security", "公安局", "公安", None),
    DepartmentSpec("state_assets", "国有资产监督管理委员会", "国资", None),
    DepartmentSpec("education", "教育局", "教育", (CROWDED, "科研机构")),
    DepartmentSpec("health", "卫生健康委员会", "卫健", (CROWDED,)),
    DepartmentSpec("civil_affairs", "民政局", "民政", (CROWDED,)),
    DepartmentSpec("culture_tourism", "文化和旅游局", "文旅", (CROWDED,)),
    DepartmentSpec("economy_it", "经济和信息化委员会", "经信", ("工贸", "电力", "航空航天")),
)


def ensure_departments(session: Session) -> list[Department]:
    repo = DepartmentRepository(session)
    result = []
    for spec in DEPARTMENTS:
        department = repo.find(spec.code)
        if department is None:
            department = repo.add(
                Department(
                    code=spec.code,
                    name=spec.name,
                    short_name=spec.short_name,
                    all_sectors=spec.sectors is None,
                    sectors=list(spec.sectors or ()),
                )
            )
        result.append(department)
    return result


def add_node(
    session: Session, code: str, name: str, level: Level, parent: Jurisdiction | None
) -> Jurisdiction:
    repo = JurisdictionRepository(session)
    existing = repo.by_code(code)
    if existing is not None:
        if existing.name != name:
            raise Conflict(f"行政区划代码 {code} 已属于 {existing.name}")
        return existing
    path = (parent.path if parent else "") + code + "/"
    full_name = (parent.full_name if parent else "") + name
    return repo.add(
        Jurisdiction(
            code=code,
            name=name,
            level=level.value,
            parent_id=parent.id if parent else None,
            path=path,
            full_name=full_name,
        )
    )


def get_by_code(session: Session, code: str) -> Jurisdiction:
    node = JurisdictionRepository(session).by_code(code)
    if node is None:
        raise NotFound(f"未知的行政区划代码：{code}")
    return node
