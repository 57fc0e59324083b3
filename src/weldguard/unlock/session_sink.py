"""The work-session ingest sink: accrues the chip's telemetry onto its work session
and follows the chip's lock edges (``domain/work_sessions.py`` has the rules).

In memory (event loop only, except where said): every session the sink knows, by
id, and each device's open session. ``observe`` is a dictionary lookup and a pure
function call; the database sees one UPDATE per changed session per flush
(increments, so a session seen by two workers during a rebalance adds up instead of
one overwriting the other), plus a conditional UPDATE for each lifecycle change
(``starting → active`` on the chip's ``unlocked``, ``→ ended`` on its ``locked``),
which does nothing when the platform moved the session first.

Which sessions it knows:

- ``start`` loads the open ones (``starting``, ``active``) and those ended within
  ``closed_retention_ms``.
- Sessions are created by the web process (扫码开机). Every ``refresh_ms`` (1 s) a
  flush also reads the open sessions started since the last read (minus a minute of
  slack for the web process's transaction), a cheap query on the status index; an
  ``unlocked`` event naming an unknown session asks for that read at the next flush.
- Sessions closed elsewhere (the welder's 结束作业, the supervisor): every
  ``full_refresh_ms`` (60 s) the open set is read whole and whatever the sink holds
  as open but the database does not is closed in memory too.
- A closed session is kept ``closed_retention_ms`` (24 h; failed ones not at all), so
  late replays from the chip's buffer still accrue onto it and ``session_known``
  still knows it.

``session_known(device_id, sess)`` is the AlarmSink's hook: True when ``sess`` is a
session the platform issued to that device (open, or ended within the retention);
False for a failed session (the chip unlocked under a session the platform gave up)
and for an unknown one, which the AlarmSink raises as ``current_without_session``.
Build both sinks together::

    sessions = SessionSink(device_secrets=secrets)
    sinks = [CommandSink(secrets), sessions, AlarmSink(session_known=sessions.session_known)]

A session the web process committed is known within about one flush interval
(``state_flush_ms`` + ``refresh_ms``); a chip reports a session in ``tel`` only after
it executed the unlock the dispatcher published after that commit.

After a restart of the chip (docs/protocol.md § 6.5; the rules are
``work_sessions.after_reboot``, carried out by ``unlock/reboot.py``): a live ``hello``
with ``boot`` true, or a ``locked`` event with ``reason: boot`` naming the session,
from a chip whose session is ``active`` asks the next write to re-send the unlock (or
to end the session when it is no longer valid). A chip normally sends both, the
event usually as a replay after the hello; the signals of one restart (same boot
count of the live state, within ``LATE_LIVE_MS``) make one request, and the
database rule makes a second one harmless anyway. After a commit that queued an
unlock, ``on_commands`` wakes the dispatchers of this process. Without
``device_secrets`` the sink cannot sign and leaves restarts alone.

Hand-over between threads: ``write`` (database thread) never touches the loop's
dictionaries; what it read goes through a deque that the loop applies at its next
call (``observe``, ``drain``, ``session_known``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Engine, Float, Table, case, literal, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from weldguard.db import UTCDateTime
from weldguard.device.commands import from_ms, to_ms
from weldguard.device.dispatcher import wake_local_dispatchers
from weldguard.device.ingest_repository import IngestRepository, arc_threshold_da
from weldguard.device.live_state import DeviceLive, StateChange
from weldguard.device.protocol import LATE_LIVE_MS, UpKind
from weldguard.device.registry import DeviceSecrets
from weldguard.domain.work_sessions import (
    DEFAULT_SESSION_POLICY,
    NO_ACCRUAL,
    OPEN_STATUSES,
    Accrual,
    Coverage,
    EdgeEffect,
    EndReason,
    LockEdge,
    Position,
    SessionPolicy,
    accrue,
    edge_effect,
    hb_position,
    lock_edge,
    tel_window,
)
from weldguard.unlock.models import SessionStatus, WorkSession
from weldguard.unlock.reboot import DEFAULT_UNLOCK_TTL_S, RebootOutcome, UnlockResender

log = logging.getLogger(__name__)

REFRESH_MS = 1_000
FULL_REFRESH_MS = 60_000
THRESHOLDS_REFRESH_MS = 60_000
CLOSED_RETENTION_MS = 24 * 3_600_000
# The web process stamps started_at before its commit; a session committed a little
# after a read must still fall in the next one.
REFRESH_SLACK_MS = 60_000
# What a closed session keeps of its coverage (memory: the retention holds many).
CLOSED_INTERVALS = 8
_OPEN = tuple(s.value for s in (SessionStatus.STARTING, SessionStatus.ACTIVE))
_TABLE = cast(Table, WorkSession.__table__)


@dataclass(slots=True)
class KnownSession:
    id: str
    device_id: str
    status: str
    started_ms: int
    closed_ms: int | None = None
    covered: Coverage = ()
    # The newest fix applied (replays carry older ones).
    fix_ms: int = -1
    # Arc time accrued by this sink (ms) and how much of it went out as whole seconds.
    arc_ms: int = 0
    arc_s_taken: int = 0


@dataclass(slots=True)
class SessionUpdate:
    """One session's changes in one flush."""

    session_id: str
    arc_s: int = 0
    accrual: Accrual = NO_ACCRUAL  # energy, peak, last arc (arc time: arc_s)
    position: Position | None = None
    activate_ms: int | None = None
    end_ms: int | None = None

    def merge(self, newer: SessionUpdate) -> None:
        self.arc_s += newer.arc_s
        self.accrual = self.accrual.plus(newer.accrual)
        if newer.position is not None and (
            self.position is None or newer.position.fix_ms >= self.position.fix_ms
        ):
            self.position = newer.position
        if self.activate_ms is None:
            self.activate_ms = newer.activate_ms
        if self.end_ms is None:
            self.end_ms = newer.end_ms


@dataclass(frozen=True, slots=True)
class RebootSeen:
    """The chip restarted (at ``boot_ms``) under this active session."""

    session_id: str
    device_id: str
    boot_ms: int


@dataclass(frozen=True, slots=True)
class LoadedSession:
    id: str
    device_id: str
    status: str
    started_ms: int
    ended_ms: int | None


@dataclass(slots=True)
class SessionWork:
    updates: list[SessionUpdate] = field(default_factory=list)
    reboots: list[RebootSeen] = field(default_factory=list)
    # Open sessions started at or after this (ms); None: no such read.
    refresh_since_ms: int | None = None
    # The sessions the loop held as open when it asked for a full read (None: no
    # full read): those the database no longer has open are closed in memory.
    full_refresh: frozenset[str] | None = None
    thresholds: bool = False


@dataclass(slots=True)
class _Loaded:
    """What a write read, for the loop to apply."""

    sessions: list[LoadedSession]
    # With a full refresh: the ids open in the database, and the statuses of the
    # ones asked about (held as open by the loop, not open any more).
    open_ids: frozenset[str] | None = None
    closed: Mapping[str, tuple[str, int | None]] = field(default_factory=dict)
    thresholds: Mapping[str, int] | None = None


class SessionSink:
    """Implements ``device.sinks.IngestSink`` (see the module docstring)."""

    name = "sessions"

    def __init__(
        self,
        *,
        policy: SessionPolicy = DEFAULT_SESSION_POLICY,
        refresh_ms: int = REFRESH_MS,
        full_refresh_ms: int = FULL_REFRESH_MS,
        thresholds_refresh_ms: int = THRESHOLDS_REFRESH_MS,
        closed_retention_ms: int = CLOSED_RETENTION_MS,
        device_secrets: DeviceSecrets | None = None,
        unlock_ttl_s: int = DEFAULT_UNLOCK_TTL_S,
        on_commands: Callable[[], None] | None = None,
    ) -> None:
        """``device_secrets`` signs the unlocks re-sent after a chip's restart (None:
        restarts are left alone); ``unlock_ttl_s`` is their lifetime (the setting
        ``unlock_command_ttl_s``); ``on_commands`` runs on the database thread after a
        commit that queued one (default: wake this process's dispatchers)."""
        self.policy = policy
        self.refresh_ms = refresh_ms
        self.full_refresh_ms = full_refresh_ms
        self.thresholds_refresh_ms = thresholds_refresh_ms
        self.closed_retention_ms = closed_retention_ms
        self.device_secrets = device_secrets
        self.unlock_ttl_s = unlock_ttl_s
        self.on_commands = on_commands if on_commands is not None else wake_local_dispatchers
        # Loop only.
        self.sessions: dict[str, KnownSession] = {}
        self.open_by_device: dict[str, str] = {}
        self._pending: dict[str, SessionUpdate] = {}
        self._reboots: list[RebootSeen] = []
        # session id → (the live state's boot count, receive time) of the last restart
        # acted on: the further signals of that restart are not a new one.
        self._boots: dict[str, tuple[int, int]] = {}
        self._thresholds: Mapping[str, int] = {}
        self._default_threshold = arc_threshold_da(None)
        self._refreshed_ms = 0
        self._full_refreshed_ms = 0
        self._thresholds_ms = 0
        self._refresh_asap = False
        # Database thread → loop.
        self._inbox: deque[_Loaded] = deque()
        self.accrued_windows = 0
        self.unknown_sessions = 0
        self.reboots_seen = 0
        # Database thread (counted once committed).
        self.unlocks_resent = 0
        self.ended_after_reboot = 0

    # ------------------------------------------------------------------ queries

    def session_known(self, device_id: str, sess: str) -> bool:
        """The AlarmSink's hook (event loop): did the platform issue ``sess`` to this
        device (open, or ended within the retention)?"""
        if self._inbox:
            self._apply_inbox()
        known = self.sessions.get(sess)
        return known is not None and known.device_id == device_id

    def open_session(self, device_id: str) -> KnownSession | None:
        if self._inbox:
            self._apply_inbox()
        session_id = self.open_by_device.get(device_id)
        return None if session_id is None else self.sessions.get(session_id)

    # ------------------------------------------------------------------ IngestSink

    def start(self, engine: Engine, now_ms: int) -> None:
        with engine.connect() as conn:
            loaded = _Loaded(
                _read_open(conn, None) + _read_ended(conn, now_ms - self.closed_retention_ms),
                thresholds=IngestRepository(engine).load_arc_thresholds(),
            )
        self._inbox.append(loaded)
        self._apply_inbox()
        self._refreshed_ms = self._full_refreshed_ms = self._thresholds_ms = now_ms
        log.info("sessions: %d session(s) loaded", len(loaded.sessions))

    def observe(
        self,
        device_id: str,
        kind: UpKind,
        message: Mapping[str, Any],
        change: StateChange,
        state: DeviceLive,
        now_ms: int,
    ) -> None:
        if self._inbox:
            self._apply_inbox()
        if kind is UpKind.TEL:
            self._tel(device_id, message)
        elif kind is UpKind.HB:
            self._hb(device_id, message)
        elif kind is UpKind.EVT:
            edge = lock_edge(message, now_ms, live=change.live)
            if edge is not None:
                self._edge(device_id, edge, state.boot_count, now_ms)
        elif kind is UpKind.HELLO and change.live and message.get("boot") is True:
            # Restarted, hence locked (§ 6.5); a hello replayed or late is history.
            known = self.open_session(device_id)
            if known is not None and known.status == SessionStatus.ACTIVE.value:
                self._rebooted(known, now_ms, state.boot_count, now_ms)

    def went_offline(self, device_id: str, state: DeviceLive, now_ms: int) -> None:
        # Offline is not the end of a session: the chip keeps welding on its buffer
        # (and replays it), and the supervisor's idle and time rules still apply.
        return

    def drain(self, now_ms: int) -> SessionWork | None:
        if self._inbox:
            self._apply_inbox()
        work = SessionWork()
        if self._refresh_asap or now_ms - self._refreshed_ms >= self.refresh_ms:
            work.refresh_since_ms = self._refreshed_ms - REFRESH_SLACK_MS
            self._refreshed_ms, self._refresh_asap = now_ms, False
        if now_ms - self._full_refreshed_ms >= self.full_refresh_ms:
            # A sweep over every known session: at the pace of the full read, not
            # at every flush.
            self._forget_closed(now_ms)
            work.full_refresh = frozenset(self.open_by_device.values())
            self._full_refreshed_ms = now_ms
        if now_ms - self._thresholds_ms >= self.thresholds_refresh_ms:
            work.thresholds, self._thresholds_ms = True, now_ms
        for session_id, pending in self._pending.items():
            known = self.sessions.get(session_id)
            if known is not None:
                whole = known.arc_ms // 1000 - known.arc_s_taken
                pending.arc_s += whole
                known.arc_s_taken += whole
            work.updates.append(pending)
        self._pending = {}
        work.reboots, self._reboots = self._reboots, []
        if (
            not work.updates
            and not work.reboots
            and work.refresh_since_ms is None
            and work.full_refresh is None
            and not work.thresholds
        ):
            return None
        return work

    def write(self, engine: Engine, work: SessionWork, now_ms: int) -> None:
        loaded = _Loaded([])
        outcomes: list[RebootOutcome] = []
        with Session(engine, autoflush=False, expire_on_commit=False) as session, session.begin():
            conn = session.connection()
            for item in work.updates:
                _write_update(conn, item)
            # After the updates: a lock edge observed after the restart has ended the
            # session already, and the restart then changes nothing.
            if work.reboots and self.device_secrets is not None:
                resender = UnlockResender(
                    session, self.device_secrets, unlock_ttl_s=self.unlock_ttl_s, policy=self.policy
                )
                at = from_ms(now_ms)
                for seen in work.reboots:
                    outcomes.append(
                        resender.after_reboot(seen.session_id, seen.device_id, seen.boot_ms, at)
                    )
            if work.refresh_since_ms is not None:
                loaded.sessions = _read_open(conn, work.refresh_since_ms)
            if work.full_refresh is not None:
                everything = _read_open(conn, None)
                loaded.sessions = everything
                loaded.open_ids = frozenset(s.id for s in everything)
                gone = sorted(work.full_refresh - loaded.open_ids)
                if gone:
                    loaded.closed = _read_statuses(conn, gone)
        if work.thresholds:
            loaded.thresholds = IngestRepository(engine).load_arc_thresholds()
        ended = {
            o.session_id: (SessionStatus.ENDED.value, o.ended_ms)
            for o in outcomes
            if o.ended_ms is not None
        }
        if ended:
            loaded.closed = {**loaded.closed, **ended}
        if (
            loaded.sessions
            or loaded.open_ids is not None
            or loaded.thresholds is not None
            or loaded.closed
        ):
            self._inbox.append(loaded)
        resent = sum(1 for o in outcomes if o.command_id is not None)
        self.unlocks_resent += resent
        self.ended_after_reboot += len(ended)
        if resent:
            try:
                self.on_commands()
            except Exception:
                log.exception("sessions: on_commands callback failed")

    def requeue(self, work: SessionWork) -> None:
        # Older than whatever was observed since: merged under it.
        for item in work.updates:
            newer = self._pending.get(item.session_id)
            if newer is not None:
                item.merge(newer)
            self._pending[item.session_id] = item
        if work.refresh_since_ms is not None:
            self._refresh_asap = True
            self._refreshed_ms = min(self._refreshed_ms, work.refresh_since_ms + REFRESH_SLACK_MS)
        if work.full_refresh is not None:
            self._full_refreshed_ms = 0
        if work.thresholds:
            self._thresholds_ms = 0
        self._reboots[:0] = work.reboots

    # ------------------------------------------------------------------ messages

    def _tel(self, device_id: str, message: Mapping[str, Any]) -> None:
        sess = message.get("sess")
        if not isinstance(sess, str):
            return  # locked: the AlarmSink's business
        known = self.sessions.get(sess)
        if known is None or known.device_id != device_id:
            self.unknown_sessions += 1
            return
        window = tel_window(message)
        if window is None:
            return
        threshold = self._thresholds.get(device_id, self._default_threshold)
        known.covered, accrual = accrue(known.covered, window, threshold, self.policy)
        if accrual.empty:
            return
        self.accrued_windows += 1
        known.arc_ms += accrual.arc_ms
        pending = self._pending_of(sess)
        # Arc time goes out in whole seconds at the drain (from known.arc_ms).
        pending.accrual = pending.accrual.plus(
            Accrual(0, accrual.energy_j, accrual.peak_da, accrual.last_arc_ms)
        )

    def _hb(self, device_id: str, message: Mapping[str, Any]) -> None:
        sess = message.get("sess")
        if not isinstance(sess, str):
            return
        known = self.sessions.get(sess)
        if known is None or known.device_id != device_id:
            return
        position = hb_position(message)
        if position is None or position.fix_ms < known.fix_ms:
            return
        known.fix_ms = position.fix_ms
        self._pending_of(sess).position = position

    def _edge(self, device_id: str, edge: LockEdge, boot_count: int, now_ms: int) -> None:
        if edge.sess is not None:
            known = self.sessions.get(edge.sess)
            if known is None:
                if not edge.locked:
                    # Started by the web process since the last read: read now.
                    self._refresh_asap = True
                return
            if known.device_id != device_id:
                return
        else:
            known = self.open_session(device_id)
            if known is None:
                return
        effect = edge_effect(edge, known.id, known.status)
        if effect is EdgeEffect.ACTIVATE:
            known.status = SessionStatus.ACTIVE.value
            self._pending_of(known.id).activate_ms = max(edge.at_ms, known.started_ms)
        elif effect is EdgeEffect.END:
            at = max(edge.at_ms, known.started_ms)
            self._close(known, SessionStatus.ENDED.value, at)
            self._pending_of(known.id).end_ms = at
        elif effect is EdgeEffect.REBOOT:
            self._rebooted(known, edge.at_ms, boot_count, now_ms)

    def _rebooted(self, known: KnownSession, boot_ms: int, boot_count: int, now_ms: int) -> None:
        if self.device_secrets is None:
            return
        seen = self._boots.get(known.id)
        if seen is not None and seen[0] == boot_count and now_ms - seen[1] < LATE_LIVE_MS:
            # The same restart's other signal (its hello, then its locked/boot). A
            # restart whose hello came too late to count as live leaves the boot
            # count as it was, but then its signals come more than LATE_LIVE_MS
            # after the previous restart's.
            return
        self._boots[known.id] = (boot_count, now_ms)
        self.reboots_seen += 1
        self._reboots.append(RebootSeen(known.id, known.device_id, boot_ms))

    # ------------------------------------------------------------------ helpers

    def _pending_of(self, session_id: str) -> SessionUpdate:
        pending = self._pending.get(session_id)
        if pending is None:
            pending = self._pending[session_id] = SessionUpdate(session_id)
        return pending

    def _close(self, known: KnownSession, status: str, at_ms: int | None) -> None:
        if self.open_by_device.get(known.device_id) == known.id:
            del self.open_by_device[known.device_id]
        self._boots.pop(known.id, None)
        if status == SessionStatus.FAILED.value:
            # The platform gave it up: a chip using it is welding without a session.
            self.sessions.pop(known.id, None)
            return
        known.status = status
        known.closed_ms = at_ms if at_ms is not None else known.started_ms
        known.covered = known.covered[-CLOSED_INTERVALS:]

    def _forget_closed(self, now_ms: int) -> None:
        horizon = now_ms - self.closed_retention_ms
        stale = [
            k.id
            for k in self.sessions.values()
            if k.closed_ms is not None and k.closed_ms < horizon and k.id not in self._pending
        ]
        for session_id in stale:
            del self.sessions[session_id]

    def _apply_inbox(self) -> None:
        while self._inbox:
            loaded = self._inbox.popleft()
            if loaded.thresholds is not None:
                self._thresholds = loaded.thresholds
            for row in loaded.sessions:
                self._learn(row)
            for session_id, (status, ended_ms) in loaded.closed.items():
                known = self.sessions.get(session_id)
                if known is not None and known.closed_ms is None:
                    # Closed elsewhere (结束作业, the supervisor); kept for replays
                    # when it ended, forgotten when it failed.
                    self._close(known, status, ended_ms)

    def _learn(self, row: LoadedSession) -> None:
        known = self.sessions.get(row.id)
        if known is None:
            known = self.sessions[row.id] = KnownSession(
                row.id, row.device_id, row.status, row.started_ms
            )
        elif known.closed_ms is not None:
            return  # closed here; the database catches up at the next write
        elif row.status in OPEN_STATUSES and known.status == SessionStatus.STARTING.value:
            known.status = row.status
        if row.status in OPEN_STATUSES:
            previous = self.open_by_device.get(row.device_id)
            if previous is not None and previous != row.id:
                old = self.sessions.get(previous)
                if old is not None and old.started_ms <= row.started_ms:
                    # Replaced: one open session per machine (the database's index).
                    self._close(old, SessionStatus.ENDED.value, row.started_ms)
                elif old is not None:
                    return
            self.open_by_device[row.device_id] = row.id
        else:
            known.status = row.status
            known.closed_ms = row.ended_ms if row.ended_ms is not None else row.started_ms


# ---------------------------------------------------------------------- SQL


def _read_open(conn: Connection, since_ms: int | None) -> list[LoadedSession]:
    stmt = select(
        _TABLE.c.id, _TABLE.c.device_id, _TABLE.c.status, _TABLE.c.started_at, _TABLE.c.ended_at
    ).where(_TABLE.c.status.in_(_OPEN))
    if since_ms is not None:
        stmt = stmt.where(_TABLE.c.started_at >= from_ms(max(since_ms, 0)))
    return _loaded(conn.execute(stmt))


def _read_ended(conn: Connection, since_ms: int) -> list[LoadedSession]:
    # Ended sessions of the retention, for late replays (once, at start: the status
    # index, then ended_at).
    stmt = select(
        _TABLE.c.id, _TABLE.c.device_id, _TABLE.c.status, _TABLE.c.started_at, _TABLE.c.ended_at
    ).where(
        _TABLE.c.status == SessionStatus.ENDED.value,
        _TABLE.c.ended_at >= from_ms(max(since_ms, 0)),
    )
    return _loaded(conn.execute(stmt))


def _read_statuses(conn: Connection, ids: list[str]) -> dict[str, tuple[str, int | None]]:
    rows = conn.execute(
        select(_TABLE.c.id, _TABLE.c.status, _TABLE.c.ended_at).where(_TABLE.c.id.in_(ids))
    )
    return {i: (status, None if ended is None else to_ms(ended)) for i, status, ended in rows}


def _loaded(rows: Iterable[Any]) -> list[LoadedSession]:
    out = []
    for session_id, device_id, status, started, ended in rows:
        out.append(
            LoadedSession(
                session_id,
                device_id,
                status,
                to_ms(started),
                None if ended is None else to_ms(ended),
            )
        )
    return out


def _write_update(conn: Connection, item: SessionUpdate) -> None:
    t = _TABLE.c
    values: dict[str, Any] = {}
    a = item.accrual
    if item.arc_s:
        values["arc_seconds"] = t.arc_seconds + item.arc_s
    if a.energy_j:
        values["energy_wh"] = t.energy_wh + a.energy_wh
    if a.peak_da:
        peak = a.peak_da / 10
        values["peak_current_a"] = case(
            (or_(t.peak_current_a.is_(None), t.peak_current_a < peak), literal(peak, Float())),
            else_=t.peak_current_a,
        )
    if a.last_arc_ms is not None:
        last = from_ms(a.last_arc_ms)
        values["last_arc_at"] = case(
            (or_(t.last_arc_at.is_(None), t.last_arc_at < last), literal(last, UTCDateTime())),
            else_=t.last_arc_at,
        )
    if item.position is not None:
        values["last_lat"] = item.position.lat
        values["last_lon"] = item.position.lon
    if values:
        conn.execute(update(_TABLE).where(t.id == item.session_id).values(**values))
    if item.activate_ms is not None:
        # A backup to the acknowledgement path: only a session still starting.
        conn.execute(
            update(_TABLE)
            .where(t.id == item.session_id, t.status == SessionStatus.STARTING.value)
            .values(status=SessionStatus.ACTIVE.value, unlocked_at=from_ms(item.activate_ms))
        )
    if item.end_ms is not None:
        # Whoever ended it first (the welder, the supervisor) keeps their reason.
        conn.execute(
            update(_TABLE)
            .where(t.id == item.session_id, t.status.in_(_OPEN))
            .values(
                status=SessionStatus.ENDED.value,
                ended_at=from_ms(item.end_ms),
                end_reason=EndReason.LOCK_EVENT.value,
            )
        )


__all__ = [
    "KnownSession",
    "LoadedSession",
    "RebootSeen",
    "SessionSink",
    "SessionUpdate",
    "SessionWork",
]
