"""The session supervisor: ends work sessions whose time is up or that went idle
(and locks their machines), settles unlocks that never got an answer, and warns
about sessions on for more than a day. The rules are ``domain/work_sessions.py``.

Every ``interval_s`` (5 s), on a database thread of its own:

1. read the open sessions some rule may apply to (a superset, by SQL on the status
   index), each with the status of its unlock command;
2. let :func:`~weldguard.domain.work_sessions.supervise` decide for each;
3. claim each decision with a conditional UPDATE in a transaction of its own, the
   way the command dispatcher claims publishes (healthchecks style): the UPDATE
   names the status (and, for idle, the last arc) it read, so when another
   supervisor, the welder's 结束作业 or a fresh arc got there first it changes
   nothing and the decision is dropped. Only the winner queues the lock command, in
   the same transaction, so several supervisors (in one process or many) never end
   a session twice or send two locks;
4. after the commits, wake the dispatchers of this process (``on_locked``) so the
   lock goes out at once; other processes' dispatchers find it at their next poll.

The lock is queued with the longest lifetime a command may have (10 min): a chip
that is briefly offline still gets it. (The chip also locks itself at the unlock's
``until``, which is the session's ``valid_until``.)

A ``starting`` session past the unlock command's lifetime whose unlock the chip
acknowledged after all becomes ``active`` (the acknowledgement path missed it);
otherwise ``failed`` (``failure = "unlock_not_acknowledged"``): the chip can no
longer execute that unlock, so no lock is needed.

The long-session warning is a device alarm of kind ``long_session`` (severity
warning), raised through ``AlarmRepository.upsert_open`` (one open alarm per device
and kind) once per session (``long_running_warned``, claimed the same way), and
cleared once the device has no open session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, exists, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from weldguard.config import Settings
from weldguard.db import transaction, utcnow
from weldguard.device.alarms import AlarmRepository, AlarmUpsert
from weldguard.device.commands import (
    MAX_TTL_S,
    CommandRepository,
    CommandService,
    from_ms,
    to_ms,
)
from weldguard.device.dispatcher import wake_local_dispatchers
from weldguard.device.models import (
    AlarmKind,
    AlarmSeverity,
    CommandStatus,
    DeviceAlarm,
    DeviceCommand,
    DeviceState,
)
from weldguard.device.registry import DeviceSecrets
from weldguard.domain.work_sessions import (
    MS_PER_HOUR,
    MS_PER_MINUTE,
    EndReason,
    OpenSession,
    SessionPolicy,
    Verdict,
    supervise,
)
from weldguard.enterprise.models import Enterprise
from weldguard.errors import Conflict, InvalidInput, NotFound
from weldguard.machine.models import Chip, ChipBinding, Machine
from weldguard.unlock.models import SessionStatus, WorkSession

log = logging.getLogger(__name__)

UNLOCK_NOT_ACKNOWLEDGED = "unlock_not_acknowledged"
# What the chip is told in the lock's ``reason`` (it echoes it in its ``locked``).
LOCK_REASONS = {EndReason.TIME_LIMIT: "time_limit", EndReason.IDLE: "idle"}
STRAY_LOCK_EVERY = timedelta(minutes=1)
_OPEN = (SessionStatus.STARTING.value, SessionStatus.ACTIVE.value)
_ALARMS = cast(Table, DeviceAlarm.__table__)


def policy_from_settings(settings: Settings) -> SessionPolicy:
    return SessionPolicy(
        idle_ms=settings.session_idle_minutes * MS_PER_MINUTE,
        long_ms=settings.session_long_hours * MS_PER_HOUR,
        unlock_timeout_ms=settings.unlock_command_ttl_s * 1000,
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    """An open session as read, with what the decision and the claim need."""

    id: str
    device_id: str
    machine_id: int
    enterprise_id: int
    jurisdiction_id: int | None
    facts: OpenSession
    unlock_acked_ms: int | None  # when the chip acknowledged the unlock, if it did
    # Exactly as read (the claim compares them; milliseconds would lose precision).
    read_last_arc: datetime | None = None
    read_valid_until: datetime | None = None


@dataclass
class CycleReport:
    ended: dict[str, int] = field(default_factory=dict)  # end reason → sessions
    failed: int = 0
    activated: int = 0
    warned: int = 0
    cleared_warnings: int = 0
    lost_claims: int = 0
    locks: list[str] = field(default_factory=list)  # lock command ids queued

    @property
    def changed(self) -> int:
        return sum(self.ended.values()) + self.failed + self.activated + self.warned


class SessionSupervisor:
    def __init__(
        self,
        *,
        session_factory: sessionmaker[Session],
        device_secrets: DeviceSecrets,
        policy: SessionPolicy | None = None,
        interval_s: float = 5.0,
        batch_size: int = 500,
        clock: Callable[[], datetime] = utcnow,
        on_locked: Callable[[], None] = wake_local_dispatchers,
    ) -> None:
        self.session_factory = session_factory
        self.device_secrets = device_secrets
        self.policy = policy or SessionPolicy()
        self.interval_s = interval_s
        self.batch_size = batch_size
        self.clock = clock
        self.on_locked = on_locked
        self._executor: ThreadPoolExecutor | None = None
        self.cycles = 0
        self.totals: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    @classmethod
    def from_settings(
        cls, settings: Settings, session_factory: sessionmaker[Session], **kwargs: Any
    ) -> SessionSupervisor:
        return cls(
            session_factory=session_factory,
            device_secrets=DeviceSecrets(settings.resolved_secret_key()),
            policy=policy_from_settings(settings),
            interval_s=settings.session_supervisor_interval_s,
            **kwargs,
        )

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Runs until cancelled; a failed cycle (the database away, a bug) is logged
        and the next one runs on time."""
        loop = asyncio.get_running_loop()
        # One thread: cycles never overlap.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sessions-db")
        try:
            while True:
                try:
                    await loop.run_in_executor(self._executor, self.run_once)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.errors[type(exc).__name__] += 1
                    log.exception("sessions: supervisor cycle failed")
                await asyncio.sleep(self.interval_s)
        finally:
            with contextlib.suppress(Exception):
                self._executor.shutdown(wait=False)

    def run_once(self, now: datetime | None = None) -> CycleReport:
        """One cycle (blocking; tests call it directly)."""
        now = now or self.clock()
        report = CycleReport()
        now_ms = to_ms(now)
        for candidate in self.candidates(now):
            verdict = supervise(
                candidate.facts,
                now_ms,
                self.policy,
                unlock_acked=candidate.unlock_acked_ms is not None,
            )
            if verdict.nothing:
                continue
            try:
                self._apply(candidate, verdict, now, report)
            except Exception as exc:
                # One session's trouble must not stop the others.
                self.errors[type(exc).__name__] += 1
                log.exception("sessions: session %s: %s failed", candidate.id, verdict)
        report.cleared_warnings = self._clear_warnings(now)
        try:
            report.locks.extend(self.lock_strays(now))
        except Exception as exc:
            self.errors[type(exc).__name__] += 1
            log.exception("sessions: locking stray unlocked chips failed")
        self.cycles += 1
        for reason, n in report.ended.items():
            self.totals[f"ended_{reason}"] += n
        self.totals["failed"] += report.failed
        self.totals["activated"] += report.activated
        self.totals["warned"] += report.warned
        self.totals["lost_claims"] += report.lost_claims
        if report.locks:
            self.on_locked()
        return report

    def lock_strays(self, now: datetime) -> list[str]:
        """Chips that say they are unlocked with no open session behind them: an ack
        that came after the scan page gave up, or a lock that never arrived. They
        get a lock, at most one every STRAY_LOCK_EVERY per chip (a chip that keeps
        refusing must not flood its queue; the alarms show it meanwhile)."""
        open_sessions = select(WorkSession.device_id).where(
            WorkSession.status.in_([SessionStatus.STARTING.value, SessionStatus.ACTIVE.value])
        )
        recent_locks = select(DeviceCommand.device_id).where(
            DeviceCommand.cmd == "lock", DeviceCommand.created_at > now - STRAY_LOCK_EVERY
        )
        locks = []
        with self.session_factory() as session:
            rows = session.execute(
                select(Machine, DeviceState.device_id)
                .join(ChipBinding, ChipBinding.machine_id == Machine.id)
                .join(Chip, Chip.id == ChipBinding.chip_id)
                .join(DeviceState, DeviceState.device_id == Chip.device_id)
                .where(
                    ChipBinding.removed_at.is_(None),
                    DeviceState.online.is_(True),
                    DeviceState.lock_state == "unlocked",
                    DeviceState.device_id.not_in(open_sessions),
                    DeviceState.device_id.not_in(recent_locks),
                )
                .limit(self.batch_size)
            ).all()
            for machine, device_id in rows:
                try:
                    command = CommandService(session, self.device_secrets).issue(
                        machine,
                        "lock",
                        {"reason": "no_session"},
                        now=now,
                        ttl_s=MAX_TTL_S,
                        reason="no_session",
                    )
                except (Conflict, InvalidInput, NotFound) as exc:
                    log.warning("sessions: cannot lock stray chip %s: %s", device_id, exc)
                    continue
                locks.append(command.id)
            session.commit()
        if locks:
            log.info("sessions: locking %d chip(s) unlocked without a session", len(locks))
            self.totals["stray_locks"] += len(locks)
        return locks

    # ------------------------------------------------------------------ reading

    def candidates(self, now: datetime) -> list[Candidate]:
        """Open sessions some rule may apply to now (a superset; the domain decides)."""
        p = self.policy
        w = WorkSession
        idle_before = now - timedelta(milliseconds=p.idle_ms)
        long_before = now - timedelta(milliseconds=p.long_ms)
        unlock_before = now - timedelta(milliseconds=p.unlock_timeout_ms)
        active = w.status == SessionStatus.ACTIVE.value
        stmt = (
            select(
                w.id,
                w.device_id,
                w.machine_id,
                w.enterprise_id,
                Enterprise.jurisdiction_id,
                w.status,
                w.started_at,
                w.unlocked_at,
                w.valid_until,
                w.last_arc_at,
                w.long_running_warned,
                DeviceCommand.status,
                DeviceCommand.finished_at,
            )
            .join(Enterprise, Enterprise.id == w.enterprise_id)
            .outerjoin(DeviceCommand, DeviceCommand.id == w.unlock_command_id)
            .where(
                or_(
                    and_(w.status == SessionStatus.STARTING.value, w.started_at <= unlock_before),
                    and_(active, w.valid_until <= now),
                    and_(
                        active,
                        or_(w.last_arc_at.is_(None), w.last_arc_at <= idle_before),
                        or_(w.unlocked_at.is_(None), w.unlocked_at <= idle_before),
                        w.started_at <= idle_before,
                    ),
                    and_(
                        active,
                        w.long_running_warned.is_(False),
                        w.started_at < long_before,
                    ),
                )
            )
            .order_by(w.started_at)
            .limit(self.batch_size)
        )
        out = []
        with self.session_factory() as session:
            for row in session.execute(stmt):
                (
                    session_id,
                    device_id,
                    machine_id,
                    enterprise_id,
                    jurisdiction_id,
                    status,
                    started,
                    unlocked,
                    valid_until,
                    last_arc,
                    warned,
                    command_status,
                    command_finished,
                ) = row
                acked = command_status == CommandStatus.ACKED.value
                out.append(
                    Candidate(
                        session_id,
                        device_id,
                        machine_id,
                        enterprise_id,
                        jurisdiction_id,
                        OpenSession(
                            status=status,
                            started_ms=to_ms(started),
                            valid_until_ms=to_ms(valid_until),
                            unlocked_ms=None if unlocked is None else to_ms(unlocked),
                            last_arc_ms=None if last_arc is None else to_ms(last_arc),
                            long_running_warned=bool(warned),
                        ),
                        (to_ms(command_finished or started) if acked else None),
                        last_arc,
                        valid_until,
                    )
                )
        return out

    # ------------------------------------------------------------------ claiming

    def _apply(
        self, candidate: Candidate, verdict: Verdict, now: datetime, report: CycleReport
    ) -> None:
        if verdict.end is not None:
            lock_id = self._end(candidate, verdict.end, now)
            if lock_id is None:
                report.lost_claims += 1
            else:
                report.ended[verdict.end.value] = report.ended.get(verdict.end.value, 0) + 1
                if lock_id:
                    report.locks.append(lock_id)
        elif verdict.fail:
            if self._settle_start(candidate, now, activate=False):
                report.failed += 1
            else:
                report.lost_claims += 1
        elif verdict.activate:
            if self._settle_start(candidate, now, activate=True):
                report.activated += 1
            else:
                report.lost_claims += 1
        elif verdict.warn_long:
            if self._warn_long(candidate, now):
                report.warned += 1
            else:
                report.lost_claims += 1

    def _end(self, candidate: Candidate, reason: EndReason, now: datetime) -> str | None:
        """Ends the session and queues the lock; None when the claim was lost, ""
        when it was won but no lock could be queued (no chip any more)."""
        w = WorkSession
        # What the decision read must still hold: a fresh arc written by the ingest
        # sink since, or a changed limit, cancels it.
        last_arc = candidate.read_last_arc
        still = [
            w.last_arc_at.is_(None) if last_arc is None else w.last_arc_at == last_arc,
        ]
        if candidate.read_valid_until is not None:
            still.append(w.valid_until == candidate.read_valid_until)
        with transaction(self.session_factory) as session:
            claim = update(w).where(
                w.id == candidate.id, w.status == SessionStatus.ACTIVE.value, *still
            )
            # The chip locks itself at the unlock's ``until`` (= valid_until): that is
            # when a session past its limit ended, however late this cycle runs.
            ended_at = now
            if reason is EndReason.TIME_LIMIT and candidate.read_valid_until is not None:
                ended_at = min(now, candidate.read_valid_until)
            won = session.execute(
                claim.values(
                    status=SessionStatus.ENDED.value, ended_at=ended_at, end_reason=reason.value
                )
                .execution_options(synchronize_session=False)
                .returning(w.unlock_command_id)
            ).one_or_none()
            if won is None:
                return None
            if won[0]:
                # An unlock still on its way (re-sent after the chip restarted, see
                # unlock/reboot.py) would go out before the lock: given up instead.
                CommandRepository(session).expire_now(won[0], now)
            lock_id = self._queue_lock(session, candidate, reason, now)
            if lock_id:
                session.execute(
                    update(w)
                    .where(w.id == candidate.id)
                    .values(lock_command_id=lock_id)
                    .execution_options(synchronize_session=False)
                )
        log.info("sessions: %s ended (%s)", candidate.id, reason.value)
        return lock_id

    def _queue_lock(
        self, session: Session, candidate: Candidate, reason: EndReason, now: datetime
    ) -> str:
        machine = session.get(Machine, candidate.machine_id)
        if machine is None:
            return ""
        try:
            command = CommandService(session, self.device_secrets).issue(
                machine,
                "lock",
                {"reason": LOCK_REASONS[reason]},
                now=now,
                ttl_s=MAX_TTL_S,
                reason=candidate.id,
            )
        except (Conflict, InvalidInput, NotFound) as exc:
            # No chip (removed since), retired, no secret: the session still ends.
            log.warning("sessions: no lock for %s: %s", candidate.id, exc)
            return ""
        return command.id

    def _settle_start(self, candidate: Candidate, now: datetime, *, activate: bool) -> bool:
        w = WorkSession
        values: dict[str, Any]
        if activate:
            unlocked_ms = candidate.unlock_acked_ms or to_ms(now)
            values = {"status": SessionStatus.ACTIVE.value, "unlocked_at": from_ms(unlocked_ms)}
        else:
            values = {
                "status": SessionStatus.FAILED.value,
                "failure": UNLOCK_NOT_ACKNOWLEDGED,
                "ended_at": now,
            }
        with transaction(self.session_factory) as session:
            won = session.execute(
                update(w)
                .where(w.id == candidate.id, w.status == SessionStatus.STARTING.value)
                .values(**values)
                .execution_options(synchronize_session=False)
                .returning(w.unlock_command_id)
            ).one_or_none()
            if won is None:
                return False
            if not activate and won[0]:
                # As the scan flow does: a retry must not unlock the machine later,
                # behind the back of a welder who was told it failed.
                CommandRepository(session).expire_now(won[0], now)
            return True

    def _warn_long(self, candidate: Candidate, now: datetime) -> bool:
        w = WorkSession
        with transaction(self.session_factory) as session:
            won = session.execute(
                update(w)
                .where(
                    w.id == candidate.id,
                    w.status == SessionStatus.ACTIVE.value,
                    w.long_running_warned.is_(False),
                )
                .values(long_running_warned=True)
                .execution_options(synchronize_session=False)
            )
            if getattr(won, "rowcount", 0) != 1:
                return False
            on_ms = candidate.facts.on_since_ms
            now_ms = to_ms(now)
            AlarmRepository(session).upsert_open(
                [
                    AlarmUpsert(
                        device_id=candidate.device_id,
                        kind=AlarmKind.LONG_SESSION.value,
                        severity=AlarmSeverity.WARNING.value,
                        first_ms=now_ms,
                        last_ms=now_ms,
                        count=1,
                        detail={
                            "source": "session",
                            "session_id": candidate.id,
                            "on_since": from_ms(on_ms).isoformat(),
                            "hours": round((now_ms - on_ms) / MS_PER_HOUR, 1),
                        },
                        machine_id=candidate.machine_id,
                        enterprise_id=candidate.enterprise_id,
                        jurisdiction_id=candidate.jurisdiction_id,
                    )
                ]
            )
        log.info(
            "sessions: %s on for more than %d h", candidate.id, self.policy.long_ms // MS_PER_HOUR
        )
        return True

    def _clear_warnings(self, now: datetime) -> int:
        """Clears the long-session alarms of devices without an open session (one
        conditional UPDATE: safe with several supervisors)."""
        w = WorkSession
        open_session = exists().where(w.device_id == _ALARMS.c.device_id, w.status.in_(_OPEN))
        with transaction(self.session_factory) as session:
            result = session.execute(
                update(_ALARMS)
                .where(
                    _ALARMS.c.kind == AlarmKind.LONG_SESSION.value,
                    _ALARMS.c.cleared_at.is_(None),
                    ~open_session,
                )
                .values(cleared_at=now)
            )
            return int(getattr(result, "rowcount", 0) or 0)


__all__ = [
    "LOCK_REASONS",
    "UNLOCK_NOT_ACKNOWLEDGED",
    "Candidate",
    "CycleReport",
    "SessionSupervisor",
    "policy_from_settings",
]
