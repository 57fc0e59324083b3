"""A small, fixed world for tests: reference places, a register spread over both
demo regions, and one persona per role and level. All passwords: password123."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.auth.service import AuthService, NewUser
from weldguard.config import Settings
from weldguard.domain.ids import make_credit_code, make_id_number
from weldguard.enterprise.fields import PlaceResolver, validate_enterprise
from weldguard.enterprise.models import Enterprise
from weldguard.enterprise.service import EnterpriseService
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.machine.models import Machine
from weldguard.machine.service import MachineInput, MachineService
from weldguard.seed.reference import load_reference
from weldguard.welder.identity import IdentityVault
from weldguard.welder.models import Welder
from weldguard.welder.service import CertificateInput, WelderInput, WelderService

PASSWORD = "password123"
# The platform secret the test settings use (tests/conftest.py).
TEST_SECRET_FOR_DEVICES = "test-secret-key-not-for-production"
TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
ADMIN_SCOPE = Scope(role=Role.ADMIN, user_id=0, everything=True)


def credit_code(n: int) -> str:
    return make_credit_code(f"91310105MA1FL{n:04d}")


def welding_certificate(id_number: str) -> CertificateInput:
    """A 特种作业 certificate for 熔化焊接与热切割作业 with no expiry date (valid)."""
    return CertificateInput(
        kind="special_operation",
        number="T" + id_number,
        item="熔化焊接与热切割作业",
        issue_date=TODAY - timedelta(days=400),
        expiry_date=None,
        issuing_authority="上海市应急管理局",
        source="应急管理部门",
    )


def id_number(n: int, birth: str = "19850312") -> str:
    return make_id_number(f"310105{birth}{n:03d}")


@dataclass
class Personas:
    admin: str = "admin"
    reg_changning: str = "reg_changning"  # 长宁区 应急: the whole district
    reg_changning_housing: str = "reg_changning_zj"  # 长宁区 住建: construction sites only
    reg_huayang: str = "reg_huayang"  # 华阳路街道 应急
    reg_zhengzhou: str = "reg_zhengzhou"  # 郑州市 应急
    inspector_xinjing: str = "insp_xinjing"  # 新泾镇 inspector
    ent_admin_a: str = "ent_a"  # enterprise A (华阳路)
    safety_b: str = "safety_b"  # enterprise B (新泾镇)
    welder_one: str = "welder_one"
    installer: str = "installer_cn"


@dataclass
class World:
    places: dict[str, Jurisdiction]
    enterprises: dict[str, Enterprise] = field(default_factory=dict)
    machines: dict[str, Machine] = field(default_factory=dict)
    welders: dict[str, Welder] = field(default_factory=dict)
    personas: Personas = field(default_factory=Personas)


def enterprise_row(
    n: int,
    name: str,
    district: str,
    street: str,
    sector: str = "工贸",
    city: str = "上海市",
    **extra: object,
) -> dict[str, object]:
    row: dict[str, object] = {
        "name": name,
        "credit_code": credit_code(n),
        "sector": sector,
        "city": city,
        "district": district,
        "street": street,
        "address": f"{district}{street}测试路{n}号",
        "legal_rep_name": "张三",
        "legal_rep_phone": "13800138000",
        "contact_phone": "021-62512345",
        "production_status": "在产",
        "involves_welding": "是",
        "mobile_work": "否",
        "declared_machine_count": 3,
        "declared_welder_count": 2,
    }
    row.update(extra)
    return row


def add_enterprise(session: Session, row: dict[str, object]) -> Enterprise:
    data, errors = validate_enterprise(row, PlaceResolver(session))
    assert data is not None, errors
    enterprise, _ = EnterpriseService(session).upsert(ADMIN_SCOPE, data)
    return enterprise


def build_world(session: Session, settings: Settings, vault: IdentityVault) -> World:
    places = load_reference(session)
    world = World(places=places)
    specs = {
        "A": enterprise_row(1, "长宁华阳机电维修有限公司", "长宁区", "华阳路街道"),
        "B": enterprise_row(2, "新泾钢结构工程有限公司", "长宁区", "新泾镇", sector="施工工地"),
        "C": enterprise_row(
            3,
            "虹桥商场管理有限公司",
            "长宁区",
            "虹桥街道",
            sector="人员密集场所",
            crowded_subtype="商场（市场）",
        ),
        "Z": enterprise_row(4, "郑州中原重工机械有限公司", "中原区", "", city="郑州市"),
    }
    for key, row in specs.items():
        world.enterprises[key] = add_enterprise(session, row)

    machines = MachineService(session)
    for key, enterprise in world.enterprises.items():
        machine = machines.register(
            ADMIN_SCOPE,
            MachineInput(
                serial_number=f"SN-{key}-001",
                make="瑞凌",
                model="ZX7-400",
                process="manual_arc",
                rated_current_a=400,
                enterprise_id=enterprise.id,
            ),
            NOW,
        )
        world.machines[key] = machine
    machines.fit_chip(
        world.machines["A"], "WGC000001", "860000000000001", "89860000000000000001", "安装员", NOW
    )

    welders = WelderService(session, vault)
    for index, key in enumerate(world.enterprises, start=1):
        number = id_number(index)
        welder = welders.register(
            WelderInput(name=f"焊工{key}", id_number=number, phone=f"1390000000{index}"), TODAY
        )
        welders.upsert_certificate(welder, welding_certificate(number), id_number=number)
        welders.employ(ADMIN_SCOPE, welder, world.enterprises[key].id, TODAY - timedelta(days=300))
        world.welders[key] = welder

    auth = AuthService(session, settings)
    p = world.personas
    ent = world.enterprises
    for new in (
        NewUser(p.admin, PASSWORD, "admin"),
        NewUser(
            p.reg_changning, PASSWORD, "regulator", jurisdiction_code="310105", department="应急"
        ),
        NewUser(
            p.reg_changning_housing,
            PASSWORD,
            "regulator",
            jurisdiction_code="310105",
            department="住建",
        ),
        NewUser(
            p.reg_huayang, PASSWORD, "regulator", jurisdiction_code="310105001", department="应急"
        ),
        NewUser(
            p.reg_zhengzhou, PASSWORD, "regulator", jurisdiction_code="410100", department="应急"
        ),
        NewUser(p.inspector_xinjing, PASSWORD, "inspector", jurisdiction_code="310105102"),
        NewUser(
            p.ent_admin_a, PASSWORD, "enterprise_admin", enterprise_credit_code=ent["A"].credit_code
        ),
        NewUser(
            p.safety_b, PASSWORD, "safety_officer", enterprise_credit_code=ent["B"].credit_code
        ),
        NewUser(p.welder_one, PASSWORD, "welder", welder_id=world.welders["A"].id),
        NewUser(p.installer, PASSWORD, "installer", jurisdiction_code="310105"),
    ):
        auth.create_user(new)
    session.flush()
    return world
