"""Benchmark: scan statistics and lists over 1,000,000 scan records.

    .venv/bin/python bench/scan_stats.py [--scans 1000000] [--iterations 10] [--raw]

Always runs on a fresh SQLite file in a temporary directory; on PostgreSQL too
when WELDGUARD_BENCH_DATABASE_URL is set (a private database is created next to
the one named and dropped afterwards, as in bench/list_pages.py).

Data: the demo places (Changning's 10 streets, Zhengzhou's 6 districts), 2,000
enterprises, 20,000 machines, 20,000 welders, ``--scans`` scan records spread
over 365 days (0.45 % blocked, the Shandong ratio, with one or two reason codes;
a few forged labels), and one work session per ten scans, bulk-loaded (COPY on
PostgreSQL). Then, for the admin (everything), a district regulator (长宁区), a
sector-limited one (长宁区 住建), a street regulator (华阳路街道), an enterprise
and a welder, it times what the 扫码记录 page runs: totals, per child area, per
reason, per day (the default 30 days and a whole year), the first page of blocked
scans, the welder's own scans, and the sessions list. Prints p50 / p95 / max in ms.

Before timing, the completed days are folded into the daily rollup, as ``serve``
does (unlock/scan_rollup.py; today and yesterday stay raw), and the time that takes
is printed; ``--raw`` leaves the rollup empty, to measure the raw table alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, text

from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.db import make_engine, make_session_factory, scratch_postgres_database, transaction
from weldguard.domain.authorization import ReasonCode
from weldguard.domain.ids import make_credit_code
from weldguard.enterprise.models import Enterprise
from weldguard.jurisdiction.models import Level
from weldguard.machine.models import Machine
from weldguard.migrate import upgrade
from weldguard.seed.reference import load_reference
from weldguard.unlock.records import (
    RecordRepository,
    ScanFilter,
    SessionFilter,
    local_day_bounds,
    scan_statistics,
)
from weldguard.unlock.scan_rollup import fold_all
from weldguard.welder.models import Welder

NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
TODAY = date(2026, 11, 22)
DAYS = 365
BLOCKED_SHARE = 0.0045
SECTORS = ("工贸", "工贸", "工贸", "施工工地", "施工工地", "危化", "人员密集场所", "电力")
REASONS = [c.value for c in ReasonCode]
COMMON_REASONS = ["CERT_EXPIRED", "NO_CERTIFICATE", "TOO_FAR", "MACHINE_OFFLINE", "PERMIT_REQUIRED"]
SCAN_COLUMNS = (
    "scanned_at",
    "outcome",
    "machine_code",
    "machine_id",
    "enterprise_id",
    "area_path",
    "welder_id",
    "reason_codes",
    "warning_codes",
    "reasons",
)
SESSION_COLUMNS = (
    "id",
    "machine_id",
    "device_id",
    "welder_id",
    "enterprise_id",
    "area_path",
    "status",
    "started_at",
    "unlocked_at",
    "valid_until",
    "ended_at",
    "end_reason",
    "arc_seconds",
    "energy_wh",
    "peak_current_a",
    "long_running_warned",
)


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def load(engine: Engine, scans: int, rng: random.Random) -> dict[str, Any]:
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        nodes = load_reference(session)
        leaves = [
            n
            for n in nodes.values()
            if n.level == Level.STREET or (n.level == Level.DISTRICT and n.code.startswith("4101"))
        ]
        enterprises = []
        for n in range(2_000):
            node = leaves[n % len(leaves)]
            enterprises.append(
                {
                    "credit_code": make_credit_code(f"91{node.code[:6]}{n:09d}"),
                    "name": f"基准测试焊接企业{n:05d}有限公司",
                    "sector": SECTORS[n % len(SECTORS)],
                    "crowded_subtype": None,
                    "jurisdiction_id": node.id,
                    "area_path": node.path,
                    "address": "测试路",
                    "legal_rep_name": "张三",
                    "legal_rep_phone": "13800138000",
                    "contact_phone": "021-62512345",
                    "production_status": "在产",
                    "involves_welding": True,
                    "mobile_work": False,
                    "declared_machine_count": 10,
                    "declared_welder_count": 10,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
        session.execute(insert(Enterprise), enterprises)
        ent = list(session.execute(select(Enterprise.id, Enterprise.area_path)).all())
        session.execute(
            insert(Machine),
            [
                {
                    "code": f"WGB{n:07d}",
                    "serial_number": f"SN{n:08d}",
                    "make": "瑞凌",
                    "model": "ZX7-400",
                    "process": "manual_arc",
                    "rated_current_a": 400,
                    "enterprise_id": ent[n % len(ent)][0],
                    "site_id": None,
                    "status": "chip_fitted",
                    "registered_at": NOW,
                    "retired_at": None,
                }
                for n in range(20_000)
            ],
        )
        session.execute(
            insert(Welder),
            [
                {
                    "name": f"焊工{n:05d}",
                    "id_number_hash": f"{n:064d}",
                    "id_number_encrypted": b"x",
                    "id_number_masked": "310***********0000",
                    "phone": None,
                    "created_at": NOW,
                }
                for n in range(20_000)
            ],
        )
        machines = list(session.execute(select(Machine.id, Machine.code, Machine.enterprise_id)))
        welders = list(session.scalars(select(Welder.id).order_by(Welder.id)))
    area_of = dict(ent)

    def scan_rows() -> Any:
        for n in range(scans):
            machine_id, code, enterprise_id = machines[n % len(machines)]
            welder_id = welders[(n * 7) % len(welders)]
            at = NOW - timedelta(seconds=rng.randrange(DAYS * 86_400))
            roll = rng.random()
            if roll < 0.0002:
                yield (at, "invalid_label", "WGFORGED0", None, None, None, None, "[]", "[]", "[]")
                continue
            if roll < BLOCKED_SHARE:
                codes = [rng.choice(COMMON_REASONS if rng.random() < 0.8 else REASONS)]
                if rng.random() < 0.3:
                    codes.append(rng.choice(REASONS))
                codes = sorted(set(codes), key=REASONS.index)
                reasons = json.dumps(
                    [{"code": c, "message": "原因", "blocking": True} for c in codes],
                    ensure_ascii=False,
                )
                row = (at, "blocked", code, machine_id, enterprise_id, area_of[enterprise_id],
                       welder_id, json.dumps(codes), "[]", reasons)  # fmt: skip
            else:
                row = (at, "allowed", code, machine_id, enterprise_id, area_of[enterprise_id],
                       welder_id, "[]", "[]", "[]")  # fmt: skip
            yield row

    def session_rows() -> Any:
        for n in range(scans // 10):
            machine_id, _code, enterprise_id = machines[n % len(machines)]
            at = NOW - timedelta(seconds=rng.randrange(DAYS * 86_400))
            yield (str(uuid.UUID(int=rng.getrandbits(128))), machine_id, "WGC0000001",
                   welders[(n * 7) % len(welders)], enterprise_id, area_of[enterprise_id],
                   "ended", at, at, at + timedelta(hours=8), at + timedelta(hours=2),
                   "welder", 1800, 900.0, 180.0, False)  # fmt: skip

    started = time.perf_counter()
    if engine.dialect.name == "postgresql":
        raw = engine.raw_connection()
        try:
            conn = raw.driver_connection
            assert conn is not None
            with conn.cursor() as cur:
                for table, columns, rows in (
                    ("scan_record", SCAN_COLUMNS, scan_rows()),
                    ("work_session", SESSION_COLUMNS, session_rows()),
                ):
                    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            conn.commit()
        finally:
            raw.close()
    else:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            for table, columns, rows in (
                ("scan_record", SCAN_COLUMNS, scan_rows()),
                ("work_session", SESSION_COLUMNS, session_rows()),
            ):
                marks = ", ".join("?" for _ in columns)
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                batch: list[tuple[Any, ...]] = []
                for row in rows:
                    batch.append(
                        tuple(_sqlite_time(v) if isinstance(v, datetime) else v for v in row)
                    )
                    if len(batch) == 20_000:
                        cursor.executemany(sql, batch)
                        batch.clear()
                if batch:
                    cursor.executemany(sql, batch)
            raw.commit()
        finally:
            raw.close()
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:
        ent_id = conn.execute(text("SELECT min(enterprise_id) FROM scan_record")).scalar_one()
        welder_id = conn.execute(text("SELECT min(welder_id) FROM scan_record")).scalar_one()
    return {"seconds": elapsed, "enterprise_id": ent_id, "welder_id": welder_id}


def analyze(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def measure(fn: Callable[[], object], iterations: int) -> list[float]:
    fn()
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def report(label: str, name: str, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    print(
        f"{label:<10} {name:<52} p50 {statistics.median(times):8.1f}  p95 {p95:8.1f}  "
        f"max {max(times):8.1f} ms",
        flush=True,
    )


def fold(engine: Engine, label: str) -> None:
    started = time.perf_counter()
    report = fold_all(make_session_factory(engine), NOW)
    elapsed = time.perf_counter() - started
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM scan_day_count")).scalar_one()
    print(
        f"{label:<10} folded {len(report.folded)} days into {rows} rollup rows in {elapsed:.1f} s",
        flush=True,
    )


def run(label: str, url: str, scans: int, iterations: int, raw: bool = False) -> None:
    upgrade(url)
    engine = make_engine(url)
    loaded = load(engine, scans, random.Random(2026))
    analyze(engine)
    print(f"{label:<10} loaded {scans} scans in {loaded['seconds']:.1f} s", flush=True)
    if not raw:
        fold(engine, label)
        analyze(engine)
    changning = "310000/310100/310105/"
    scopes = {
        "admin": Scope(role=Role.ADMIN, user_id=0, everything=True),
        "长宁区": Scope(role=Role.REGULATOR, user_id=0, area_path=changning),
        "长宁区住建": Scope(
            role=Role.REGULATOR, user_id=0, area_path=changning, sectors=frozenset({"施工工地"})
        ),
        "华阳路街道": Scope(role=Role.REGULATOR, user_id=0, area_path=changning + "310105001/"),
        "企业": Scope(
            role=Role.ENTERPRISE_ADMIN, user_id=0, enterprise_id=int(loaded["enterprise_id"])
        ),
        "焊工": Scope(role=Role.WELDER, user_id=0, welder_id=int(loaded["welder_id"])),
    }
    periods = {
        "30d": (TODAY - timedelta(days=29), TODAY),
        "365d": (TODAY - timedelta(days=DAYS - 1), TODAY),
    }
    factory = make_session_factory(engine)
    with factory() as session:
        repo = RecordRepository(session)
        for who, scope in scopes.items():
            for name, (first, last) in periods.items():
                since, until = local_day_bounds(first, last)
                f = ScanFilter(since=since, until=until)
                totals = repo.scan_totals(scope, f)
                report(
                    label,
                    f"{who} {name}: totals ({totals.allowed}/{totals.blocked})",
                    measure(lambda s=scope, f=f: repo.scan_totals(s, f), iterations),
                )
                report(
                    label,
                    f"{who} {name}: whole statistics (page)",
                    measure(
                        lambda s=scope, f=f, a=first, b=last: scan_statistics(session, s, f, a, b),
                        iterations,
                    ),
                )
                if name == "30d":
                    blocked = ScanFilter(since=since, until=until, outcome="blocked")
                    report(
                        label,
                        f"{who} {name}: blocked list page 1",
                        measure(lambda s=scope, f=blocked: repo.scan_page(s, f, 1, 20), iterations),
                    )
                    report(
                        label,
                        f"{who} {name}: sessions page 1",
                        measure(
                            lambda s=scope, f=SessionFilter(since=since, until=until): (
                                repo.session_page(s, f, 1, 20)
                            ),
                            iterations,
                        ),
                    )
            if who in ("admin", "长宁区"):
                since, until = local_day_bounds(*periods["365d"])
                year = ScanFilter(since=since, until=until)
                children = _children(session, None if who == "admin" else scope.area_path)
                parts: tuple[tuple[str, Callable[[], object]], ...] = (
                    ("by child area", partial(repo.scan_counts_by_node, scope, year, children)),
                    ("by reason", partial(repo.blocked_by_reason, scope, year)),
                    ("by day", partial(repo.scans_by_day, scope, year)),
                )
                for part, fn in parts:
                    report(label, f"{who} 365d: {part}", measure(fn, iterations))
        welder = scopes["焊工"]
        report(label, "焊工: own blocked scans", measure(
            lambda: repo.own_scans(welder, "blocked", 1, 20), iterations))  # fmt: skip
    engine.dispose()


def _children(session: Any, path: str | None) -> list[Any]:
    from weldguard.report.stats_repository import StatsRepository

    return StatsRepository(session).child_nodes(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scans", type=int, default=1_000_000)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--raw", action="store_true", help="no rollup: the raw table alone")
    args = parser.parse_args()
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench.sqlite3"
            run("sqlite", f"sqlite:///{path}", args.scans, args.iterations, args.raw)
    pg_url = os.environ.get("WELDGUARD_BENCH_DATABASE_URL")
    if not pg_url:
        print("postgresql: skipped (set WELDGUARD_BENCH_DATABASE_URL to run it)")
        return 0
    with scratch_postgres_database(pg_url, "weldguard_bench") as url:
        run("postgresql", url, args.scans, args.iterations, args.raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
