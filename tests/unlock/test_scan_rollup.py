"""The daily rollup of the scan statistics (unlock/scan_rollup.py) on both backends:
every count reads the same numbers from folded days as from the raw records, for
every kind of scope and filter; late scans, sector changes and several processes
do not make it drift; ``weldguard scans rollup`` runs it."""

from __future__ import annotations

import random
import threading
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from tests.factories import NOW, World, add_enterprise, enterprise_row
from tests.unlock.test_records import CHANGNING, HUAYANG, XINJING, scope_of
from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.cli import app
from weldguard.config import Settings
from weldguard.db import utcnow
from weldguard.domain.authorization import ReasonCode
from weldguard.enterprise.models import Enterprise
from weldguard.jurisdiction.models import Jurisdiction
from weldguard.jurisdiction.repository import JurisdictionRepository
from weldguard.unlock.models import ScanRecord
from weldguard.unlock.records import (
    RecordRepository,
    ScanFilter,
    local_day_bounds,
    scan_statistics,
)
from weldguard.unlock.rollup_models import (
    ScanDayCount,
    ScanRollupDay,
    ScanRollupSector,
    ScanRollupState,
)
from weldguard.unlock.scan_rollup import LATE_MARGIN, RollupRepository, ScanRollup

TODAY = date(2026, 11, 22)  # NOW is 12:00 in China
FIRST_DAY = TODAY - timedelta(days=39)
REASONS = [
    ReasonCode.CERT_EXPIRED.value,
    ReasonCode.CERT_EXPIRING.value,  # shares a prefix with CERT_EXPIRED
    ReasonCode.NO_CERTIFICATE.value,
    ReasonCode.NOT_EMPLOYED.value,
    ReasonCode.TOO_FAR.value,
    ReasonCode.MACHINE_OFFLINE.value,
    ReasonCode.SPECIAL_PERIOD.value,
    ReasonCode.DURING_OPENING_HOURS.value,
]
USERS = (
    "admin",
    "reg_changning",
    "reg_changning_zj",  # 住建: construction sites only
    "reg_huayang",
    "reg_zhengzhou",
    "insp_xinjing",
    "installer_cn",
    "ent_a",
    "welder_one",
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def rollup(factory: sessionmaker[Session], clock: Clock, owner: str = "test") -> ScanRollup:
    return ScanRollup(factory, clock=clock, owner=owner)


def scan_row(
    at: datetime, outcome: str, enterprise: Enterprise | None, reasons: list[str], **kw: Any
) -> dict[str, Any]:
    return {
        "scanned_at": at,
        "outcome": outcome,
        "machine_code": "WGTEST0001" if enterprise else "WGFORGED1",
        "machine_id": kw.get("machine_id"),
        "enterprise_id": enterprise.id if enterprise else None,
        "area_path": enterprise.area_path if enterprise else None,
        "welder_id": kw.get("welder_id"),
        "reason_codes": reasons,
        "warning_codes": [],
        "reasons": [{"code": c, "message": c, "blocking": True} for c in reasons],
    }


def random_scans(db: Session, world: World, count: int = 900, seed: int = 8) -> None:
    """Scans over the 40 China days up to now (today's until noon), in four areas
    of both regions and four sectors, a quarter blocked with one to three reasons,
    a few forged labels; some on the stroke of a China midnight."""
    rng = random.Random(seed)
    extra = {
        "D": add_enterprise(
            db, enterprise_row(5, "华阳危化储运有限公司", "长宁区", "华阳路街道", sector="危化")
        ),
        "Y": add_enterprise(
            db,
            enterprise_row(
                6, "中原建设工程有限公司", "中原区", "", city="郑州市", sector="施工工地"
            ),
        ),
    }
    db.flush()
    enterprises = [*world.enterprises.items(), *extra.items()]
    first, _ = local_day_bounds(FIRST_DAY, None)
    assert first is not None
    span = int((NOW - first).total_seconds())
    rows = []
    for n in range(count):
        at = first + timedelta(seconds=rng.randrange(span))
        if n % 50 == 0:
            # On the stroke of a China midnight (16:00 UTC): the day it starts.
            at = at.replace(hour=16, minute=0, second=0, microsecond=0)
            at = min(at, NOW)
        key, enterprise = rng.choice(enterprises)
        machine = world.machines.get(key)
        welder = world.welders.get(key) if rng.random() < 0.9 else world.welders["B"]
        roll = rng.random()
        if roll < 0.04:
            rows.append(scan_row(at, "invalid_label", None, []))
            continue
        reasons: list[str] = []
        outcome = "allowed"
        if roll < 0.3:
            outcome = "blocked"
            picked = set(rng.sample(REASONS, rng.choice((1, 1, 1, 2, 3))))
            reasons = [c for c in REASONS if c in picked]
        rows.append(
            scan_row(
                at,
                outcome,
                enterprise,
                reasons,
                machine_id=machine.id if machine else None,
                welder_id=welder.id if welder else None,
            )
        )
    db.execute(insert(ScanRecord), rows)
    db.commit()


def filters(world: World) -> dict[str, tuple[ScanFilter, date, date]]:
    def days(first: date, last: date, **kw: Any) -> tuple[ScanFilter, date, date]:
        since, until = local_day_bounds(first, last)
        return ScanFilter(since=since, until=until, **kw), first, last

    return {
        "30 days": days(TODAY - timedelta(days=29), TODAY),
        "everything": (ScanFilter(), FIRST_DAY, TODAY),
        "folded days only": days(FIRST_DAY + timedelta(days=3), TODAY - timedelta(days=5)),
        "one folded day": days(TODAY - timedelta(days=6), TODAY - timedelta(days=6)),
        "up to yesterday": days(FIRST_DAY, TODAY - timedelta(days=1)),
        "from a morning": (
            ScanFilter(since=datetime(2026, 11, 1, 2, 30, tzinfo=NOW.tzinfo)),
            date(2026, 11, 1),
            TODAY,
        ),
        "until an evening": (
            ScanFilter(until=datetime(2026, 11, 10, 11, 0, tzinfo=NOW.tzinfo)),
            FIRST_DAY,
            date(2026, 11, 10),
        ),
        "blocked": days(FIRST_DAY, TODAY, outcome="blocked"),
        "allowed": days(FIRST_DAY, TODAY, outcome="allowed"),
        "forged": days(FIRST_DAY, TODAY, outcome="invalid_label"),
        "CERT_EXPIRED": days(FIRST_DAY, TODAY, reason="CERT_EXPIRED"),
        "CERT_ prefix": days(FIRST_DAY, TODAY, reason="CERT_"),
        "华阳路": days(FIRST_DAY, TODAY, area_path=HUAYANG),
        "新泾镇 blocked": days(FIRST_DAY, TODAY, area_path=XINJING, outcome="blocked"),
        "长宁区 TOO_FAR": days(FIRST_DAY, TODAY, area_path=CHANGNING, reason="TOO_FAR"),
        "enterprise A": days(FIRST_DAY, TODAY, enterprise_id=world.enterprises["A"].id),
        "machine C": days(FIRST_DAY, TODAY, machine_id=world.machines["C"].id),
        "welder B": days(FIRST_DAY, TODAY, welder_id=world.welders["B"].id),
    }


def node_sets(db: Session) -> list[list[Jurisdiction]]:
    places = JurisdictionRepository(db)
    streets = [n for n in places.all() if n.path.startswith(CHANGNING) and n.path != CHANGNING]
    mixed = [n for n in (places.by_code("310105"), places.by_code("410100")) if n is not None]
    roots = [n for n in places.all() if n.parent_id is None]
    return [streets, mixed, roots, []]


def snapshot(db: Session, scopes: dict[str, Scope], world: World) -> dict[str, Any]:
    """Every count the statistics offer, for every scope and filter."""
    repo = RecordRepository(db)
    out: dict[str, Any] = {}
    nodes = node_sets(db)
    for who, scope in scopes.items():
        for name, (f, first, last) in filters(world).items():
            key = f"{who} / {name}"
            out[key + " totals"] = repo.scan_totals(scope, f)
            out[key + " by reason"] = repo.blocked_by_reason(scope, f)
            out[key + " by day"] = repo.scans_by_day(scope, f)
            for i, group in enumerate(nodes):
                out[key + f" by node {i}"] = repo.scan_counts_by_node(scope, f, group)
                out[key + f" one pass {i}"] = repo.scan_rollup(scope, f, group)
            stats = scan_statistics(db, scope, f, first, last)
            out[key + " statistics"] = (
                stats.totals,
                stats.parent.path if stats.parent else None,
                [(node.path, counts) for node, counts in stats.by_area],
                stats.by_reason,
                stats.by_day,
            )
    return out


def assert_same(before: dict[str, Any], after: dict[str, Any]) -> None:
    assert before.keys() == after.keys()
    wrong = [key for key in before if before[key] != after[key]]
    assert not wrong, (
        f"{len(wrong)} differ, e.g. {wrong[0]}: {before[wrong[0]]} != {after[wrong[0]]}"
    )


@pytest.fixture
def scopes(db: Session, settings: Settings, world: World) -> dict[str, Scope]:
    out = {username: scope_of(db, settings, username) for username in USERS}
    out["nobody"] = Scope(role=Role.REGULATOR, user_id=0)
    out["危化 and 工贸 in 长宁区"] = Scope(
        role=Role.REGULATOR, user_id=0, area_path=CHANGNING, sectors=frozenset({"危化", "工贸"})
    )
    out["no sectors in 长宁区"] = Scope(
        role=Role.REGULATOR, user_id=0, area_path=CHANGNING, sectors=frozenset()
    )
    return out


@pytest.fixture
def scanned(db: Session, world: World) -> World:
    random_scans(db, world)
    return world


def folded_days(db: Session) -> list[date]:
    db.expire_all()
    return sorted(db.scalars(select(ScanRollupDay.day)))


# --- the same numbers -------------------------------------------------------------------
def test_folded_days_read_the_same_as_the_raw_records(
    db: Session,
    session_factory: sessionmaker[Session],
    scanned: World,
    scopes: dict[str, Scope],
) -> None:
    raw = snapshot(db, scopes, scanned)
    report = rollup(session_factory, Clock(NOW)).run_once(NOW)
    # Every day from the first scan to the day before yesterday; today and yesterday
    # stay raw.
    assert report.folded == [FIRST_DAY + timedelta(days=i) for i in range(38)]
    assert folded_days(db) == report.folded
    total = db.scalar(select(func.sum(ScanRollupDay.scans)))
    assert total == db.scalar(
        select(func.count())
        .select_from(ScanRecord)
        .where(ScanRecord.scanned_at < local_day_bounds(None, TODAY - timedelta(days=2))[1])
    )
    # Two reasons are still one scan: the rollup holds the codes as one list.
    assert db.scalar(select(func.count()).select_from(ScanDayCount)) < 900
    db.expire_all()
    assert_same(raw, snapshot(db, scopes, scanned))

    # And the rollup is what is read: a change to it shows (then undo it).
    repo = RecordRepository(db)
    admin = scopes["admin"]
    f = filters(scanned)["folded days only"][0]
    before = repo.scan_totals(admin, f)
    row = db.scalars(
        select(ScanDayCount).where(
            ScanDayCount.outcome == "allowed", ScanDayCount.day == TODAY - timedelta(days=10)
        )
    ).first()
    assert row is not None
    row.count += 1000
    db.flush()
    assert repo.scan_totals(admin, f).allowed == before.allowed + 1000
    db.rollback()

    # A second run finds nothing to do.
    again = rollup(session_factory, Clock(NOW)).run_once(NOW)
    assert again.folded == [] and again.refolded == []


def test_the_next_day_is_folded_when_it_is_complete(
    db: Session, session_factory: sessionmaker[Session], scanned: World, scopes: dict[str, Scope]
) -> None:
    job = rollup(session_factory, Clock(NOW))
    job.run_once(NOW)
    tomorrow = NOW + timedelta(days=1)
    report = job.run_once(tomorrow)
    assert report.folded == [TODAY - timedelta(days=1)]
    # Yesterday now comes from the rollup, today still from the raw records.
    assert RecordRepository(db).scan_totals(scopes["admin"], ScanFilter()).total == 900


# --- late scans -------------------------------------------------------------------------
def test_a_late_scan_for_a_folded_day_is_folded_again(
    db: Session, session_factory: sessionmaker[Session], scanned: World, scopes: dict[str, Scope]
) -> None:
    clock = Clock(NOW)
    job = rollup(session_factory, clock)
    job.run_once(NOW)
    repo = RecordRepository(db)
    admin = scopes["admin"]
    week_ago = TODAY - timedelta(days=7)
    since, until = local_day_bounds(week_ago, week_ago)
    day = ScanFilter(since=since, until=until)
    before = repo.scan_totals(admin, day)
    housing = scopes["reg_changning_zj"]
    too_far = dict(repo.blocked_by_reason(housing, day)).get("TOO_FAR", 0)

    # A scan recorded now for a week ago (a server clock set wrong, an import).
    at = NOW - timedelta(days=7)
    db.execute(insert(ScanRecord), [scan_row(at, "blocked", scanned.enterprises["B"], ["TOO_FAR"])])
    db.commit()
    # Until the next run, the folded day does not have it...
    assert repo.scan_totals(admin, day) == before
    # ...the next run (any time later) folds the day again.
    clock.now = NOW + timedelta(minutes=10)
    report = job.run_once(clock.now)
    assert report.refolded == [week_ago]
    after = repo.scan_totals(admin, day)
    assert after.blocked == before.blocked + 1 and after.allowed == before.allowed
    assert dict(repo.blocked_by_reason(housing, day))["TOO_FAR"] == too_far + 1

    # The check moves on only once the ids it has seen are LATE_MARGIN old, and
    # meanwhile folds nothing again (the day's count matches).
    for minutes in (12, 30, 60):
        clock.now = NOW + timedelta(minutes=minutes)
        assert job.run_once(clock.now).refolded == []
    with session_factory() as s:
        checked, high, high_at = RollupRepository(s).watermark()
        top = RollupRepository(s).max_scan_id()
    assert checked == top and high == top and high_at == NOW + timedelta(minutes=60)


def test_a_scan_committed_after_a_run_that_drew_its_id_before_is_not_lost(
    db: Session,
    session_factory: sessionmaker[Session],
    scanned: World,
    scopes: dict[str, Scope],
) -> None:
    """The commit order race: a transaction draws an id, a run reads a higher id
    committed by someone else, then the first transaction commits. PostgreSQL only:
    SQLite writes one transaction at a time, so ids are committed in order."""
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite commits in id order")
    clock = Clock(NOW)
    job = rollup(session_factory, clock)
    job.run_once(NOW)
    late = session_factory()
    try:
        at = NOW - timedelta(days=5)
        late.execute(insert(ScanRecord), [scan_row(at, "allowed", scanned.enterprises["A"], [])])
        late.flush()  # the id is drawn, not committed
        db.execute(insert(ScanRecord), [scan_row(NOW, "allowed", scanned.enterprises["A"], [])])
        db.commit()  # a higher id, committed
        clock.now = NOW + LATE_MARGIN + timedelta(minutes=1)
        assert job.run_once(clock.now).refolded == []  # not visible yet
        late.commit()
    finally:
        late.close()
    clock.now += timedelta(minutes=10)
    assert job.run_once(clock.now).refolded == [TODAY - timedelta(days=5)]
    f = ScanFilter(since=local_day_bounds(TODAY - timedelta(days=5), None)[0])
    db.expire_all()
    totals = RecordRepository(db).scan_totals(scopes["admin"], f)
    raw = db.scalar(
        select(func.count()).select_from(ScanRecord).where(ScanRecord.scanned_at >= f.since)
    )
    assert totals.total == raw


def test_verify_recounts_every_folded_day(
    db: Session, session_factory: sessionmaker[Session], scanned: World, scopes: dict[str, Scope]
) -> None:
    """A scan below the ids the check has passed (a long import transaction) is
    only caught by ``--verify``."""
    job = rollup(session_factory, Clock(NOW))
    job.run_once(NOW)
    row = scan_row(NOW - timedelta(days=20), "allowed", scanned.enterprises["Z"], [])
    db.execute(insert(ScanRecord), [{**row, "id": 0}])
    db.commit()
    assert job.run_once(NOW).refolded == []
    report = job.run_once(NOW, verify=True)
    assert report.refolded == [TODAY - timedelta(days=20)]
    raw = db.scalar(select(func.count()).select_from(ScanRecord))
    assert RecordRepository(db).scan_totals(scopes["admin"], ScanFilter()).total == raw


# --- sector changes ---------------------------------------------------------------------
def test_an_enterprise_changing_sector_moves_its_folded_scans(
    db: Session,
    session_factory: sessionmaker[Session],
    scanned: World,
    scopes: dict[str, Scope],
) -> None:
    job = rollup(session_factory, Clock(NOW))
    job.run_once(NOW)
    b = scanned.enterprises["B"]
    db.execute(update(Enterprise).where(Enterprise.id == b.id).values(sector="工贸"))
    db.commit()
    housing = {"zj": scopes["reg_changning_zj"], "gm": scopes["危化 and 工贸 in 长宁区"]}
    # Before the next run the sector-limited counts read raw: already right.
    raw = snapshot(db, housing, scanned)
    repo = RecordRepository(db)
    assert repo._sectors_moved(housing["zj"])
    assert repo.scan_totals(housing["zj"], ScanFilter()).total == 0  # B was its only one
    report = job.run_once(NOW)
    assert report.sectors == 1 and report.refolded
    db.expire_all()
    assert db.get(ScanRollupSector, b.id).sector == "工贸"  # type: ignore[union-attr]
    assert not repo._sectors_moved(housing["zj"])
    assert_same(raw, snapshot(db, housing, scanned))


# --- several processes ------------------------------------------------------------------
def test_one_process_at_a_time(
    db: Session, session_factory: sessionmaker[Session], scanned: World, scopes: dict[str, Scope]
) -> None:
    raw = RecordRepository(db).scan_rollup(scopes["admin"], ScanFilter(), node_sets(db)[2])
    clock = Clock(utcnow())
    first, second = rollup(session_factory, clock, "one"), rollup(session_factory, clock, "two")
    with session_factory() as s:
        repo = RollupRepository(s)
        repo.ensure_state()
        assert repo.claim("one", clock.now, clock.now + timedelta(minutes=10))
        s.commit()
    assert second.run_once(NOW).skipped  # "one" holds the lease
    # A lease not renewed in time passes to another process.
    clock.now += timedelta(minutes=11)
    assert second.run_once(NOW).folded
    # Both at once: one of them does the work, the rows come out once.
    with session_factory() as s:
        s.execute(update(ScanRollupState).values(lease_owner=None, lease_until=None))
        s.execute(ScanDayCount.__table__.delete())
        s.execute(ScanRollupDay.__table__.delete())
        s.commit()
    reports: list[Any] = []
    threads = [
        threading.Thread(target=lambda job=job: reports.append(job.run_once(NOW)))
        for job in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(reports) == 2
    assert sum(len(r.folded) for r in reports) == 38
    db.expire_all()
    assert RecordRepository(db).scan_rollup(scopes["admin"], ScanFilter(), node_sets(db)[2]) == raw


def test_a_process_that_lost_its_lease_stops(
    db: Session, session_factory: sessionmaker[Session], scanned: World
) -> None:
    with session_factory() as s:
        repo = RollupRepository(s)
        repo.ensure_state()
        assert repo.claim("one", utcnow(), utcnow() + timedelta(minutes=10))
        s.commit()
    with session_factory() as s:
        s.execute(update(ScanRollupState).values(lease_owner="two"))
        s.commit()
    from weldguard.unlock.scan_rollup import LeaseLost

    with session_factory() as s, pytest.raises(LeaseLost):
        RollupRepository(s).hold("one", utcnow())


# --- the command line -------------------------------------------------------------------
def test_scans_rollup_command(
    cli: CliRunner, db: Session, world: World, session_factory: sessionmaker[Session]
) -> None:
    now = utcnow()
    for days in (3, 4, 6):
        at = now - timedelta(days=days)
        db.execute(insert(ScanRecord), [scan_row(at, "allowed", world.enterprises["A"], [])])
    db.commit()
    result = cli.invoke(app, ["scans", "rollup"])
    assert result.exit_code == 0, result.output
    assert "新汇总" in result.output and "天" in result.output
    assert len(folded_days(db)) >= 4
    verified = cli.invoke(app, ["scans", "rollup", "--verify"])
    assert verified.exit_code == 0, verified.output
    assert "重新汇总：无" in verified.output
