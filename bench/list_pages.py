"""Benchmark: list pages over 100,000 machines (target p95 ≤ 100 ms).

    .venv/bin/python bench/list_pages.py [--machines 100000] [--iterations 200]

Always runs on a fresh SQLite file in a temporary directory. Runs on PostgreSQL
too when WELDGUARD_BENCH_DATABASE_URL is set explicitly (e.g.
postgresql://postgres@127.0.0.1:5432/test): like bench/import_enterprises.py it
creates a private database next to the one named and drops it afterwards, so a
database that tests share is never wiped under them.

Data: ~5,000 enterprises over the demo places, 100,000 machines, ~75,000 chips
each in an open binding, live state for 9 in 10 of them (about half online),
bulk-inserted (not through the services). Then, for a
district regulator (长宁区), a city regulator (郑州市), the admin and one
enterprise, it times MachineRepository.search (page 1, page 50, a text query, a
status filter), the machine list with live state (DeviceViewRepository.machine_page,
unfiltered, online, no chip), EnterpriseRepository.search, and the HTTP list pages GET
/machines and /api/v1/machines (each skipped with a message if it answers 404).
Prints p50 / p95 / max in milliseconds; ✗ marks a p95 above the target.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session

from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.auth.service import AuthService, NewUser
from weldguard.config import Settings
from weldguard.db import make_engine, make_session_factory, scratch_postgres_database, transaction
from weldguard.device.models import DeviceState
from weldguard.device.views_repository import DeviceViewRepository, LiveFilter
from weldguard.domain.ids import make_credit_code
from weldguard.enterprise.models import Enterprise
from weldguard.enterprise.repository import EnterpriseFilter, EnterpriseRepository
from weldguard.jurisdiction.models import Jurisdiction, Level
from weldguard.machine.models import Chip, ChipBinding, Machine, MachineStatus
from weldguard.machine.repository import MachineFilter, MachineRepository
from weldguard.migrate import upgrade
from weldguard.seed.reference import load_reference

TARGET_MS = 100.0
# The clock of the live-state cases (the loaded data's "now").
LIVE_NOW = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
PAGE_SIZE = 20
BATCH = 5_000
PASSWORD = "bench-password"
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SECTORS = ("工贸", "工贸", "工贸", "施工工地", "施工工地", "危化", "科研机构", "电力", "航空航天")
CROWDED = ("医院", "养老院", "学校", "商场（市场）", "宾馆饭店", "休闲娱乐场所", "其他人员密集场所")
MODELS = (
    ("瑞凌", "ZX7-400", "manual_arc", 400),
    ("佳士", "NB-350", "mig_mag", 350),
    ("奥太", "WSM-315", "tig", 315),
    ("时代", "LGK-100", "plasma_cutting", 100),
    ("林肯", "DN-100", "resistance", 260),
    ("松下", "YD-350GR", "mig_mag", 350),
    ("米勒", "XMT 350", "mig_mag", 350),
    ("伊萨", "Warrior 400i", "mig_mag", 400),
)


def _code(n: int) -> str:
    digits = []
    for _ in range(8):
        n, r = divmod(n, 32)
        digits.append(CODE_ALPHABET[r])
    return "WG" + "".join(reversed(digits))


def _batches(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), BATCH):
        yield rows[start : start + BATCH]


@dataclass
class Loaded:
    big_enterprise_id: int
    seconds: float


def load(session: Session, machines: int, rng: random.Random) -> Loaded:
    started = time.perf_counter()
    nodes = load_reference(session)
    leaves = [
        n
        for n in nodes.values()
        if n.level == Level.STREET or (n.level == Level.DISTRICT and n.code.startswith("4101"))
    ]
    now = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    enterprise_count = max(50, machines // 20)
    rows: list[dict[str, Any]] = []
    for n in range(enterprise_count):
        node: Jurisdiction = leaves[n % len(leaves)]
        crowded = n % 6 == 0
        rows.append(
            {
                "credit_code": make_credit_code(f"91{node.code[:6]}{n:09d}"),
                "name": f"基准测试焊接企业{n:05d}有限公司",
                "sector": "人员密集场所" if crowded else SECTORS[n % len(SECTORS)],
                "crowded_subtype": CROWDED[n % len(CROWDED)] if crowded else None,
                "jurisdiction_id": node.id,
                "area_path": node.path,
                "address": f"{node.full_name}测试路{n}号",
                "legal_rep_name": "张三",
                "legal_rep_phone": "13800138000",
                "contact_phone": "021-62512345",
                "production_status": "在产",
                "involves_welding": True,
                "mobile_work": n % 9 == 0,
                "declared_machine_count": 20,
                "declared_welder_count": 25,
                "created_at": now,
                "updated_at": now,
            }
        )
    for batch in _batches(rows):
        session.execute(insert(Enterprise), batch)
    enterprise_ids = list(session.scalars(select(Enterprise.id).order_by(Enterprise.id)))
    # Skewed sizes: a few big fleets, many small ones. The first enterprise is big.
    weights = [50.0 if i == 0 else rng.paretovariate(1.5) for i in range(len(enterprise_ids))]
    owners = rng.choices(enterprise_ids, weights, k=machines)

    machine_rows: list[dict[str, Any]] = []
    for n, owner in enumerate(owners):
        make, model, process, rated = MODELS[n % len(MODELS)]
        roll = rng.random()
        status = (
            MachineStatus.CHIP_FITTED
            if roll < 0.75
            else MachineStatus.RETIRED
            if roll < 0.77
            else MachineStatus.REGISTERED
        )
        machine_rows.append(
            {
                "code": _code(n * 7919 + 12345),
                "serial_number": f"SN{2019 + n % 7}{n:08d}",
                "make": make,
                "model": model,
                "process": process,
                "rated_current_a": rated,
                "enterprise_id": owner,
                "site_id": None,
                "status": status.value,
                "registered_at": now - timedelta(days=n % 900),
                "retired_at": now if status is MachineStatus.RETIRED else None,
            }
        )
    for batch in _batches(machine_rows):
        session.execute(insert(Machine), batch)
    fitted = list(
        session.scalars(select(Machine.id).where(Machine.status == MachineStatus.CHIP_FITTED.value))
    )
    chip_rows = [
        {
            "device_id": f"WGC{i:07d}",
            "imei": f"86{i:013d}",
            "iccid": f"8986{i:016d}",
            "firmware": "1.0.0",
            "registered_at": now,
        }
        for i in range(len(fitted))
    ]
    for batch in _batches(chip_rows):
        session.execute(insert(Chip), batch)
    chip_ids = list(session.scalars(select(Chip.id).order_by(Chip.id)))
    binding_rows = [
        {
            "machine_id": machine_id,
            "chip_id": chip_id,
            "fitted_at": now - timedelta(days=i % 365),
            "fitted_by_name": "安装员",
        }
        for i, (machine_id, chip_id) in enumerate(zip(fitted, chip_ids, strict=True))
    ]
    for batch in _batches(binding_rows):
        session.execute(insert(ChipBinding), batch)
    # Live state of the chips that ever reported (9 in 10), about half online.
    state_rows = [
        {
            "device_id": f"WGC{i:07d}",
            "online": i % 2 == 0,
            "last_seen_at": now - timedelta(seconds=30 if i % 2 == 0 else 3600 * (i % 48)),
            "lock_state": "unlocked" if i % 7 == 0 else "locked",
            "last_seq": i,
            "boot_count": 1,
            "rssi": -60 - i % 50,
            "arc_on": i % 14 == 0,
            "offline_deadline": now + timedelta(minutes=2) if i % 2 == 0 else None,
        }
        for i in range(len(fitted))
        if i % 10
    ]
    for batch in _batches(state_rows):
        session.execute(insert(DeviceState), batch)
    return Loaded(big_enterprise_id=enterprise_ids[0], seconds=time.perf_counter() - started)


def analyze(engine: Engine) -> None:
    """Fresh statistics (and, on PostgreSQL, the visibility map that index-only
    scans need), as autovacuum would have made them on a live system."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


# --- timing ---------------------------------------------------------------------


def measure(fn: Callable[[], object], iterations: int) -> list[float]:
    fn()  # warm-up: statement caches, connection pool
    times = []
    for _ in range(iterations):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def report(label: str, name: str, times: list[float]) -> None:
    times = sorted(times)
    p50 = statistics.median(times)
    p95 = times[max(0, int(len(times) * 0.95) - 1)]
    flag = "✗" if p95 > TARGET_MS else " "
    print(
        f"{label:<10} {name:<44} p50 {p50:7.1f}  p95 {p95:7.1f}  max {max(times):7.1f} ms {flag}",
        flush=True,
    )


@contextmanager
def session_of(factory: Any) -> Iterator[Session]:
    session: Session = factory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


def run(label: str, url: str, machines: int, iterations: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        loaded = load(session, machines, random.Random(2026))
    analyze(engine)
    print(f"{label:<10} loaded {machines} machines in {loaded.seconds:.1f} s", flush=True)

    scopes = {
        "district": Scope(role=Role.REGULATOR, user_id=0, area_path="310000/310100/310105/"),
        "city": Scope(role=Role.REGULATOR, user_id=0, area_path="410000/410100/"),
        "admin": Scope(role=Role.ADMIN, user_id=0, everything=True),
        "enterprise": Scope(
            role=Role.ENTERPRISE_ADMIN, user_id=0, enterprise_id=loaded.big_enterprise_id
        ),
    }
    queries: dict[str, Callable[[Session, Scope], object]] = {
        "machines page 1": lambda s, sc: MachineRepository(s).search(
            sc, MachineFilter(), 1, PAGE_SIZE
        ),
        "machines page 50": lambda s, sc: MachineRepository(s).search(
            sc, MachineFilter(), 50, PAGE_SIZE
        ),
        "machines q=ZX7 (text query)": lambda s, sc: MachineRepository(s).search(
            sc, MachineFilter(q="ZX7"), 1, PAGE_SIZE
        ),
        "machines q=WG00A (rare code)": lambda s, sc: MachineRepository(s).search(
            sc, MachineFilter(q="WG00A"), 1, PAGE_SIZE
        ),
        "machines status=registered": lambda s, sc: MachineRepository(s).search(
            sc, MachineFilter(status=MachineStatus.REGISTERED.value), 1, PAGE_SIZE
        ),
        # The machine list page's query: machines with enterprise, current chip
        # and live state in one joined statement (plus the capped count).
        "machines live page 1": lambda s, sc: DeviceViewRepository(s).machine_page(
            sc, MachineFilter(), None, LIVE_NOW, 1, PAGE_SIZE
        ),
        "machines live=online": lambda s, sc: DeviceViewRepository(s).machine_page(
            sc, MachineFilter(), LiveFilter.ONLINE, LIVE_NOW, 1, PAGE_SIZE
        ),
        "machines live=no_chip": lambda s, sc: DeviceViewRepository(s).machine_page(
            sc, MachineFilter(), LiveFilter.NO_CHIP, LIVE_NOW, 1, PAGE_SIZE
        ),
        "enterprises page 1": lambda s, sc: EnterpriseRepository(s).search(
            sc, EnterpriseFilter(), 1, PAGE_SIZE
        ),
    }
    for scope_name, scope in scopes.items():
        for query_name, query in queries.items():
            with session_of(factory) as session:
                times = measure(partial(query, session, scope), iterations)
            report(label, f"{scope_name}: {query_name}", times)

    http(label, url, loaded, iterations)
    engine.dispose()


def http(label: str, url: str, loaded: Loaded, iterations: int) -> None:
    from fastapi.testclient import TestClient

    from weldguard.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            database_url=url,
            secret_key="bench-secret-key-not-for-production",
            argon2_time_cost=1,
            argon2_memory_kib=64,
        )
        engine = make_engine(url)
        factory = make_session_factory(engine)
        with transaction(factory) as session:
            credit_code = session.scalar(
                select(Enterprise.credit_code).where(Enterprise.id == loaded.big_enterprise_id)
            )
            auth = AuthService(session, settings)
            for new in (
                NewUser("b_district", PASSWORD, "regulator", jurisdiction_code="310105",
                        department="应急"),
                NewUser("b_city", PASSWORD, "regulator", jurisdiction_code="410100",
                        department="应急"),
                NewUser("b_admin", PASSWORD, "admin"),
                NewUser("b_enterprise", PASSWORD, "enterprise_admin",
                        enterprise_credit_code=credit_code),
            ):  # fmt: skip
                auth.create_user(new)
        engine.dispose()

        with TestClient(create_app(settings)) as client:
            headers = {}
            for who in ("district", "city", "admin", "enterprise"):
                response = client.post(
                    "/api/v1/auth/token", json={"username": f"b_{who}", "password": PASSWORD}
                )
                response.raise_for_status()
                headers[who] = {"Authorization": f"Bearer {response.json()['access_token']}"}
            for path in ("/machines", "/api/v1/machines", "/enterprises", "/api/v1/enterprises"):
                probe = client.get(path, headers=headers["admin"])
                if probe.status_code == 404:
                    print(f"{label:<10} GET {path}: skipped (404, not built yet)")
                    continue
                if probe.status_code != 200:
                    print(f"{label:<10} GET {path}: skipped (HTTP {probe.status_code})")
                    continue
                for who, h in headers.items():

                    def get(p: str = path, h: dict[str, str] = h) -> None:
                        r = client.get(p, headers=h)
                        assert r.status_code == 200, r.status_code

                    report(label, f"{who}: GET {path}", measure(get, iterations))


def with_private_postgres(base_url: str, body: Callable[[str], None]) -> None:
    with scratch_postgres_database(base_url, "weldguard_bench") as url:
        body(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--machines", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    if not args.skip_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            run("sqlite", f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", args.machines,
                args.iterations)  # fmt: skip
    pg_url = os.environ.get("WELDGUARD_BENCH_DATABASE_URL")
    if not pg_url:
        print(
            "postgresql: skipped (set WELDGUARD_BENCH_DATABASE_URL, e.g. "
            "postgresql://postgres@127.0.0.1:5432/test, to run it)"
        )
        return 0
    with_private_postgres(
        pg_url, lambda url: run("postgresql", url, args.machines, args.iterations)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
