"""The demo data: enough of everything, every certificate status, valid
identifiers, idempotent, and demo accounts that sign in."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from weldguard.auth.models import Role, User
from weldguard.auth.service import AuthService
from weldguard.config import Settings
from weldguard.domain.certificates import (
    CertificateFacts,
    CertificateKind,
    CertificateStatus,
    certificate_status,
)
from weldguard.domain.ids import birth_date_of, is_valid_credit_code, is_valid_phone
from weldguard.enterprise.models import Enterprise, Site
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.jurisdiction.service import CROWDED, CROWDED_SUBTYPES, SECTORS
from weldguard.machine.models import ChipBinding, Machine, MachineStatus
from weldguard.seed.demo import DEMO_PASSWORD, PLACES, _Generator, _plan_enterprises, seed_demo
from weldguard.seed.places import CENTRES
from weldguard.welder.identity import IdentityVault
from weldguard.welder.models import Certificate, Employment, Welder
from weldguard.welder.service import status_of

TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)

ACCOUNTS = {
    "admin": Role.ADMIN,
    "changning": Role.REGULATOR,
    "changning_zj": Role.REGULATOR,
    "huayang": Role.REGULATOR,
    "xinjing": Role.REGULATOR,
    "shanghai": Role.REGULATOR,
    "zhengzhou": Role.REGULATOR,
    "jinshui": Role.REGULATOR,
    "inspector_xj": Role.INSPECTOR,
    "installer": Role.INSTALLER,
    "ent_admin": Role.ENTERPRISE_ADMIN,
    "safety": Role.SAFETY_OFFICER,
    "welder": Role.WELDER,
    # The hot-work side's enterprise accounts (seed/demo_permits.py).
    "chem_admin": Role.ENTERPRISE_ADMIN,
    "chem_safety": Role.SAFETY_OFFICER,
    "chem_unit": Role.UNIT_HEAD,
    "site_admin": Role.ENTERPRISE_ADMIN,
    "site_unit": Role.UNIT_HEAD,
}


def _count(db: Session, model: type[Any]) -> int:
    return int(db.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize("kind", list(CertificateKind))
def test_certificate_dates_hit_every_target(kind: CertificateKind) -> None:
    gen = _Generator(random.Random(7), TODAY)
    targets: list[CertificateStatus] = [
        s for s in CertificateStatus if s is not CertificateStatus.REVIEW_OVERDUE
    ]
    if kind is CertificateKind.SPECIAL_OPERATION:
        targets.append(CertificateStatus.REVIEW_OVERDUE)
    for target in targets:
        for _ in range(30):
            issue, review = gen.certificate_dates(kind, target)
            facts = CertificateFacts(
                kind=kind,
                issue_date=issue,
                last_review_date=review,
                revoked=target is CertificateStatus.REVOKED,
                verified=target is not CertificateStatus.PENDING_VERIFICATION,
            )
            assert certificate_status(facts, TODAY) is target
            if target is CertificateStatus.PENDING_VERIFICATION:
                assert (TODAY - issue).days <= 3


def test_plan_is_deterministic() -> None:
    def plan(seed: int) -> list[tuple[str, str, str, int]]:
        plans = _plan_enterprises(_Generator(random.Random(seed), TODAY))
        return [(p.name, p.credit_code, p.address, p.machines) for p in plans]

    assert plan(2026) == plan(2026)
    assert plan(2026) != plan(2027)


def test_demo_data(db: Session, settings: Settings, vault: IdentityVault) -> None:
    summary = seed_demo(db, settings, vault, TODAY, NOW)
    db.commit()
    assert summary.created

    # --- counts ------------------------------------------------------------
    assert summary.enterprises == _count(db, Enterprise) >= 60
    assert summary.machines == _count(db, Machine) >= 550
    assert summary.welders == _count(db, Welder) >= 850
    assert summary.certificates == _count(db, Certificate)
    assert summary.sites == _count(db, Site)

    # --- enterprises: places, sectors, identifiers, sites ------------------
    enterprises = list(db.scalars(select(Enterprise)))
    nodes = {n.id: n for n in db.scalars(select(Jurisdiction))}
    codes_used = Counter(nodes[e.jurisdiction_id].code for e in enterprises)
    for place in PLACES:
        assert codes_used[place.code] >= 2, place.street or place.district
    assert {e.sector for e in enterprises} == set(SECTORS)
    assert {e.crowded_subtype for e in enterprises if e.sector == CROWDED} == set(CROWDED_SUBTYPES)
    assert len({e.credit_code for e in enterprises}) == len(enterprises)
    assert len({e.name for e in enterprises}) == len(enterprises)
    for e in enterprises:
        assert is_valid_credit_code(e.credit_code), e.credit_code
        assert is_valid_phone(e.legal_rep_phone) and is_valid_phone(e.contact_phone)
        assert e.address.startswith(("上海市长宁区", "郑州市"))
        if e.sector == CROWDED:
            assert e.opening_hours, e.name
    assert sum(e.mobile_work for e in enterprises) >= 4
    assert {e.production_status for e in enterprises} >= {"在产", "停产"}
    zhengzhou_streets = [
        e for e in enterprises if e.area_path.startswith("410000/") and e.area_path.count("/") != 3
    ]
    assert not zhengzhou_streets  # 郑州 is loaded to district level
    sites_per = Counter(s.enterprise_id for s in db.scalars(select(Site)))
    assert all(1 <= sites_per[e.id] <= 3 for e in enterprises)
    for site in db.scalars(select(Site)):
        assert site.latitude is not None and site.longitude is not None
        assert any(
            abs(site.latitude - lat) < 0.05 and abs(site.longitude - lng) < 0.05
            for lat, lng in CENTRES.values()
        )

    # --- machines and chips ------------------------------------------------
    machines = list(db.scalars(select(Machine)))
    by_status = Counter(m.status for m in machines)
    chipped = by_status[MachineStatus.CHIP_FITTED.value]
    assert summary.chipped_machines == chipped
    assert 0.65 <= chipped / len(machines) <= 0.85
    assert by_status[MachineStatus.RETIRED.value] >= 3
    assert {m.make for m in machines} == {
        "瑞凌",
        "佳士",
        "奥太",
        "时代",
        "林肯",
        "松下",
        "米勒",
        "伊萨",
    }
    bindings = list(db.scalars(select(ChipBinding)))
    per_machine = Counter(b.machine_id for b in bindings)
    assert sum(1 for n in per_machine.values() if n >= 2) >= 3  # chips replaced
    open_per_machine = Counter(b.machine_id for b in bindings if b.removed_at is None)
    assert max(open_per_machine.values()) == 1
    assert set(open_per_machine) == {m.id for m in machines if m.status == "chip_fitted"}

    # --- welders and certificates ------------------------------------------
    statuses = Counter(status_of(c, TODAY) for c in db.scalars(select(Certificate)))
    assert summary.certificates_by_status == {s.value: n for s, n in statuses.items()}
    total = sum(statuses.values())
    assert 0.6 <= statuses[CertificateStatus.VALID] / total <= 0.8
    assert statuses[CertificateStatus.EXPIRING] >= 30
    assert statuses[CertificateStatus.EXPIRED] >= 30
    assert statuses[CertificateStatus.REVIEW_OVERDUE] >= 20
    assert statuses[CertificateStatus.PENDING_VERIFICATION] >= 10
    assert statuses[CertificateStatus.REVOKED] >= 5
    assert set(statuses) == set(CertificateStatus)
    for cert in db.scalars(select(Certificate)):
        if status_of(cert, TODAY) is CertificateStatus.PENDING_VERIFICATION:
            assert (TODAY - cert.issue_date).days <= 3
        if status_of(cert, TODAY) is CertificateStatus.REVIEW_OVERDUE:
            assert cert.kind == CertificateKind.SPECIAL_OPERATION.value
            assert cert.last_review_date is None

    welders = list(db.scalars(select(Welder)))
    uncertified = summary.welders_without_certificate
    assert 0.04 <= uncertified / len(welders) <= 0.12
    employments = Counter(e.welder_id for e in db.scalars(select(Employment)))
    assert all(employments[w.id] >= 1 for w in welders)
    mobile = sum(1 for n in employments.values() if n >= 2)
    assert 0.03 <= mobile / len(welders) <= 0.08
    assert max(employments.values()) <= 3
    for welder in welders:
        number = vault.decrypt(welder.id_number_encrypted)
        assert 1962 <= birth_date_of(number).year <= 2002
        assert welder.id_number_hash == vault.lookup_hash(number)
        assert welder.phone is not None and len(welder.phone) == 11

    # --- accounts ----------------------------------------------------------
    usernames = [username for username, _, _ in summary.accounts]
    assert set(usernames) == set(ACCOUNTS)
    auth = AuthService(db, settings)
    for username, role in ACCOUNTS.items():
        user = auth.authenticate(username, DEMO_PASSWORD, NOW)
        assert user.role == role.value
        scope = auth.scope_for(user)
        if role is Role.WELDER:
            assert user.welder_id is not None
            certs = db.scalars(select(Certificate).where(Certificate.welder_id == user.welder_id))
            assert any(status_of(c, TODAY) is CertificateStatus.VALID for c in certs)
        if username == "changning_zj":
            assert scope.sectors == frozenset({"施工工地"})
        if username == "xinjing":
            assert scope.area_path is not None and scope.area_path.endswith("/310105102/")
    db.commit()

    # --- idempotent ---------------------------------------------------------
    before = {
        m: _count(db, m)
        for m in (Enterprise, Site, Machine, ChipBinding, Welder, Certificate, Employment, User)
    }
    again = seed_demo(db, settings, vault, TODAY, NOW)
    db.commit()
    assert not again.created
    assert {m: _count(db, m) for m in before} == before
    assert again.machines == summary.machines
    assert again.certificates_by_status == summary.certificates_by_status
    assert [a[0] for a in again.accounts] == usernames
