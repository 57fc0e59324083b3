"""Device alarms: the ingest sink that applies ``domain.device_alarms`` to the message
stream, and the repository holding every alarm query.

The sink keeps each device's open conditions in memory, so ``observe`` on the event
loop is a dictionary lookup and a pure function call; the database sees only the
transitions, coalesced per flush (a burst of repeats of one condition is one
statement). Creation is atomic per condition in the database too: the partial unique
index ``uq_device_alarm_open`` (device_id, kind WHERE cleared_at IS NULL) is the
conflict target of the INSERT, so two workers, or a worker that lost its memory,
meeting the same condition milliseconds apart make one row with a repeat, never two.

What the sink assumes: a device's messages reach one worker (the same assumption
as the live state; with several workers, an MQTT shared subscription that hashes by
client id or topic). A worker that starts loads the open alarms, so it repeats and
clears them instead of raising them again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import Engine, Select, Table, bindparam, case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from weldguard.auth.scope import Scope
from weldguard.device.ingest_repository import arc_threshold_da as machine_arc_threshold_da
from weldguard.device.live_state import DeviceLive, StateChange
from weldguard.device.models import DeviceAlarm
from weldguard.device.protocol import UpKind
from weldguard.domain.device_alarms import (
    DEFAULT_POLICY,
    EMPTY,
    SEVERITY,
    AlarmPolicy,
    Change,
    Condition,
    DeviceConditions,
    MachineFacts,
    OpenCondition,
    Reading,
    Transition,
    on_message,
    on_offline,
    on_tick,
)
from weldguard.enterprise.models import Enterprise
from weldguard.machine.models import Chip, ChipBinding, Machine
from weldguard.pagination import Page, paginate

log = logging.getLogger(__name__)

FACTS_REFRESH_MS = 60_000


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


# ---------------------------------------------------------------------- repository


@dataclass(frozen=True, slots=True)
class DevicePlacement:
    """Where a chip sits now (its open binding), copied onto the alarms it raises."""

    machine_id: int
    enterprise_id: int
    # The enterprise's jurisdiction: sites carry no jurisdiction of their own, and
    # the enterprise's is the one scoping and the regulators' areas are built on.
    jurisdiction_id: int
    rated_current_a: int
    bound_since_ms: int


@dataclass(frozen=True, slots=True)
class OpenAlarm:
    device_id: str
    kind: str
    raised_ms: int
    last_seen_ms: int


@dataclass(slots=True)
class AlarmUpsert:
    """Raise a condition, or count repeats of it when it is open already."""

    device_id: str
    kind: str
    severity: str
    first_ms: int
    last_ms: int
    count: int  # messages that showed it (the raise included)
    detail: Mapping[str, Any]
    machine_id: int | None = None
    enterprise_id: int | None = None
    jurisdiction_id: int | None = None


@dataclass(frozen=True, slots=True)
class AlarmClear:
    device_id: str
    kind: str
    at_ms: int
    reason: str


@dataclass(frozen=True)
class AlarmFilter:
    kind: str | None = None
    severity: str | None = None
    state: Literal["open", "cleared"] | None = None
    enterprise_id: int | None = None
    machine_id: int | None = None
    device_id: str | None = None
    raised_from: datetime | None = None  # inclusive
    raised_before: datetime | None = None  # exclusive


_TABLE = cast(Table, DeviceAlarm.__table__)


class AlarmRepository:
    """Every query of device alarms. Reads for people take a Scope (through the
    alarm's enterprise); the ingest side's reads are platform-wide."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- for people -----------------------------------------------------------
    def _scoped(self, scope: Scope) -> Select[DeviceAlarm]:
        # Outer join: an alarm of a chip fitted to no machine has no enterprise and
        # is seen by those who see everything, and by nobody else.
        return (
            select(DeviceAlarm)
            .outerjoin(Enterprise, Enterprise.id == DeviceAlarm.enterprise_id)
            .where(scope.enterprise_filter())
        )

    def list_statement(self, scope: Scope, f: AlarmFilter) -> Select[DeviceAlarm]:
        stmt = self._scoped(scope)
        if f.kind is not None:
            stmt = stmt.where(DeviceAlarm.kind == f.kind)
        if f.severity is not None:
            stmt = stmt.where(DeviceAlarm.severity == f.severity)
        if f.state == "open":
            stmt = stmt.where(DeviceAlarm.cleared_at.is_(None))
        elif f.state == "cleared":
            stmt = stmt.where(DeviceAlarm.cleared_at.is_not(None))
        if f.enterprise_id is not None:
            stmt = stmt.where(DeviceAlarm.enterprise_id == f.enterprise_id)
        if f.machine_id is not None:
            stmt = stmt.where(DeviceAlarm.machine_id == f.machine_id)
        if f.device_id is not None:
            stmt = stmt.where(DeviceAlarm.device_id == f.device_id)
        if f.raised_from is not None:
            stmt = stmt.where(DeviceAlarm.raised_at >= f.raised_from)
        if f.raised_before is not None:
            stmt = stmt.where(DeviceAlarm.raised_at < f.raised_before)
        return stmt.order_by(DeviceAlarm.raised_at.desc(), DeviceAlarm.id.desc())

    def list_for_scope(
        self, scope: Scope, filters: AlarmFilter | None = None, page: int = 1, size: int = 50
    ) -> Page[DeviceAlarm]:
        """Newest first, within the scope."""
        stmt = self.list_statement(scope, filters or AlarmFilter())
        return paginate(self.session, stmt, page, size)

    def for_machine(self, scope: Scope, machine_id: int, limit: int = 50) -> list[DeviceAlarm]:
        """A machine's alarms, newest first (nothing when the machine is out of scope)."""
        stmt = self.list_statement(scope, AlarmFilter(machine_id=machine_id)).limit(limit)
        return list(self.session.scalars(stmt))

    # --- for the ingest sink --------------------------------------------------
    def placements(self, device_ids: Iterable[str] | None = None) -> dict[str, DevicePlacement]:
        """device_id → where the chip sits now, for chips with an open binding."""
        stmt = (
            select(
                Chip.device_id,
                Machine.id,
                Machine.enterprise_id,
                Enterprise.jurisdiction_id,
                Machine.rated_current_a,
                ChipBinding.fitted_at,
            )
            .join(ChipBinding, ChipBinding.chip_id == Chip.id)
            .join(Machine, Machine.id == ChipBinding.machine_id)
            .join(Enterprise, Enterprise.id == Machine.enterprise_id)
            .where(ChipBinding.removed_at.is_(None))
            # Should two bindings be open, the later one wins.
            .order_by(ChipBinding.fitted_at, ChipBinding.id)
        )
        if device_ids is not None:
            stmt = stmt.where(Chip.device_id.in_(sorted(set(device_ids))))
        out: dict[str, DevicePlacement] = {}
        for row in self.session.execute(stmt):
            device_id, machine_id, enterprise_id, jurisdiction_id, rated, fitted = row
            out[device_id] = DevicePlacement(
                machine_id, enterprise_id, jurisdiction_id, rated, _ms(fitted)
            )
        return out

    def open_alarms(self) -> list[OpenAlarm]:
        rows = self.session.execute(
            select(
                DeviceAlarm.device_id,
                DeviceAlarm.kind,
                DeviceAlarm.raised_at,
                DeviceAlarm.last_seen_at,
            ).where(DeviceAlarm.cleared_at.is_(None))
        )
        return [OpenAlarm(d, k, _ms(r), _ms(s)) for d, k, r, s in rows]

    def upsert_open(self, items: Sequence[AlarmUpsert]) -> None:
        """Inserts each as a new open alarm, or, when that device and kind has one
        open already (the partial unique index), adds the repeats to it."""
        if not items:
            return
        postgres = self.session.get_bind().dialect.name == "postgresql"
        ins = (pg_insert if postgres else sqlite_insert)(_TABLE)
        excluded = ins.excluded
        stmt = ins.on_conflict_do_update(
            index_elements=[_TABLE.c.device_id, _TABLE.c.kind],
            index_where=_TABLE.c.cleared_at.is_(None),
            set_={
                # The raise that met an open alarm counts as one more repeat.
                "repeats": _TABLE.c.repeats + excluded.repeats + 1,
                "last_seen_at": case(
                    (excluded.last_seen_at > _TABLE.c.last_seen_at, excluded.last_seen_at),
                    else_=_TABLE.c.last_seen_at,
                ),
            },
        )
        self.session.execute(
            stmt,
            [
                {
                    "device_id": u.device_id,
                    "kind": u.kind,
                    "severity": u.severity,
                    "machine_id": u.machine_id,
                    "enterprise_id": u.enterprise_id,
                    "jurisdiction_id": u.jurisdiction_id,
                    "raised_at": _at(u.first_ms),
                    "last_seen_at": _at(u.last_ms),
                    "cleared_at": None,
                    "repeats": u.count - 1,
                    "detail": dict(u.detail),
                }
                for u in items
            ],
        )

    def clear_open(self, items: Sequence[AlarmClear]) -> None:
        if not items:
            return
        stmt = (
            update(_TABLE)
            .where(
                _TABLE.c.device_id == bindparam("b_device_id"),
                _TABLE.c.kind == bindparam("b_kind"),
                _TABLE.c.cleared_at.is_(None),
            )
            .values(cleared_at=bindparam("b_cleared_at"))
        )
        self.session.execute(
            stmt,
            [
                {"b_device_id": c.device_id, "b_kind": c.kind, "b_cleared_at": _at(c.at_ms)}
                for c in items
            ],
        )


# ---------------------------------------------------------------------- the sink

Operation = AlarmUpsert | AlarmClear


@dataclass(slots=True)
class AlarmWork:
    """What one flush hands to the database thread, in the order it happened."""

    operations: list[Operation] = field(default_factory=list)
    refresh_facts: bool = False


SessionKnown = Callable[[str, str], bool]


class AlarmSink:
    """Implements ``device.sinks.IngestSink``.

    ``policy``: the thresholds and hold times of the rules. ``arc_threshold_da``: None
    (the default) applies each machine's own welding threshold, the rule the live
    state and the work sessions apply (``ingest_repository.arc_threshold_da``:
    max(5.0 A, 5 % of the rating of the machine the chip is bound to, else of the
    ``rated_a`` its hello gave), so that "current while locked" means the same current
    as "welding" does elsewhere; a number applies that threshold to every machine.
    ``session_known(device_id, sess)``: whether the platform issued that work
    session; runs on the event loop for every ``tel`` naming a session, so it must be
    an in-memory lookup; None (until work sessions exist) trusts every session.
    ``facts_refresh_ms``: how often the bindings are reloaded."""

    name = "alarms"

    def __init__(
        self,
        *,
        policy: AlarmPolicy = DEFAULT_POLICY,
        arc_threshold_da: int | None = None,
        session_known: SessionKnown | None = None,
        facts_refresh_ms: int = FACTS_REFRESH_MS,
    ) -> None:
        self.policy = policy
        self.arc_threshold_da = arc_threshold_da
        self.session_known = session_known
        self.facts_refresh_ms = facts_refresh_ms
        # Replaced whole by the database thread (a reference swap), read on the loop:
        # device_id → (where it sits, the facts the rules need).
        self._placed: Mapping[str, tuple[DevicePlacement, MachineFacts]] = {}
        self._default_facts = MachineFacts(arc_threshold_da=self.threshold_for(None))
        self._facts_loaded_ms = 0
        self._refresh_due = False
        # Loop only from here on.
        self.conditions: dict[str, DeviceConditions] = {}
        self._unplaced: dict[str, MachineFacts] = {}
        self._pending: list[Operation] = []
        # (device, kind) → its upsert in _pending that later repeats may join.
        self._joinable: dict[tuple[str, str], AlarmUpsert] = {}
        self.raised = 0
        self.cleared = 0

    # ------------------------------------------------------------------ facts

    def threshold_for(self, rated_current_a: int | None) -> int:
        """The welding threshold (deciamperes) of a machine of that rating."""
        if self.arc_threshold_da is not None:
            return self.arc_threshold_da
        return machine_arc_threshold_da(rated_current_a)

    def facts(self, device_id: str) -> MachineFacts:
        placed = self._placed.get(device_id)
        if placed is not None:
            return placed[1]
        # Not fitted: the rating the chip was configured with, if it said.
        return self._unplaced.get(device_id, self._default_facts)

    def _set_placements(self, placements: Mapping[str, DevicePlacement]) -> None:
        """One reference swap (the loop reads it while the database thread writes)."""
        self._placed = {
            device_id: (
                p,
                MachineFacts(
                    rated_current_a=p.rated_current_a,
                    arc_threshold_da=self.threshold_for(p.rated_current_a),
                    bound_since_ms=p.bound_since_ms,
                ),
            )
            for device_id, p in placements.items()
        }

    # ------------------------------------------------------------------ IngestSink

    def start(self, engine: Engine, now_ms: int) -> None:
        with Session(engine) as session:
            repo = AlarmRepository(session)
            self._set_placements(repo.placements())
            opened = repo.open_alarms()
        self._facts_loaded_ms = now_ms
        known = {c.value for c in Condition}
        by_device: dict[str, dict[Condition, OpenCondition]] = {}
        for alarm in opened:
            if alarm.kind in known:
                # Not "active": whether an arc still burns is for the next message
                # to say; until then the hold runs from the last one recorded.
                by_device.setdefault(alarm.device_id, {})[Condition(alarm.kind)] = OpenCondition(
                    alarm.raised_ms, alarm.last_seen_ms, active=False
                )
        self.conditions = {d: DeviceConditions(open=o) for d, o in by_device.items()}
        log.info("alarms: %d open alarm(s) of %d device(s) loaded", len(opened), len(by_device))

    def observe(
        self,
        device_id: str,
        kind: UpKind,
        message: Mapping[str, Any],
        change: StateChange,
        state: DeviceLive,
        now_ms: int,
    ) -> None:
        if kind is UpKind.HELLO:
            rated = message.get("rated_a")
            if isinstance(rated, int):
                self._unplaced[device_id] = MachineFacts(
                    rated_current_a=rated, arc_threshold_da=self.threshold_for(rated)
                )
        prev = self.conditions.get(device_id, EMPTY)
        if prev is EMPTY and (kind is UpKind.HB or kind is UpKind.ACK):
            return  # the bulk of the traffic: nothing open, nothing these could raise
        session_known = True
        if kind is UpKind.TEL and self.session_known is not None:
            sess = message.get("sess")
            if isinstance(sess, str):
                session_known = self.session_known(device_id, sess)
        reading = Reading(kind.value, message, change.live, state.lock_state, session_known)
        after, transitions = on_message(prev, self.facts(device_id), reading, now_ms, self.policy)
        self._keep(device_id, prev, after, transitions)

    def went_offline(self, device_id: str, state: DeviceLive, now_ms: int) -> None:
        prev = self.conditions.get(device_id, EMPTY)
        after, transitions = on_offline(
            prev, self.facts(device_id), now_ms, supply_mv=state.vin_mv, policy=self.policy
        )
        self._keep(device_id, prev, after, transitions)

    def drain(self, now_ms: int) -> AlarmWork | None:
        for device_id, prev in list(self.conditions.items()):
            if prev.open:
                after, transitions = on_tick(prev, self.facts(device_id), now_ms, self.policy)
                self._keep(device_id, prev, after, transitions)
        refresh = self._refresh_due or now_ms - self._facts_loaded_ms >= self.facts_refresh_ms
        if not self._pending and not refresh:
            return None
        work = AlarmWork(self._pending, refresh)
        self._pending, self._joinable = [], {}
        if refresh:
            self._facts_loaded_ms, self._refresh_due = now_ms, False
        return work

    def write(self, engine: Engine, work: AlarmWork, now_ms: int) -> None:
        placements: Mapping[str, DevicePlacement] | None = None
        with Session(engine) as session, session.begin():
            repo = AlarmRepository(session)
            self._place(repo, work.operations)
            # Consecutive operations of one type go in one statement; the order
            # between types is kept (a clear and a new raise of the same condition).
            batch: list[Operation] = []
            for operation in work.operations:
                if batch and type(batch[0]) is not type(operation):
                    self._apply(repo, batch)
                    batch = []
                batch.append(operation)
            self._apply(repo, batch)
            if work.refresh_facts:
                placements = repo.placements()
        if placements is not None:
            self._set_placements(placements)

    def requeue(self, work: AlarmWork) -> None:
        # Older than whatever was observed since: in front.
        self._pending[:0] = work.operations
        if work.refresh_facts:
            self._refresh_due = True

    # ------------------------------------------------------------------ helpers

    def _keep(
        self,
        device_id: str,
        prev: DeviceConditions,
        after: DeviceConditions,
        transitions: Sequence[Transition],
    ) -> None:
        if after is not prev:
            if after.idle:
                self.conditions.pop(device_id, None)
            else:
                self.conditions[device_id] = after
        for transition in transitions:
            self._record(device_id, transition)

    def _record(self, device_id: str, t: Transition) -> None:
        key = (device_id, t.condition.value)
        if t.change is Change.CLEARED:
            self._joinable.pop(key, None)
            self._pending.append(
                AlarmClear(device_id, t.condition.value, t.at_ms, str(t.detail.get("reason", "")))
            )
            self.cleared += 1
            return
        joined = self._joinable.get(key) if t.change is Change.REPEATED else None
        if joined is not None:
            joined.count += 1
            joined.last_ms = max(joined.last_ms, t.at_ms)
            return
        placed = self._placed.get(device_id)
        placement = placed[0] if placed else None
        upsert = AlarmUpsert(
            device_id=device_id,
            kind=t.condition.value,
            severity=SEVERITY[t.condition].value,
            first_ms=t.at_ms,
            last_ms=t.at_ms,
            count=1,
            detail=t.detail,
            machine_id=placement.machine_id if placement else None,
            enterprise_id=placement.enterprise_id if placement else None,
            jurisdiction_id=placement.jurisdiction_id if placement else None,
        )
        self._pending.append(upsert)
        self._joinable[key] = upsert
        if t.change is Change.RAISED:
            self.raised += 1

    @staticmethod
    def _place(repo: AlarmRepository, operations: Sequence[Operation]) -> None:
        """Chips bound since the last refresh: look their placement up now, so an
        alarm is not recorded without its machine for up to a minute."""
        missing = {
            o.device_id for o in operations if isinstance(o, AlarmUpsert) and o.machine_id is None
        }
        if not missing:
            return
        found = repo.placements(missing)
        for o in operations:
            if isinstance(o, AlarmUpsert) and o.machine_id is None:
                placement = found.get(o.device_id)
                if placement is not None:
                    o.machine_id = placement.machine_id
                    o.enterprise_id = placement.enterprise_id
                    o.jurisdiction_id = placement.jurisdiction_id

    @staticmethod
    def _apply(repo: AlarmRepository, batch: Sequence[Operation]) -> None:
        if not batch:
            return
        if isinstance(batch[0], AlarmUpsert):
            repo.upsert_open([o for o in batch if isinstance(o, AlarmUpsert)])
        else:
            repo.clear_open([o for o in batch if isinstance(o, AlarmClear)])


__all__ = [
    "AlarmClear",
    "AlarmFilter",
    "AlarmRepository",
    "AlarmSink",
    "AlarmUpsert",
    "AlarmWork",
    "DevicePlacement",
    "OpenAlarm",
]
