"""Who is looking at a page: name, role, organisation, navigation, today."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from weldguard.auth.models import Role, User
from weldguard.auth.scope import Action, Scope
from weldguard.deps import CurrentScope, CurrentUser, DbSession, Now
from weldguard.enterprise.repository import EnterpriseRepository
from weldguard.errors import NotFound
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.jurisdiction.repository import DepartmentRepository, JurisdictionRepository
from weldguard.web.common import local_today, place_label
from weldguard.welder.repository import WelderRepository


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    href: str


@dataclass
class Viewer:
    user: User
    scope: Scope
    role: Role
    now: datetime
    today: date
    organisation: str = ""
    enterprise_id: int | None = None
    nav: list[NavItem] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.user.display_name or self.user.username

    @property
    def role_label(self) -> str:
        return self.role.label

    @property
    def is_area_user(self) -> bool:
        return self.scope.everything or self.role.is_area_role

    @property
    def is_enterprise_user(self) -> bool:
        return self.role.is_enterprise_role

    @property
    def is_welder(self) -> bool:
        return self.role == Role.WELDER

    @property
    def can_import(self) -> bool:
        return can_import(self.scope)

    @property
    def can_export(self) -> bool:
        return self.scope.may(Action.EXPORT)

    @property
    def sees_phones(self) -> bool:
        """Enterprise staff see their welders' phone numbers; everyone else a mask."""
        return self.role.is_enterprise_role or self.role == Role.WELDER


#: Who sees the oversight pages (alarms, scan and work records): everyone but
#: welders (their own pages) and installers.
OVERSIGHT_ROLES = frozenset(
    {
        Role.ADMIN,
        Role.REGULATOR,
        Role.INSPECTOR,
        Role.ENTERPRISE_ADMIN,
        Role.SAFETY_OFFICER,
        Role.UNIT_HEAD,
    }
)


def can_import(scope: Scope) -> bool:
    return scope.may(Action.MANAGE_REGISTER) or scope.may(Action.IMPORT_CERTIFICATES)


def _nav(role: Role, scope: Scope, enterprise_id: int | None) -> list[NavItem]:
    """The one place that decides which sections a role sees in the navigation."""
    if role == Role.WELDER:
        return [
            NavItem("home", "首页", "/"),
            NavItem("my_certificates", "我的证书", "/me/certificates"),
            NavItem("my_sessions", "我的作业", "/me/sessions"),
            NavItem("my_blocked", "我的被拒记录", "/me/blocked"),
            NavItem("permits", "动火作业票", "/permits"),
            NavItem("mobile_jobs", "流动作业报备", "/mobile-jobs"),
        ]
    hot_work = [
        NavItem("permits", "动火作业票", "/permits"),
        NavItem("mobile_jobs", "流动作业", "/mobile-jobs"),
        NavItem("small_works", "小型工程备案", "/small-works"),
    ]
    oversight = [
        NavItem("alarms", "设备报警", "/alarms"),
        NavItem("permit_alarms", "作业票报警", "/permit-alarms"),
        NavItem("scans", "扫码记录", "/scans"),
        NavItem("work_sessions", "作业记录", "/work-sessions"),
        NavItem("special_periods", "特殊时期", "/special-periods"),
    ]
    if role.is_enterprise_role:
        own = f"/enterprises/{enterprise_id}" if enterprise_id else "/enterprises"
        return [
            NavItem("home", "首页", "/"),
            NavItem("enterprises", "本企业", own),
            NavItem("machines", "焊机", "/machines"),
            NavItem("welders", "焊工", "/welders"),
            NavItem("certificates", "证书", "/certificates"),
            *hot_work,
            *oversight,
            *([NavItem("install", "绑定芯片", "/install")] if role != Role.UNIT_HEAD else []),
        ]
    items = [
        NavItem("home", "首页", "/"),
        NavItem("enterprises", "企业", "/enterprises"),
        NavItem("machines", "焊机", "/machines"),
        NavItem("welders", "焊工", "/welders"),
        NavItem("certificates", "证书", "/certificates"),
    ]
    if role == Role.INSTALLER:
        return [*items, NavItem("install", "绑定芯片", "/install")]
    items.extend(hot_work)
    items.extend(oversight)
    if role == Role.ADMIN:
        items.append(NavItem("install", "绑定芯片", "/install"))
        items.append(NavItem("calendar", "节假日安排", "/admin/calendar"))
    if can_import(scope):
        items.append(NavItem("imports", "导入", "/imports"))
    return items


def get_viewer(user: CurrentUser, scope: CurrentScope, session: DbSession, now: Now) -> Viewer:
    role = Role(user.role)
    organisation = ""
    enterprise_id: int | None = None
    if role.is_enterprise_role:
        enterprise = EnterpriseRepository(session).visible(scope, scope.enterprise_id or -1)
        if enterprise is not None:
            organisation = enterprise.name
            enterprise_id = enterprise.id
    elif role == Role.WELDER:
        welder = WelderRepository(session).visible(scope, scope.welder_id or -1)
        organisation = welder.name if welder else ""
    else:
        parts = []
        if user.jurisdiction_id is not None:
            node = JurisdictionRepository(session).by_id(user.jurisdiction_id)
            if node is not None:
                parts.append(place_label(node.full_name))
        if user.department_id is not None:
            department = DepartmentRepository(session).by_id(user.department_id)
            if department is not None:
                parts.append(department.name)
        organisation = " · ".join(parts) or ("全部辖区" if scope.everything else "")
    return Viewer(
        user=user,
        scope=scope,
        role=role,
        now=now,
        today=local_today(now),
        organisation=organisation,
        enterprise_id=enterprise_id,
        nav=_nav(role, scope, enterprise_id),
    )


PageViewer = Annotated[Viewer, Depends(get_viewer)]


# --- areas within reach -----------------------------------------------------
@dataclass(frozen=True)
class AreaOption:
    node: Jurisdiction
    depth: int

    @property
    def label(self) -> str:
        return "\u3000" * self.depth + self.node.name


def area_options(session: Session, scope: Scope) -> list[AreaOption]:
    """The jurisdiction nodes a user may pick as an area filter: their subtree."""
    repo = JurisdictionRepository(session)
    if scope.everything:
        nodes = repo.all()
    elif scope.area_path is not None and scope.enterprise_id is None:
        nodes = repo.subtree(scope.area_path)
    else:
        return []
    if not nodes:
        return []
    top = min(node.path.count("/") for node in nodes)
    return [AreaOption(node, node.path.count("/") - top) for node in nodes]


def resolve_area(session: Session, scope: Scope, code: str | None) -> Jurisdiction | None:
    """The node named by ``code``, which must lie inside the user's subtree;
    anything else is answered like a missing record."""
    if not code:
        return None
    node = JurisdictionRepository(session).by_code(code.strip())
    if node is None:
        raise NotFound("区域不存在")
    if scope.everything:
        return node
    if scope.enterprise_id is not None or scope.welder_id is not None:
        raise NotFound("区域不存在")
    if scope.area_path is None or not node.path.startswith(scope.area_path):
        raise NotFound("区域不存在")
    return node
