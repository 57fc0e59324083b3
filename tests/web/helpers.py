"""Building more of the world for page tests, and reading numbers off pages."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy.orm import Session

from tests.factories import (
    ADMIN_SCOPE,
    NOW,
    TODAY,
    World,
    add_enterprise,
    enterprise_row,
    id_number,
)
from weldguard.machine.service import MachineInput, MachineService
from weldguard.welder.identity import IdentityVault
from weldguard.welder.service import CertificateInput, WelderInput, WelderService

STAT = re.compile(r'data-stat="([a-z_0-9]+)">([0-9.]+)%?<')


def stats_of(html: str) -> dict[str, float]:
    return {name: float(value) for name, value in STAT.findall(html)}


def extend_world(db: Session, world: World, vault: IdentityVault) -> None:
    """On top of the factory world (A, B, C in Changning, Z in Zhengzhou, one
    machine and one certified welder each, A's machine chipped):
    - A gets a second, unchipped machine and a welder without a certificate (5);
    - C gets a retired machine (left out of the counts);
    - welder B gets a second certificate expiring in 10 days;
    - welder C gets an expired certificate (still certified by the valid one)."""
    machines = MachineService(db)
    extra = machines.register(
        ADMIN_SCOPE,
        MachineInput("SN-A-002", "佳士", "NB-350", "mig_mag", 350, world.enterprises["A"].id),
        NOW,
    )
    world.machines["A2"] = extra
    retired = machines.register(
        ADMIN_SCOPE,
        MachineInput("SN-C-OLD", "瑞凌", "ZX7-250", "manual_arc", 250, world.enterprises["C"].id),
        NOW,
    )
    machines.retire(ADMIN_SCOPE, retired.id, NOW)
    world.machines["C-retired"] = retired

    welders = WelderService(db, vault)
    uncertified = welders.register(
        WelderInput(name="无证焊工", id_number=id_number(5), phone="13900000005"), TODAY
    )
    welders.employ(ADMIN_SCOPE, uncertified, world.enterprises["A"].id, TODAY)
    world.welders["A-uncertified"] = uncertified

    welders.upsert_certificate(
        world.welders["B"],
        CertificateInput(
            kind="construction",
            number="JZ2024000123",
            item="建筑焊工",
            issue_date=TODAY - timedelta(days=720),
            expiry_date=TODAY + timedelta(days=10),
            issuing_authority="上海市住房和城乡建设管理委员会",
            source="住建部门",
        ),
    )
    welders.upsert_certificate(
        world.welders["C"],
        CertificateInput(
            kind="special_equipment",
            number="TS2019000456",
            item="金属焊接操作",
            issue_date=TODAY - timedelta(days=2000),
            expiry_date=TODAY - timedelta(days=30),
            issuing_authority="上海市市场监督管理局",
            source="市场监管部门",
        ),
    )
    db.commit()


def add_many_enterprises(db: Session, count: int, street: str = "华阳路街道") -> None:
    for n in range(count):
        add_enterprise(
            db,
            enterprise_row(100 + n, f"批量测试企业{n:02d}号", "长宁区", street, mobile_work="是"),
        )
    db.commit()
