"""Scan to unlock (扫码开机): the use case behind the scan page.

:meth:`ScanService.scan` verifies the label's signature, gathers the facts, lets
:func:`~weldguard.domain.authorization.decide` judge them, always writes a
:class:`ScanRecord`, and on allow opens a :class:`WorkSession` (``starting``) and
queues the signed unlock. The service flushes; the boundary commits and only then
delivers the command (:func:`complete_unlock`), which settles the session:
``active`` on the chip's ack, ``failed`` with a plain reason otherwise.

Idempotent: a welder re-scanning a machine on which they already have a starting
or active session gets that session back (double taps, retries, two phones), never
a second one; the partial unique index ``uq_work_session_open_machine`` is the last
guard. A form submitted twice with the same idempotency key returns the first
answer without a second record: the key is stored on the record under a unique
index, so this holds across web processes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from weldguard.auth.models import Role, User
from weldguard.auth.service import AuthService, hash_token
from weldguard.config import Settings
from weldguard.db import transaction, utcnow
from weldguard.device.commands import (
    CommandRepository,
    CommandService,
    ack_code_label,
    queued,
    unlock_args,
)
from weldguard.device.models import CommandStatus, DeviceCommand
from weldguard.device.registry import DeviceSecrets
from weldguard.device.views_repository import is_online
from weldguard.domain.authorization import (
    Decision,
    PhonePosition,
    Reason,
    ReasonCode,
    SpecialPeriod,
    decide,
)
from weldguard.domain.geo import haversine_m
from weldguard.errors import DomainError, NotFound, PermissionDenied
from weldguard.machine.models import Chip
from weldguard.unlock.command_bus import (
    CommandAck,
    CommandBus,
    CommandOrder,
    deliver_command,
)
from weldguard.unlock.facts import (
    MachinePlace,
    ScanFacts,
    authorization_policy,
    gather_scan_facts,
    permit_rule_of,
    scan_place_by_code,
    session_limit,
    special_periods_of,
)
from weldguard.unlock.labels import LabelRejected, LabelSigner, RejectReason, signer_for
from weldguard.unlock.models import (
    ScanOutcome,
    ScanRecord,
    SessionEndReason,
    SessionStatus,
    WorkSession,
)
from weldguard.unlock.repository import ScanRepository, WelderRows

log = logging.getLogger(__name__)

# How long after its unlock wait a session still ``starting`` counts as abandoned
# (the process that waited went away) and is settled by the next look at it.
STALE_GRACE = timedelta(seconds=5)
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")

FAILURE_OFFLINE = "设备离线：焊机芯片未连接平台，未能开机，请检查焊机电源和信号后重新扫码"
FAILURE_NO_ANSWER = "芯片无响应：{seconds:.0f} 秒内未收到焊机确认，未能开机，请稍后重新扫码"
FAILURE_NO_KEY = "焊机芯片无法接收开机指令（{detail}），请联系企业安全管理员"


def welder_ref(welder_id: int) -> str:
    """The welder as the chip knows them: an anonymous reference, never the ID
    number (docs/protocol.md § 10.2)."""
    return f"wd-{welder_id}"


@dataclass(frozen=True)
class ScanResult:
    """What a scan produced.

    Attributes:
        record: the scan record written (or, for a replayed idempotency key, the
            one written the first time).
        decision: the decision made now (None for an invalid label or a replay).
        session: the work session (new, or the welder's open one on the machine).
        unlock: the unlock to deliver after commit (None when nothing new was
            sent: a denial, a reused session, a replay).
        reused: the welder's open session was returned instead of a new one.
        replayed: the same idempotency key was seen before.
    """

    record: ScanRecord
    decision: Decision | None = None
    session: WorkSession | None = None
    unlock: CommandOrder | None = None
    reused: bool = False
    replayed: bool = False

    @property
    def allowed(self) -> bool:
        return self.record.outcome == ScanOutcome.ALLOWED.value


@dataclass(frozen=True)
class SessionEnd:
    session: WorkSession
    lock: CommandOrder | None


def reason_rows(decision: Decision) -> list[dict[str, Any]]:
    """The reasons and warnings as stored on the record and shown to the welder."""

    def row(reason: Reason, blocking: bool) -> dict[str, Any]:
        return {
            "code": reason.code.value,
            "label": reason.label,
            "message": reason.message,
            "blocking": blocking,
            "regulator_warning": reason.code.regulator_warning
            if reason.regulator_warning
            else None,
        }

    return [row(r, True) for r in decision.reasons] + [row(w, False) for w in decision.warnings]


@functools.lru_cache(maxsize=4)
def device_secrets(platform_secret: str) -> DeviceSecrets:
    """The platform's key for device secrets, derived once per process (HKDF and
    the Fernet set-up are not worth repeating on every scan)."""
    return DeviceSecrets(platform_secret)


class _KnownChip(CommandRepository):
    """The command repository of one scan: the chip in the machine's open binding
    is the one the scan's first query read in this transaction, so
    ``CommandService.issue`` need not look it up again."""

    def __init__(self, session: Session, machine_id: int, chip: Chip) -> None:
        super().__init__(session)
        self._machine_id = machine_id
        self._chip = chip

    def chip_in_machine(self, machine_id: int) -> Chip | None:
        if machine_id == self._machine_id:
            return self._chip
        return super().chip_in_machine(machine_id)


def valid_idempotency_key(key: str | None) -> str | None:
    return key if key and IDEMPOTENCY_KEY.fullmatch(key) else None


@dataclass
class ScanService:
    session: Session
    settings: Settings
    signer: LabelSigner | None = None
    # The command bus is connected: the unlock is written already claimed for its
    # first send, and the bus publishes it right after the commit.
    claim_for_bus: bool = False

    def __post_init__(self) -> None:
        self.repo = ScanRepository(self.session)
        if self.signer is None:
            self.signer = signer_for(self.settings)
        self.commands = CommandService(
            self.session, device_secrets(self.settings.resolved_secret_key())
        )
        self.permit_rule = permit_rule_of(self.settings)

    # ------------------------------------------------------------------ scanning

    def scan(
        self,
        user: User,
        machine_code: str,
        sig: str,
        position: PhonePosition | None,
        idempotency_key: str | None,
        now: datetime,
    ) -> ScanResult:
        """A welder's scan of a machine's label. Raises PermissionDenied for an
        account that is not a welder's; never raises for a bad label (recorded)."""
        if not _is_welder(user):
            raise PermissionDenied("只有焊工账号可以扫码开机")
        key = valid_idempotency_key(idempotency_key)
        return self._scan(user, machine_code, sig, position, key, now)

    def scan_signed_in(
        self,
        raw_token: str,
        machine_code: str,
        sig: str,
        position: PhonePosition | None,
        idempotency_key: str | None,
        now: datetime,
    ) -> ScanResult | None:
        """:meth:`scan` for the account signed in with ``raw_token`` (the scan page's
        cookie), which is read together with the machine and the welder's facts
        (``ScanRepository.scan_read``: one round trip where separate reads take
        three). None when no welder is signed in with it: no live token, an
        inactive account, or an account that is not a welder's."""
        code = machine_code.strip()
        assert self.signer is not None
        found = (
            self.repo.scan_read(code, hash_token(raw_token), now)
            if self.signer.verify_label(code, sig)
            else None
        )
        if found is None:
            # A bad label or an unknown machine (recorded as such): rare, read apart.
            user = AuthService(self.session, self.settings).user_for_token(raw_token, now)
            if user is None or not _is_welder(user):
                return None
            return self.scan(user, code, sig, position, idempotency_key, now)
        user = (
            AuthService(self.session, self.settings).accept_token(found.token, found.user, now)
            if found.token is not None and found.user is not None
            else None
        )
        if user is None or not _is_welder(user):
            return None
        place = MachinePlace(*found.place)
        periods = special_periods_of(found.periods)
        key = valid_idempotency_key(idempotency_key)
        return self._scan(user, code, sig, position, key, now, (place, periods, found.welder_rows))

    def _replay(self, user: User, key: str | None) -> ScanResult:
        """The form was submitted before (a double tap, a retry, on any web
        process): the first answer, nothing written."""
        record = self.repo.scan_by_key(user.id, key) if key is not None else None
        if record is None:  # the unique index said it exists; records are never deleted
            raise LookupError(f"scan record of user {user.id} with key {key!r} not found")
        work = self.repo.work_session(record.session_id) if record.session_id else None
        return ScanResult(record, session=work, replayed=True)

    def _scan(
        self,
        user: User,
        machine_code: str,
        sig: str,
        position: PhonePosition | None,
        key: str | None,
        now: datetime,
        read: tuple[MachinePlace, tuple[SpecialPeriod, ...], WelderRows] | None = None,
    ) -> ScanResult:
        """``read``: the place, the periods and the welder's rows, when the caller
        has them (:meth:`scan_signed_in`, the label verified)."""
        assert self.signer is not None and user.welder_id is not None
        code = machine_code.strip()
        welder_rows = None
        if read is not None:
            place, periods, welder_rows = read
        else:
            if not self.signer.verify_label(code, sig):
                rejected = _rejection(self.signer, code, sig)
                return self._invalid_label(rejected, code, user, key, now)
            found = scan_place_by_code(self.repo, code, now)
            if found is None:
                rejected = LabelRejected(RejectReason.UNKNOWN_MACHINE, code)
                return self._invalid_label(rejected, code, user, key, now)
            place, periods = found
        machine = place.machine

        gather = functools.partial(
            gather_scan_facts,
            self.session,
            user,
            machine,
            position,
            now,
            place=place,
            periods=periods,
            permit_rule=self.permit_rule,
        )
        facts = gather(welder_rows=welder_rows)
        if self._any_left_behind(facts, now):
            # Rare: settle them, then judge what is true now.
            self.settle_stale(now, machine_id=machine.id, welder_id=user.welder_id)
            facts = gather()
        decision = decide(facts.request, authorization_policy(self.settings))
        machine_position = facts.request.machine.position
        distance = (
            haversine_m(position.point, machine_position)
            if position is not None and machine_position is not None
            else None
        )
        enterprise = facts.place.enterprise
        here = facts.open_session_here
        reused = decision.allowed and here is not None and here.welder_id == user.welder_id
        # The session's id is chosen before anything is written, so that the record,
        # the unlock and the session each go out in one INSERT (no UPDATE after).
        session_id = None
        if decision.allowed:
            session_id = here.id if reused and here is not None else str(uuid.uuid4())
        record = ScanRecord(
            idempotency_key=key,
            scanned_at=now,
            outcome=(ScanOutcome.ALLOWED if decision.allowed else ScanOutcome.BLOCKED).value,
            machine_code=machine.code,
            machine_id=machine.id,
            enterprise_id=enterprise.id,
            area_path=enterprise.area_path,
            user_id=user.id,
            welder_id=user.welder_id,
            reason_codes=[c.value for c in decision.codes],
            warning_codes=[c.value for c in decision.warning_codes],
            reasons=reason_rows(decision),
            phone_lat=position.point.latitude if position else None,
            phone_lon=position.point.longitude if position else None,
            phone_accuracy_m=position.accuracy_m if position else None,
            distance_m=round(distance, 1) if distance is not None else None,
            session_id=session_id,
        )
        if not decision.allowed or reused:
            if self.repo.add_scan(record) is None:
                return self._replay(user, key)
            if reused and here is not None:
                return ScanResult(record, decision, session=here, reused=True)
            return ScanResult(record, decision)
        assert session_id is not None
        return self._start_session(record, decision, user, facts.place, session_id, now)

    def _start_session(
        self,
        record: ScanRecord,
        decision: Decision,
        user: User,
        place: MachinePlace,
        session_id: str,
        now: datetime,
    ) -> ScanResult:
        """An allowed scan's record, signed unlock and session, written together (one
        statement on PostgreSQL; see ``ScanRepository.add_started``)."""
        assert user.welder_id is not None
        machine, enterprise, chip = place.machine, place.enterprise, place.chip
        valid_until = session_limit(decision.valid_until, now, self.settings)
        work = WorkSession(
            id=session_id,
            machine_id=machine.id,
            device_id=chip.device_id if chip else "",
            welder_id=user.welder_id,
            enterprise_id=enterprise.id,
            area_path=enterprise.area_path,
            permit_id=decision.permit_id,
            status=SessionStatus.STARTING.value,
            started_at=now,
            valid_until=valid_until,
        )
        commands = self._commands_for(place)
        try:
            # Signed before anything is written, so that the session carries its
            # command from its INSERT on.
            command: DeviceCommand | None = commands.prepare(
                machine,
                "unlock",
                unlock_args(work.id, welder_ref(user.welder_id), valid_until),
                now=now,
                ttl_s=self.settings.unlock_command_ttl_s,
                requested_by=user.id,
                reason=work.id,
                send_now=self.claim_for_bus,
            )
        except DomainError as exc:
            command = None
            work.status = SessionStatus.FAILED.value
            work.ended_at = now
            work.failure = FAILURE_NO_KEY.format(detail=exc.message)[:128]
        if command is not None:
            work.unlock_command_id = command.id
        written = self.repo.add_started(record, command, work)
        if written == 0:
            return self._replay(user, record.idempotency_key)
        if command is not None and written == 1:
            # The chip has a command in flight (the in-flight index refused the
            # claimed unlock): the unlock waits its turn, queued, and the session
            # goes in on its own.
            commands.store(queued(command, now), now)
            work.scan_id = record.id
            if self.repo.add_session_if_free(work):
                return ScanResult(record, decision, session=work, unlock=CommandOrder.of(command))
        if work not in self.session:
            # Another request opened a session on this machine between our read
            # and our insert: the database's unique index decided. Our unlock,
            # uncommitted and so seen by nobody, is deleted again.
            if command is not None:
                self.session.delete(command)
                self.session.flush()
            return self._lost_race(record, decision, user)
        if command is None:
            return ScanResult(record, decision, session=work)
        claimed = command.status == CommandStatus.SENT.value
        return ScanResult(
            record, decision, session=work, unlock=CommandOrder.of(command, claimed=claimed)
        )

    def _invalid_label(
        self, rejected: LabelRejected, code: str, user: User, key: str | None, now: datetime
    ) -> ScanResult:
        record = self.record_invalid_label(rejected, code, user, now, key)
        return ScanResult(record) if record is not None else self._replay(user, key)

    def _commands_for(self, place: MachinePlace) -> CommandService:
        """The command service, told the chip the scan has just read from the
        machine's open binding (the same row ``CommandService.issue`` would look up
        again), so signing the unlock costs no further query."""
        if place.chip is None:
            return self.commands
        commands = CommandService(self.session, self.commands.secrets)
        commands.repo = _KnownChip(self.session, place.machine.id, place.chip)
        return commands

    def _any_left_behind(self, facts: ScanFacts, now: datetime) -> bool:
        """Whether an open session the facts name is one :meth:`settle_stale` would
        settle (checked on the rows at hand: the common scan pays no extra query)."""
        cutoff = now - timedelta(seconds=self.settings.unlock_wait_s) - STALE_GRACE
        sessions = [*facts.welder_sessions]
        if facts.open_session_here is not None:
            sessions.append(facts.open_session_here)
        return any(
            (s.status == SessionStatus.STARTING.value and s.started_at < cutoff)
            or (s.status == SessionStatus.ACTIVE.value and s.valid_until <= now)
            for s in sessions
        )

    def _lost_race(self, record: ScanRecord, decision: Decision, user: User) -> ScanResult:
        assert record.machine_id is not None
        winner = self.repo.open_session_on(record.machine_id)
        if winner is not None and winner.welder_id == user.welder_id:
            record.session_id = winner.id
            self.session.flush()
            return ScanResult(record, decision, session=winner, reused=True)
        in_use = Reason(ReasonCode.MACHINE_IN_USE, "该焊机正由其他焊工使用中")
        record.session_id = None
        record.outcome = ScanOutcome.BLOCKED.value
        record.reason_codes = [ReasonCode.MACHINE_IN_USE.value]
        record.reasons = [
            {
                "code": in_use.code.value,
                "label": in_use.label,
                "message": in_use.message,
                "blocking": True,
                "regulator_warning": None,
            },
            *[r for r in record.reasons if not r.get("blocking")],
        ]
        self.session.flush()
        return ScanResult(record, None)

    def record_invalid_label(
        self,
        rejected: LabelRejected,
        code: str,
        user: User | None,
        now: datetime,
        key: str | None = None,
    ) -> ScanRecord | None:
        """A forged, tampered or unknown label, kept for the regulators' counts. The
        code is stored only when it has the shape of one (never arbitrary input),
        the signature never. None: this user's form with ``key`` was recorded
        before."""
        return self.repo.add_scan(
            ScanRecord(
                idempotency_key=key if user is not None else None,
                scanned_at=now,
                outcome=ScanOutcome.INVALID_LABEL.value,
                machine_code=(rejected.code or "")[:32],
                user_id=user.id if user is not None else None,
                welder_id=user.welder_id if user is not None else None,
                reason_codes=[],
                warning_codes=[],
                reasons=[
                    {
                        "code": "INVALID_LABEL",
                        "label": "标签无效",
                        "message": (
                            f"焊机标签无效（{rejected.reason.label}），可能是伪造或损坏的二维码"
                        ),
                        "blocking": True,
                        "regulator_warning": None,
                        "label_reason": rejected.reason.value,
                    }
                ],
            )
        )

    # ------------------------------------------------------------------ settling

    def unlock_settled(
        self, session_id: str, ack: CommandAck | None, now: datetime
    ) -> WorkSession | None:
        """The chip answered the unlock (or did not, within the wait): the session
        becomes active, or fails with a plain reason and its command is expired so
        that no retry unlocks the machine behind the welder's back. A session that
        moved on meanwhile (结束作业, a stale sweep) is left as it is."""
        if ack is not None and ack.ok:
            # The common answer: one conditional UPDATE (and the row read back);
            # a session that moved on meanwhile is read as it is.
            active = self.repo.move_session(
                session_id,
                (SessionStatus.STARTING.value,),
                status=SessionStatus.ACTIVE.value,
                unlocked_at=ack.received_at,
            )
            return active if active is not None else self.repo.work_session(session_id)
        work = self.repo.work_session(session_id)
        if work is None or work.status != SessionStatus.STARTING.value:
            return work
        self._fail(work, ack, now)
        return self.repo.work_session(session_id)

    def _activate(self, work: WorkSession, unlocked_at: datetime) -> None:
        self.repo.move_session(
            work.id,
            (SessionStatus.STARTING.value,),
            status=SessionStatus.ACTIVE.value,
            unlocked_at=unlocked_at,
        )

    def _fail(self, work: WorkSession, ack: CommandAck | None, now: datetime) -> None:
        if ack is not None:
            failure = f"芯片拒绝开机：{ack_code_label(ack.code)}（代码 {ack.code}）"[:128]
        else:
            _chip, state = self.repo.chip_with_state(work.machine_id)
            if is_online(state, now):
                failure = FAILURE_NO_ANSWER.format(seconds=self.settings.unlock_wait_s)
            else:
                failure = FAILURE_OFFLINE
        failed = self.repo.move_session(
            work.id,
            (SessionStatus.STARTING.value,),
            status=SessionStatus.FAILED.value,
            ended_at=now,
            failure=failure,
        )
        if failed is not None and work.unlock_command_id:
            CommandRepository(self.session).expire_now(work.unlock_command_id, now)

    def settle_stale(
        self, now: datetime, *, machine_id: int | None = None, welder_id: int | None = None
    ) -> None:
        """Sessions left behind: ``starting`` past the unlock wait (the process that
        waited is gone; the command's row says what the chip answered) and ``active``
        past ``valid_until`` (the chip locked itself then)."""
        cutoff = now - timedelta(seconds=self.settings.unlock_wait_s) - STALE_GRACE
        for work in self.repo.stale_starts(cutoff, machine_id, welder_id):
            command = self.repo.command(work.unlock_command_id) if work.unlock_command_id else None
            if command is not None and command.status == CommandStatus.ACKED.value:
                self._activate(work, command.finished_at or now)
            else:
                self._fail(work, _ack_of(command), now)
        over: list[WorkSession] = []
        if machine_id is not None:
            here = self.repo.open_session_on(machine_id)
            over.extend([here] if here is not None else [])
        if welder_id is not None:
            over.extend(self.repo.open_sessions_of(welder_id))
        for work in over:
            if work.status == SessionStatus.ACTIVE.value and work.valid_until <= now:
                self.repo.move_session(
                    work.id,
                    (SessionStatus.ACTIVE.value,),
                    status=SessionStatus.ENDED.value,
                    ended_at=work.valid_until,
                    end_reason=SessionEndReason.TIME_LIMIT.value,
                )

    # ------------------------------------------------------------------ ending

    def end_session(self, user: User, session_id: str, now: datetime) -> SessionEnd:
        """结束作业: the session ends now (end reason ``welder``) and a lock command
        is queued for the boundary to deliver. Ending an ended session again
        changes nothing and sends nothing."""
        work = self.own_session(user, session_id)
        ended = self.repo.move_session(
            work.id,
            (SessionStatus.STARTING.value, SessionStatus.ACTIVE.value),
            status=SessionStatus.ENDED.value,
            ended_at=now,
            end_reason=SessionEndReason.WELDER.value,
        )
        if ended is None:
            return SessionEnd(self.own_session(user, session_id), None)
        work = ended
        if work.unlock_command_id:
            # An unlock still on its way (the scan's, or one re-sent after a chip's
            # restart while the session was active) must not unlock after the end.
            CommandRepository(self.session).expire_now(work.unlock_command_id, now)
        lock: CommandOrder | None = None
        machine = self.repo.machine(work.machine_id)
        if machine is not None:
            try:
                command = self.commands.issue(
                    machine,
                    "lock",
                    {"reason": "welder ended work"},
                    now=now,
                    ttl_s=self.settings.unlock_command_ttl_s,
                    requested_by=user.id,
                    reason=work.id,
                )
            except DomainError as exc:
                # The chip was removed or has no key: nothing to lock remotely.
                log.warning("session %s: no lock command: %s", work.id, exc.message)
            else:
                work.lock_command_id = command.id
                lock = CommandOrder.of(command)
        self.session.flush()
        return SessionEnd(work, lock)

    # ------------------------------------------------------------------ reading

    def own_session(self, user: User, session_id: str) -> WorkSession:
        work = self.repo.work_session(session_id)
        if work is None or user.welder_id is None or work.welder_id != user.welder_id:
            raise NotFound("作业记录不存在")
        return work

    def own_record(self, user: User, record_id: int) -> ScanRecord:
        record = self.repo.scan_record(record_id)
        if record is None or record.user_id != user.id:
            raise NotFound("扫码记录不存在")
        return record

    def command(self, command_id: str | None) -> DeviceCommand | None:
        return self.repo.command(command_id) if command_id else None


def _is_welder(user: User) -> bool:
    return Role(user.role) == Role.WELDER and user.welder_id is not None


def _ack_of(command: DeviceCommand | None) -> CommandAck | None:
    if command is None or command.ack_code is None or command.ack_code == 0:
        return None
    return CommandAck(command.id, command.device_id, command.ack_code, command.ack_state, utcnow())


def _rejection(signer: LabelSigner, code: str, sig: str) -> LabelRejected:
    try:
        signer.parse_label_token(f"{code}.{sig}")
    except LabelRejected as rejected:
        return rejected
    return LabelRejected(RejectReason.BAD_SIGNATURE, None)


# ---------------------------------------------------------------------- permits


def end_sessions_under_permit(
    session: Session,
    secrets: DeviceSecrets | None,
    permit_id: int,
    machine_ids: Collection[int],
    now: datetime,
    ttl_s: int,
) -> list[WorkSession]:
    """The permit stopped covering work (paused, suspended, ended, expired): the
    sessions its scans started on these machines end now and each machine gets a
    lock (queued; the dispatchers deliver it). An unlock still on its way is given
    up first. Without ``secrets`` nothing can be signed: the sessions still end,
    and the chip locks itself at the session's ``valid_until``. Flushes only."""
    repo = ScanRepository(session)
    ended: list[WorkSession] = []
    for work in repo.open_sessions_under_permit(permit_id, machine_ids):
        moved = repo.move_session(
            work.id,
            (SessionStatus.STARTING.value, SessionStatus.ACTIVE.value),
            status=SessionStatus.ENDED.value,
            ended_at=now,
            end_reason=SessionEndReason.PERMIT.value,
        )
        if moved is None:
            continue
        ended.append(moved)
        if moved.unlock_command_id:
            CommandRepository(session).expire_now(moved.unlock_command_id, now)
        machine = repo.machine(moved.machine_id)
        if secrets is None or machine is None:
            log.warning("session %s ended with its permit; no lock could be signed", moved.id)
            continue
        try:
            command = CommandService(session, secrets).issue(
                machine,
                "lock",
                {"reason": "permit no longer valid"},
                now=now,
                ttl_s=ttl_s,
                reason=moved.id,
            )
        except DomainError as exc:
            # The chip was removed or has no key: nothing to lock remotely.
            log.warning("session %s: no lock command: %s", moved.id, exc.message)
        else:
            moved.lock_command_id = command.id
    session.flush()
    return ended


# ---------------------------------------------------------------------- delivery


async def complete_unlock(
    bus: CommandBus | None,
    session_factory: sessionmaker[Session],
    settings: Settings,
    session_id: str,
    unlock: CommandOrder,
    clock: Any = utcnow,
) -> str:
    """After the commit: delivers the unlock, waits up to ``unlock_wait_s`` for the
    chip, and settles the session. Returns the session's status."""
    ack = await deliver_command(bus, session_factory, unlock, settings.unlock_wait_s)

    def settle() -> str:
        with transaction(session_factory) as session:
            work = ScanService(session, settings).unlock_settled(session_id, ack, clock())
            return work.status if work is not None else SessionStatus.FAILED.value

    return await asyncio.to_thread(settle)


async def complete_lock(
    bus: CommandBus | None,
    session_factory: sessionmaker[Session],
    settings: Settings,
    lock: CommandOrder,
) -> CommandAck | None:
    """After the commit: delivers the lock (the session has ended already; the
    command's row keeps what the chip answered, and the dispatchers retry it)."""
    return await deliver_command(bus, session_factory, lock, settings.unlock_wait_s)
