"""The SQL status filter agrees with the pure rule on every boundary day."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.factories import World, id_number
from weldguard.welder.identity import IdentityVault
from weldguard.welder.models import Certificate
from weldguard.welder.repository import certificate_status_sql
from weldguard.welder.service import CertificateInput, WelderInput, WelderService, status_of

TODAY = date(2026, 11, 22)


def test_sql_status_matches_domain_rule(db: Session, world: World, vault: IdentityVault) -> None:
    service = WelderService(db, vault)
    welder = service.register(WelderInput("边界测试", id_number(77)), TODAY)
    kinds = [
        ("special_equipment", "金属焊接操作"),
        ("construction", "建筑焊工"),
    ]
    n = 0
    for kind, item in kinds:
        for offset in range(-5, 45):
            for revoked, verified in ((False, True), (True, True), (False, False)):
                n += 1
                expiry = TODAY + timedelta(days=offset)
                service.upsert_certificate(
                    welder,
                    CertificateInput(
                        kind=kind,
                        number=f"B{n:05d}",
                        item=item,
                        issue_date=expiry - timedelta(days=700),
                        expiry_date=expiry,
                        issuing_authority="测试发证机关",
                        source="测试",
                        revoked=revoked,
                        verified=verified,
                    ),
                )
    # 特种作业 with review dates around today (issued 3 years ago, no review yet).
    number = id_number(77)
    for offset in range(-40, 40, 3):
        special_welder = service.register(
            WelderInput(f"复审{offset + 50}", id_number(offset + 200)), TODAY
        )
        issue = TODAY.replace(year=TODAY.year - 3) + timedelta(days=offset)
        service.upsert_certificate(
            special_welder,
            CertificateInput(
                kind="special_operation",
                number="T" + id_number(offset + 200),
                item="熔化焊接与热切割作业",
                issue_date=issue,
                expiry_date=None,
                issuing_authority="应急管理局",
                source="测试",
            ),
            id_number=id_number(offset + 200),
        )
    assert number
    db.flush()
    for day in (TODAY - timedelta(days=1), TODAY, TODAY + timedelta(days=30)):
        rows = db.execute(select(Certificate, certificate_status_sql(day))).all()
        assert len(rows) > 300
        for certificate, sql_status in rows:
            assert sql_status == status_of(certificate, day).value, (certificate.expiry_date, day)
