"""Folding the scan records into the daily rollup (``scan_day_count``, see
:mod:`weldguard.unlock.rollup_models`), so that the regulators' counts over a long
period read a few rows per day instead of every scan.

What is folded: completed China days, older than ``settle_days`` (2: today and
yesterday stay raw, where the live scans land). A day is folded whole, in one
transaction: its rollup rows are deleted and rebuilt by one ``INSERT … SELECT …
GROUP BY`` over the day's index range, and the day is entered in
``scan_rollup_day``. Folding is therefore idempotent, and a day can be folded again
at any time; the readers (:mod:`weldguard.unlock.records`) take the days listed
there from the rollup and everything else from ``scan_record``.

When a day is folded again:

- a scan arrives late for a folded day (a server clock set wrong, a bulk load):
  every run looks at the scans with an id above ``checked_id`` (a primary-key
  range: the last half hour or so) and folds their days again when the day's
  count no longer matches (scan records are never changed or deleted).
  ``checked_id`` trails the highest id by at least ``LATE_MARGIN`` (15 min): an id
  is drawn before its transaction commits, so a scan whose transaction commits
  within that margin of drawing it is never missed. The first run starts the check
  at the highest id it sees. Anything slower (a long import transaction, one open
  across the first run) is caught by ``weldguard scans rollup --verify``, which
  recounts every folded day;
- an enterprise changes sector: the raw counts of a sector-limited department
  follow the enterprise's current sector, the rollup the sector noted in
  ``scan_rollup_sector``. Every run folds again, in one transaction, the days
  holding such an enterprise's scans and notes the new sector; meanwhile the
  readers see the mismatch and read raw for sector-limited scopes.

Several processes (every ``serve`` runs this every ``INTERVAL_S``): a run first
claims a lease on the ``scan_rollup_state`` row with a conditional UPDATE (the
others skip their run), and every fold transaction starts by renewing it, which
also locks that row: folds never interleave, even when a lease expired under a
slow run and a second process took over (the loser notices and stops)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    String,
    and_,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from weldguard.clock import local_today
from weldguard.db import insert_unless_taken, transaction, utcnow
from weldguard.enterprise.models import Enterprise
from weldguard.unlock.models import ScanRecord
from weldguard.unlock.records import china_day, local_day_bounds
from weldguard.unlock.rollup_models import (
    ScanDayCount,
    ScanRollupDay,
    ScanRollupSector,
    ScanRollupState,
)

log = logging.getLogger(__name__)

SETTLE_DAYS = 2
INTERVAL_S = 600.0
LEASE = timedelta(minutes=10)
LATE_MARGIN = timedelta(minutes=15)
STATE_ID = 1


class LeaseLost(RuntimeError):
    """Another process holds the rollup now (this one was too slow)."""


@dataclass
class RollupReport:
    folded: list[date] = field(default_factory=list)  # folded for the first time
    refolded: list[date] = field(default_factory=list)  # late scans, sectors, --verify
    sectors: int = 0  # enterprises whose sector changed
    skipped: bool = False  # another process holds the lease


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _day_range(day: date) -> tuple[datetime, datetime]:
    start, end = local_day_bounds(day, day)
    assert start is not None and end is not None
    return start, end


class RollupRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def _day(self) -> Any:
        return china_day(ScanRecord.scanned_at, self._dialect)

    # --- the state row: lease and late-scan watermark -------------------------------
    def ensure_state(self) -> None:
        insert_unless_taken(self.session, ScanRollupState(id=STATE_ID, checked_id=0))

    def claim(self, owner: str, now: datetime, until: datetime) -> bool:
        s = ScanRollupState
        result = self.session.execute(
            update(s)
            .where(
                s.id == STATE_ID,
                or_(s.lease_until.is_(None), s.lease_until < now, s.lease_owner == owner),
            )
            .values(lease_owner=owner, lease_until=until)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0) == 1

    def hold(self, owner: str, until: datetime) -> None:
        """Renews the lease and locks the state row until the transaction ends."""
        s = ScanRollupState
        result = self.session.execute(
            update(s)
            .where(s.id == STATE_ID, s.lease_owner == owner)
            .values(lease_until=until)
            .execution_options(synchronize_session=False)
        )
        if int(getattr(result, "rowcount", 0) or 0) != 1:
            raise LeaseLost(owner)

    def release(self, owner: str) -> None:
        s = ScanRollupState
        self.session.execute(
            update(s)
            .where(s.id == STATE_ID, s.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
            .execution_options(synchronize_session=False)
        )

    def watermark(self) -> tuple[int, int | None, datetime | None]:
        s = ScanRollupState
        row = self.session.execute(
            select(s.checked_id, s.high_id, s.high_at).where(s.id == STATE_ID)
        ).one()
        return int(row[0] or 0), row[1], row[2]

    def set_watermark(self, checked_id: int, high_id: int | None, high_at: datetime | None) -> None:
        s = ScanRollupState
        self.session.execute(
            update(s)
            .where(s.id == STATE_ID)
            .values(checked_id=checked_id, high_id=high_id, high_at=high_at)
            .execution_options(synchronize_session=False)
        )

    # --- what needs folding ---------------------------------------------------------
    def max_scan_id(self) -> int:
        return int(self.session.scalar(select(func.max(ScanRecord.id))) or 0)

    def first_scan_day(self) -> date | None:
        first = self.session.scalar(select(func.min(ScanRecord.scanned_at)))
        return local_today(first) if first is not None else None

    def folded_days(self) -> set[date]:
        return {_as_date(d) for d in self.session.scalars(select(ScanRollupDay.day))}

    def days_with_scans_after(self, scan_id: int, before: datetime) -> set[date]:
        """China days of the scans with an id above ``scan_id`` (a primary-key range:
        the scans since the last runs) that lie before ``before``."""
        day = self._day()
        stmt = select(day).where(ScanRecord.id > scan_id, ScanRecord.scanned_at < before).distinct()
        return {_as_date(d) for d in self.session.scalars(stmt)}

    def day_count(self, day: date) -> int:
        start, end = _day_range(day)
        stmt = select(func.count()).where(
            ScanRecord.scanned_at >= start, ScanRecord.scanned_at < end
        )
        return int(self.session.scalar(stmt) or 0)

    def scan_days_of(self, enterprise_id: int) -> set[date]:
        day = self._day()
        stmt = select(day).where(ScanRecord.enterprise_id == enterprise_id).distinct()
        return {_as_date(d) for d in self.session.scalars(stmt)}

    def raw_day_counts(self, before: datetime) -> dict[date, int]:
        """Scans per China day before ``before``: the whole table (``--verify``)."""
        day = self._day()
        stmt = select(day, func.count()).where(ScanRecord.scanned_at < before).group_by(day)
        return {_as_date(d): int(n) for d, n in self.session.execute(stmt).all()}

    def folded_counts(self) -> dict[date, int]:
        stmt = select(ScanRollupDay.day, ScanRollupDay.scans)
        return {_as_date(d): int(n) for d, n in self.session.execute(stmt).all()}

    def changed_sectors(self) -> list[int]:
        """Enterprises whose sector is no longer the one their scans are counted under."""
        t = ScanRollupSector
        stmt = (
            select(t.enterprise_id)
            .join(Enterprise, Enterprise.id == t.enterprise_id)
            .where(Enterprise.sector != t.sector)
            .order_by(t.enterprise_id)
        )
        return list(self.session.scalars(stmt))

    def note_current_sector(self, enterprise_id: int) -> None:
        t = ScanRollupSector
        current = select(Enterprise.sector).where(Enterprise.id == enterprise_id).scalar_subquery()
        self.session.execute(
            update(t)
            .where(t.enterprise_id == enterprise_id)
            .values(sector=current)
            .execution_options(synchronize_session=False)
        )

    # --- folding ----------------------------------------------------------------------
    def fold_day(self, day: date, now: datetime) -> int:
        """Rebuilds the day's rollup rows from its scans; returns how many scans."""
        s, t, d = ScanRecord, ScanRollupSector, ScanDayCount
        start, end = _day_range(day)
        in_day = and_(s.scanned_at >= start, s.scanned_at < end)
        # Enterprises seen for the first time are counted under their sector as of
        # now; from then on under the noted one (see changed_sectors).
        seen = select(s.enterprise_id).where(in_day, s.enterprise_id.is_not(None))
        new = select(Enterprise.id, Enterprise.sector).where(
            Enterprise.id.in_(seen), Enterprise.id.not_in(select(t.enterprise_id))
        )
        self.session.execute(insert(t).from_select(["enterprise_id", "sector"], new))
        self.session.execute(delete(d).where(d.day == day))
        # The same text the raw reason filter and decoding read (records.py).
        codes = func.coalesce(cast(s.reason_codes, String), "")
        area = func.coalesce(s.area_path, "")
        sector = func.coalesce(t.sector, "")
        rows = (
            select(literal(day, Date), area, sector, s.outcome, codes, func.count())
            .select_from(s)
            .outerjoin(t, t.enterprise_id == s.enterprise_id)
            .where(in_day)
            .group_by(area, sector, s.outcome, codes)
        )
        self.session.execute(
            insert(d).from_select(
                ["day", "area_path", "sector", "outcome", "reason_codes", "count"], rows
            )
        )
        scans = int(
            self.session.scalar(select(func.coalesce(func.sum(d.count), 0)).where(d.day == day))
            or 0
        )
        self.session.execute(delete(ScanRollupDay).where(ScanRollupDay.day == day))
        self.session.execute(insert(ScanRollupDay).values(day=day, scans=scans, folded_at=now))
        return scans


def _owner() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class ScanRollup:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        settle_days: int = SETTLE_DAYS,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
    ) -> None:
        self.session_factory = session_factory
        self.settle_days = max(1, settle_days)
        self.interval_s = interval_s
        self.clock = clock
        self.owner = owner or _owner()
        self.runs = 0
        self.errors = 0

    async def run(self) -> None:
        """At once (the start of ``serve``), then every ``interval_s`` until
        cancelled; a failed run is logged and the next one runs on time."""
        loop = asyncio.get_running_loop()
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan-rollup")
        try:
            while True:
                try:
                    report = await loop.run_in_executor(executor, self.run_once)
                    if report.folded or report.refolded:
                        log.info(
                            "scan rollup: %d day(s) folded, %d folded again",
                            len(report.folded),
                            len(report.refolded),
                        )
                except asyncio.CancelledError:
                    raise
                except LeaseLost:
                    log.warning("scan rollup: another process took over")
                except Exception:
                    self.errors += 1
                    log.exception("scan rollup: run failed")
                await asyncio.sleep(self.interval_s)
        finally:
            with contextlib.suppress(Exception):
                executor.shutdown(wait=False)

    def run_once(self, now: datetime | None = None, *, verify: bool = False) -> RollupReport:
        """One run (blocking). ``now`` decides which days are complete and when
        the late-scan check moves on (default: the clock; the lease always follows
        the clock). ``verify``: also recount every folded day against the raw
        table (a full read of it) and fold again those that differ."""
        now = now or self.clock()
        report = RollupReport()
        with transaction(self.session_factory) as session:
            repo = RollupRepository(session)
            repo.ensure_state()
            wall = self.clock()
            if not repo.claim(self.owner, wall, wall + LEASE):
                report.skipped = True
                return report
        try:
            self._run(now, verify, report)
        finally:
            with transaction(self.session_factory) as session:
                RollupRepository(session).release(self.owner)
        self.runs += 1
        return report

    def _run(self, now: datetime, verify: bool, report: RollupReport) -> None:
        last = local_today(now) - timedelta(days=self.settle_days)
        _, fold_before = local_day_bounds(None, last)
        assert fold_before is not None
        with self.session_factory() as session:
            repo = RollupRepository(session)
            checked_id, high_id, high_at = repo.watermark()
            # Read before anything is folded: every scan with a higher id is checked
            # again by a later run.
            top = repo.max_scan_id()
            counts = repo.folded_counts()
            folded = set(counts)
            first = repo.first_scan_day()
            unfolded: set[date] = set()
            if first is not None and first <= last:
                unfolded = {first + timedelta(days=i) for i in range((last - first).days + 1)}
                unfolded -= folded
            late: set[date] = set()
            if folded and high_id is not None:
                # Scan records are never changed or deleted: a day whose count
                # still matches has every scan it had when it was folded.
                candidates = repo.days_with_scans_after(checked_id, fold_before) & folded
                late = {day for day in candidates if repo.day_count(day) != counts[day]}
            if verify:
                raw = repo.raw_day_counts(fold_before)
                late |= {day for day in folded if raw.get(day, 0) != counts[day]}
                unfolded |= set(raw) - folded
            changed = repo.changed_sectors()

        for enterprise_id in changed:
            with transaction(self.session_factory) as session:
                repo = RollupRepository(session)
                repo.hold(self.owner, self.clock() + LEASE)
                repo.note_current_sector(enterprise_id)
                # In the same transaction, so that the readers never see the new
                # sector noted over days still counted under the old one.
                days = sorted(repo.scan_days_of(enterprise_id) & repo.folded_days())
                for day in days:
                    repo.fold_day(day, now)
            report.sectors += 1
            report.refolded.extend(days)
            late -= set(days)

        for day in sorted(unfolded | late):
            with transaction(self.session_factory) as session:
                repo = RollupRepository(session)
                repo.hold(self.owner, self.clock() + LEASE)
                repo.fold_day(day, now)
            (report.folded if day in unfolded else report.refolded).append(day)

        with transaction(self.session_factory) as session:
            repo = RollupRepository(session)
            repo.hold(self.owner, self.clock() + LEASE)
            if high_id is None:
                # The first run read every day whole: only scans from now on need
                # the check.
                repo.set_watermark(top, top, now)
            elif high_at is None or high_at <= now - LATE_MARGIN:
                repo.set_watermark(high_id, top, now)


def fold_all(
    session_factory: sessionmaker[Session],
    now: datetime | None = None,
    *,
    verify: bool = False,
    settle_days: int = SETTLE_DAYS,
) -> RollupReport:
    """One run in the foreground (the CLI, the benchmark)."""
    rollup = ScanRollup(session_factory, settle_days=settle_days)
    return rollup.run_once(now, verify=verify)


def days_text(days: Iterable[date]) -> str:
    days = sorted(days)
    if not days:
        return "无"
    if len(days) == 1:
        return days[0].isoformat()
    return f"{days[0].isoformat()} 至 {days[-1].isoformat()}（{len(days)} 天）"


__all__ = [
    "INTERVAL_S",
    "LATE_MARGIN",
    "LEASE",
    "SETTLE_DAYS",
    "LeaseLost",
    "RollupReport",
    "RollupRepository",
    "ScanRollup",
    "days_text",
    "fold_all",
]
