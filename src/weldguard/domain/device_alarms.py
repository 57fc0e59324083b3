"""Device alarms (设备报警): which conditions a chip's messages raise, repeat and clear.

Pure rules: no I/O, no ORM, no clock reads; every time is Unix milliseconds on the
platform's clock (the receive time), passed in. The ingest side feeds each accepted
message (:func:`on_message`), each "went offline" (:func:`on_offline`) and a periodic
tick (:func:`on_tick`) through these functions and writes the transitions they return.

One condition is one alarm: while a condition is open, every message that shows it
again is a *repeat* (counted), never a second alarm. A condition clears only when the
rules below say it ended; the next occurrence is a new alarm.

=======================  ========  ============================  ==============================
condition                severity  raised by                     cleared by
=======================  ========  ============================  ==============================
offline_powered          warning   the chip went offline (its    any message from the chip
离线(通电)                          deadline passed, or its Last  (it is connected again)
                                   Will arrived) while its
                                   machine counted as powered
chip_removed 芯片拆除     critical  ``evt tamper`` with           a new binding of the chip
                                   ``what: chip_removed``        recorded after the alarm
tamper 防拆               warning   ``evt tamper`` with           (an installer refitted it)
                                   ``what: enclosure_open``
current_while_locked     critical  a ``tel`` whose peak current  the arc has stopped and no
锁定状态下有焊接电流                 reaches the arc threshold     window showed the condition
(疑似改装/旁路)                      while locked, or ``evt        for ``arc_clear_hold_ms``
                                   arc_while_locked``            (default 3 min)
current_without_session  critical  a ``tel`` at or above the     as above
无会话焊接                           threshold while unlocked
                                   without a session
over_current 超额定电流   warning   a ``tel`` whose peak is above as above
                                   rating × 1.1, or ``evt
                                   overcurrent``
gas 气体报警              critical  ``evt gas_alarm``             no repeat for 180 s
temperature 温度报警      critical  ``evt temp_alarm``            no repeat for 180 s
=======================  ========  ============================  ==============================

The decisions behind the table:

*Offline while powered.* The point of this alarm is a machine that may be welding
while nobody watches (antenna cut, SIM pulled, chip unplugged), not a site whose
power was switched off for the night. The machine counts as powered unless the chip
said otherwise before it went: a live ``evt power_loss`` not followed by
``power_restored`` or a boot ``hello``, or a last heartbeat whose ``vin`` is below
``supply_present_min_mv`` (1 V: a chip that measures the machine's supply reports
≈ 0 when it is off; a chip that measures its own supply reports volts, which says
nothing, so the alarm is raised). The Last Will (``power_loss`` with ``lwt: true``)
does *not* count as a power loss: the broker publishes the same fixed payload for
every dropped connection, so it only means "offline". A chip with no open binding
supervises no machine, and its going offline raises nothing.

*Tamper.* The protocol's ``tamper`` event is an edge with no end edge (§ 6.5 has no
``tamper_end``), so nothing the chip says proves the enclosure is closed or the chip
back in place: tamper and chip_removed latch until an installer records a binding
of the chip after the alarm was raised (the facts' ``bound_since_ms``).

*Welding current.* Welding is the window's **peak** current (``i_max_da``) at or
above the machine's arc threshold (``MachineFacts.arc_threshold_da``: the AlarmSink
passes the machine's own, max(5.0 A, 5 % of its rating) as for the live state and the
work sessions; without facts 100 dA = 10 A, the protocol's recommendation), the same
test the live state and the chip's own
``arc_while_locked`` use: on a locked machine any current at all is the finding. The
lock state of a ``tel`` is the one the chip reported in it (``sess`` is null exactly
when locked, § 6.4), which holds for a replay from the buffer too; "without a
session" is a chip that the platform knows to be unlocked (its live lock state) but
that reports no session, or one that reports a session the platform does not know
(``session_known``, supplied by the caller).

*Over current.* Peak above ``rated_current_a × over_current_limit_pm / 1000``
(default 110 %): the protocol's own example of the vendor threshold, and room for a
Hall clamp's ±3 % error and an inverter's regulation overshoot, which a 100 % limit
would turn into an alarm on every hard arc start. The chip's own ``overcurrent``
event raises it too (the chip applied its vendor threshold).

*Why the current alarms hold.* A welder pauses between beads (a new electrode,
chipping slag) for seconds to a minute or two; clearing at every arc end would raise
one alarm per bead of the same bypassed machine. The condition clears once the
arc that showed it has stopped (a ``tel`` with ``arc: false``, a window without the
condition, a lock change that ends it, power loss, a boot, going offline) and no
window has shown it for ``arc_clear_hold_ms``.

*Gas and temperature.* The chip repeats these events every 60 s while the condition
lasts and the platform clears them when no repeat has come for 180 s (§ 6.5).

*History.* A replay from the chip's offline buffer (``live`` false) still raises or
repeats what it shows: an arc while locked during an outage is exactly what a bypass
looks like. It never changes the present (power, "the arc is burning").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

__all__ = [
    "CURRENT_CONDITIONS",
    "DEFAULT_ARC_THRESHOLD_DA",
    "DEFAULT_POLICY",
    "EMPTY",
    "LATCHED_CONDITIONS",
    "SENSOR_CONDITIONS",
    "SEVERITY",
    "AlarmPolicy",
    "Change",
    "Condition",
    "DeviceConditions",
    "MachineFacts",
    "OpenCondition",
    "Reading",
    "Severity",
    "Transition",
    "machine_powered",
    "on_message",
    "on_offline",
    "on_tick",
]


class Condition(StrEnum):
    """The same values as ``device.models.AlarmKind`` (a test keeps them equal)."""

    OFFLINE_POWERED = "offline_powered"
    CHIP_REMOVED = "chip_removed"
    CURRENT_WHILE_LOCKED = "current_while_locked"
    CURRENT_WITHOUT_SESSION = "current_without_session"
    OVER_CURRENT = "over_current"
    TAMPER = "tamper"
    GAS = "gas"
    TEMPERATURE = "temperature"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY: Mapping[Condition, Severity] = {
    # A network outage looks the same; worth a look, not an emergency.
    Condition.OFFLINE_POWERED: Severity.WARNING,
    # Supervision is defeated.
    Condition.CHIP_REMOVED: Severity.CRITICAL,
    # 疑似改装/旁路: the relay is bypassed or the chip fooled.
    Condition.CURRENT_WHILE_LOCKED: Severity.CRITICAL,
    Condition.CURRENT_WITHOUT_SESSION: Severity.CRITICAL,
    # Equipment abuse and a fire risk, but the machine is supervised.
    Condition.OVER_CURRENT: Severity.WARNING,
    # Maintenance opens enclosures too; chip_removed is the grave case.
    Condition.TAMPER: Severity.WARNING,
    # Fire and explosion precursors; the chip cuts the power itself.
    Condition.GAS: Severity.CRITICAL,
    Condition.TEMPERATURE: Severity.CRITICAL,
}

CURRENT_CONDITIONS = frozenset(
    {Condition.CURRENT_WHILE_LOCKED, Condition.CURRENT_WITHOUT_SESSION, Condition.OVER_CURRENT}
)
SENSOR_CONDITIONS = frozenset({Condition.GAS, Condition.TEMPERATURE})
LATCHED_CONDITIONS = frozenset({Condition.TAMPER, Condition.CHIP_REMOVED})

# docs/protocol.md § 6.4: the vendor chooses, 100 dA (10 A) is RECOMMENDED.
DEFAULT_ARC_THRESHOLD_DA = 100


@dataclass(frozen=True, slots=True)
class AlarmPolicy:
    over_current_limit_pm: int = 1100  # per mille of the rating
    arc_clear_hold_ms: int = 180_000
    sensor_silence_ms: int = 180_000  # docs/protocol.md § 6.5
    supply_present_min_mv: int = 1_000


DEFAULT_POLICY = AlarmPolicy()


@dataclass(frozen=True, slots=True)
class MachineFacts:
    """What the rules need to know about the machine the chip sits in."""

    rated_current_a: int | None = None  # None: unknown, no over-current rule
    arc_threshold_da: int = DEFAULT_ARC_THRESHOLD_DA
    # When the chip's current binding began; None: the chip is fitted to no machine.
    bound_since_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    """One accepted up message as the rules see it."""

    kind: str  # hello, hb, tel, evt, ack
    message: Mapping[str, Any]
    # False for a replay from the chip's buffer or a late message: history.
    live: bool = True
    # The platform's view of the lock after this message (None: not known yet).
    lock_state: str | None = None
    # Whether the platform knows the session the message names (see module docs).
    session_known: bool = True


@dataclass(frozen=True, slots=True)
class OpenCondition:
    raised_ms: int
    last_ms: int  # the last message that showed it
    # Current conditions: the arc that showed it may still be burning, so the hold
    # has not started. Meaningless for the other kinds.
    active: bool = False


@dataclass(frozen=True, slots=True)
class DeviceConditions:
    """A device's open conditions and what the rules remember between messages.
    Treated as immutable: the functions return a new one when anything changed and
    the very same object otherwise."""

    open: Mapping[Condition, OpenCondition] = field(default_factory=dict)
    # A live power_loss not yet followed by power_restored or a boot hello.
    power_lost: bool = False

    @property
    def idle(self) -> bool:
        """Nothing worth remembering (the caller may forget the device)."""
        return not self.open and not self.power_lost


class Change(StrEnum):
    RAISED = "raised"
    REPEATED = "repeated"
    CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class Transition:
    change: Change
    condition: Condition
    at_ms: int
    # RAISED/REPEATED: what showed the condition; CLEARED: {"reason": ...}.
    detail: Mapping[str, Any]

    @property
    def severity(self) -> Severity:
        return SEVERITY[self.condition]


EMPTY = DeviceConditions()
_EVENT_CONDITIONS = {
    "arc_while_locked": Condition.CURRENT_WHILE_LOCKED,
    "overcurrent": Condition.OVER_CURRENT,
    "gas_alarm": Condition.GAS,
    "temp_alarm": Condition.TEMPERATURE,
}
_RAISING_EVENTS = frozenset({*_EVENT_CONDITIONS, "tamper"})
_EVENT_FIELDS = ("i_max_da", "ppm", "lel_pm", "temp_c10", "what", "sess", "reason")


class _Builder:
    """Accumulates one step's changes to a DeviceConditions."""

    __slots__ = ("changed", "now", "open", "power_lost", "transitions")

    def __init__(self, prev: DeviceConditions, now_ms: int) -> None:
        self.open = prev.open
        self.power_lost = prev.power_lost
        self.transitions: list[Transition] = []
        self.changed = False
        self.now = now_ms

    def _mutable(self) -> dict[Condition, OpenCondition]:
        if not self.changed:
            self.open = dict(self.open)
            self.changed = True
        assert isinstance(self.open, dict)
        return self.open

    def show(self, condition: Condition, detail: Mapping[str, Any], *, active: bool) -> None:
        current = self.open.get(condition)
        if current is None:
            self._mutable()[condition] = OpenCondition(self.now, self.now, active)
            self.transitions.append(Transition(Change.RAISED, condition, self.now, detail))
        else:
            self._mutable()[condition] = OpenCondition(current.raised_ms, self.now, active)
            self.transitions.append(Transition(Change.REPEATED, condition, self.now, detail))

    def settle(self, condition: Condition) -> None:
        """The arc that showed the condition is over: its hold may start."""
        current = self.open.get(condition)
        if current is not None and current.active:
            self._mutable()[condition] = replace(current, active=False)

    def clear(self, condition: Condition, reason: str) -> None:
        if condition in self.open:
            del self._mutable()[condition]
            self.transitions.append(
                Transition(Change.CLEARED, condition, self.now, {"reason": reason})
            )

    def set_power_lost(self, value: bool) -> None:
        if value != self.power_lost:
            self.power_lost = value
            self.changed = True

    def result(self, prev: DeviceConditions) -> tuple[DeviceConditions, tuple[Transition, ...]]:
        if not self.changed:
            return prev, tuple(self.transitions)
        if not self.open and not self.power_lost:
            return EMPTY, tuple(self.transitions)
        return DeviceConditions(self.open, self.power_lost), tuple(self.transitions)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _origin(reading: Reading) -> dict[str, Any]:
    detail: dict[str, Any] = {"source": reading.kind}
    ts = _int(reading.message.get("ts"))
    if ts is not None:
        detail["device_ts"] = ts
    if not reading.live:
        detail["history"] = True
    return detail


def on_message(
    prev: DeviceConditions,
    facts: MachineFacts,
    reading: Reading,
    now_ms: int,
    policy: AlarmPolicy = DEFAULT_POLICY,
) -> tuple[DeviceConditions, tuple[Transition, ...]]:
    """The conditions after one accepted message, and what it raised, repeated or
    cleared. Returns ``prev`` itself when nothing changed."""
    kind = reading.kind
    m = reading.message
    shown: tuple[Condition, ...] = ()
    # Fast paths first: this runs for every message of every chip, and nearly all
    # of them concern a device with nothing open and show nothing.
    if kind == "tel":
        shown = _tel_shows(facts, reading, policy)
        if not shown and not prev.open:
            return prev, ()
    elif kind == "evt":
        if not prev.open and not prev.power_lost and not _evt_matters(m, reading.live):
            return prev, ()
    elif kind == "hello":
        if not prev.open and not prev.power_lost:
            return prev, ()
    elif Condition.OFFLINE_POWERED not in prev.open:
        return prev, ()  # hb and ack can only tell that the chip is back
    b = _Builder(prev, now_ms)
    # Any message, even a replay from the buffer, travels over a live connection.
    b.clear(Condition.OFFLINE_POWERED, "back_online")
    if kind == "tel":
        _tel(b, reading, shown, facts, policy)
    elif kind == "evt":
        _evt(b, reading)
    elif kind == "hello" and reading.live and m.get("boot") is True:
        # A fresh boot: the supply is on, and the chip starts locked with no arc.
        b.set_power_lost(False)
        for condition in CURRENT_CONDITIONS:
            b.settle(condition)
    return b.result(prev)


def _tel_shows(facts: MachineFacts, reading: Reading, policy: AlarmPolicy) -> tuple[Condition, ...]:
    m = reading.message
    peak = m.get("i_max_da")
    if type(peak) is not int or peak < facts.arc_threshold_da:
        return ()
    shown: list[Condition] = []
    sess = m.get("sess")
    if sess is None:
        unlocked = reading.live and reading.lock_state == "unlocked"
        shown.append(
            Condition.CURRENT_WITHOUT_SESSION if unlocked else Condition.CURRENT_WHILE_LOCKED
        )
    elif not reading.session_known:
        shown.append(Condition.CURRENT_WITHOUT_SESSION)
    rated = facts.rated_current_a
    if rated is not None and peak * 1000 > rated * 10 * policy.over_current_limit_pm:
        shown.append(Condition.OVER_CURRENT)
    return tuple(shown)


def _tel(
    b: _Builder,
    reading: Reading,
    shown: tuple[Condition, ...],
    facts: MachineFacts,
    policy: AlarmPolicy,
) -> None:
    m = reading.message
    if shown:
        # The window's arc is still burning only if the chip says so and it is the
        # present.
        burning = m.get("arc") is True and reading.live
        detail = _origin(reading)
        detail.update(i_max_da=m.get("i_max_da"), i_avg_da=m.get("i_avg_da"), sess=m.get("sess"))
        if Condition.OVER_CURRENT in shown:
            detail.update(rated_a=facts.rated_current_a, limit_pm=policy.over_current_limit_pm)
        for condition in shown:
            b.show(condition, detail, active=burning)
    if reading.live:
        # A live window that does not show a condition means it is not there now.
        for condition in CURRENT_CONDITIONS:
            if condition not in shown:
                b.settle(condition)


def _evt_matters(m: Mapping[str, Any], live: bool) -> bool:
    """Whether an event can change a device with nothing open."""
    etype = m.get("type")
    return etype in _RAISING_EVENTS or (live and etype == "power_loss")


def _evt(b: _Builder, reading: Reading) -> None:
    m = reading.message
    etype = m.get("type")
    detail = _origin(reading)
    detail["event"] = etype
    detail.update({k: m[k] for k in _EVENT_FIELDS if k in m})
    condition = _EVENT_CONDITIONS.get(etype) if isinstance(etype, str) else None
    if condition is not None:
        # arc_while_locked and overcurrent come at an arc's start: it burns now.
        b.show(condition, detail, active=reading.live)
        return
    if etype == "tamper":
        removed = m.get("what") == "chip_removed"
        b.show(Condition.CHIP_REMOVED if removed else Condition.TAMPER, detail, active=False)
        return
    if not reading.live:
        return  # the remaining events describe the present only
    if etype == "power_loss":
        b.set_power_lost(True)
        for current in CURRENT_CONDITIONS:
            b.settle(current)
    elif etype == "power_restored":
        b.set_power_lost(False)
    elif etype == "locked":
        b.settle(Condition.CURRENT_WITHOUT_SESSION)
    elif etype == "unlocked":
        b.settle(Condition.CURRENT_WHILE_LOCKED)


def machine_powered(
    conditions: DeviceConditions, supply_mv: int | None, policy: AlarmPolicy = DEFAULT_POLICY
) -> bool:
    """Whether a chip that just went offline counts as powered (module docs)."""
    if conditions.power_lost:
        return False
    return supply_mv is None or supply_mv >= policy.supply_present_min_mv


def on_offline(
    prev: DeviceConditions,
    facts: MachineFacts,
    now_ms: int,
    *,
    supply_mv: int | None,
    policy: AlarmPolicy = DEFAULT_POLICY,
) -> tuple[DeviceConditions, tuple[Transition, ...]]:
    """The chip went offline (deadline passed or Last Will). ``supply_mv``: the
    ``vin`` of its last live heartbeat, if any."""
    b = _Builder(prev, now_ms)
    for condition in CURRENT_CONDITIONS:
        b.settle(condition)
    if facts.bound_since_ms is not None and machine_powered(prev, supply_mv, policy):
        b.show(
            Condition.OFFLINE_POWERED, {"source": "offline", "supply_mv": supply_mv}, active=False
        )
    return b.result(prev)


def on_tick(
    prev: DeviceConditions,
    facts: MachineFacts,
    now_ms: int,
    policy: AlarmPolicy = DEFAULT_POLICY,
) -> tuple[DeviceConditions, tuple[Transition, ...]]:
    """Clears what time or a new binding ended. Call it periodically (every second
    or so) for the devices with open conditions."""
    b = _Builder(prev, now_ms)
    for condition, state in prev.open.items():
        if condition in CURRENT_CONDITIONS:
            if not state.active and now_ms - state.last_ms >= policy.arc_clear_hold_ms:
                b.clear(condition, "arc_stopped")
        elif condition in SENSOR_CONDITIONS:
            if now_ms - state.last_ms >= policy.sensor_silence_ms:
                b.clear(condition, "no_repeat")
        elif condition in LATCHED_CONDITIONS:
            bound = facts.bound_since_ms
            if bound is not None and bound > state.raised_ms:
                b.clear(condition, "refitted")
    return b.result(prev)
