"""Queries of the unlock area. Every read of the register takes a Scope."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, TypeVarTuple, cast

from sqlalchemy import CursorResult, Select, and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from weldguard.auth.models import AccessToken, User
from weldguard.auth.repository import live_token
from weldguard.auth.scope import Scope
from weldguard.db import (
    PREPARED,
    Chained,
    UTCDateTime,
    insert_chain_unless_taken,
    insert_unless_taken,
)
from weldguard.device.models import DeviceCommand, DeviceState
from weldguard.enterprise.models import Enterprise, Site
from weldguard.machine.models import Chip, ChipBinding, Machine
from weldguard.unlock.models import ScanRecord, SessionStatus, SpecialPeriod, WorkSession
from weldguard.welder.models import Certificate, Employment, Welder

PlaceRow = tuple[Machine, Enterprise, Site | None, Chip | None, DeviceState | None]
WelderRows = tuple[list[Certificate], list[Employment], list[WorkSession]]


@dataclass(frozen=True)
class ScanRead:
    """What :meth:`ScanRepository.scan_read` found: the place, the periods, the
    live token and its account (None when nobody is signed in with it), and the
    account's welder's certificates, employments and open sessions (with the
    machine's own)."""

    place: PlaceRow
    periods: list[SpecialPeriod]
    token: AccessToken | None
    user: User | None
    welder_rows: WelderRows


class LabelRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def machine_with_enterprise(
        self, scope: Scope, machine_id: int
    ) -> tuple[Machine, Enterprise] | None:
        row = self.session.execute(
            select(Machine, Enterprise)
            .join(Enterprise, Enterprise.id == Machine.enterprise_id)
            .where(Machine.id == machine_id, scope.enterprise_filter())
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    def machines_of(self, scope: Scope, enterprise_id: int) -> list[Machine]:
        """Every machine of a visible enterprise (retired ones too), by code."""
        return list(
            self.session.scalars(
                select(Machine)
                .join(Enterprise, Enterprise.id == Machine.enterprise_id)
                .where(Machine.enterprise_id == enterprise_id, scope.enterprise_filter())
                .order_by(Machine.code)
            )
        )

    def machine_by_code(self, code: str) -> Machine | None:
        """Unscoped: a scanned label resolves for anyone who holds it."""
        return self.session.scalars(select(Machine).where(Machine.code == code)).one_or_none()


class ScanRepository:
    """The queries of scan to unlock: the facts behind a decision, the scan records
    and the work sessions. The label is what reaches the machine (unscoped, like
    :meth:`LabelRepository.machine_by_code`); who may *see* what is decided by the
    pages with a Scope."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- the machine and its place -------------------------------------------
    def machine_by_code(self, code: str) -> Machine | None:
        return self.session.scalars(select(Machine).where(Machine.code == code)).one_or_none()

    def machine(self, machine_id: int) -> Machine | None:
        return self.session.get(Machine, machine_id)

    def enterprise(self, enterprise_id: int) -> Enterprise | None:
        return self.session.get(Enterprise, enterprise_id)

    def site(self, site_id: int) -> Site | None:
        return self.session.get(Site, site_id)

    def machine_place(
        self, *, code: str | None = None, machine_id: int | None = None
    ) -> PlaceRow | None:
        """A machine by label code (or id) with its enterprise, site, the chip in
        its open binding and the chip's live state, in one round trip (the scan's
        first read; the last three may be missing)."""
        statement = _with_chip(select(Machine, Enterprise, Site, Chip, DeviceState))
        if code is not None:
            statement = statement.where(Machine.code == code)
        elif machine_id is not None:
            statement = statement.where(Machine.id == machine_id)
        else:
            raise ValueError("a machine code or id is needed")
        row = self.session.execute(statement.order_by(ChipBinding.id).limit(1)).first()
        if row is None:
            return None
        return row[0], row[1], row[2], row[3], row[4]

    def scan_place(self, code: str, now: datetime) -> tuple[PlaceRow, list[SpecialPeriod]] | None:
        """What the scan reads first, in one round trip: the machine by label code
        with its place (as :meth:`machine_place`) and the special periods over its
        enterprise's area that have not ended (as :meth:`special_periods_over`).
        The periods are outer-joined on "the period's area is a prefix of the
        enterprise's": a handful of rows, never a scan of scan records."""
        rows = self.session.execute(_SCAN_PLACE, {"code": code, "now": now}).all()
        if not rows:
            return None
        machine, enterprise, site, chip, state, _ = rows[0]
        # More than one open binding would be a register error; the first one
        # counts, as in machine_place.
        periods = [row[5] for row in rows if row[5] is not None and row[3] is chip]
        return (machine, enterprise, site, chip, state), periods

    def scan_read(self, code: str, token_hash: str, now: datetime) -> ScanRead | None:
        """The scan page's one read: :meth:`scan_place` (the machine by label code,
        its place, the special periods over it), the account signed in with
        ``token_hash`` if its token is live (``live_token``), and that account's
        welder's :meth:`welder_facts` on this machine. None for an unknown code.

        Outer joins all: rows are the small cross product of the periods, the
        certificates, the employments and the open sessions, each kept once here
        in the order of its first appearance (the order of the separate reads)."""
        rows = self.session.execute(
            _SCAN_READ, {"code": code, "token_hash": token_hash, "now": now}
        ).all()
        if not rows:
            return None
        machine, enterprise, site, chip, state, _, token, user = rows[0][:8]
        # A second open binding would be a register error: the first one counts.
        ours = [row for row in rows if row[3] is chip]
        periods = {row[5].id: row[5] for row in ours if row[5] is not None}
        return ScanRead(
            (machine, enterprise, site, chip, state),
            list(periods.values()),
            token,
            user,
            _welder_rows((row[8], row[9], row[10]) for row in ours),
        )

    def chip_with_state(self, machine_id: int) -> tuple[Chip | None, DeviceState | None]:
        """The chip in the machine's open binding and its live state (either may be
        missing: no chip fitted, or a chip that never reported)."""
        row = self.session.execute(
            select(Chip, DeviceState)
            .join(ChipBinding, ChipBinding.chip_id == Chip.id)
            .outerjoin(DeviceState, DeviceState.device_id == Chip.device_id)
            .where(ChipBinding.machine_id == machine_id, ChipBinding.removed_at.is_(None))
        ).first()
        if row is None:
            return None, None
        return row[0], row[1]

    def visible_machine(self, scope: Scope, machine_id: int) -> Machine | None:
        return self.session.scalars(
            select(Machine)
            .join(Enterprise, Enterprise.id == Machine.enterprise_id)
            .where(Machine.id == machine_id, scope.enterprise_filter())
        ).one_or_none()

    # --- the welder ------------------------------------------------------------
    def welder(self, welder_id: int) -> Welder | None:
        return self.session.get(Welder, welder_id)

    def certificates_of(self, welder_id: int) -> list[Certificate]:
        return list(
            self.session.scalars(
                select(Certificate)
                .where(Certificate.welder_id == welder_id)
                .order_by(Certificate.expiry_date.desc(), Certificate.id)
            )
        )

    def welder_facts(
        self, welder_id: int, machine_id: int
    ) -> tuple[list[Certificate], list[Employment], list[WorkSession]]:
        """The welder's certificates (as :meth:`certificates_of` orders them), their
        employments (as :meth:`employments_of`) and the open sessions on the
        machine or of the welder (as :meth:`open_sessions_for`), in one round trip:
        outer joins from the welder, whose small cross product is taken apart
        here (each row kept once, in the order of its first appearance)."""
        rows = self.session.execute(
            _WELDER_FACTS, {"welder_id": welder_id, "machine_id": machine_id}
        )
        return _welder_rows(rows)

    def employments_of(self, welder_id: int) -> list[Employment]:
        return list(
            self.session.scalars(
                select(Employment)
                .where(Employment.welder_id == welder_id)
                .order_by(Employment.start_date, Employment.id)
            )
        )

    # --- special periods ---------------------------------------------------------
    def special_periods_over(self, area_path: str, now: datetime) -> list[SpecialPeriod]:
        """Periods declared for the area or any area above it that have not ended
        (the ones still to come limit a session's validity). An exact match on the
        path's prefixes, so the lookup uses the index instead of a LIKE scan."""
        prefixes = area_prefixes(area_path)
        if not prefixes:
            return []
        return list(
            self.session.scalars(
                select(SpecialPeriod)
                .where(SpecialPeriod.area_path.in_(prefixes), SpecialPeriod.ends_at > now)
                .order_by(SpecialPeriod.starts_at, SpecialPeriod.id)
            )
        )

    # --- work sessions -----------------------------------------------------------
    def open_session_on(self, machine_id: int) -> WorkSession | None:
        return self.session.scalars(
            _fresh(select(WorkSession)).where(
                WorkSession.machine_id == machine_id, WorkSession.status.in_(OPEN_SESSION_STATUSES)
            )
        ).first()

    def open_sessions_of(self, welder_id: int) -> list[WorkSession]:
        return list(
            self.session.scalars(
                _fresh(select(WorkSession)).where(
                    WorkSession.welder_id == welder_id,
                    WorkSession.status.in_(OPEN_SESSION_STATUSES),
                )
            )
        )

    def open_sessions_for(self, machine_id: int, welder_id: int) -> list[WorkSession]:
        """The open sessions on the machine and the welder's own, in one query (the
        scan reads both: 焊机使用中 and 另有作业)."""
        return list(
            self.session.scalars(
                _fresh(select(WorkSession))
                .where(
                    or_(WorkSession.machine_id == machine_id, WorkSession.welder_id == welder_id),
                    WorkSession.status.in_(OPEN_SESSION_STATUSES),
                )
                .order_by(WorkSession.started_at, WorkSession.id)
            )
        )

    def open_sessions_under_permit(
        self, permit_id: int, machine_ids: Collection[int]
    ) -> list[WorkSession]:
        """The open sessions a permit's scans started on these machines."""
        return list(
            self.session.scalars(
                _fresh(select(WorkSession)).where(
                    WorkSession.permit_id == permit_id,
                    WorkSession.machine_id.in_(machine_ids),
                    WorkSession.status.in_(OPEN_SESSION_STATUSES),
                )
            )
        )

    def stale_starts(
        self, cutoff: datetime, machine_id: int | None = None, welder_id: int | None = None
    ) -> list[WorkSession]:
        """Sessions still waiting for their unlock ack since before ``cutoff`` (the
        web process that waited for them went away), of a machine or a welder."""
        who = []
        if machine_id is not None:
            who.append(WorkSession.machine_id == machine_id)
        if welder_id is not None:
            who.append(WorkSession.welder_id == welder_id)
        statement = _fresh(select(WorkSession)).where(
            WorkSession.status == SessionStatus.STARTING.value, WorkSession.started_at < cutoff
        )
        if who:
            statement = statement.where(or_(*who))
        return list(self.session.scalars(statement))

    def work_session(self, session_id: str) -> WorkSession | None:
        return self.session.scalars(
            _fresh(select(WorkSession)).where(WorkSession.id == session_id)
        ).one_or_none()

    def move_session(
        self, session_id: str, from_statuses: tuple[str, ...], **values: Any
    ) -> WorkSession | None:
        """One transition of a session, conditional on its status as the database
        has it: the unlock's waiter, the welder's 结束作业 and a stale sweep may race
        for the same session, and exactly one of them wins (a read-then-write would
        let the last writer undo the first). The session as it now is, or None when
        another transition came first."""
        result = self.session.execute(
            update(WorkSession)
            .where(WorkSession.id == session_id, WorkSession.status.in_(from_statuses))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        moved = cast(CursorResult[Any], result).rowcount == 1
        current = self.work_session(session_id)
        return current if moved else None

    def add_session_if_free(self, work_session: WorkSession) -> bool:
        """Inserts a new session unless the machine has an open one already (the
        unique index ``uq_work_session_open_machine`` decides): False when another
        request got there first."""
        return insert_unless_taken(self.session, work_session)

    def add_started(
        self, record: ScanRecord, unlock: DeviceCommand | None, work_session: WorkSession
    ) -> int:
        """An allowed scan's rows in one go: the record, then its unlock (when there
        is one to send) unless the chip has a command in flight, then the session
        (its ``scan_id`` the record's new id) unless the machine has an open one.
        Returns how many went in, in that order: 0 when the record's idempotency
        key was taken (the form was submitted before) and nothing was written."""
        rows = [Chained(record)]
        if unlock is not None:
            rows.append(Chained(unlock))
        rows.append(Chained(work_session, {"scan_id": (0, "id")}))
        return insert_chain_unless_taken(self.session, rows)

    def add_session(self, work_session: WorkSession) -> WorkSession:
        self.session.add(work_session)
        self.session.flush()
        return work_session

    # --- scan records --------------------------------------------------------------
    def add_scan(self, record: ScanRecord) -> ScanRecord | None:
        """Writes the record, unless its user has one with the same idempotency key
        (None: the form was submitted before, see :meth:`scan_by_key`)."""
        return record if insert_unless_taken(self.session, record) else None

    def scan_by_key(self, user_id: int, idempotency_key: str) -> ScanRecord | None:
        return self.session.scalars(
            select(ScanRecord).where(
                ScanRecord.user_id == user_id, ScanRecord.idempotency_key == idempotency_key
            )
        ).one_or_none()

    def scan_record(self, record_id: int) -> ScanRecord | None:
        return self.session.get(ScanRecord, record_id)

    def command(self, command_id: str) -> DeviceCommand | None:
        return self.session.scalars(
            _fresh(select(DeviceCommand)).where(DeviceCommand.id == command_id)
        ).one_or_none()


OPEN_SESSION_STATUSES = (SessionStatus.STARTING.value, SessionStatus.ACTIVE.value)

# The scan's reads, built once with bind parameters: every scan runs them, and
# building a statement and its cache key costs more than the round trip itself.
_Row = TypeVarTuple("_Row")


def _welder_rows(
    rows: Iterable[tuple[Certificate | None, Employment | None, WorkSession | None]],
) -> WelderRows:
    """The outer joins' cross product taken apart: each certificate, employment and
    session once, in the order of its first appearance."""
    certificates: dict[int, Certificate] = {}
    employments: dict[int, Employment] = {}
    sessions: dict[str, WorkSession] = {}
    for certificate, employment, work in rows:
        if certificate is not None:
            certificates.setdefault(certificate.id, certificate)
        if employment is not None:
            employments.setdefault(employment.id, employment)
        if work is not None:
            sessions.setdefault(work.id, work)
    return list(certificates.values()), list(employments.values()), list(sessions.values())


def _with_chip(statement: Select[*_Row]) -> Select[*_Row]:
    """From the machine: its enterprise, its site, the chip in its open binding and
    the chip's live state."""
    return (
        statement.join(Enterprise, Enterprise.id == Machine.enterprise_id)
        .outerjoin(Site, Site.id == Machine.site_id)
        .outerjoin(
            ChipBinding,
            and_(ChipBinding.machine_id == Machine.id, ChipBinding.removed_at.is_(None)),
        )
        .outerjoin(Chip, Chip.id == ChipBinding.chip_id)
        .outerjoin(DeviceState, DeviceState.device_id == Chip.device_id)
    )


def _with_place(statement: Select[*_Row], now: Any) -> Select[*_Row]:
    """:func:`_with_chip`, and the special periods over the enterprise's area (its
    own or one above it) that have not ended at ``now``."""
    return _with_chip(statement).outerjoin(
        SpecialPeriod,
        and_(
            SpecialPeriod.ends_at > now,
            Enterprise.area_path.startswith(SpecialPeriod.area_path),
        ),
    )


def _with_welder_facts(statement: Select[*_Row], welder_id: Any, machine_id: Any) -> Select[*_Row]:
    """The welder's certificates and employments, and the open sessions of the
    welder or on the machine."""
    return (
        statement.outerjoin(Certificate, Certificate.welder_id == welder_id)
        .outerjoin(Employment, Employment.welder_id == welder_id)
        .outerjoin(
            WorkSession,
            and_(
                or_(WorkSession.welder_id == welder_id, WorkSession.machine_id == machine_id),
                WorkSession.status.in_(OPEN_SESSION_STATUSES),
            ),
        )
    )


_PLACE_ORDER = (ChipBinding.id, SpecialPeriod.starts_at, SpecialPeriod.id)
_WELDER_FACTS_ORDER = (
    Certificate.expiry_date.desc(),
    Certificate.id,
    Employment.start_date,
    Employment.id,
    WorkSession.started_at,
    WorkSession.id,
)
_NOW = bindparam("now", type_=UTCDateTime())
_SCAN_PLACE = (
    _with_place(select(Machine, Enterprise, Site, Chip, DeviceState, SpecialPeriod), _NOW)
    .where(Machine.code == bindparam("code"))
    .order_by(*_PLACE_ORDER)
    .execution_options(**{PREPARED: True})
)
_WELDER_FACTS = (
    _with_welder_facts(
        select(Certificate, Employment, WorkSession).select_from(Welder),
        Welder.id,
        bindparam("machine_id"),
    )
    .where(Welder.id == bindparam("welder_id"))
    .order_by(*_WELDER_FACTS_ORDER)
    # Sessions are changed by other processes: as the database has them.
    .execution_options(populate_existing=True, **{PREPARED: True})
)
# The scan page's read (scan_read): both of the above, and between them the
# account of a live token, whose welder the facts are of: one round trip, not three.
_SCAN_READ = (
    _with_welder_facts(
        _with_place(
            select(
                Machine,
                Enterprise,
                Site,
                Chip,
                DeviceState,
                SpecialPeriod,
                AccessToken,
                User,
                Certificate,
                Employment,
                WorkSession,
            ),
            _NOW,
        )
        .outerjoin(AccessToken, live_token(bindparam("token_hash"), _NOW))
        .outerjoin(User, User.id == AccessToken.user_id),
        User.welder_id,
        Machine.id,
    )
    .where(Machine.code == bindparam("code"))
    .order_by(*_PLACE_ORDER, *_WELDER_FACTS_ORDER)
    # Sessions are changed by other processes: as the database has them.
    .execution_options(populate_existing=True, **{PREPARED: True})
)


def area_prefixes(area_path: str) -> list[str]:
    """ "310000/310100/310105/" -> ["310000/", "310000/310100/", "310000/310100/310105/"]."""
    parts = [p for p in area_path.split("/") if p]
    return ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]


_S = TypeVar("_S", bound=Select[Any])


def _fresh(statement: _S) -> _S:
    """Session and command states are changed by other processes (the bus, the
    ingest sink, the dispatcher): read them as the database has them."""
    return statement.execution_options(populate_existing=True)
