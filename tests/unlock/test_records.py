"""Scan statistics, the blocked-scan list and the sessions list: counts per area,
reason and day on both backends, and every role's reach."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.factories import NOW, World
from weldguard.auth.repository import UserRepository
from weldguard.auth.scope import Scope
from weldguard.auth.service import AuthService
from weldguard.config import Settings
from weldguard.deps import get_clock
from weldguard.enterprise.models import Enterprise
from weldguard.machine.models import Machine
from weldguard.unlock.models import ScanRecord, WorkSession
from weldguard.unlock.records import (
    OutcomeCounts,
    RecordRepository,
    ScanFilter,
    SessionFilter,
    local_day_bounds,
    scan_statistics,
)
from weldguard.welder.models import Welder

CHANGNING = "310000/310100/310105/"
HUAYANG = CHANGNING + "310105001/"
XINJING = CHANGNING + "310105102/"
HONGQIAO = CHANGNING + "310105009/"
SINCE, UNTIL = local_day_bounds(date(2026, 10, 24), date(2026, 11, 22))
PERIOD = ScanFilter(since=SINCE, until=UNTIL)


def make_scan(
    db: Session,
    at: datetime,
    outcome: str,
    machine: Machine | None,
    enterprise: Enterprise | None,
    welder: Welder | None,
    reasons: tuple[str, ...] = (),
    warnings: tuple[str, ...] = (),
) -> ScanRecord:
    record = ScanRecord(
        scanned_at=at,
        outcome=outcome,
        machine_code=machine.code if machine else "WGFORGED1",
        machine_id=machine.id if machine else None,
        enterprise_id=enterprise.id if enterprise else None,
        area_path=enterprise.area_path if enterprise else None,
        welder_id=welder.id if welder else None,
        reason_codes=list(reasons),
        warning_codes=list(warnings),
        reasons=[
            {"code": c, "label": c, "message": f"原因说明 {c}", "blocking": True} for c in reasons
        ]
        + [{"code": c, "label": c, "message": f"提示 {c}", "blocking": False} for c in warnings],
    )
    db.add(record)
    return record


def make_session(
    db: Session,
    machine: Machine,
    enterprise: Enterprise,
    welder: Welder,
    started: datetime,
    minutes: int = 60,
    arc_seconds: int = 1200,
    energy_wh: float = 850.0,
) -> WorkSession:
    session = WorkSession(
        id=str(uuid.uuid4()),
        machine_id=machine.id,
        device_id="WGC000001",
        welder_id=welder.id,
        enterprise_id=enterprise.id,
        area_path=enterprise.area_path,
        status="ended",
        started_at=started,
        unlocked_at=started + timedelta(seconds=4),
        valid_until=started + timedelta(hours=8),
        ended_at=started + timedelta(minutes=minutes),
        end_reason="welder",
        arc_seconds=arc_seconds,
        energy_wh=energy_wh,
        peak_current_a=180.0,
    )
    db.add(session)
    return session


def seed_records(db: Session, world: World) -> None:
    """Changning: A (华阳路) 3 allowed + 3 blocked, B (新泾镇, 施工工地) 1 + 1,
    C (虹桥, 人员密集场所) 0 + 2; Zhengzhou Z 4 + 1; one forged label; one scan of A
    40 days ago (outside the default period). Welder A made A's scans except one
    blocked attempt by welder B on A's machine."""
    e, m, w = world.enterprises, world.machines, world.welders
    today = NOW  # 12:00 in China
    yesterday, two_days = NOW - timedelta(days=1), NOW - timedelta(days=2)
    for at in (today, today - timedelta(hours=1), yesterday):
        make_scan(db, at, "allowed", m["A"], e["A"], w["A"])
    make_scan(db, yesterday, "blocked", m["A"], e["A"], w["A"], ("CERT_EXPIRED", "TOO_FAR"))
    make_scan(
        db, two_days, "blocked", m["A"], e["A"], w["A"], ("NO_CERTIFICATE",), ("NO_POSITION",)
    )
    make_scan(db, two_days, "blocked", m["A"], e["A"], w["B"], ("NOT_EMPLOYED",))
    make_scan(db, today, "allowed", m["B"], e["B"], w["B"])
    make_scan(db, today, "blocked", m["B"], e["B"], w["B"], ("SPECIAL_PERIOD",))
    for at in (today, yesterday):
        make_scan(db, at, "blocked", m["C"], e["C"], w["C"], ("DURING_OPENING_HOURS",))
    for _ in range(4):
        make_scan(db, yesterday, "allowed", m["Z"], e["Z"], w["Z"])
    make_scan(db, today, "blocked", m["Z"], e["Z"], w["Z"], ("MACHINE_OFFLINE",))
    make_scan(db, today, "invalid_label", None, None, None)
    make_scan(db, NOW - timedelta(days=40), "blocked", m["A"], e["A"], w["A"], ("CERT_EXPIRED",))

    make_session(db, m["A"], e["A"], w["A"], today - timedelta(hours=3))
    make_session(db, m["A"], e["A"], w["A"], yesterday, arc_seconds=600, energy_wh=400.0)
    make_session(db, m["B"], e["B"], w["B"], today - timedelta(hours=2))
    make_session(db, m["Z"], e["Z"], w["Z"], yesterday)
    db.commit()


@pytest.fixture
def seeded(db: Session, world: World) -> World:
    seed_records(db, world)
    return world


def scope_of(db: Session, settings: Settings, username: str) -> Scope:
    user = UserRepository(db).by_username(username)
    assert user is not None
    return AuthService(db, settings).scope_for(user)


@pytest.fixture
def scope(db: Session, settings: Settings) -> Callable[[str], Scope]:
    return lambda username: scope_of(db, settings, username)


# --- counts ------------------------------------------------------------------------
def test_totals_per_role(db: Session, seeded: World, scope: Callable[[str], Scope]) -> None:
    repo = RecordRepository(db)
    expected = {
        "admin": OutcomeCounts(8, 7, 1),
        "reg_changning": OutcomeCounts(4, 6, 0),
        "reg_changning_zj": OutcomeCounts(1, 1, 0),  # 住建: construction sites only
        "reg_huayang": OutcomeCounts(3, 3, 0),
        "reg_zhengzhou": OutcomeCounts(4, 1, 0),
        "insp_xinjing": OutcomeCounts(1, 1, 0),
        "ent_a": OutcomeCounts(3, 3, 0),
        "safety_b": OutcomeCounts(1, 1, 0),
        "welder_one": OutcomeCounts(3, 2, 0),  # welder A: not welder B's attempt
        "installer_cn": OutcomeCounts(4, 6, 0),  # the district's subtree
    }
    for username, counts in expected.items():
        assert repo.scan_totals(scope(username), PERIOD) == counts, username
    # Without a period, the old scan is counted too.
    assert repo.scan_totals(scope("ent_a"), ScanFilter()).blocked == 4
    assert OutcomeCounts(3, 3, 0).blocked_percent == 50.0


def test_counts_per_child_area(db: Session, seeded: World, scope: Callable[[str], Scope]) -> None:
    stats = scan_statistics(db, scope("reg_changning"), PERIOD, date(2026, 10, 24), NOW.date())
    assert stats.parent is not None and stats.parent.code == "310105"
    by_code = {node.code: c for node, c in stats.by_area}
    assert len(by_code) == 10  # every street and town of Changning, zeros included
    assert by_code["310105001"] == OutcomeCounts(3, 3, 0)
    assert by_code["310105102"] == OutcomeCounts(1, 1, 0)
    assert by_code["310105009"] == OutcomeCounts(0, 2, 0)
    assert by_code["310105002"] == OutcomeCounts()
    # The admin starts at the roots: Shanghai and Henan.
    admin = scan_statistics(db, scope("admin"), PERIOD, date(2026, 10, 24), NOW.date())
    roots = {node.code: c for node, c in admin.by_area}
    assert roots["310000"] == OutcomeCounts(4, 6, 0)
    assert roots["410000"] == OutcomeCounts(4, 1, 0)
    # A street regulator's children: none below a street; a sector-limited
    # department's per-street counts hold only its sectors.
    housing = scan_statistics(db, scope("reg_changning_zj"), PERIOD, date(2026, 10, 24), NOW.date())
    assert {n.code: c for n, c in housing.by_area}["310105001"] == OutcomeCounts()
    assert {n.code: c for n, c in housing.by_area}["310105102"] == OutcomeCounts(1, 1, 0)
    # Enterprises and welders get no area breakdown.
    assert scan_statistics(db, scope("ent_a"), PERIOD, date(2026, 10, 24), NOW.date()).by_area == []


def test_counts_per_reason(db: Session, seeded: World, scope: Callable[[str], Scope]) -> None:
    repo = RecordRepository(db)
    district = dict(repo.blocked_by_reason(scope("reg_changning"), PERIOD))
    assert district == {
        "CERT_EXPIRED": 1,
        "TOO_FAR": 1,
        "NO_CERTIFICATE": 1,
        "NOT_EMPLOYED": 1,
        "SPECIAL_PERIOD": 1,
        "DURING_OPENING_HOURS": 2,
    }
    ordered = repo.blocked_by_reason(scope("reg_changning"), PERIOD)
    assert ordered[0] == ("DURING_OPENING_HOURS", 2)
    # Warnings are not reasons; the admin counts Zhengzhou too.
    admin = dict(repo.blocked_by_reason(scope("admin"), PERIOD))
    assert "NO_POSITION" not in admin and admin["MACHINE_OFFLINE"] == 1
    assert dict(repo.blocked_by_reason(scope("reg_changning_zj"), PERIOD)) == {"SPECIAL_PERIOD": 1}
    assert dict(repo.blocked_by_reason(scope("ent_a"), ScanFilter())) == {
        "CERT_EXPIRED": 2,
        "TOO_FAR": 1,
        "NO_CERTIFICATE": 1,
        "NOT_EMPLOYED": 1,
    }


def test_counts_per_day(db: Session, seeded: World, scope: Callable[[str], Scope]) -> None:
    repo = RecordRepository(db)
    days = {d.day: d.counts for d in repo.scans_by_day(scope("reg_changning"), PERIOD)}
    assert days == {
        date(2026, 11, 22): OutcomeCounts(3, 2, 0),
        date(2026, 11, 21): OutcomeCounts(1, 2, 0),
        date(2026, 11, 20): OutcomeCounts(0, 2, 0),
    }
    # A scan at 23:30 UTC is the next day in China.
    late = datetime(2026, 11, 20, 23, 30, tzinfo=NOW.tzinfo)
    make_scan(db, late, "allowed", seeded.machines["A"], seeded.enterprises["A"], None)
    db.commit()
    days = {d.day: d.counts for d in repo.scans_by_day(scope("reg_huayang"), PERIOD)}
    assert days[date(2026, 11, 21)].allowed == 2
    # The statistics fill every day of the period.
    stats = scan_statistics(db, scope("reg_huayang"), PERIOD, date(2026, 10, 24), NOW.date())
    assert len(stats.by_day) == 30 and stats.by_day[0].counts == OutcomeCounts()


# --- lists --------------------------------------------------------------------------
def test_blocked_list_filters_and_scope(
    db: Session, seeded: World, scope: Callable[[str], Scope]
) -> None:
    repo = RecordRepository(db)
    blocked = ScanFilter(outcome="blocked", since=SINCE, until=UNTIL)
    page = repo.scan_page(scope("reg_changning"), blocked, 1, 20)
    assert page.total == 6
    assert [r.record.scanned_at for r in page.items] == sorted(
        (r.record.scanned_at for r in page.items), reverse=True
    )
    first = page.items[0]
    assert first.enterprise_name and first.machine_code and first.welder_name
    expired = repo.scan_page(
        scope("reg_changning"),
        ScanFilter(outcome="blocked", reason="CERT_EXPIRED", since=SINCE, until=UNTIL),
        1,
        20,
    )
    assert expired.total == 1
    row = expired.items[0]
    assert row.reason_labels == ["证书已过期", "远距离扫码"]
    assert row.messages == ["原因说明 CERT_EXPIRED", "原因说明 TOO_FAR"]
    # CERT_EXPIRING must not match CERT_EXPIRED, nor a code prefix.
    assert repo.scan_page(scope("admin"), ScanFilter(reason="CERT_EXPIRING"), 1, 20).total == 0
    assert repo.scan_page(scope("admin"), ScanFilter(reason="CERT_"), 1, 20).total == 0
    by_area = ScanFilter(outcome="blocked", area_path=HONGQIAO, since=SINCE, until=UNTIL)
    assert repo.scan_page(scope("reg_changning"), by_area, 1, 20).total == 2
    by_enterprise = ScanFilter(enterprise_id=seeded.enterprises["B"].id)
    assert repo.scan_page(scope("reg_changning"), by_enterprise, 1, 20).total == 2
    # Paging.
    two = repo.scan_page(scope("reg_changning"), blocked, 2, 4)
    assert two.total == 6 and len(two.items) == 2 and two.pages == 2


def test_nobody_reaches_outside_their_scope(
    db: Session, seeded: World, scope: Callable[[str], Scope]
) -> None:
    repo = RecordRepository(db)
    e = seeded.enterprises
    # Asking for another area or enterprise narrows, never widens.
    assert repo.scan_page(scope("reg_huayang"), ScanFilter(area_path=XINJING), 1, 20).total == 0
    outside = ScanFilter(enterprise_id=e["Z"].id)
    for username in ("reg_changning", "reg_huayang", "ent_a", "safety_b", "welder_one"):
        assert repo.scan_page(scope(username), outside, 1, 20).total == 0, username
        assert (
            repo.session_page(scope(username), SessionFilter(enterprise_id=e["Z"].id), 1, 20).total
            == 0
        )
    assert repo.scan_page(scope("reg_zhengzhou"), ScanFilter(area_path=CHANGNING), 1, 20).total == 0
    # The forged label is seen by the admin only.
    forged = ScanFilter(outcome="invalid_label")
    assert repo.scan_page(scope("admin"), forged, 1, 20).total == 1
    for username in ("reg_changning", "ent_a", "welder_one", "insp_xinjing"):
        assert repo.scan_page(scope(username), forged, 1, 20).total == 0
    # Sector-limited: the housing department sees the construction site only.
    page = repo.scan_page(scope("reg_changning_zj"), ScanFilter(), 1, 20)
    assert {r.record.enterprise_id for r in page.items} == {e["B"].id}
    # A scope with no binding reaches nothing.
    nobody = Scope(role=scope("reg_changning").role, user_id=0)
    assert repo.scan_totals(nobody, ScanFilter()) == OutcomeCounts()


def test_welder_sees_only_themself(
    db: Session, seeded: World, scope: Callable[[str], Scope]
) -> None:
    repo = RecordRepository(db)
    me = scope("welder_one")
    mine = repo.own_scans(me, "blocked", 1, 20)
    assert mine.total == 3  # two in the period and the old one
    assert {r.record.welder_id for r in mine.items} == {seeded.welders["A"].id}
    # Asking for someone else's gives nothing.
    other = ScanFilter(welder_id=seeded.welders["B"].id)
    assert repo.scan_page(me, other, 1, 20).total == 0
    sessions = repo.own_sessions(me, 1, 20)
    assert sessions.total == 2
    assert {r.session.welder_id for r in sessions.items} == {seeded.welders["A"].id}
    assert repo.own_scans(scope("ent_a"), None, 1, 20).total == 0  # not a welder


def test_sessions_list(db: Session, seeded: World, scope: Callable[[str], Scope]) -> None:
    repo = RecordRepository(db)
    m, w = seeded.machines, seeded.welders
    assert repo.session_page(scope("admin"), SessionFilter(), 1, 20).total == 4
    district = repo.session_page(scope("reg_changning"), SessionFilter(), 1, 20)
    assert district.total == 3
    row = district.items[0]
    assert row.machine_code and row.welder_name and row.enterprise_name
    assert repo.session_page(scope("reg_changning_zj"), SessionFilter(), 1, 20).total == 1
    assert repo.session_page(scope("reg_huayang"), SessionFilter(), 1, 20).total == 2
    assert repo.session_page(scope("ent_a"), SessionFilter(machine_id=m["A"].id), 1, 20).total == 2
    assert repo.session_page(scope("ent_a"), SessionFilter(welder_id=w["B"].id), 1, 20).total == 0
    today_only = SessionFilter(since=datetime(2026, 11, 21, 16, 0, tzinfo=NOW.tzinfo))
    assert repo.session_page(scope("reg_changning"), today_only, 1, 20).total == 2
    count, arc, energy = repo.session_totals(scope("ent_a"), SessionFilter())
    assert (count, arc, energy) == (2, 1800, 1250.0)


# --- API ------------------------------------------------------------------------------
@pytest.fixture
def api(client: TestClient, seeded: World) -> TestClient:
    client.app.dependency_overrides[get_clock] = lambda: NOW  # type: ignore[attr-defined]
    return client


def test_stats_api(api: TestClient, as_user: Callable[[str], dict[str, str]]) -> None:
    body = api.get("/api/v1/scans/stats", headers=as_user("reg_changning")).json()
    assert body["since"] == "2026-10-24" and body["until"] == "2026-11-22"
    assert body["totals"]["allowed"] == 4 and body["totals"]["blocked"] == 6
    areas = {a["code"]: a for a in body["by_area"]}
    assert areas["310105001"]["blocked"] == 3
    assert body["by_reason"][0] == {
        "code": "DURING_OPENING_HOURS",
        "label": "人员密集场所营业时间",
        "count": 2,
    }
    assert len(body["by_day"]) == 30
    street = api.get("/api/v1/scans/stats?area=310105001", headers=as_user("reg_changning")).json()
    assert street["totals"]["blocked"] == 3 and street["by_area"] == []
    # An area outside the caller's reach is not found; so is one for an enterprise.
    for user, area in (
        ("reg_huayang", "310105102"),
        ("reg_zhengzhou", "310105"),
        ("ent_a", "310105001"),
    ):
        response = api.get(f"/api/v1/scans/stats?area={area}", headers=as_user(user))
        assert response.status_code == 404, (user, area)
    bad = api.get("/api/v1/scans/stats?since=2026-11-10&until=2026-11-01", headers=as_user("admin"))
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "until"
    assert api.get("/api/v1/scans/stats").status_code == 401


def test_scans_api(api: TestClient, as_user: Callable[[str], dict[str, str]]) -> None:
    blocked = api.get(
        "/api/v1/scans?outcome=blocked&reason=CERT_EXPIRED", headers=as_user("reg_changning")
    ).json()
    assert blocked["total"] == 1
    reasons = blocked["items"][0]["reasons"]
    assert reasons[0] == {
        "code": "CERT_EXPIRED",
        "label": "证书已过期",
        "message": "原因说明 CERT_EXPIRED",
    }
    assert api.get("/api/v1/scans?outcome=blocked", headers=as_user("ent_a")).json()["total"] == 3
    mine = api.get("/api/v1/scans", headers=as_user("welder_one")).json()
    assert mine["total"] == 5
    older = api.get(
        "/api/v1/scans?since=2026-10-01&until=2026-10-31", headers=as_user("welder_one")
    ).json()
    assert older["total"] == 1
    assert api.get("/api/v1/scans?outcome=nope", headers=as_user("admin")).status_code == 422
    assert api.get("/api/v1/scans?reason=NOPE", headers=as_user("admin")).status_code == 422
    sessions = api.get("/api/v1/work-sessions", headers=as_user("safety_b")).json()
    assert sessions["total"] == 1 and sessions["items"][0]["arc_seconds"] == 1200
    assert "id_number" not in str(sessions) and "id_number" not in str(mine)


def test_one_pass_rollup_agrees_with_the_separate_counts(
    db: Session, seeded: World, scope: Callable[[str], Scope]
) -> None:
    from weldguard.jurisdiction.repository import JurisdictionRepository

    repo = RecordRepository(db)
    places = JurisdictionRepository(db)
    streets = [n for n in places.all() if n.path.startswith(CHANGNING) and n.path != CHANGNING]
    mixed = [places.by_code("310105"), places.by_code("410100")]  # paths of two lengths
    for username in ("admin", "reg_changning", "reg_changning_zj", "ent_a", "welder_one"):
        s = scope(username)
        for nodes in (streets, [n for n in mixed if n is not None], []):
            days, by_node, reasons = repo.scan_rollup(s, PERIOD, nodes)
            assert days == {d.day: d.counts for d in repo.scans_by_day(s, PERIOD)}, username
            assert by_node == repo.scan_counts_by_node(s, PERIOD, nodes), username
            assert reasons == repo.blocked_by_reason(s, PERIOD), username
    days, by_node, _ = repo.scan_rollup(scope("admin"), PERIOD, [n for n in mixed if n])
    assert [c.blocked for c in by_node.values()] == [6, 1]
