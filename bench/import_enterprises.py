"""Benchmark: importing 10,000 enterprise rows (target ≤ 5 s per import).

    .venv/bin/python bench/import_enterprises.py [--rows 10000]

Always runs on a fresh SQLite file in a temporary directory. Runs on PostgreSQL
too when WELDGUARD_BENCH_DATABASE_URL is set explicitly (e.g.
postgresql://postgres@127.0.0.1:5432/test): it creates a private database next
to the one named, and drops it afterwards; the named database is not touched.

Three imports per database, each timed from the uploaded bytes to the commit:
1. the file into an empty register (inserts);
2. the same file again (every row matched: "updated", nothing changes);
3. the file with every row's counts changed (real UPDATEs).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook

from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.db import make_engine, make_session_factory, scratch_postgres_database, transaction
from weldguard.domain.ids import make_credit_code
from weldguard.enterprise import importer
from weldguard.enterprise.fields import TEMPLATE_COLUMNS
from weldguard.enterprise.importer import ENTERPRISE_COLUMNS
from weldguard.jurisdiction.models import Level
from weldguard.migrate import upgrade
from weldguard.report.imports import read_table
from weldguard.seed.places import PLACES
from weldguard.seed.reference import load_reference

ADMIN = Scope(role=Role.ADMIN, user_id=0, everything=True)
SECTORS = ("工贸", "危化", "施工工地", "科研机构", "电力", "航空航天")
CROWDED = ("医院", "养老院", "学校", "商场（市场）", "宾馆饭店", "休闲娱乐场所")


def _places() -> list[tuple[str, str, str, str]]:
    """(division code, city, district, street) for every leaf of the demo regions."""
    by_code = {code: (name, level, parent) for code, name, level, parent in PLACES}
    leaves = []
    for code, name, level, parent in PLACES:
        if level == Level.STREET and parent:
            district = by_code[parent]
            leaves.append((parent, by_code[district[2] or ""][0], district[0], name))
        elif level == Level.DISTRICT and parent == "410100":
            leaves.append((code, "郑州市", name, ""))
    return leaves


def make_rows(count: int, bump: int = 0) -> list[list[object]]:
    places = _places()
    rows = []
    for n in range(count):
        division, city, district, street = places[n % len(places)]
        crowded = n % 7 == 0
        rows.append(
            [
                n + 1,
                f"测试焊接企业{n:05d}有限公司",
                make_credit_code(f"91{division}{n:09d}"),
                "人员密集场所" if crowded else SECTORS[n % len(SECTORS)],
                city,
                district,
                street,
                f"{district}{street}测试路{n}号",
                CROWDED[n % len(CROWDED)] if crowded else "",
                "张三",
                f"138{n:08d}",
                "021-62512345",
                "在产",
                "是",
                "否" if n % 3 else "是",
                n % 20 + bump,
                n % 15 + bump,
            ]
        )
    return rows


def make_xlsx(rows: list[list[object]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append([header for _, header in TEMPLATE_COLUMNS])
    for row in rows:
        ws.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


PHASES = ("read_table", "_validate", "_mark_duplicates", "_check_register", "_write", "record_run")
spent: dict[str, float] = {}


def _timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - started

    return wrapper


def instrument() -> None:
    """Times the importer's phases (a bench may peek at private functions)."""
    for name in PHASES:
        setattr(importer, name, _timed(name, getattr(importer, name)))


def run(label: str, url: str, files: list[tuple[str, bytes]], count: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        load_reference(session)
    for name, content in files:
        spent.clear()
        started = time.perf_counter()
        with transaction(factory) as session:
            report = importer.import_enterprises(
                session,
                ADMIN,
                content,
                f"{name}.xlsx",
                partial=False,
                user_id=None,
                now=datetime.now(UTC),
            )
        seconds = time.perf_counter() - started
        assert report.error_count == 0, report.summary_lines(5)
        phases = " ".join(f"{k.strip('_')}={spent.get(k, 0):.2f}" for k in PHASES)
        print(
            f"{label:<10} {name:<22} rows={count:>6}  created={report.created:>6}  "
            f"updated={report.updated:>6}  {seconds:6.2f} s  {count / seconds:8.0f} rows/s"
            f"\n{'':<10} phases (s): {phases} commit+rest="
            f"{seconds - sum(spent.values()):.2f}"
        )
    engine.dispose()


def with_private_postgres(base_url: str, body: Callable[[str], None]) -> None:
    with scratch_postgres_database(base_url, "weldguard_bench") as url:
        body(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    args = parser.parse_args()
    count = args.rows

    started = time.perf_counter()
    first = make_xlsx(make_rows(count))
    changed = make_xlsx(make_rows(count, bump=1))
    print(
        f"generated 2 workbooks of {count} rows ({len(first) / 1e6:.1f} MB each) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    started = time.perf_counter()
    read_table(first, "bench.xlsx", ENTERPRISE_COLUMNS)
    print(f"reading alone: {time.perf_counter() - started:.2f} s")
    instrument()
    files = [("1 insert", first), ("2 same file again", first), ("3 changed counts", changed)]

    with tempfile.TemporaryDirectory() as tmp:
        run("sqlite", f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", files, count)

    pg_url = os.environ.get("WELDGUARD_BENCH_DATABASE_URL")
    if not pg_url:
        print(
            "postgresql: skipped (set WELDGUARD_BENCH_DATABASE_URL, e.g. "
            "postgresql://postgres@127.0.0.1:5432/test, to run it)"
        )
        return 0
    with_private_postgres(pg_url, lambda url: run("postgresql", url, files, count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
