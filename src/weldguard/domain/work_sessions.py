"""Work sessions (作业会话): what a session accrues from the chip's telemetry, and when
it ends.

Pure rules: no I/O, no ORM, no clock reads; every time is Unix milliseconds, passed
in. ``unlock/session_sink.py`` applies the accrual rules to the message stream and
``unlock/supervisor.py`` applies the lifecycle rules to the open sessions.

**Accrual** (docs/protocol.md § 6.4). Each ``tel`` is one window
``[start_ts, start_ts + dur_ms)`` of an arc. A window counts as welding when its
peak current (``i_max_da``, deciamperes) reaches the machine's arc threshold: the
same test the live state and the device alarms apply, with the same threshold
(``device.ingest_repository.arc_threshold_da``: max(5.0 A, 5 % of the rating)),
which the caller passes in. The arc flag does not decide: the last window of an arc
has ``arc: false`` and still covers welding. A window that counts adds

- its length to the arc time (``dur_ms``; the empty window at an arc's start adds
  nothing, as § 6.4 says),
- its energy (``e_j``, joules; 1 Wh = 3600 J),
- its peak to the session's peak current (``i_max_da`` / 10 = amperes),
- its end (``start_ts + dur_ms``, the chip's clock) as the last arc time, which the
  idle rule counts from.

Late replays from the chip's buffer accrue like live windows: they are welding that
happened. What has been counted is remembered as a list of covered intervals
(:data:`Coverage`), so a window delivered twice (a buffer replayed again after a
dropped connection, beyond the ingest worker's 64-message duplicate window) adds
only the part not counted yet; its energy is pro-rated to that part. The list is
bounded (``SessionPolicy.max_intervals``): the oldest intervals are forgotten first,
so only a replay of very old windows could be counted twice.

**Lifecycle**, decided for one open session at a time (:func:`supervise`):

- ``starting`` longer than the unlock command's lifetime (30 s): the unlock was
  acknowledged → ``active`` (a backup to the acknowledgement path), otherwise
  ``failed`` (the chip never unlocked: offline, refused, no answer).
- ``active`` and ``valid_until`` reached (the interval is half-open, so at
  ``valid_until`` exactly the session is over) → end, ``time_limit``; the platform
  sends a lock (the chip locks itself at the unlock's ``until`` too).
- ``active`` and no arc for ``idle_ms`` (default 30 min) since the last arc, or since
  the unlock when there was none → end, ``idle``, with a lock. "Unlocked" is not
  "welding" (DOMAIN.md): a machine left switched on is the risk this closes.
- ``active`` for more than ``long_ms`` (24 h) since the unlock → a warning, once per
  session (the caller records that it warned). A session that ends in the same step
  is not warned about.

The chip's own edges (:func:`lock_edge`, :func:`edge_effect`): an ``unlocked`` event
naming a ``starting`` session makes it ``active`` (a backup to the acknowledgement);
a ``locked`` event naming an open session ends it (``lock_event``); a live ``locked``
without ``sess`` (the field is only a SHOULD) ends the device's open session. A
``locked`` with ``reason: boot`` naming an ``active`` session does not end it: the
chip restarted (it starts locked, § 6.5) and the platform re-sends the unlock while
the session is valid.

**After a restart** (:func:`after_reboot`): the chip says it restarted with a live
``hello`` whose ``boot`` is true (the first message after every connect, never
buffered: the earliest and surest signal, though it names no session) or with that
``locked``/``boot`` event (names the session, but usually arrives as a replay from the
buffer, since the chip locks before it connects). Either starts the same decision
for the device's ``active`` session, and several signals of one restart decide the
same way:

- the session is past ``valid_until`` → ended, ``time_limit`` (at ``valid_until``);
  less than ``resend_margin_ms`` left, or the machine retired, or the chip no longer
  fitted to it → ended, ``lock_event`` (at the restart). The chip is locked already:
  nothing is sent.
- an unlock first published after the restart was acknowledged → nothing (the chip
  took it); one still open that was not published before the restart → nothing, it
  is on its way (the hello makes it due at once). Only an unlock published after the
  restart can have reached the restarted chip; one published before may have been
  executed before the restart, and a retry of it would only get the chip's
  remembered answer (§ 12.2) while it stays locked: it is given up and replaced.
- more than ``max_resends`` re-sends within ``resend_window_ms`` → ended
  (``lock_event``): a chip that restarts whenever it is unlocked (a relay pulling its
  supply down) must not be switched on and off for hours.
- otherwise → re-send the unlock: same session, welder and ``until``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "DEFAULT_SESSION_POLICY",
    "MS_PER_HOUR",
    "MS_PER_MINUTE",
    "Accrual",
    "Coverage",
    "EdgeEffect",
    "EndReason",
    "LockEdge",
    "OpenSession",
    "Position",
    "RebootAction",
    "RebootFacts",
    "RebootVerdict",
    "SessionPolicy",
    "TelWindow",
    "UnlockSent",
    "Verdict",
    "accrue",
    "after_reboot",
    "cover",
    "edge_effect",
    "hb_position",
    "is_welding",
    "lock_edge",
    "supervise",
    "tel_window",
]

MS_PER_MINUTE = 60_000
MS_PER_HOUR = 3_600_000
JOULES_PER_WH = 3600

# Session statuses, as unlock.models.SessionStatus spells them (a test keeps them
# equal; this module imports no ORM).
STARTING = "starting"
ACTIVE = "active"
ENDED = "ended"
FAILED = "failed"
OPEN_STATUSES = frozenset({STARTING, ACTIVE})


class EndReason(StrEnum):
    """The end reasons these rules decide (a subset of unlock.models.SessionEndReason)."""

    TIME_LIMIT = "time_limit"
    LOCK_EVENT = "lock_event"
    IDLE = "idle"


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle_ms: int = 30 * MS_PER_MINUTE
    # "More than 24 h on" (DOMAIN.md, warnings while running).
    long_ms: int = 24 * MS_PER_HOUR
    # The unlock command's lifetime: past it the chip can no longer execute it.
    unlock_timeout_ms: int = 30_000
    # Per session; see the module docstring ("Coverage").
    max_intervals: int = 64
    # After a restart (see the module docstring): no re-sent unlock for less than
    # this much validity (it could expire on the way, and the chip refuses an
    # ``until`` in its past), and at most so many re-sends per window.
    resend_margin_ms: int = 60_000
    max_resends: int = 5
    resend_window_ms: int = MS_PER_HOUR


DEFAULT_SESSION_POLICY = SessionPolicy()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# ---------------------------------------------------------------------- accrual


@dataclass(frozen=True, slots=True)
class TelWindow:
    sess: str | None
    start_ms: int
    dur_ms: int
    i_avg_da: int
    i_max_da: int
    u_avg_dv: int
    e_j: int
    arc: bool

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.dur_ms


def tel_window(message: Mapping[str, Any]) -> TelWindow | None:
    """The window a ``tel`` describes; None when a required figure is missing or not
    an integer (the ingest worker validated the schema, this is the last word)."""
    start, dur = _int(message.get("start_ts")), _int(message.get("dur_ms"))
    i_avg, i_max = _int(message.get("i_avg_da")), _int(message.get("i_max_da"))
    u_avg, e_j = _int(message.get("u_avg_dv")), _int(message.get("e_j"))
    if start is None or dur is None or i_max is None or e_j is None or dur < 0 or e_j < 0:
        return None
    sess = message.get("sess")
    return TelWindow(
        sess=sess if isinstance(sess, str) else None,
        start_ms=start,
        dur_ms=dur,
        i_avg_da=i_avg if i_avg is not None else 0,
        i_max_da=i_max,
        u_avg_dv=u_avg if u_avg is not None else 0,
        e_j=e_j,
        arc=message.get("arc") is True,
    )


def is_welding(window: TelWindow, arc_threshold_da: int) -> bool:
    """The live state's test (``max(i_avg, i_max) >= threshold``); i_max ≥ i_avg by the
    protocol, the max only guards a chip that breaks that."""
    return max(window.i_avg_da, window.i_max_da) >= arc_threshold_da


@dataclass(frozen=True, slots=True)
class Accrual:
    """What windows added to a session (or a sum of such additions)."""

    arc_ms: int = 0
    # Float: a window counted in part adds a pro-rated share.
    energy_j: float = 0.0
    peak_da: int = 0  # 0: no welding seen
    last_arc_ms: int | None = None

    def plus(self, other: Accrual) -> Accrual:
        if self.last_arc_ms is None:
            last = other.last_arc_ms
        elif other.last_arc_ms is None:
            last = self.last_arc_ms
        else:
            last = max(self.last_arc_ms, other.last_arc_ms)
        return Accrual(
            self.arc_ms + other.arc_ms,
            self.energy_j + other.energy_j,
            max(self.peak_da, other.peak_da),
            last,
        )

    @property
    def empty(self) -> bool:
        return self.last_arc_ms is None and not self.arc_ms and not self.energy_j

    @property
    def energy_wh(self) -> float:
        return self.energy_j / JOULES_PER_WH

    @property
    def peak_current_a(self) -> float | None:
        return self.peak_da / 10 if self.peak_da else None


NO_ACCRUAL = Accrual()

# Sorted, disjoint, non-touching half-open intervals [start, end) of counted time.
Coverage = tuple[tuple[int, int], ...]


def cover(covered: Coverage, start: int, end: int, max_intervals: int = 64) -> tuple[Coverage, int]:
    """Adds [start, end) to ``covered``; returns the new coverage and how many
    milliseconds of it were not covered before."""
    if end <= start:
        return covered, 0
    # The common case: the next window of the arc, right after what is covered.
    if covered and covered[-1][1] <= start:
        last_start, last_end = covered[-1]
        if last_end == start:
            merged = (*covered[:-1], (last_start, end))
        else:
            merged = (*covered, (start, end))
        return _bounded(merged, max_intervals), end - start
    before: list[tuple[int, int]] = []
    after: list[tuple[int, int]] = []
    lo, hi, overlap = start, end, 0
    for s, e in covered:
        if e < start:
            before.append((s, e))
        elif s > end:
            after.append((s, e))
        else:
            # Touching or overlapping: merged into one interval.
            overlap += max(0, min(e, end) - max(s, start))
            lo, hi = min(lo, s), max(hi, e)
    merged = (*before, (lo, hi), *after)
    return _bounded(merged, max_intervals), (end - start) - overlap


def _bounded(covered: Coverage, max_intervals: int) -> Coverage:
    if len(covered) <= max_intervals:
        return covered
    return covered[len(covered) - max_intervals :]


def accrue(
    covered: Coverage,
    window: TelWindow,
    arc_threshold_da: int,
    policy: SessionPolicy = DEFAULT_SESSION_POLICY,
) -> tuple[Coverage, Accrual]:
    """What one window adds to its session (``NO_ACCRUAL`` when it is not welding)."""
    if not is_welding(window, arc_threshold_da):
        return covered, NO_ACCRUAL
    covered, fresh_ms = cover(covered, window.start_ms, window.end_ms, policy.max_intervals)
    if window.dur_ms == 0:
        energy = 0.0  # the arc-start window: empty by definition (§ 6.4)
    elif fresh_ms == window.dur_ms:
        energy = float(window.e_j)
    else:
        energy = window.e_j * fresh_ms / window.dur_ms
    return covered, Accrual(fresh_ms, energy, window.i_max_da, window.end_ms)


# ---------------------------------------------------------------------- positions


@dataclass(frozen=True, slots=True)
class Position:
    lat: float  # degrees, WGS-84 (the chip reports raw GNSS, § 1)
    lon: float
    fix_ms: int


def hb_position(message: Mapping[str, Any]) -> Position | None:
    """The heartbeat's last fix (µdeg → degrees); None without one."""
    gps = message.get("gps")
    if not isinstance(gps, Mapping):
        return None
    lat, lon = _int(gps.get("lat")), _int(gps.get("lon"))
    if lat is None or lon is None:
        return None
    fix = _int(gps.get("fix_ts"))
    if fix is None:
        fix = _int(message.get("ts")) or 0
    return Position(lat / 1_000_000, lon / 1_000_000, fix)


# ---------------------------------------------------------------------- the chip's edges


@dataclass(frozen=True, slots=True)
class LockEdge:
    locked: bool  # False: ``unlocked``
    sess: str | None
    at_ms: int
    reason: str | None
    live: bool


def lock_edge(message: Mapping[str, Any], now_ms: int, *, live: bool) -> LockEdge | None:
    """An ``evt`` ``unlocked`` or ``locked``, or None. Its time is the receive time for
    a live event and the chip's ``ts`` (never later than now) for a replay."""
    etype = message.get("type")
    if etype not in ("unlocked", "locked"):
        return None
    at = now_ms
    if not live:
        ts = _int(message.get("ts"))
        if ts is not None:
            at = min(ts, now_ms)
    sess, reason = message.get("sess"), message.get("reason")
    return LockEdge(
        locked=etype == "locked",
        sess=sess if isinstance(sess, str) else None,
        at_ms=at,
        reason=reason if isinstance(reason, str) else None,
        live=live,
    )


class EdgeEffect(StrEnum):
    NONE = "none"
    ACTIVATE = "activate"  # starting → active
    END = "end"  # → ended, lock_event
    REBOOT = "reboot"  # the chip restarted under this active session: see after_reboot


def edge_effect(edge: LockEdge, session_id: str, status: str) -> EdgeEffect:
    """What ``edge`` does to the session ``session_id`` of the same device (its
    currently known ``status``)."""
    if status not in OPEN_STATUSES:
        return EdgeEffect.NONE
    if not edge.locked:
        return (
            EdgeEffect.ACTIVATE
            if edge.sess == session_id and status == STARTING
            else EdgeEffect.NONE
        )
    names_it = edge.sess == session_id or (edge.sess is None and edge.live)
    if edge.reason == "boot":
        # Restarted: the unlock is re-sent (a ``starting`` session's unlock is still
        # on its way and the hello makes it due again).
        return EdgeEffect.REBOOT if names_it and status == ACTIVE else EdgeEffect.NONE
    return EdgeEffect.END if names_it else EdgeEffect.NONE


# ---------------------------------------------------------------------- supervision


@dataclass(frozen=True, slots=True)
class OpenSession:
    status: str
    started_ms: int
    valid_until_ms: int
    unlocked_ms: int | None = None
    last_arc_ms: int | None = None
    long_running_warned: bool = False

    @property
    def on_since_ms(self) -> int:
        return self.unlocked_ms if self.unlocked_ms is not None else self.started_ms

    @property
    def idle_since_ms(self) -> int:
        """The last arc, or the unlock when no arc came after it."""
        if self.last_arc_ms is None:
            return self.on_since_ms
        return max(self.last_arc_ms, self.on_since_ms)


@dataclass(frozen=True, slots=True)
class Verdict:
    end: EndReason | None = None  # end now, with a lock
    fail: bool = False  # starting → failed
    activate: bool = False  # starting → active (the unlock was acknowledged)
    warn_long: bool = False

    @property
    def nothing(self) -> bool:
        return self.end is None and not (self.fail or self.activate or self.warn_long)


NOTHING = Verdict()


def supervise(
    session: OpenSession,
    now_ms: int,
    policy: SessionPolicy = DEFAULT_SESSION_POLICY,
    *,
    unlock_acked: bool = False,
) -> Verdict:
    """What is due for one open session now (see the module docstring)."""
    if session.status == STARTING:
        if now_ms - session.started_ms < policy.unlock_timeout_ms:
            return NOTHING
        return Verdict(activate=True) if unlock_acked else Verdict(fail=True)
    if session.status != ACTIVE:
        return NOTHING
    if now_ms >= session.valid_until_ms:
        return Verdict(end=EndReason.TIME_LIMIT)
    if now_ms - session.idle_since_ms >= policy.idle_ms:
        return Verdict(end=EndReason.IDLE)
    if not session.long_running_warned and now_ms - session.on_since_ms > policy.long_ms:
        return Verdict(warn_long=True)
    return NOTHING


# ---------------------------------------------------------------------- after a restart

# Command statuses, as device.models.CommandStatus spells them.
_OPEN_COMMAND = frozenset({"queued", "sent"})
_ACKED = "acked"


class RebootAction(StrEnum):
    NOTHING = "nothing"  # not active any more (ended by the welder, the supervisor)
    UNLOCKED = "unlocked"  # an unlock published after the restart was acknowledged
    UNDERWAY = "underway"  # an unlock that reaches the restarted chip is on its way
    RESEND = "resend"  # sign and queue the unlock again
    END = "end"  # end the session (``end``, at ``end_ms``); nothing is sent


@dataclass(frozen=True, slots=True)
class UnlockSent:
    """The session's latest unlock command, as far as the restart rule cares."""

    status: str
    expires_ms: int
    first_sent_ms: int | None  # None: never published


@dataclass(frozen=True, slots=True)
class RebootFacts:
    status: str
    on_since_ms: int  # the unlock (the start if none is recorded): no end before it
    valid_until_ms: int
    # Not retired, and the session's chip is still the one fitted to it.
    machine_usable: bool
    unlock: UnlockSent | None
    # Unlocks re-sent for the session within the policy's window.
    recent_resends: int


@dataclass(frozen=True, slots=True)
class RebootVerdict:
    action: RebootAction
    end: EndReason | None = None
    end_ms: int | None = None
    # The unlock in ``facts.unlock`` is open but was published before the restart:
    # give it up (expire it) when the new one is queued.
    replace_open: bool = False
    why: str = ""


def after_reboot(
    facts: RebootFacts,
    boot_ms: int,
    now_ms: int,
    policy: SessionPolicy = DEFAULT_SESSION_POLICY,
) -> RebootVerdict:
    """What to do about a session whose chip restarted at ``boot_ms`` (the module
    docstring has the rules)."""
    if facts.status != ACTIVE:
        return RebootVerdict(RebootAction.NOTHING, why="not active")
    locked_at = max(min(boot_ms, now_ms), facts.on_since_ms)
    if now_ms >= facts.valid_until_ms:
        return RebootVerdict(
            RebootAction.END, EndReason.TIME_LIMIT, facts.valid_until_ms, why="past valid_until"
        )
    if facts.valid_until_ms - now_ms < policy.resend_margin_ms:
        return RebootVerdict(
            RebootAction.END, EndReason.LOCK_EVENT, locked_at, why="valid_until too close"
        )
    if not facts.machine_usable:
        return RebootVerdict(
            RebootAction.END, EndReason.LOCK_EVENT, locked_at, why="machine retired or chip moved"
        )
    replace_open = False
    unlock = facts.unlock
    if unlock is not None:
        after_boot = unlock.first_sent_ms is None or unlock.first_sent_ms >= boot_ms
        if unlock.status == _ACKED and unlock.first_sent_ms is not None and after_boot:
            return RebootVerdict(RebootAction.UNLOCKED, why="unlock acknowledged since")
        if unlock.status in _OPEN_COMMAND and unlock.expires_ms > now_ms:
            if after_boot:
                return RebootVerdict(RebootAction.UNDERWAY, why="unlock on its way")
            replace_open = True
    if facts.recent_resends >= policy.max_resends:
        return RebootVerdict(
            RebootAction.END, EndReason.LOCK_EVENT, locked_at, why="restarts again and again"
        )
    return RebootVerdict(RebootAction.RESEND, replace_open=replace_open)
