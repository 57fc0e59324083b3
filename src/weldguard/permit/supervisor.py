"""The permit supervisor: applies what the permit rules demand of running permits
(``domain.permits.supervise``) and keeps their alarms (作业票报警).

Every ``interval_s`` (30 s; ``weldguard permits supervise`` or inside ``serve``):

1. read the permits some rule may apply to: those being worked or watched
   (in_progress, suspended, watching), and those prepared or paused whose window
   has ended or that still have an open alarm;
2. for each, in a transaction of its own: claim it (PostgreSQL ``FOR UPDATE SKIP
   LOCKED``: a permit another supervisor or a person's step holds is left to the
   next pass), rebuild it, run ``supervise`` with the continuous monitor's latest
   readings, and apply the ``Expire`` or ``Suspend`` it asks for through
   ``PermitService.apply_rule``, the path of a person's step: the same event log
   (signed 系统, no account), the same header move, and when the permit leaves
   in_progress the same end of its work sessions and signed locks for its
   machines;
3. raise or count the alarm of each condition found, clear the open alarms whose
   condition is gone (the watch checked in, the permit was reinstated, paused or
   ended);
4. clear in one UPDATE the open alarms of permits that left supervision (closed,
   cancelled, expired before work).

One permit's trouble never stops the pass: it is logged and the next permit runs.

Which alarms a permit has after its pass (``alarm_conditions``):

- the reasons ``supervise`` gives, one alarm per kind (the domain's suspension
  causes; their messages joined): in_progress, the pass that suspends it, and
  watching (the watch missing after the work: an alarm without an event);
- suspended: the alarms already open stay open (and are counted) while their
  condition would still stop the work, and clear when it would not; no new kind
  is raised while the work stands still;
- ``permit_expired`` is raised when the expiry stopped work that was under way (a
  permit that expires before any work simply lapses: nothing ran, nothing to
  lock, nothing to handle) and stays open until the post-work watch is over;
- in any other status nothing is open.

The drafts and submitted permits are not supervised although the rules would
expire them: their applicant may still change the dates (a draft whose window
has passed cannot be submitted anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.config import Settings
from weldguard.db import transaction, utcnow
from weldguard.device.dispatcher import wake_local_dispatchers
from weldguard.device.registry import DeviceSecrets
from weldguard.domain.permits import (
    DEFAULT_PERMIT_POLICY,
    Expire,
    MonitorReading,
    Permit,
    PermitPolicy,
    PermitReasonCode,
    PermitStatus,
    Supervision,
    Suspend,
    allowed_from,
    supervise,
)
from weldguard.errors import Conflict
from weldguard.permit.alarm_models import PermitAlarmKind
from weldguard.permit.alarm_repository import MonitorRepository, PermitAlarmRepository, RaisedAlarm
from weldguard.permit.service import PermitService

__all__ = [
    "INTERVAL_S",
    "SUPERVISED_STATUSES",
    "PassReport",
    "PermitSupervisor",
    "alarm_conditions",
    "kind_of_reason",
]

log = logging.getLogger(__name__)

INTERVAL_S = 30.0
MESSAGE_MAX = 2000
LOG_MAX = 300

S = PermitStatus
R = PermitReasonCode
_STARTED = frozenset({S.IN_PROGRESS, S.PAUSED, S.SUSPENDED})

#: What the rules may act on (``allowed_from(Expire)`` less the applicant's own
#: drafts, see the module doc) and the post-work watch.
SUPERVISED_STATUSES = frozenset(
    s.value for s in (allowed_from(Expire) - {S.DRAFT, S.SUBMITTED}) | {S.WATCHING}
)
#: Statuses where a rule can act before the window ends.
_ALWAYS = (S.IN_PROGRESS.value, S.SUSPENDED.value, S.WATCHING.value)

# The platform acts with the whole platform in reach.
_PLATFORM = Scope(role=Role.ADMIN, user_id=0, everything=True)

_KINDS: Mapping[PermitReasonCode, PermitAlarmKind] = {
    R.PERMIT_EXPIRED: PermitAlarmKind.PERMIT_EXPIRED,
    R.FIRE_WATCH_ABSENT: PermitAlarmKind.FIRE_WATCH_ABSENT,
    R.GAS_OVER_LIMIT: PermitAlarmKind.GAS_OVER_LIMIT,
    R.GAS_SAMPLE_MISSING: PermitAlarmKind.GAS_RETEST_DUE,
    R.GAS_SAMPLE_STALE: PermitAlarmKind.GAS_RETEST_DUE,
    R.GAS_RETEST_AFTER_PAUSE: PermitAlarmKind.GAS_RETEST_DUE,
    R.GAS_DAILY_RETEST: PermitAlarmKind.GAS_RETEST_DUE,
    R.MONITOR_MISSING: PermitAlarmKind.MONITOR_FAILED,
    R.MONITOR_STALE: PermitAlarmKind.MONITOR_FAILED,
    R.MONITOR_OVER_LIMIT: PermitAlarmKind.MONITOR_FAILED,
    R.CROWDED_OPENING_HOURS: PermitAlarmKind.OPENING_HOURS,
    R.CROWDED_HOURS_UNKNOWN: PermitAlarmKind.OPENING_HOURS,
}


def kind_of_reason(code: PermitReasonCode) -> PermitAlarmKind | None:
    """The alarm kind of a reason ``supervise`` gives (the domain's grouping of
    reasons into suspension causes); None for a reason that is no alarm."""
    return _KINDS.get(code)


@dataclass(frozen=True)
class Conditions:
    """The alarms of a permit after a pass: ``seen`` (kind → message) are raised
    or counted, ``kept`` stay as they are, every other open one is cleared."""

    seen: Mapping[str, str]
    kept: frozenset[str] = frozenset()


def _by_kind(supervision: Supervision, only: Iterable[str] | None = None) -> dict[str, str]:
    wanted = None if only is None else set(only)
    messages: dict[str, list[str]] = {}
    for reason in supervision.reasons:
        kind = kind_of_reason(reason.code)
        if kind is None:
            log.warning("permits: reason %s has no alarm kind", reason.code)
            continue
        if wanted is None or kind.value in wanted:
            messages.setdefault(kind.value, []).append(reason.message)
    return {k: "；".join(v)[:MESSAGE_MAX] for k, v in messages.items()}


def alarm_conditions(
    before: Permit,
    after: Permit,
    supervision: Supervision,
    open_kinds: Iterable[str],
    now: datetime,
    monitor: Sequence[MonitorReading] = (),
    policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
) -> Conditions:
    """Which alarms ``after`` has (see the module doc). ``before``: the permit as
    the pass found it; ``supervision``: what ``supervise`` said of it; ``after``:
    the permit once its event (if any) was applied."""
    event = supervision.event
    if isinstance(event, Expire):
        if before.status not in _STARTED:
            return Conditions({})
        # The post-work watch begins now: its own alarm too, not one pass later.
        watching = supervise(after, now, monitor, policy)
        return Conditions({**_by_kind(watching), **_by_kind(supervision)})
    if isinstance(event, Suspend) or after.status in (S.IN_PROGRESS, S.WATCHING):
        kept: frozenset[str] = frozenset()
        if after.status is S.WATCHING and after.expiry is not None:
            kept = frozenset({PermitAlarmKind.PERMIT_EXPIRED.value})
        return Conditions(_by_kind(supervision), kept)
    if after.status is S.SUSPENDED:
        # What would stop the work were it going on now.
        still = supervise(dataclasses.replace(after, status=S.IN_PROGRESS), now, monitor, policy)
        return Conditions(_by_kind(still, only=open_kinds))
    return Conditions({})


@dataclass
class PassReport:
    expired: list[int] = field(default_factory=list)
    suspended: list[int] = field(default_factory=list)
    alarms_seen: int = 0  # raised or counted
    alarms_cleared: int = 0
    skipped: int = 0  # held by another supervisor or a person's step
    failed: list[int] = field(default_factory=list)
    locked: bool = False  # some permit stopped covering work: locks were queued

    @property
    def changed(self) -> int:
        return len(self.expired) + len(self.suspended)


@dataclass(frozen=True)
class _Outcome:
    event: Expire | Suspend | None = None
    seen: int = 0
    cleared: int = 0
    stopped_work: bool = False
    skipped: bool = False


class PermitSupervisor:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        device_secrets: DeviceSecrets | None = None,
        lock_ttl_s: int = 30,
        policy: PermitPolicy = DEFAULT_PERMIT_POLICY,
        interval_s: float = INTERVAL_S,
        clock: Callable[[], datetime] = utcnow,
        on_locked: Callable[[], None] = wake_local_dispatchers,
    ) -> None:
        """``device_secrets`` and ``lock_ttl_s`` sign the locks as a person's step
        does (``PermitService``); ``on_locked`` wakes this process's dispatchers
        once locks were queued."""
        self.session_factory = session_factory
        self.device_secrets = device_secrets
        self.lock_ttl_s = lock_ttl_s
        self.policy = policy
        self.interval_s = interval_s
        self.clock = clock
        self.on_locked = on_locked
        self.passes = 0
        self.errors = 0

    @classmethod
    def from_settings(
        cls, settings: Settings, session_factory: sessionmaker[Session], **kwargs: Any
    ) -> PermitSupervisor:
        return cls(
            session_factory,
            device_secrets=DeviceSecrets(settings.resolved_secret_key()),
            lock_ttl_s=settings.unlock_command_ttl_s,
            **kwargs,
        )

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """A pass at once, then every ``interval_s`` until cancelled; a failed pass
        (the database away) is logged and the next one runs on time."""
        loop = asyncio.get_running_loop()
        # One thread: passes of this process never overlap.
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="permit-supervisor")
        try:
            while True:
                try:
                    report = await loop.run_in_executor(executor, self.run_once)
                    if report.changed or report.failed:
                        log.info(
                            "permits: %d expired, %d suspended, %d failed",
                            len(report.expired),
                            len(report.suspended),
                            len(report.failed),
                        )
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.errors += 1
                    log.exception("permits: supervisor pass failed")
                await asyncio.sleep(self.interval_s)
        finally:
            with contextlib.suppress(Exception):
                executor.shutdown(wait=False)

    def run_once(self, now: datetime | None = None) -> PassReport:
        """One pass (blocking; the CLI's --once and the tests call it)."""
        now = now or self.clock()
        report = PassReport()
        for permit_id in self.candidates(now):
            try:
                outcome = self.supervise_permit(permit_id, now)
            except Conflict:
                # A person's step moved the permit between our read and our write.
                report.skipped += 1
                continue
            except Exception as exc:
                self.errors += 1
                report.failed.append(permit_id)
                log.error("permits: permit %d: %s", permit_id, repr(exc)[:LOG_MAX])
                log.debug("permits: permit %d failed", permit_id, exc_info=exc)
                continue
            if outcome.skipped:
                report.skipped += 1
                continue
            if isinstance(outcome.event, Expire):
                report.expired.append(permit_id)
            elif isinstance(outcome.event, Suspend):
                report.suspended.append(permit_id)
            report.alarms_seen += outcome.seen
            report.alarms_cleared += outcome.cleared
            report.locked = report.locked or outcome.stopped_work
        try:
            with transaction(self.session_factory) as session:
                report.alarms_cleared += PermitAlarmRepository(session).clear_unsupervised(
                    SUPERVISED_STATUSES, now
                )
        except Exception as exc:
            self.errors += 1
            log.error("permits: clearing the alarms of ended permits: %s", repr(exc)[:LOG_MAX])
        self.passes += 1
        if report.locked:
            self.on_locked()
        return report

    # ------------------------------------------------------------------ one permit

    def candidates(self, now: datetime) -> list[int]:
        """The permits some rule may act on now (a superset; the rules decide)."""
        waiting = SUPERVISED_STATUSES - set(_ALWAYS)
        with self.session_factory() as session:
            return PermitAlarmRepository(session).candidates(_ALWAYS, waiting, now)

    def supervise_permit(self, permit_id: int, now: datetime) -> _Outcome:
        """One permit in one transaction (see the module doc)."""
        with transaction(self.session_factory) as session:
            alarms = PermitAlarmRepository(session)
            if not alarms.claim(permit_id, SUPERVISED_STATUSES):
                return _Outcome(skipped=True)
            service = PermitService(
                session,
                self.policy,
                device_secrets=self.device_secrets,
                lock_ttl_s=self.lock_ttl_s,
            )
            loaded = service.load(_PLATFORM, permit_id, now, lock=True)
            before = loaded.permit
            monitor = (
                MonitorRepository(session).latest(permit_id, now)
                if before.content.continuous_monitoring_required
                else ()
            )
            supervision = supervise(before, now, monitor, self.policy)
            after = before
            if supervision.event is not None:
                after = service.apply_rule(loaded, supervision.event, now)
                log.info(
                    "permits: %s %s: %s",
                    loaded.row.number,
                    supervision.event.label,
                    "；".join(r.message for r in supervision.reasons)[:LOG_MAX],
                )
            open_kinds = alarms.open_kinds(permit_id)
            found = alarm_conditions(
                before, after, supervision, open_kinds, now, monitor, self.policy
            )
            alarms.raise_or_repeat(
                loaded.row, [RaisedAlarm(k, m) for k, m in sorted(found.seen.items())], now
            )
            gone = open_kinds - set(found.seen) - found.kept
            cleared = alarms.clear(permit_id, gone, now)
        return _Outcome(
            event=supervision.event,
            seen=len(found.seen),
            cleared=cleared,
            stopped_work=before.status is S.IN_PROGRESS and after.status is not S.IN_PROGRESS,
        )
