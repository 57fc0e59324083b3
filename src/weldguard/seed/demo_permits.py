"""The demo's hot-work side: permits (动火作业票) in a spread of states, mobile jobs
(流动作业报备) and small-works filings (小型工程备案) in 上海市长宁区.

Two enterprises where a permit is required get permits, applied for and driven
through their steps by their own accounts through ``PermitService`` (no row is
written by hand), with times relative to ``now``:

- the hazardous-chemicals enterprise of the demo fleet (危化, 华阳路街道): the work
  in progress (动火中) at every hot spot where its fleet machines stand, naming
  exactly the fleet machines and the welder the demo activity scans with there
  (``seed.demo_activity``), so those scans are allowed; one submitted for
  tomorrow, awaiting approval; one closed yesterday (all five steps);
- the construction site of 新泾镇 (施工工地): one approved for later today, not
  started; one suspended (责令暂停) by its safety officer; one draft; one closed
  yesterday.

The level is left to the service (rest days and nights raise it) and the approver
is the one the level calls for (二级: the unit head, 一级: the safety officer, 特级:
the enterprise admin). Photos are small real JPEGs stored in the data directory.

The running permits' fire watches are simulated too: the demo activity calls
:func:`keep_fire_watch` every round, so the work stays in progress (otherwise the
permit supervisor suspends it for 监护人员离岗 30 min after the last check-in).

Mobile jobs and filings are the marker enterprise's (an installer registered for
mobile work; account ``ent_admin``), with machines outside the fleet; the
华阳路街道 regulator (``huayang``) has checked one filing.

Keyed by day: when a permit of the demo's applicants was created today (China
time), nothing is created again. On another day a new day's set is added (the
past ones stay as history, like real permits) after the earlier runs' permits
that never started are cancelled (they book machines the new set needs)."""

from __future__ import annotations

import io
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from PIL import Image, ImageDraw
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from weldguard.auth.models import Role, User
from weldguard.auth.repository import UserRepository
from weldguard.auth.service import AuthService, NewUser
from weldguard.clock import SHANGHAI, local_today
from weldguard.config import Settings
from weldguard.domain.authorization import accepted_certificates, work_context
from weldguard.domain.permits import (
    ApproverRole,
    HotWorkMethod,
    PermitLevel,
    PermitStatus,
    assess_level,
    missed_check_in,
    next_check_in_due,
)
from weldguard.domain.permits.levels import required_role
from weldguard.enterprise.models import Enterprise, Site
from weldguard.errors import DomainError
from weldguard.filing.models import SmallWorkFiling
from weldguard.filing.service import CheckInput, FilingInput, FilingService
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.machine.models import Machine, MachineStatus
from weldguard.machine.repository import MachineRepository
from weldguard.permit import models as pm
from weldguard.permit.mobile_models import MobileJob
from weldguard.permit.mobile_service import MobileJobInput, MobileJobService
from weldguard.permit.service import PermitInput, PermitService, PersonInput, WelderEntry
from weldguard.photos import store_photo
from weldguard.seed.demo import DEMO_PASSWORD
from weldguard.seed.demo_fleet import DEMO_FLEET_AREA_CODE, DEMO_FLEET_SIZE, ensure_demo_welders
from weldguard.seed.places import CENTRES
from weldguard.unlock.facts import place_facts
from weldguard.welder.models import Certificate, Employment, Welder
from weldguard.welder.service import status_of

log = logging.getLogger(__name__)

SITE_STREET = "310105102"  # 新泾镇: the construction site of the "safety" account
CHECK_IN_MIN = 30  # the fire watch checks in at least every 30 min
CHECK_IN_EVERY = timedelta(minutes=25)


@dataclass(frozen=True)
class PermitAccount:
    username: str
    role: Role
    display_name: str
    duty: str  # printed with the accounts


CHEM_ACCOUNTS = (
    PermitAccount("chem_admin", Role.ENTERPRISE_ADMIN, "何建平", "企业负责人，审批特级动火"),
    PermitAccount("chem_safety", Role.SAFETY_OFFICER, "周立群", "安全部，申请作业票、审批一级动火"),
    PermitAccount("chem_unit", Role.UNIT_HEAD, "钱卫国", "储运车间主任，审批二级动火"),
)
SITE_ACCOUNTS = (
    PermitAccount("site_admin", Role.ENTERPRISE_ADMIN, "邵国栋", "项目经理，审批特级动火"),
    PermitAccount("site_unit", Role.UNIT_HEAD, "沈海平", "钢结构施工队队长，审批二级动火"),
)
# The construction site's safety officer is the demo's "safety" account (seed/demo.py).
SITE_SAFETY_USERNAME = "safety"
# The mobile-work contractor's account is the demo's "ent_admin" (the marker enterprise).
CONTRACTOR_USERNAME = "ent_admin"
APPLICANTS = ("chem_safety", SITE_SAFETY_USERNAME)


@dataclass
class DemoPermitResult:
    created: bool
    permits: dict[str, int] = field(default_factory=dict)  # status → count (this run)
    mobile_jobs: int = 0
    filings: int = 0


# --------------------------------------------------------------------------
# Enterprises and accounts
# --------------------------------------------------------------------------


def fleet_machines(session: Session) -> list[tuple[Machine, float | None, float | None]]:
    """The demo fleet's machines (as ``prepare_demo_fleet`` picks them) with the
    position their chip was fitted at."""
    area = JurisdictionRepository(session).by_code(DEMO_FLEET_AREA_CODE)
    if area is None:
        return []
    return [
        (machine, binding.latitude, binding.longitude)
        for _, binding, machine in MachineRepository(session).fitted_chips_in_area(
            area.path, DEMO_FLEET_SIZE
        )
    ]


def chem_enterprise(session: Session) -> Enterprise | None:
    """The first producing hazardous-chemicals enterprise of the demo fleet."""
    ids = sorted({m.enterprise_id for m, _, _ in fleet_machines(session)})
    for enterprise_id in ids:
        enterprise = session.get(Enterprise, enterprise_id)
        if (
            enterprise is not None
            and enterprise.sector == "危化"
            and enterprise.production_status == "在产"
        ):
            return enterprise
    return None


def site_enterprise(session: Session) -> Enterprise | None:
    """The construction site of 新泾镇 (the demo's "safety" account's)."""
    return session.scalars(
        select(Enterprise)
        .where(Enterprise.sector == "施工工地", Enterprise.area_path.like(f"%/{SITE_STREET}/"))
        .order_by(Enterprise.id)
        .limit(1)
    ).first()


def ensure_permit_accounts(session: Session, settings: Settings) -> list[tuple[str, str, str]]:
    """The enterprise accounts the demo permits need (made once); (username, role
    label, scope) for the printed list."""
    auth = AuthService(session, settings)
    users = UserRepository(session)
    result: list[tuple[str, str, str]] = []
    for enterprise, accounts in (
        (chem_enterprise(session), CHEM_ACCOUNTS),
        (site_enterprise(session), SITE_ACCOUNTS),
    ):
        if enterprise is None:
            continue
        for account in accounts:
            if users.by_username(account.username) is None:
                auth.create_user(
                    NewUser(
                        account.username,
                        DEMO_PASSWORD,
                        account.role.value,
                        display_name=account.display_name,
                        enterprise_credit_code=enterprise.credit_code,
                    )
                )
            result.append(
                (
                    account.username,
                    account.role.label,
                    f"{enterprise.name}（{account.display_name}，{account.duty}）",
                )
            )
    return result


def _user(session: Session, username: str) -> User:
    user = UserRepository(session).by_username(username)
    if user is None:
        raise LookupError(f"demo account {username} is missing")
    return user


def _valid_welders(session: Session, enterprise_id: int, today: date) -> list[Welder]:
    """Welders employed by the enterprise today holding a valid certificate, by id
    (the first is the one ``welder_with_valid_certificate`` picks)."""
    employed = select(Employment.welder_id).where(Employment.enterprise_id == enterprise_id)
    out = []
    for welder in session.scalars(
        select(Welder).where(Welder.id.in_(employed)).order_by(Welder.id)
    ):
        certificates = session.scalars(
            select(Certificate).where(Certificate.welder_id == welder.id)
        )
        if any(status_of(c, today).value == "valid" for c in certificates):
            out.append(welder)
    return out


def _fits(
    session: Session, enterprise: Enterprise, welder: Welder, machine: Machine, today: date
) -> bool:
    context = work_context(place_facts(enterprise))
    accepted = {(k.value, item) for k, item in accepted_certificates(context, machine.process)}
    return any(
        (c.kind, c.item) in accepted and status_of(c, today).value == "valid"
        for c in session.scalars(select(Certificate).where(Certificate.welder_id == welder.id))
    )


def _methods(machines: Sequence[Machine]) -> list[str]:
    wanted = {m.process for m in machines}
    return sorted(method.value for method in HotWorkMethod if method.processes & wanted)


# --------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------


def _photo(settings: Settings, rng: random.Random, tone: tuple[int, int, int]) -> str:
    """A small real JPEG (a site seen from afar: ground, a steel frame, a spark)."""
    image = Image.new("RGB", (320, 240), (150, 170, 190))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 150, 320, 240), fill=tone)
    for x in range(40, 300, 60):
        draw.rectangle((x, 70 + rng.randrange(20), x + 8, 170), fill=(90, 90, 95))
    draw.rectangle((30, 80, 300, 90), fill=(100, 100, 105))
    sx, sy = rng.randrange(80, 240), rng.randrange(100, 160)
    draw.ellipse((sx - 6, sy - 6, sx + 6, sy + 6), fill=(255, 220, 90))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=70)
    return store_photo(settings.data_dir, buffer.getvalue(), "jpg")


@dataclass
class _Photos:
    survey: list[str]
    clearance: list[str]
    start: list[str]
    check_in: list[str]
    end: list[str]
    disposal: list[str]


def _photos(settings: Settings, rng: random.Random) -> _Photos:
    return _Photos(
        survey=[_photo(settings, rng, (120, 110, 95))],
        clearance=[_photo(settings, rng, (140, 130, 110))],
        start=[_photo(settings, rng, (110, 105, 100))],
        check_in=[_photo(settings, rng, (125, 120, 115))],
        end=[_photo(settings, rng, (115, 110, 100))],
        disposal=[_photo(settings, rng, (135, 125, 105))],
    )


# --------------------------------------------------------------------------
# Driving a permit through its steps
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Crew:
    """The enterprise's people on a permit: the applicant, the approvers by
    level, the lead (a welder's account) and the welders named."""

    enterprise: Enterprise
    applicant: User
    admin: User
    safety: User
    unit: User
    lead: User


@dataclass(frozen=True)
class _Plan:
    target: PermitStatus
    base_level: PermitLevel
    place: str
    hazards: tuple[str, ...]
    hot_spot: tuple[float, float]
    site_id: int | None
    machines: tuple[Machine, ...]
    welders: tuple[Welder, ...]
    starts_at: datetime
    ends_at: datetime
    gas: bool = False
    gas_name: str = "可燃气体（以甲烷计）"
    lel_percent: float = 5.0
    suspend_note: str = ""


class _Driver:
    def __init__(
        self, session: Session, settings: Settings, photos: _Photos, now: datetime
    ) -> None:
        self.session = session
        self.auth = AuthService(session, settings)
        self.service = PermitService(session)
        self.photos = photos
        self.now = now

    def do(self, who: User, permit_id: int, kind: str, at: datetime, **data: Any) -> None:
        self.service.apply(self.auth.scope_for(who), who, permit_id, kind, data, at)

    def level_of(self, plan: _Plan) -> PermitLevel:
        calendar = self.service.calendar_between(plan.starts_at, plan.ends_at)
        return assess_level(plan.base_level, plan.starts_at, plan.ends_at, calendar).level

    def run(self, crew: _Crew, plan: _Plan) -> pm.Permit | None:
        """The permit driven to ``plan.target``; None (and nothing written) when the
        rules refuse a step (logged: the demo goes on without it)."""
        try:
            with self.session.begin_nested():
                return self._run(crew, plan)
        except DomainError as exc:
            log.warning("demo permit at %s not created: %s", plan.place, exc)
            return None

    def _run(self, crew: _Crew, plan: _Plan) -> pm.Permit:
        level = self.level_of(plan)
        role = required_role(level)
        approver = {
            ApproverRole.UNIT: crew.unit,
            ApproverRole.SAFETY_DEPARTMENT: crew.safety,
            ApproverRole.ENTERPRISE_LEADER: crew.admin,
        }[role]
        watch = crew.unit if approver is crew.safety else crew.safety
        start = plan.starts_at
        if plan.target is PermitStatus.DRAFT:
            created = self.now - timedelta(minutes=6)
        elif plan.target in (PermitStatus.SUBMITTED, PermitStatus.APPROVED):
            created = self.now - timedelta(minutes=50)
        else:
            created = start - timedelta(minutes=80)
        data = PermitInput(
            place_description=plan.place,
            hot_spot_lat=plan.hot_spot[0],
            hot_spot_lon=plan.hot_spot[1],
            methods=_methods(plan.machines),
            base_level=plan.base_level.value,
            level=None,
            starts_at=plan.starts_at,
            ends_at=plan.ends_at,
            welders=[WelderEntry(w.id) for w in plan.welders],
            machine_ids=[m.id for m in plan.machines],
            lead=PersonInput(crew.lead.display_name, crew.lead.id, crew.lead.welder_id),
            fire_watch=PersonInput(watch.display_name, watch.id),
            fire_watch_trained=True,
            hazards=list(plan.hazards),
            gas_analysis_required=plan.gas,
            check_in_interval_min=CHECK_IN_MIN,
            site_id=plan.site_id,
        )
        row = self.service.create(
            self.auth.scope_for(crew.applicant), crew.applicant, data, created
        )
        if plan.target is PermitStatus.DRAFT:
            return row
        pid, p = row.id, self.photos
        self.do(crew.applicant, pid, "submit", created + timedelta(minutes=5))
        if plan.target is PermitStatus.SUBMITTED:
            # The lead has confirmed the risks; the approver's survey is still to come.
            self.do(crew.lead, pid, "confirm_risks", created + timedelta(minutes=20))
            return row
        self.do(approver, pid, "site_survey", created + timedelta(minutes=15), photos=p.survey,
                note="已到现场勘查，动火点周边已设警戒")  # fmt: skip
        self.do(crew.lead, pid, "confirm_risks", created + timedelta(minutes=20))
        self.do(approver, pid, "approve", created + timedelta(minutes=25), note="同意动火")
        if plan.target is PermitStatus.APPROVED:
            return row
        prepared = start - timedelta(minutes=25)
        hot = self.service.load(self.auth.scope_for(crew.applicant), pid, prepared).permit
        for index, measure in enumerate(m for m in hot.content.measures if m.applicable):
            # Each measure confirmed by the person in charge of it.
            who = {"extinguishers": watch, "welder_grounding": crew.lead}.get(
                measure.code, crew.applicant
            )
            self.do(who, pid, "confirm_measure", prepared + timedelta(minutes=index),
                    code=measure.code)  # fmt: skip
        lat, lon = plan.hot_spot
        if hot.content.gas_required:
            self.do(
                crew.applicant,
                pid,
                "gas_sample",
                start - timedelta(minutes=15),
                taken_at=start - timedelta(minutes=18),
                gas=plan.gas_name,
                lel_percent=plan.lel_percent,
                reading_percent=0.05,
                analyst="蔡文静",
                position={"lat": lat, "lon": lon},
            )
        position = {"lat": lat, "lon": lon}
        self.do(watch, pid, "check_in", start - timedelta(minutes=10), photos=p.check_in,
                position=position)  # fmt: skip
        self.do(crew.applicant, pid, "clear", start - timedelta(minutes=5), photos=p.clearance,
                note="动火点周围可燃物已清理，孔洞已封堵")  # fmt: skip
        self.do(crew.lead, pid, "start", start, photos=p.start)
        if plan.target is PermitStatus.CLOSED:
            ended = min(plan.ends_at, start + timedelta(hours=2, minutes=30))
        elif plan.target is PermitStatus.SUSPENDED:
            ended = self.now - timedelta(minutes=30)
        else:
            ended = self.now
        last = start - timedelta(minutes=10)
        at = last + CHECK_IN_EVERY
        while at <= ended:
            self.do(watch, pid, "check_in", at, photos=p.check_in, position=position)
            last = at
            at += CHECK_IN_EVERY
        if plan.target is PermitStatus.IN_PROGRESS:
            return row
        if plan.target is PermitStatus.SUSPENDED:
            self.do(crew.safety, pid, "suspend", max(last, ended), note=plan.suspend_note)
            return row
        # Closed: the end, the post-work watch, the ember check, the closure.
        self.do(crew.lead, pid, "end", ended, photos=p.end)
        self.do(watch, pid, "check_in", ended + timedelta(minutes=15), photos=p.check_in,
                position=position)  # fmt: skip
        self.do(watch, pid, "dispose", ended + timedelta(minutes=35), no_embers=True,
                photos=p.disposal, note="余火已确认熄灭，现场已恢复")  # fmt: skip
        self.do(crew.lead, pid, "close", ended + timedelta(minutes=40))
        return row


# --------------------------------------------------------------------------
# The plans
# --------------------------------------------------------------------------


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI)


def _floor(value: datetime, minutes: int = 10) -> datetime:
    local = value.astimezone(SHANGHAI)
    return local.replace(minute=local.minute - local.minute % minutes, second=0, microsecond=0)


def _groups(
    machines: Sequence[tuple[Machine, float | None, float | None]],
) -> list[tuple[tuple[float, float], list[Machine]]]:
    """Machines by the place they stand (the same fitted position: one hot spot)."""
    by_place: dict[tuple[float, float], list[Machine]] = defaultdict(list)
    for machine, lat, lon in machines:
        if lat is not None and lon is not None:
            by_place[(round(lat, 6), round(lon, 6))].append(machine)
    return sorted(by_place.items(), key=lambda item: min(m.id for m in item[1]))


_CHEM_WORK: dict[str, tuple[str, tuple[str, ...]]] = {
    "装卸区": (
        "装卸区 2 号汽车装卸栈台钢格栅及护栏焊接修复",
        ("装卸栈台高处焊接火花飞溅", "槽车区域可燃气体泄漏"),
    ),
    "储罐区": (
        "储罐区防火堤外消防喷淋管支架焊接加固",
        ("邻近储罐可燃气体积聚", "焊接火花引燃防火堤内杂物"),
    ),
    "管廊": (
        "管廊 3 号管架检修平台钢梯焊接更换（相邻管线已停输吹扫）",
        ("管廊内管线残留介质", "高处作业火花飞溅"),
    ),
    "维修车间": ("维修车间钢制工装焊接", ("焊接烟尘", "火花引燃油污")),
}
_CHEM_DEFAULT = ("厂区消防泵房出水管支架焊接修复", ("泵房内油污", "焊接火花飞溅"))


def _chem_plans(
    session: Session, enterprise: Enterprise, welder: Welder, now: datetime
) -> list[_Plan]:
    today = local_today(now)
    fleet = [(m, a, b) for m, a, b in fleet_machines(session) if m.enterprise_id == enterprise.id]
    sites = {
        s.id: s for s in session.scalars(select(Site).where(Site.enterprise_id == enterprise.id))
    }
    road = enterprise.address.removeprefix("上海市长宁区")
    plans: list[_Plan] = []
    start = _floor(now - timedelta(minutes=90))
    groups = _groups(fleet)
    for (lat, lon), machines in groups:
        site_ids = {m.site_id for m in machines if m.site_id is not None}
        site = sites.get(min(site_ids)) if len(site_ids) == 1 else None
        work, hazards = _CHEM_WORK.get(site.name if site else "", _CHEM_DEFAULT)
        plans.append(
            _Plan(
                PermitStatus.IN_PROGRESS,
                PermitLevel.SECOND,
                f"{work}（{road}厂区）",
                hazards,
                (lat, lon),
                site.id if site else None,
                tuple(machines),
                (welder,),
                start,
                start + timedelta(hours=8),
                gas=True,
                gas_name="氢气",
                lel_percent=4.0,
            )
        )
    # Yesterday's finished work and tomorrow's application: on the enterprise's
    # other machines where it has some, so the fleet's stay free for the work in
    # progress (and a run's pending permits are withdrawn by the next day's run).
    fleet_ids = {m.id for m, _, _ in fleet}
    others = [
        m
        for m in session.scalars(
            select(Machine)
            .where(
                Machine.enterprise_id == enterprise.id,
                Machine.status != MachineStatus.RETIRED.value,
            )
            .order_by(Machine.id)
        )
        if m.id not in fleet_ids and _fits(session, enterprise, welder, m, today)
    ]

    def spot(machine: Machine) -> tuple[float, float]:
        site = sites.get(machine.site_id) if machine.site_id is not None else None
        if site is not None and site.latitude is not None and site.longitude is not None:
            return site.latitude, site.longitude
        return CENTRES.get(enterprise.area_path.rstrip("/").split("/")[-1], CENTRES["310105001"])

    if groups:
        # The other machines when the welder may use them, else the fleet's.
        machines = others[:2] or groups[0][1]
        lat, lon = spot(others[0]) if others else groups[0][0]
        site_id = machines[0].site_id
        yesterday = today - timedelta(days=1)
        plans.append(
            _Plan(
                PermitStatus.CLOSED,
                PermitLevel.SECOND,
                f"氢气充装间外墙钢结构雨棚立柱焊接加固（{road}厂区）",
                ("充装区氢气泄漏", "焊接火花飞溅"),
                (lat, lon),
                site_id,
                tuple(machines),
                (welder,),
                _local(yesterday, 9),
                _local(yesterday, 12),
                gas=True,
                gas_name="氢气",
                lel_percent=4.0,
            )
        )
        machines = others[-1:] or groups[min(1, len(groups) - 1)][1]
        lat, lon = spot(others[-1]) if others else groups[min(1, len(groups) - 1)][0]
        tomorrow = today + timedelta(days=1)
        plans.append(
            _Plan(
                PermitStatus.SUBMITTED,
                PermitLevel.SECOND,
                f"钢瓶检验站输送辊道支架焊接更换（{road}厂区）",
                ("钢瓶残余气体", "焊接火花飞溅", "交叉作业"),
                (lat, lon),
                machines[0].site_id,
                tuple(machines),
                (welder,),
                _local(tomorrow, 9),
                _local(tomorrow, 16),
                gas=True,
                gas_name="氢气",
                lel_percent=4.0,
            )
        )
    return plans


def _site_plans(
    session: Session, enterprise: Enterprise, welders: Sequence[Welder], now: datetime
) -> list[_Plan]:
    today = local_today(now)
    lead = welders[0]
    machines = [
        m
        for m in session.scalars(
            select(Machine)
            .where(
                Machine.enterprise_id == enterprise.id,
                Machine.status != MachineStatus.RETIRED.value,
            )
            .order_by(Machine.id)
        )
        if _fits(session, enterprise, lead, m, today)
    ]
    sites = list(
        session.scalars(select(Site).where(Site.enterprise_id == enterprise.id).order_by(Site.id))
    )
    if not machines or not sites:
        return []
    machines = machines[:4]
    mates = [
        w for w in welders[1:] if all(_fits(session, enterprise, w, m, today) for m in machines)
    ]
    crew = (lead, *mates[:1])

    def spot(index: int) -> tuple[tuple[float, float], int, str]:
        site = sites[index % len(sites)]
        lat = site.latitude if site.latitude is not None else CENTRES[SITE_STREET][0]
        lon = site.longitude if site.longitude is not None else CENTRES[SITE_STREET][1]
        return (lat, lon), site.id, site.name

    def pick(index: int) -> tuple[Machine, ...]:
        # One machine per plan: no two plans (of any day's run) book the same one.
        return (machines[index % len(machines)],)

    road = enterprise.address.removeprefix("上海市长宁区")
    yesterday, later_day = today - timedelta(days=1), today + timedelta(days=2)
    plans = []
    (lat, lon), site_id, name = spot(0)
    start = _floor(now - timedelta(hours=2))
    plans.append(
        _Plan(
            PermitStatus.SUSPENDED,
            PermitLevel.SECOND,
            f"{name} 地下室顶板预埋钢板焊接（{road}）",
            ("焊接火花引燃保温材料", "地下室通风不良"),
            (lat, lon),
            site_id,
            pick(0),
            crew,
            start,
            start + timedelta(hours=8),
            suspend_note="安全巡查发现动火点下方堆放的挤塑保温板未清理，责令暂停，清理后报审",
        )
    )
    (lat, lon), site_id, name = spot(1)
    later = _floor(now + timedelta(hours=2))
    plans.append(
        _Plan(
            PermitStatus.APPROVED,
            PermitLevel.SECOND,
            f"{name} 钢结构连廊次梁焊接（{road}）",
            ("高处焊接火花飞溅", "交叉作业"),
            (lat, lon),
            site_id,
            pick(1),
            crew,
            later,
            later + timedelta(hours=4),
        )
    )
    (lat, lon), site_id, name = spot(2)
    plans.append(
        _Plan(
            PermitStatus.DRAFT,
            PermitLevel.SECOND,
            f"{name} 塔吊基础预埋件与钢格构柱焊接（{road}）",
            ("焊接火花飞溅",),
            (lat, lon),
            site_id,
            pick(2),
            (lead,),
            _local(later_day, 8, 30),
            _local(later_day, 16, 30),
        )
    )
    (lat, lon), site_id, name = spot(0)
    plans.append(
        _Plan(
            PermitStatus.CLOSED,
            PermitLevel.SECOND,
            f"{name} 临时楼梯钢踏步焊接（{road}）",
            ("高处焊接火花飞溅", "楼层内木模板"),
            (lat, lon),
            site_id,
            pick(3),
            crew,
            _local(yesterday, 13, 30),
            _local(yesterday, 17),
        )
    )
    return plans


# --------------------------------------------------------------------------
# Mobile jobs and small-works filings
# --------------------------------------------------------------------------


def _mobile_jobs(session: Session, settings: Settings, now: datetime) -> int:
    """Jobs of the marker enterprise (a mobile-work installer) at customers in 长宁区:
    yesterday's, one under way and one tomorrow, with machines not in the fleet
    (the scans of the fleet stay as they are)."""
    contractor_user = UserRepository(session).by_username(CONTRACTOR_USERNAME)
    if contractor_user is None or contractor_user.enterprise_id is None:
        return 0
    contractor = session.get(Enterprise, contractor_user.enterprise_id)
    if contractor is None or not contractor.mobile_work:
        return 0
    today = local_today(now)
    fleet_ids = {m.id for m, _, _ in fleet_machines(session)}
    machines = [
        m
        for m in session.scalars(
            select(Machine)
            .where(
                Machine.enterprise_id == contractor.id,
                Machine.status != MachineStatus.RETIRED.value,
            )
            .order_by(Machine.id)
        )
        if m.id not in fleet_ids
    ]
    welders = _valid_welders(session, contractor.id, today)[1:]  # not the demo welder
    if not machines or not welders:
        return 0
    client = session.scalars(
        select(Enterprise)
        .where(Enterprise.area_path.like("%/310105009/"), Enterprise.sector != "危化")
        .order_by(Enterprise.id)
        .limit(1)
    ).first()
    scope = AuthService(session, settings).scope_for(contractor_user)
    service = MobileJobService(session)
    yesterday, tomorrow = today - timedelta(days=1), today + timedelta(days=1)
    current = _floor(now - timedelta(minutes=60))
    jobs = [
        (
            _local(yesterday, 7, 30),
            MobileJobInput(
                starts_at=_local(yesterday, 9),
                ends_at=_local(yesterday, 12),
                client_credit_code=client.credit_code if client else "",
                client_name="" if client else "上海虹桥花园物业管理有限公司",
                client_contact="黄国庆",
                client_phone="13816624508",
                address=(client.address if client else "上海市长宁区虹桥路1665号"),
                area="310105009",
                latitude=CENTRES["310105009"][0] + 0.0012,
                longitude=CENTRES["310105009"][1] - 0.0009,
                fire_watch_name="陆海燕",
                fire_watch_phone="13761852239",
                description="地下车库排风机钢支架焊接更换",
                welder_ids=(welders[0].id,),
                machine_ids=(machines[0].id,),
            ),
        ),
        (
            current - timedelta(minutes=5),
            MobileJobInput(
                starts_at=current,
                ends_at=current + timedelta(hours=6),
                client_name="上海仙霞新村第三小区业主委员会",
                client_contact="顾建华",
                client_phone="13918240765",
                address="上海市长宁区仙霞路 600 弄 12 号楼",
                area="310105008",
                latitude=CENTRES["310105008"][0] + 0.0008,
                longitude=CENTRES["310105008"][1] + 0.0011,
                fire_watch_name="汤永明",
                fire_watch_phone="13585920413",
                description="住宅楼单元门雨棚钢架及防盗窗焊接维修",
                welder_ids=(welders[min(1, len(welders) - 1)].id,),
                machine_ids=(machines[min(1, len(machines) - 1)].id,),
            ),
        ),
        (
            now - timedelta(minutes=3),
            MobileJobInput(
                starts_at=_local(tomorrow, 8, 30),
                ends_at=_local(tomorrow, 11, 30),
                client_name="上海新华路社区卫生服务中心",
                client_contact="俞晓红",
                client_phone="13601751390",
                address="上海市长宁区番禺路 1250 号 后勤楼屋面",
                area="310105004",
                latitude=CENTRES["310105004"][0] - 0.0007,
                longitude=CENTRES["310105004"][1] + 0.0005,
                fire_watch_name="陆海燕",
                fire_watch_phone="13761852239",
                description="屋面空调外机钢支架焊接加固（非开放区域，已与院方书面约定安全责任）",
                welder_ids=(welders[0].id,),
                machine_ids=(machines[0].id,),
            ),
        ),
    ]
    made = 0
    for at, data in jobs:
        try:
            with session.begin_nested():
                service.declare(scope, data, contractor_user.id, at)
                made += 1
        except DomainError as exc:
            log.warning("demo mobile job not declared: %s", exc)
    return made


def _filings(session: Session, settings: Settings, now: datetime) -> int:
    """Small works filed by the marker enterprise with three streets; 华阳路街道
    has checked its one."""
    filer = UserRepository(session).by_username(CONTRACTOR_USERNAME)
    if filer is None or filer.enterprise_id is None:
        return 0
    auth = AuthService(session, settings)
    service = FilingService(session)
    today = local_today(now)
    filed_before = now - timedelta(days=3)
    items: list[tuple[datetime, FilingInput, str | None]] = [
        (
            filed_before,
            FilingInput(
                owner_kind="person",
                owner_name="李秀英",
                owner_phone="13816359021",
                address="上海市长宁区愚园路 1088 弄 5 号底层商铺",
                street="310105001",
                description="底层商铺店招钢骨架焊接更换",
                expected_start=today - timedelta(days=2),
                expected_end=today + timedelta(days=1),
                contractor_name="上海长宁华阳机电设备安装有限公司",
                hot_work=True,
                hot_work_method="电焊",
                contact_name="方新民",
                contact_phone="13764251180",
            ),
            "huayang",
        ),
        (
            now - timedelta(minutes=40),
            FilingInput(
                owner_kind="person",
                owner_name="王建军",
                owner_phone="13917703526",
                address="上海市长宁区北翟路 1500 弄 28 号",
                street="310105102",
                description="独立住宅阳台钢栏杆及雨棚焊接安装",
                expected_start=today + timedelta(days=1),
                expected_end=today + timedelta(days=3),
                contractor_name="上海长宁华阳机电设备安装有限公司",
                hot_work=True,
                hot_work_method="电焊",
                contact_name="方新民",
                contact_phone="13764251180",
            ),
            None,
        ),
        (
            now - timedelta(minutes=20),
            FilingInput(
                owner_kind="person",
                owner_name="张桂兰",
                owner_phone="13585627714",
                address="上海市长宁区江苏路 480 弄 社区活动室",
                street="310105002",
                description="活动室铝合金门窗更换（不涉及动火）",
                expected_start=today + timedelta(days=2),
                expected_end=today + timedelta(days=6),
                contractor_name="上海长宁华阳机电设备安装有限公司",
                hot_work=False,
                contact_name="方新民",
                contact_phone="13764251180",
            ),
            None,
        ),
    ]
    made = 0
    for at, data, checker in items:
        try:
            with session.begin_nested():
                filing = service.file(auth.scope_for(filer), data, filer.id, at)
                regulator = UserRepository(session).by_username(checker) if checker else None
                if regulator is not None:
                    service.check(
                        auth.scope_for(regulator),
                        filing.id,
                        CheckInput(
                            result="合格",
                            notes="现场核查：施工人员持证，灭火器配备到位，动火点下方已清理",
                            checked_at=now - timedelta(days=1, hours=2),
                        ),
                        regulator.id,
                        regulator.display_name or regulator.username,
                        now,
                    )
                made += 1
        except DomainError as exc:
            log.warning("demo small-works filing not filed: %s", exc)
    return made


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def _applicant_ids(session: Session) -> list[int]:
    return list(session.scalars(select(User.id).where(User.username.in_(APPLICANTS))))


def demo_permits_of_today(session: Session, now: datetime) -> bool:
    """Whether today's demo permits exist (the key of :func:`seed_demo_permits`)."""
    midnight = datetime.combine(local_today(now), time(0), SHANGHAI)
    found = session.scalar(
        select(func.count(pm.Permit.id)).where(
            pm.Permit.created_by_user_id.in_(_applicant_ids(session)),
            pm.Permit.created_at >= midnight,
        )
    )
    return bool(found)


def _withdraw_pending(session: Session, settings: Settings, now: datetime) -> int:
    """Cancels the earlier runs' demo permits that never started (their machines
    are booked for the days the new run plans); returns how many."""
    midnight = datetime.combine(local_today(now), time(0), SHANGHAI)
    rows = session.scalars(
        select(pm.Permit).where(
            pm.Permit.created_by_user_id.in_(_applicant_ids(session)),
            pm.Permit.created_at < midnight,
            pm.Permit.status.in_(
                [
                    PermitStatus.DRAFT.value,
                    PermitStatus.SUBMITTED.value,
                    PermitStatus.APPROVED.value,
                    PermitStatus.CLEARED.value,
                ]
            ),
        )
    ).all()
    auth = AuthService(session, settings)
    service = PermitService(session)
    done = 0
    for row in rows:
        applicant = session.get(User, row.created_by_user_id)
        if applicant is None:
            continue
        try:
            with session.begin_nested():
                service.apply(
                    auth.scope_for(applicant),
                    applicant,
                    row.id,
                    "cancel",
                    {"note": "作业计划调整，本票作废"},
                    now,
                )
                done += 1
        except DomainError as exc:
            log.warning("demo permit %s not withdrawn: %s", row.number, exc)
    return done


def seed_demo_permits(session: Session, settings: Settings, now: datetime) -> DemoPermitResult:
    """Creates today's demo permits, mobile jobs and filings unless they exist;
    needs the register and the demo accounts (``seed_demo`` calls it last).
    Flushes, never commits."""
    if demo_permits_of_today(session, now):
        return DemoPermitResult(created=False)
    _withdraw_pending(session, settings, now)
    chem, site = chem_enterprise(session), site_enterprise(session)
    today = local_today(now)
    rng = random.Random(2026)
    photos = _photos(settings, rng)
    driver = _Driver(session, settings, photos, now)
    result = DemoPermitResult(created=True)
    statuses: Counter[str] = Counter()
    users = UserRepository(session)
    if chem is not None:
        # The welder the demo activity scans with there (same account, made once).
        lead = ensure_demo_welders(session, settings, [chem.id], today).get(chem.id)
        welder = session.get(Welder, lead.welder_id) if lead and lead.welder_id else None
        if lead is not None and welder is not None:
            crew = _Crew(
                chem,
                _user(session, "chem_safety"),
                _user(session, "chem_admin"),
                _user(session, "chem_safety"),
                _user(session, "chem_unit"),
                lead,
            )
            for plan in _chem_plans(session, chem, welder, now):
                row = driver.run(crew, plan)
                if row is not None:
                    statuses[row.status] += 1
    safety = users.by_username(SITE_SAFETY_USERNAME)
    if site is not None and safety is not None:
        welders = _valid_welders(session, site.id, today)
        lead = ensure_demo_welders(session, settings, [site.id], today).get(site.id)
        if welders and lead is not None:
            crew = _Crew(
                site,
                safety,
                _user(session, "site_admin"),
                safety,
                _user(session, "site_unit"),
                lead,
            )
            for plan in _site_plans(session, site, welders, now):
                row = driver.run(crew, plan)
                if row is not None:
                    statuses[row.status] += 1
    result.permits = dict(statuses)
    result.mobile_jobs = _mobile_jobs(session, settings, now)
    result.filings = _filings(session, settings, now)
    session.flush()
    return result


@dataclass(frozen=True)
class HotWorkCounts:
    permits_by_status: dict[str, int]
    mobile_jobs: int
    filings: int
    filings_checked: int

    def line(self) -> str:
        total = sum(self.permits_by_status.values())
        parts = "，".join(
            f"{PermitStatus(k).label} {v}" for k, v in sorted(self.permits_by_status.items())
        )
        return (
            f"作业票 {total} 张"
            + (f"（{parts}）" if parts else "")
            + f"；流动作业报备 {self.mobile_jobs} 项；小型工程备案 {self.filings} 项"
            + f"（已核查 {self.filings_checked} 项）"
        )


def hot_work_counts(session: Session) -> HotWorkCounts:
    """What the database holds of the hot-work side (the demo and anything else)."""
    rows = session.execute(
        select(pm.Permit.status, func.count(pm.Permit.id)).group_by(pm.Permit.status)
    )
    return HotWorkCounts(
        permits_by_status={status: int(n) for status, n in rows},
        mobile_jobs=int(session.scalar(select(func.count(MobileJob.id))) or 0),
        filings=int(session.scalar(select(func.count(SmallWorkFiling.id))) or 0),
        filings_checked=int(
            session.scalar(
                select(func.count(SmallWorkFiling.id)).where(SmallWorkFiling.status == "checked")
            )
            or 0
        ),
    )


# --------------------------------------------------------------------------
# The fire watch of the running demo permits (called by the demo activity)
# --------------------------------------------------------------------------


def keep_fire_watch(session: Session, settings: Settings, now: datetime) -> int:
    """The demo permits' fire watches check in while their work runs (a real watch
    is on site; the demo's is simulated), a few minutes before each check-in is
    due. Only permits of the demo's applicants; returns the number of check-ins."""
    applicants = _applicant_ids(session)
    if not applicants:
        return 0
    rows = session.scalars(
        select(pm.Permit).where(
            pm.Permit.status == PermitStatus.IN_PROGRESS.value,
            pm.Permit.created_by_user_id.in_(applicants),
            pm.Permit.ends_at > now,
        )
    ).all()
    auth = AuthService(session, settings)
    service = PermitService(session)
    done = 0
    for row in rows:
        watch_id = row.fire_watch.get("user_id")
        watch = session.get(User, watch_id) if isinstance(watch_id, int) else None
        if watch is None:
            continue
        scope = auth.scope_for(watch)
        permit = service.load(scope, row.id, now).permit
        person = permit.content.fire_watch.person
        interval = permit.content.check_in_interval
        due = next_check_in_due(permit.check_ins, person, interval, now)
        if due is None or missed_check_in(permit.check_ins, person, interval, now):
            continue  # absent already: the supervisor handles it, as for anybody
        if due - now > timedelta(minutes=5):
            continue
        last = permit.check_ins[-1] if permit.check_ins else None
        photos = list(last.photos) if last is not None else []
        try:
            with session.begin_nested():
                service.apply(
                    scope,
                    watch,
                    row.id,
                    "check_in",
                    {
                        "photos": photos,
                        "position": {"lat": row.hot_spot_lat, "lon": row.hot_spot_lon},
                    },
                    now,
                )
                done += 1
        except DomainError as exc:
            log.info("demo fire watch check-in refused: %s", exc)
    return done
