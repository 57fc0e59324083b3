"""After a chip restarts under an active work session: re-send its unlock (docs/protocol.md
§ 6.5: "the platform re-sends an unlock if the session is still valid"), or end the
session when it no longer is. ``domain/work_sessions.after_reboot`` decides;
:class:`UnlockResender` gathers the facts and carries the decision out, and
:class:`RebootRepository` holds its queries.

The ingest ``SessionSink`` notices the restart and calls :meth:`UnlockResender.after_reboot`
in its write transaction (services flush; the sink commits, then wakes the local
dispatchers, which publish the unlock after the ``time`` command the hello brought).

The re-sent unlock is an ordinary signed command (``CommandService.issue``): the same
session id, welder reference and ``until`` (the session's ``valid_until``) as the scan's
unlock, a fresh command id and nonce. It becomes the session's ``unlock_command_id``
through a conditional UPDATE naming the unlock it replaces, so that two writers seeing
the same restart (a rebalance between ingest workers) queue one unlock, not two: the
loser deletes its uncommitted command again. At most one re-sent unlock is open per
session: an open one that the restarted chip will receive is reused, one published
before the restart is expired as its replacement is queued.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from weldguard.device.commands import (
    CommandRepository,
    CommandService,
    from_ms,
    to_ms,
    unlock_args,
)
from weldguard.device.models import DeviceCommand
from weldguard.device.registry import DeviceSecrets
from weldguard.domain.work_sessions import (
    DEFAULT_SESSION_POLICY,
    EndReason,
    RebootAction,
    RebootFacts,
    SessionPolicy,
    UnlockSent,
    after_reboot,
)
from weldguard.errors import DomainError
from weldguard.machine.models import Machine, MachineStatus
from weldguard.unlock.models import SessionStatus, WorkSession
from weldguard.unlock.service import welder_ref

log = logging.getLogger(__name__)

DEFAULT_UNLOCK_TTL_S = 30


@dataclass(frozen=True, slots=True)
class RebootOutcome:
    session_id: str
    action: RebootAction
    command_id: str | None = None  # the re-sent unlock
    end: EndReason | None = None
    ended_ms: int | None = None  # set when this call ended the session
    why: str = ""


class RebootRepository:
    """The queries of the restart rule (platform-wide: the ingest side has no scope)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def work_session(self, session_id: str) -> WorkSession | None:
        # As the database has it now: the welder or the supervisor may have moved it.
        return self.session.scalars(
            select(WorkSession)
            .where(WorkSession.id == session_id)
            .execution_options(populate_existing=True)
        ).one_or_none()

    def machine(self, machine_id: int) -> Machine | None:
        return self.session.get(Machine, machine_id)

    def command(self, command_id: str) -> DeviceCommand | None:
        return self.session.scalars(
            select(DeviceCommand)
            .where(DeviceCommand.id == command_id)
            .execution_options(populate_existing=True)
        ).one_or_none()

    def unlocks_since(self, work: WorkSession, since: datetime) -> int:
        """Unlocks of the session created after ``since`` (the scan's own is created
        before the session turns active, so ``since`` ≥ ``unlocked_at`` counts re-sends
        only)."""
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(DeviceCommand)
                .where(
                    DeviceCommand.device_id == work.device_id,
                    DeviceCommand.cmd == "unlock",
                    DeviceCommand.reason == work.id,
                    DeviceCommand.created_at > since,
                )
            )
            or 0
        )

    def claim_resend(self, session_id: str, previous: str | None, command_id: str) -> bool:
        """The session takes ``command_id`` as its unlock, if it is still active and
        still has the unlock this decision read."""
        w = WorkSession
        same = (
            w.unlock_command_id.is_(None) if previous is None else w.unlock_command_id == previous
        )
        result = self.session.execute(
            update(w)
            .where(w.id == session_id, w.status == SessionStatus.ACTIVE.value, same)
            .values(unlock_command_id=command_id)
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], result).rowcount == 1

    def end(self, session_id: str, at: datetime, reason: EndReason) -> bool:
        """active → ended; False when someone ended it first (their reason stays)."""
        w = WorkSession
        result = self.session.execute(
            update(w)
            .where(w.id == session_id, w.status == SessionStatus.ACTIVE.value)
            .values(status=SessionStatus.ENDED.value, ended_at=at, end_reason=reason.value)
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], result).rowcount == 1


class UnlockResender:
    def __init__(
        self,
        session: Session,
        secrets: DeviceSecrets,
        *,
        unlock_ttl_s: int = DEFAULT_UNLOCK_TTL_S,
        policy: SessionPolicy = DEFAULT_SESSION_POLICY,
    ) -> None:
        self.session = session
        self.secrets = secrets
        self.unlock_ttl_s = unlock_ttl_s
        self.policy = policy
        self.repo = RebootRepository(session)

    def after_reboot(
        self, session_id: str, device_id: str, boot_ms: int, now: datetime
    ) -> RebootOutcome:
        """The chip ``device_id`` restarted at ``boot_ms`` under ``session_id``."""
        work = self.repo.work_session(session_id)
        if work is None or work.device_id != device_id:
            return RebootOutcome(session_id, RebootAction.NOTHING, why="not this chip's")
        machine = self.repo.machine(work.machine_id)
        usable = (
            machine is not None
            and machine.status != MachineStatus.RETIRED.value
            and self._fitted_chip(machine) == device_id
        )
        previous = self.repo.command(work.unlock_command_id) if work.unlock_command_id else None
        now_ms = to_ms(now)
        on_since = work.unlocked_at or work.started_at
        window_start = max(on_since, now - timedelta(milliseconds=self.policy.resend_window_ms))
        facts = RebootFacts(
            status=work.status,
            on_since_ms=to_ms(on_since),
            valid_until_ms=to_ms(work.valid_until),
            machine_usable=usable,
            unlock=None
            if previous is None
            else UnlockSent(
                previous.status,
                to_ms(previous.expires_at),
                None if previous.first_sent_at is None else to_ms(previous.first_sent_at),
            ),
            recent_resends=self.repo.unlocks_since(work, window_start),
        )
        verdict = after_reboot(facts, boot_ms, now_ms, self.policy)
        if verdict.action is RebootAction.END:
            assert verdict.end is not None and verdict.end_ms is not None
            return self._end(work, verdict.end, verdict.end_ms, verdict.why, now)
        if verdict.action is not RebootAction.RESEND:
            log.info(
                "sessions: %s: chip %s restarted; %s", work.id, device_id, verdict.action.value
            )
            return RebootOutcome(work.id, verdict.action, why=verdict.why)
        assert machine is not None
        try:
            command = CommandService(self.session, self.secrets).issue(
                machine,
                "unlock",
                unlock_args(work.id, welder_ref(work.welder_id), work.valid_until),
                now=now,
                ttl_s=self.unlock_ttl_s,
                reason=work.id,
            )
        except DomainError as exc:
            # No usable key any more (re-registered chip): nothing can unlock it.
            log.warning("sessions: %s: cannot re-send the unlock: %s", work.id, exc.message)
            locked_at = max(min(boot_ms, now_ms), facts.on_since_ms)
            return self._end(work, EndReason.LOCK_EVENT, locked_at, "no unlock possible", now)
        if not self.repo.claim_resend(work.id, work.unlock_command_id, command.id):
            # Another writer handled this restart, or the session moved on.
            self.session.delete(command)
            self.session.flush()
            return RebootOutcome(work.id, RebootAction.NOTHING, why="lost the claim")
        if verdict.replace_open and previous is not None:
            CommandRepository(self.session).expire_now(previous.id, now)
        self.session.flush()
        log.info(
            "sessions: %s: chip %s restarted; unlock re-sent as %s (until %s)%s",
            work.id,
            device_id,
            command.id,
            work.valid_until.isoformat(),
            f", replacing {previous.id}" if verdict.replace_open and previous else "",
        )
        return RebootOutcome(work.id, RebootAction.RESEND, command_id=command.id)

    def _fitted_chip(self, machine: Machine) -> str | None:
        chip = CommandRepository(self.session).chip_in_machine(machine.id)
        return chip.device_id if chip is not None else None

    def _end(
        self, work: WorkSession, reason: EndReason, at_ms: int, why: str, now: datetime
    ) -> RebootOutcome:
        if not self.repo.end(work.id, from_ms(at_ms), reason):
            return RebootOutcome(work.id, RebootAction.NOTHING, why="ended meanwhile")
        if work.unlock_command_id:
            # An unlock still on its way (re-sent before an earlier restart) must not
            # unlock the machine after the end.
            CommandRepository(self.session).expire_now(work.unlock_command_id, now)
        log.info(
            "sessions: %s: chip %s restarted; session ended (%s: %s), no unlock sent",
            work.id,
            work.device_id,
            reason.value,
            why,
        )
        return RebootOutcome(work.id, RebootAction.END, end=reason, ended_ms=at_ms, why=why)


__all__ = ["RebootOutcome", "RebootRepository", "UnlockResender"]
