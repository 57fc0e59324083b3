"""Signed commands to chips and their delivery (docs/protocol.md § 10–§ 13).

A command is signed once, when it is issued, and stored with the exact bytes that
go on the wire; every retry re-publishes those bytes (same id, nonce, iat, exp and
sig). Its delivery is a persisted state machine in ``device_command``:

    queued ──claim──► sent ──ack 0──────────► acked
       ▲                │  ──ack 1-6, 9, …──► failed
       │                │  ──ack 7 (busy)───► sent (the back-off retries it)
       └──ack 8─────────┘  (a ``time`` command goes first, then the same command)
    queued / sent ──exp passed──► expired   (a late ack 0 still turns it acked)

- At most one command per device is ``sent`` (in flight). The database enforces it
  with a partial unique index; a dispatcher claims the next queued command of a
  device only while none is in flight, with a conditional UPDATE, so several
  dispatchers never publish the same first attempt twice.
- Retries: 2 s, 4 s, 8 s, then every 15 s after the previous publish, and at once
  after a ``hello`` from the device, until an ack or ``exp``.
- Services only flush; the caller (request, CLI, dispatcher, ingest sink) commits.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, TypeGuard, TypeVar, cast

from cryptography.fernet import InvalidToken
from sqlalchemy import CursorResult, Select, and_, case, exists, func, select, update
from sqlalchemy.orm import Session, aliased, sessionmaker

from weldguard.auth.models import Role
from weldguard.auth.scope import Scope
from weldguard.db import insert_unless_taken
from weldguard.device.models import CommandStatus, DeviceCommand
from weldguard.device.protocol import ACK_CODES, AckCode, build_command, encode_command
from weldguard.device.registry import DeviceSecrets
from weldguard.enterprise.models import Enterprise
from weldguard.errors import Conflict, ErrorDetail, InvalidInput, NotFound, PermissionDenied
from weldguard.machine.models import Chip, ChipBinding, Machine, MachineStatus

log = logging.getLogger(__name__)

# Commands a person may send; ``time`` is the platform's own (after a hello or an
# ack 8), never requested.
USER_COMMANDS: Final = ("unlock", "lock", "config", "ping")
DEFAULT_TTL_S: Final = 60
MAX_TTL_S: Final = 600
# § 10.6: now = iat and a lifetime of 30 s.
TIME_TTL_MS: Final = 30_000
RETRY_DELAYS_S: Final = (2, 4, 8)
RETRY_EVERY_S: Final = 15
FINAL_STATUSES: Final = frozenset(
    {CommandStatus.ACKED.value, CommandStatus.FAILED.value, CommandStatus.EXPIRED.value}
)
OPEN_STATUSES: Final = (CommandStatus.QUEUED.value, CommandStatus.SENT.value)
# What wait_for_result answers when the timeout passes first.
PENDING: Final = "pending"

STATUS_LABELS: Final[Mapping[str, str]] = {
    CommandStatus.QUEUED.value: "排队中",
    CommandStatus.SENT.value: "已发送，等待确认",
    CommandStatus.ACKED.value: "芯片已确认",
    CommandStatus.FAILED.value: "芯片拒绝或执行失败",
    CommandStatus.EXPIRED.value: "已过期，未送达",
    PENDING: "等待超时，命令仍在投递",
}

# Who may send what. Reads follow the scope alone; sending acts on a machine, so
# it is narrower than MANAGE_ENTERPRISE_ASSETS: the enterprise runs its own
# machines, a regulator may only stop one (lock) within its jurisdiction, and
# inspectors, installers and welders send nothing (a welder's unlock comes from
# the scan-to-unlock flow, which issues the command itself after its checks).
_COMMANDS_BY_ROLE: Final[Mapping[Role, frozenset[str]]] = {
    Role.ADMIN: frozenset(USER_COMMANDS),
    Role.ENTERPRISE_ADMIN: frozenset(USER_COMMANDS),
    Role.SAFETY_OFFICER: frozenset(USER_COMMANDS),
    Role.REGULATOR: frozenset({"lock"}),
}

_PRINTABLE_ASCII = re.compile(r"^[!-~]+$")
# An 18-character resident ID number or the old 15-digit one: § 10.2 forbids
# personal identifiers in ``welder``; refusing what looks like one is cheap.
_ID_NUMBER_LIKE = re.compile(r"^(\d{17}[\dXx]|\d{15})$")
_CONFIG_LIMITS: Final[Mapping[str, tuple[int, int]]] = {
    "hb_s": (10, 300),
    "arc_threshold_da": (1, 30_000),
    "tel_s": (1, 3600),
}


def to_ms(moment: datetime) -> int:
    """Unix milliseconds, in integer arithmetic (a float timestamp can be off by one)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def retry_delay(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th publish before the next one (§ 13)."""
    index = max(attempts, 1) - 1
    seconds = RETRY_DELAYS_S[index] if index < len(RETRY_DELAYS_S) else RETRY_EVERY_S
    return timedelta(seconds=seconds)


def queued(command: DeviceCommand, now: datetime) -> DeviceCommand:
    """A command written claimed for its first send (``prepare(send_now=True)``)
    as an ordinary queued one instead: a dispatcher sends it when its turn comes."""
    command.status = CommandStatus.QUEUED.value
    command.attempts = 0
    command.first_sent_at = command.last_sent_at = None
    command.next_attempt_at = now
    return command


def _ack_id(ack: Mapping[str, Any]) -> str:
    return str(ack.get("id", ""))


def ack_code_name(code: int | None) -> str | None:
    if code is None:
        return None
    return ACK_CODES.get(code, (f"code_{code}", ""))[0]


def ack_code_label(code: int | None) -> str | None:
    if code is None:
        return None
    return ACK_CODES.get(code, ("", f"未知代码 {code}"))[1]


def may_send(scope: Scope, cmd: str) -> bool:
    return cmd in _COMMANDS_BY_ROLE.get(scope.role, frozenset())


def require_may_send(scope: Scope, cmd: str) -> None:
    if not may_send(scope, cmd):
        raise PermissionDenied("当前账号无权向焊机发送该命令")


# ---------------------------------------------------------------------- arguments


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_in(
    args: Mapping[str, Any], key: str, low: int, high: int, errors: list[ErrorDetail], path: str
) -> None:
    value = args.get(key)
    if not _is_int(value) or not low <= value <= high:
        errors.append(ErrorDetail(f"应为 {low} 到 {high} 之间的整数", field=f"{path}{key}"))


def _ascii_text(
    args: Mapping[str, Any], key: str, limit: int, errors: list[ErrorDetail]
) -> str | None:
    value = args.get(key)
    if not isinstance(value, str) or not 1 <= len(value) <= limit:
        errors.append(ErrorDetail(f"应为 1–{limit} 个字符", field=f"args.{key}"))
        return None
    if not _PRINTABLE_ASCII.match(value):
        errors.append(ErrorDetail("只能包含可打印 ASCII 字符（不含空格）", field=f"args.{key}"))
        return None
    return value


def _unknown(args: Mapping[str, Any], allowed: set[str], errors: list[ErrorDetail]) -> None:
    for key in sorted(set(args) - allowed):
        errors.append(ErrorDetail("该命令没有这个参数", field=f"args.{key}"))


def validate_args(cmd: str, args: Mapping[str, Any], now_ms: int) -> list[ErrorDetail]:
    """Every problem with ``args`` for ``cmd`` (§ 10.2–10.5), each naming its field."""
    errors: list[ErrorDetail] = []
    if cmd not in USER_COMMANDS:
        return [ErrorDetail(f"可选：{'、'.join(USER_COMMANDS)}", field="cmd")]
    if not isinstance(args, Mapping):
        return [ErrorDetail("应为对象", field="args")]
    if cmd == "unlock":
        _unknown(args, {"sess", "welder", "until", "fence"}, errors)
        _ascii_text(args, "sess", 36, errors)
        welder = _ascii_text(args, "welder", 32, errors)
        if welder is not None and _ID_NUMBER_LIKE.match(welder):
            errors.append(ErrorDetail("应为焊工的匿名编号，不得使用身份证号", field="args.welder"))
        until = args.get("until")
        if not _is_int(until):
            errors.append(ErrorDetail("应为毫秒时间戳（整数）", field="args.until"))
        elif until <= now_ms:
            errors.append(ErrorDetail("应晚于当前时间", field="args.until"))
        fence = args.get("fence")
        if fence is not None:
            if not isinstance(fence, Mapping):
                errors.append(ErrorDetail("应为 {lat, lon, r_m}", field="args.fence"))
            else:
                _unknown(fence, {"lat", "lon", "r_m"}, errors)
                _int_in(fence, "lat", -90_000_000, 90_000_000, errors, "args.fence.")
                _int_in(fence, "lon", -180_000_000, 180_000_000, errors, "args.fence.")
                _int_in(fence, "r_m", 1, 100_000, errors, "args.fence.")
    elif cmd == "lock":
        _unknown(args, {"reason"}, errors)
        reason = args.get("reason")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 64):
            errors.append(ErrorDetail("应为不超过 64 个字符的文字", field="args.reason"))
    elif cmd == "config":
        _unknown(args, set(_CONFIG_LIMITS), errors)
        present = [key for key in _CONFIG_LIMITS if key in args]
        if not present:
            errors.append(ErrorDetail("至少设置 hb_s、arc_threshold_da、tel_s 之一", field="args"))
        for key in present:
            low, high = _CONFIG_LIMITS[key]
            _int_in(args, key, low, high, errors, "args.")
    else:  # ping
        _unknown(args, set(), errors)
    return errors


def unlock_args(
    session_id: str,
    welder_ref: str,
    until: datetime,
    fence: tuple[int, int, int] | None = None,
) -> dict[str, Any]:
    """The args of an unlock: ``fence`` is (lat µdeg, lon µdeg, radius m)."""
    args: dict[str, Any] = {"sess": session_id, "welder": welder_ref, "until": to_ms(until)}
    if fence is not None:
        args["fence"] = {"lat": fence[0], "lon": fence[1], "r_m": fence[2]}
    return args


# ---------------------------------------------------------------------- repository


_Statement = TypeVar("_Statement", bound=Select[Any])


def _fresh(statement: _Statement) -> _Statement:
    """Delivery state is changed by conditional UPDATEs that bypass the identity
    map; the decisions read it as the database has it, not as a long-lived
    session remembers it."""
    return statement.execution_options(populate_existing=True)


@dataclass(frozen=True)
class DispatchItem:
    """One publish a dispatcher has claimed."""

    command_id: str
    device_id: str
    payload: bytes
    attempt: int


class CommandRepository:
    """Every query of ``device_command``. Reads for people take a Scope; the
    delivery queries are platform-wide (a dispatcher serves every device)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- reads for people -----------------------------------------------------
    def visible(self, scope: Scope, command_id: str) -> DeviceCommand | None:
        # Outer joins: a command to a chip in no machine (a ``time`` after a hello)
        # is visible to whoever sees everything, and to nobody else.
        return self.session.scalars(
            select(DeviceCommand)
            .outerjoin(Machine, Machine.id == DeviceCommand.machine_id)
            .outerjoin(Enterprise, Enterprise.id == Machine.enterprise_id)
            .where(DeviceCommand.id == command_id, scope.enterprise_filter())
        ).one_or_none()

    def visible_machine(self, scope: Scope, machine_id: int) -> Machine | None:
        return self.session.scalars(
            select(Machine)
            .join(Enterprise, Enterprise.id == Machine.enterprise_id)
            .where(Machine.id == machine_id, scope.enterprise_filter())
        ).one_or_none()

    def for_machine(self, machine_id: int, limit: int = 50) -> list[DeviceCommand]:
        return list(
            self.session.scalars(
                select(DeviceCommand)
                .where(DeviceCommand.machine_id == machine_id)
                .order_by(DeviceCommand.created_at.desc(), DeviceCommand.id)
                .limit(limit)
            )
        )

    def get(self, command_id: str) -> DeviceCommand | None:
        return self.session.get(DeviceCommand, command_id)

    def status_of(self, command_id: str) -> str | None:
        return self.session.scalar(
            select(DeviceCommand.status).where(DeviceCommand.id == command_id)
        )

    def for_device(self, device_id: str) -> list[DeviceCommand]:
        return list(
            self.session.scalars(
                select(DeviceCommand)
                .where(DeviceCommand.device_id == device_id)
                .order_by(DeviceCommand.created_at, DeviceCommand.id)
            )
        )

    # --- targets --------------------------------------------------------------
    def machine_by_code(self, code: str) -> Machine | None:
        return self.session.scalars(select(Machine).where(Machine.code == code)).one_or_none()

    def chip_by_device_id(self, device_id: str) -> Chip | None:
        return self.session.scalars(select(Chip).where(Chip.device_id == device_id)).one_or_none()

    def chip_in_machine(self, machine_id: int) -> Chip | None:
        return self.session.scalars(
            select(Chip)
            .join(ChipBinding, ChipBinding.chip_id == Chip.id)
            .where(ChipBinding.machine_id == machine_id, ChipBinding.removed_at.is_(None))
        ).one_or_none()

    def machine_of_chip(self, chip_id: int) -> Machine | None:
        return self.session.scalars(
            select(Machine)
            .join(ChipBinding, ChipBinding.machine_id == Machine.id)
            .where(ChipBinding.chip_id == chip_id, ChipBinding.removed_at.is_(None))
        ).one_or_none()

    # --- writes ---------------------------------------------------------------
    def add(self, command: DeviceCommand) -> DeviceCommand:
        self.session.add(command)
        self.session.flush()
        return command

    def add_unflushed(self, command: DeviceCommand) -> DeviceCommand:
        self.session.add(command)
        return command

    def add_if_free(self, command: DeviceCommand) -> bool:
        """Writes a command created in flight (status ``sent``) unless its device
        has one in flight already (``uq_device_command_in_flight``): False then."""
        return insert_unless_taken(self.session, command)

    def open_time_command(self, device_id: str) -> DeviceCommand | None:
        return self.session.scalars(
            _fresh(select(DeviceCommand))
            .where(
                DeviceCommand.device_id == device_id,
                DeviceCommand.cmd == "time",
                DeviceCommand.status.in_(OPEN_STATUSES),
            )
            .limit(1)
        ).one_or_none()

    def in_flight(self, device_id: str) -> DeviceCommand | None:
        return self.session.scalars(
            _fresh(select(DeviceCommand)).where(
                DeviceCommand.device_id == device_id,
                DeviceCommand.status == CommandStatus.SENT.value,
            )
        ).one_or_none()

    def chips_with_machine(self, device_ids: Collection[str]) -> list[tuple[Chip, int | None]]:
        """The chips of these devices, each with the machine of its open binding
        (None when it is fitted to none), in one query."""
        rows = self.session.execute(
            select(Chip, ChipBinding.machine_id)
            .outerjoin(
                ChipBinding,
                and_(ChipBinding.chip_id == Chip.id, ChipBinding.removed_at.is_(None)),
            )
            .where(Chip.device_id.in_(device_ids))
        )
        return [(chip, machine_id) for chip, machine_id in rows]

    def open_commands_of(self, device_ids: Collection[str]) -> list[DeviceCommand]:
        """Every queued or sent command of these devices, as the database has them."""
        return list(
            self.session.scalars(
                _fresh(select(DeviceCommand)).where(
                    DeviceCommand.device_id.in_(device_ids),
                    DeviceCommand.status.in_(OPEN_STATUSES),
                )
            )
        )

    def for_acks(
        self, answers: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], DeviceCommand]:
        """The commands answered, by (device id, command id). The device must match:
        a chip can only answer for its own commands."""
        wanted = set(answers)
        ids = sorted({command_id for _, command_id in wanted})
        if not ids:
            return {}
        found = self.session.scalars(
            _fresh(select(DeviceCommand)).where(DeviceCommand.id.in_(ids))
        ).all()
        return {
            (command.device_id, command.id): command
            for command in found
            if (command.device_id, command.id) in wanted
        }

    # --- delivery -------------------------------------------------------------
    def due(self, now: datetime, limit: int) -> list[DeviceCommand]:
        """What may be published now: retries of commands in flight whose time has
        come, and for each device with nothing in flight its next queued command
        (a ``time`` first, then the oldest)."""
        live = and_(DeviceCommand.next_attempt_at <= now, DeviceCommand.expires_at > now)
        retries = list(
            self.session.scalars(
                _fresh(select(DeviceCommand))
                .where(DeviceCommand.status == CommandStatus.SENT.value, live)
                .order_by(DeviceCommand.next_attempt_at)
                .limit(limit)
            )
        )
        other = aliased(DeviceCommand)
        busy_device = exists().where(
            other.device_id == DeviceCommand.device_id,
            other.status == CommandStatus.SENT.value,
        )
        rank = (
            func.row_number()
            .over(
                partition_by=DeviceCommand.device_id,
                order_by=(
                    case((DeviceCommand.cmd == "time", 0), else_=1),
                    DeviceCommand.created_at,
                    DeviceCommand.id,
                ),
            )
            .label("rank")
        )
        # Rank over every open queued command of the device (not only the due
        # ones), so a later command never overtakes one that waits.
        ranked = (
            select(DeviceCommand.id, DeviceCommand.next_attempt_at, DeviceCommand.expires_at, rank)
            .where(DeviceCommand.status == CommandStatus.QUEUED.value, ~busy_device)
            .subquery()
        )
        first_ids = select(ranked.c.id).where(
            ranked.c.rank == 1, ranked.c.next_attempt_at <= now, ranked.c.expires_at > now
        )
        firsts = list(
            self.session.scalars(
                _fresh(select(DeviceCommand))
                .where(DeviceCommand.id.in_(first_ids))
                .order_by(DeviceCommand.created_at)
                .limit(limit)
            )
        )
        return retries + firsts

    def claim_first_send(
        self, command_id: str, attempts: int, now: datetime, next_attempt_at: datetime
    ) -> bool:
        """queued → sent, only if it is still queued as read and its device has
        nothing in flight. Two dispatchers: one UPDATE matches, the other finds
        no row (or, racing on PostgreSQL, hits the partial unique index)."""
        other = aliased(DeviceCommand)
        in_flight = exists().where(
            other.device_id == DeviceCommand.device_id,
            other.status == CommandStatus.SENT.value,
        )
        result = self.session.execute(
            update(DeviceCommand)
            .where(
                DeviceCommand.id == command_id,
                DeviceCommand.status == CommandStatus.QUEUED.value,
                DeviceCommand.attempts == attempts,
                ~in_flight,
            )
            .values(
                status=CommandStatus.SENT.value,
                attempts=attempts + 1,
                first_sent_at=func.coalesce(DeviceCommand.first_sent_at, now),
                last_sent_at=now,
                next_attempt_at=next_attempt_at,
            )
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], result).rowcount == 1

    def claim_retry(
        self, command_id: str, attempts: int, now: datetime, next_attempt_at: datetime
    ) -> bool:
        """A re-publish of the command in flight, conditional on the attempt count
        read (healthchecks-style optimistic claim): one dispatcher wins."""
        result = self.session.execute(
            update(DeviceCommand)
            .where(
                DeviceCommand.id == command_id,
                DeviceCommand.status == CommandStatus.SENT.value,
                DeviceCommand.attempts == attempts,
                DeviceCommand.next_attempt_at <= now,
                DeviceCommand.expires_at > now,
            )
            .values(attempts=attempts + 1, last_sent_at=now, next_attempt_at=next_attempt_at)
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], result).rowcount == 1

    def expire_overdue(self, now: datetime) -> int:
        # Read first: the dispatcher asks twice a second, and an UPDATE that matches
        # nothing would still take SQLite's write lock from the ingest writer.
        overdue = self.session.scalar(
            select(DeviceCommand.id)
            .where(DeviceCommand.status.in_(OPEN_STATUSES), DeviceCommand.expires_at <= now)
            .limit(1)
        )
        if overdue is None:
            return 0
        result = self.session.execute(
            update(DeviceCommand)
            .where(DeviceCommand.status.in_(OPEN_STATUSES), DeviceCommand.expires_at <= now)
            .values(status=CommandStatus.EXPIRED.value, finished_at=now)
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], result).rowcount

    def expire_now(self, command_id: str, now: datetime) -> bool:
        """Gives up on one open command before its ``exp`` (an unlock whose waiting
        welder was told it failed must not be retried into an unlock later)."""
        result = self.session.execute(
            update(DeviceCommand)
            .where(DeviceCommand.id == command_id, DeviceCommand.status.in_(OPEN_STATUSES))
            .values(status=CommandStatus.EXPIRED.value, finished_at=now)
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], result).rowcount == 1

    def republish_now(self, device_ids: Collection[str], now: datetime) -> int:
        """Everything open for the devices becomes due at once (after their hello)."""
        result = self.session.execute(
            update(DeviceCommand)
            .where(
                DeviceCommand.device_id.in_(device_ids),
                DeviceCommand.status.in_(OPEN_STATUSES),
                DeviceCommand.expires_at > now,
                DeviceCommand.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
            .execution_options(synchronize_session=False)
        )
        return cast(CursorResult[Any], result).rowcount


# ---------------------------------------------------------------------- service


class AckOutcome(StrEnum):
    RECORDED = "recorded"  # the state machine moved (or a busy/unsynced was noted)
    DUPLICATE = "duplicate"  # the command had finished already; first answer kept
    UNKNOWN = "unknown"  # no command of this device has that id


class CommandService:
    def __init__(self, session: Session, secrets: DeviceSecrets) -> None:
        self.session = session
        self.secrets = secrets
        self.repo = CommandRepository(session)

    # --- issuing --------------------------------------------------------------
    def issue(
        self,
        target: Machine | Chip,
        cmd: str,
        args: Mapping[str, Any],
        *,
        now: datetime,
        ttl_s: int = DEFAULT_TTL_S,
        requested_by: int | None = None,
        reason: str = "",
        send_now: bool = False,
    ) -> DeviceCommand:
        """Signs and queues ``cmd`` for the machine's chip (or the chip itself).
        Raises InvalidInput naming the field, Conflict (409) when the machine has no
        chip or the chip no secret. The caller commits; a dispatcher then sends it.

        ``send_now``: the caller publishes it itself right after its commit (the
        unlock command bus), so the row is written already claimed for its first
        send, exactly as :meth:`claim` would leave it: one statement instead of an
        INSERT, a savepoint and an UPDATE. When another command of the device is in
        flight it is queued as usual (status ``queued``: the caller must not
        publish it), and a publish that never happens is retried by the
        dispatchers."""
        command = self.prepare(
            target,
            cmd,
            args,
            now=now,
            ttl_s=ttl_s,
            requested_by=requested_by,
            reason=reason,
            send_now=send_now,
        )
        return self.store(command, now)

    def prepare(
        self,
        target: Machine | Chip,
        cmd: str,
        args: Mapping[str, Any],
        *,
        now: datetime,
        ttl_s: int = DEFAULT_TTL_S,
        requested_by: int | None = None,
        reason: str = "",
        send_now: bool = False,
    ) -> DeviceCommand:
        """:meth:`issue`'s checks and signature, nothing written: the row to write
        (claimed for its first send with ``send_now``), for a caller that writes it
        along with rows of its own (the scan), and passes it to :meth:`store` only
        if that failed."""
        errors = validate_args(cmd, args, to_ms(now))
        if not _is_int(ttl_s) or not 1 <= ttl_s <= MAX_TTL_S:
            errors.append(ErrorDetail(f"应为 1 到 {MAX_TTL_S} 秒", field="ttl_s"))
        if len(reason) > 64:
            errors.append(ErrorDetail("不超过 64 个字符", field="reason"))
        if errors:
            raise InvalidInput("命令参数有误", errors)
        if isinstance(target, Machine):
            if target.status == MachineStatus.RETIRED.value:
                raise InvalidInput(
                    "焊机已报废", [ErrorDetail("焊机已报废，不能下发命令", field="machine")]
                )
            chip = self.repo.chip_in_machine(target.id)
            if chip is None:
                raise Conflict(f"焊机 {target.code} 未安装芯片（未加芯），无法下发命令")
            machine_id: int | None = target.id
        else:
            chip = target
            machine = self.repo.machine_of_chip(chip.id)
            machine_id = machine.id if machine is not None else None
        return self._signed_row(
            chip, machine_id, cmd, dict(args), ttl_s * 1000, now, requested_by, reason, send_now
        )

    def store(self, command: DeviceCommand, now: datetime) -> DeviceCommand:
        """Writes a row from :meth:`prepare`. A claimed one is refused by the
        in-flight index when the device has a command out: it is then queued as
        usual (status ``queued``: the caller must not publish it)."""
        if command.status == CommandStatus.SENT.value and self.repo.add_if_free(command):
            return command
        return self.repo.add(queued(command, now))

    def issue_for(
        self,
        scope: Scope,
        machine_id: int,
        cmd: str,
        args: Mapping[str, Any],
        *,
        now: datetime,
        ttl_s: int = DEFAULT_TTL_S,
        reason: str = "",
    ) -> DeviceCommand:
        """``issue`` on behalf of a user: the role must be allowed to send ``cmd``
        (403) and the machine must be in the user's scope (404 otherwise)."""
        require_may_send(scope, cmd)
        machine = self.repo.visible_machine(scope, machine_id)
        if machine is None:
            raise NotFound("焊机不存在")
        return self.issue(
            machine,
            cmd,
            args,
            now=now,
            ttl_s=ttl_s,
            requested_by=scope.user_id or None,
            reason=reason or "manual",
        )

    def resolve_target(self, machine_code_or_device_id: str) -> Machine | Chip:
        """A machine by its label code, else a chip by its device id (CLI)."""
        text = machine_code_or_device_id.strip()
        machine = self.repo.machine_by_code(text.upper())
        if machine is not None:
            return machine
        chip = self.repo.chip_by_device_id(text)
        if chip is not None:
            return chip
        raise NotFound(f"找不到焊机编码或芯片设备号 {text[:40]}")

    def issue_time(
        self, chip: Chip, now: datetime, *, reason: str = "clock sync"
    ) -> DeviceCommand | None:
        """Queues a ``time`` command unless one is open already (§ 9.2, § 12.3 code
        8). None when the chip has no usable secret (nothing could verify it)."""
        existing = self.repo.open_time_command(chip.device_id)
        if existing is not None:
            return existing
        machine = self.repo.machine_of_chip(chip.id)
        now_ms = to_ms(now)
        try:
            return self._issue_signed(
                chip,
                machine.id if machine is not None else None,
                "time",
                {"now": now_ms},
                TIME_TTL_MS,
                now,
                None,
                reason,
            )
        except Conflict:
            log.warning("device %s: no usable secret, cannot send time", chip.device_id)
            return None

    def _issue_signed(
        self,
        chip: Chip,
        machine_id: int | None,
        cmd: str,
        args: dict[str, Any],
        ttl_ms: int,
        now: datetime,
        requested_by: int | None,
        reason: str,
        *,
        flush: bool = True,
    ) -> DeviceCommand:
        """Signs and queues; unflushed with ``flush=False``: a caller issuing many
        at once flushes them as one INSERT."""
        command = self._signed_row(chip, machine_id, cmd, args, ttl_ms, now, requested_by, reason)
        return self.repo.add(command) if flush else self.repo.add_unflushed(command)

    def _signed_row(
        self,
        chip: Chip,
        machine_id: int | None,
        cmd: str,
        args: dict[str, Any],
        ttl_ms: int,
        now: datetime,
        requested_by: int | None,
        reason: str,
        send_now: bool = False,
    ) -> DeviceCommand:
        if chip.secret_encrypted is None:
            raise Conflict(f"芯片 {chip.device_id} 尚未签发密钥，无法签名命令")
        try:
            secret = self.secrets.open(chip)
        except InvalidToken:
            # Sealed under another platform secret: an operator's problem, never a 500.
            raise Conflict(f"芯片 {chip.device_id} 的密钥无法解密，请重新登记芯片") from None
        now_ms = to_ms(now)
        try:
            signed = build_command(
                chip.device_id, cmd, args, secret, now_ms, ttl_ms, command_id=str(uuid.uuid4())
            )
        except ValueError as exc:
            # validate_args catches what a person can get wrong; this is the schema's
            # last word (e.g. a string the canonical form cannot carry).
            detail = ErrorDetail(str(exc)[:200], field="args")
            raise InvalidInput("命令参数有误", [detail]) from None
        fields: dict[str, Any] = {
            "id": signed["id"],
            "device_id": chip.device_id,
            "machine_id": machine_id,
            "cmd": cmd,
            "args": args,
            "payload": encode_command(signed).decode("utf-8"),
            "created_at": now,
            "expires_at": from_ms(signed["exp"]),
            "requested_by_user_id": requested_by,
            "reason": reason[:64],
        }
        if send_now:
            return DeviceCommand(
                **fields,
                status=CommandStatus.SENT.value,
                attempts=1,
                first_sent_at=now,
                last_sent_at=now,
                next_attempt_at=now + retry_delay(1),
            )
        return DeviceCommand(
            **fields, status=CommandStatus.QUEUED.value, attempts=0, next_attempt_at=now
        )

    # --- delivery -------------------------------------------------------------
    def due(self, now: datetime, limit: int = 100) -> list[DeviceCommand]:
        return self.repo.due(now, limit)

    def claim(self, command: DeviceCommand, now: datetime) -> DispatchItem | None:
        """Claims one publish of ``command`` as read by ``due``; None when another
        dispatcher got there first (or its state moved meanwhile)."""
        attempts = command.attempts
        next_at = now + retry_delay(attempts + 1)
        if command.status == CommandStatus.QUEUED.value:
            won = self.repo.claim_first_send(command.id, attempts, now, next_at)
        elif command.status == CommandStatus.SENT.value:
            won = self.repo.claim_retry(command.id, attempts, now, next_at)
        else:
            won = False
        if not won:
            return None
        return DispatchItem(
            command.id, command.device_id, command.payload.encode("utf-8"), attempts + 1
        )

    def expire_overdue(self, now: datetime) -> int:
        return self.repo.expire_overdue(now)

    # --- what the chip said ---------------------------------------------------
    def record_ack(
        self, device_id: str, ack: Mapping[str, Any], received_at: datetime
    ) -> AckOutcome:
        """Applies one ``ack`` (§ 12.3) to its command."""
        return self.record_acks([(device_id, ack, received_at)])[0]

    def record_acks(
        self, acks: Sequence[tuple[str, Mapping[str, Any], datetime]]
    ) -> list[AckOutcome]:
        """:meth:`record_ack` for a batch of (device id, ack, received at), in their
        order: one read for all their commands and one flush, not two round trips
        per ack (the ingest sink writes a batch of acks at a time; a fleet's
        answers to its hellos' ``time`` commands come in thousands)."""
        commands = self.repo.for_acks([(device_id, _ack_id(ack)) for device_id, ack, _ in acks])
        outcomes = [
            self._apply_ack(commands.get((device_id, _ack_id(ack))), device_id, ack, received_at)
            for device_id, ack, received_at in acks
        ]
        self.session.flush()
        return outcomes

    def _apply_ack(
        self,
        command: DeviceCommand | None,
        device_id: str,
        ack: Mapping[str, Any],
        received_at: datetime,
    ) -> AckOutcome:
        if command is None:
            return AckOutcome.UNKNOWN
        if command.status in (CommandStatus.ACKED.value, CommandStatus.FAILED.value):
            # A retry the chip had answered already gets the remembered ack again
            # (§ 12.2); the first answer stands.
            return AckOutcome.DUPLICATE
        code = ack.get("code")
        code = code if _is_int(code) else -1
        state = ack.get("state")
        command.ack_code = code
        command.ack_state = state if isinstance(state, str) else None
        expired = command.status == CommandStatus.EXPIRED.value
        if code == AckCode.OK:
            # Also after exp: the chip executed it, and the record must say so.
            command.status = CommandStatus.ACKED.value
            command.finished_at = received_at
        elif code == AckCode.BUSY or expired:
            # Busy: the back-off already scheduled the next publish of the same
            # bytes, until exp. A late refusal of an expired command stays expired.
            pass
        elif code == AckCode.CLOCK_UNSYNCED:
            # Out of flight so that a ``time`` can go first, then the same command.
            command.status = CommandStatus.QUEUED.value
            command.next_attempt_at = received_at
            self.session.flush()
            chip = self.repo.chip_by_device_id(device_id)
            if chip is not None:
                self.issue_time(chip, received_at, reason=f"ack 8 of {command.id}"[:64])
        else:
            # 1 bad_signature, 4 wrong_device, 9 internal_error (alarms come with the
            # alarm issue), 2, 3, 5, 6 and any unknown non-zero code.
            command.status = CommandStatus.FAILED.value
            command.finished_at = received_at
        return AckOutcome.RECORDED

    def device_said_hello(self, device_id: str, now: datetime, *, sync_clock: bool = True) -> None:
        self.devices_said_hello([device_id], now, sync_clock=sync_clock)

    def devices_said_hello(
        self, device_ids: Collection[str], now: datetime, *, sync_clock: bool = True
    ) -> None:
        """§ 6.2 / § 13: answer each hello with ``time`` (when ``sync_clock``), then
        re-publish whatever is open for the devices at once.

        A fixed handful of statements for any number of hellos: when a whole fleet
        reconnects (a broker restart, the morning power-on) the ingest worker's
        database thread gets thousands of hellos in a batch, and a few statements
        per hello kept it busy for a minute, the live state unflushed meanwhile."""
        devices = sorted(set(device_ids))
        if not devices:
            return
        if sync_clock:
            open_commands = self.repo.open_commands_of(devices)
            has_time = {c.device_id for c in open_commands if c.cmd == "time"}
            for command in open_commands:
                if command.status == CommandStatus.SENT.value and command.cmd != "time":
                    # Step aside so the time command is published first.
                    command.status = CommandStatus.QUEUED.value
            for chip, machine_id in self.repo.chips_with_machine(devices):
                if chip.secret_encrypted is None or chip.device_id in has_time:
                    continue
                has_time.add(chip.device_id)
                try:
                    self._issue_signed(
                        chip,
                        machine_id,
                        "time",
                        {"now": to_ms(now)},
                        TIME_TTL_MS,
                        now,
                        None,
                        "hello",
                        flush=False,
                    )
                except Conflict:
                    log.warning("device %s: no usable secret, cannot send time", chip.device_id)
            self.session.flush()
        self.repo.republish_now(devices, now)
        self.session.flush()


# ---------------------------------------------------------------------- waiting


def _read_final(session_factory: sessionmaker[Session], command_id: str) -> str | None:
    """The command's final status, None while it is not settled; raises NotFound for
    an unknown id. What the async and the blocking waits below both poll."""
    with session_factory() as session:
        status = CommandRepository(session).status_of(command_id)
    if status is None:
        raise NotFound("命令不存在")
    return status if status in FINAL_STATUSES else None


async def wait_for_result(
    session_factory: sessionmaker[Session],
    command_id: str,
    timeout: float,
    *,
    poll_s: float = 0.1,
) -> str:
    """The command's final status (acked, failed, expired), or ``"pending"`` when
    ``timeout`` seconds pass first. Reads in a worker thread; the command must
    have been committed. Raises NotFound for an unknown id."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(timeout, 0.0)
    while True:
        status = await asyncio.to_thread(_read_final, session_factory, command_id)
        if status is not None:
            return status
        remaining = deadline - loop.time()
        if remaining <= 0:
            return PENDING
        await asyncio.sleep(min(poll_s, remaining))


def wait_for_result_blocking(
    session_factory: sessionmaker[Session],
    command_id: str,
    timeout: float,
    *,
    poll_s: float = 0.2,
) -> str:
    """``wait_for_result`` for synchronous callers (the CLI)."""
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        status = _read_final(session_factory, command_id)
        if status is not None:
            return status
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return PENDING
        time.sleep(min(poll_s, remaining))


def describe(command: DeviceCommand) -> Sequence[str]:
    """Human lines for the CLI (Chinese first, the status word in English)."""
    lines = [f"命令 {command.id}（{command.cmd}）→ 芯片 {command.device_id}"]
    status = command.status
    lines.append(f"状态 status：{STATUS_LABELS.get(status, status)}（{status}）")
    if command.ack_code is not None:
        lines.append(
            f"芯片应答 ack：code {command.ack_code} {ack_code_name(command.ack_code)}"
            f"（{ack_code_label(command.ack_code)}），state {command.ack_state or '-'}"
        )
    return lines
