"""Tests of weldguard.domain.device_alarms: which messages raise, repeat and clear
which device alarms, and the invariant behind them all: one condition, one open
alarm, whatever repeats it."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from weldguard.device.models import AlarmKind, AlarmSeverity
from weldguard.domain.device_alarms import (
    CURRENT_CONDITIONS,
    DEFAULT_POLICY,
    EMPTY,
    SEVERITY,
    AlarmPolicy,
    Change,
    Condition,
    DeviceConditions,
    MachineFacts,
    Reading,
    Severity,
    Transition,
    machine_powered,
    on_message,
    on_offline,
    on_tick,
)

T0 = 1_763_784_000_000  # 2025-11-22 04:00 UTC
BOUND = MachineFacts(rated_current_a=400, bound_since_ms=T0 - 86_400_000)
UNBOUND = MachineFacts(rated_current_a=None)
HOLD = DEFAULT_POLICY.arc_clear_hold_ms
SILENCE = DEFAULT_POLICY.sensor_silence_ms


def tel(
    i_max_da: int = 1800, *, sess: str | None = None, arc: bool = True, **extra: Any
) -> dict[str, Any]:
    message = {
        "v": 1,
        "seq": 10,
        "ts": T0,
        "arc": arc,
        "sess": sess,
        "start_ts": T0 - 10_000,
        "dur_ms": 10_000,
        "i_avg_da": min(i_max_da, 1500),
        "i_max_da": i_max_da,
        "u_avg_dv": 260,
        "e_j": 40_000,
    }
    message.update(extra)
    return message


def evt(etype: str, **fields: Any) -> dict[str, Any]:
    return {"v": 1, "seq": 11, "ts": T0, "type": etype, **fields}


def hb(vin: int = 229_000, lock: str = "locked") -> dict[str, Any]:
    return {"v": 1, "seq": 12, "ts": T0, "interval_s": 30, "lock": lock, "sess": None,
            "rssi": -70, "gps": None, "vin": vin}  # fmt: skip


def hello(boot: bool = True) -> dict[str, Any]:
    return {"v": 1, "seq": 1, "ts": T0, "fw": "x", "imei": "861234567890123",
            "iccid": "89860123456789012345", "boot": boot, "buf_count": 0}  # fmt: skip


def step(
    prev: DeviceConditions,
    kind: str,
    message: dict[str, Any],
    now: int,
    *,
    facts: MachineFacts = BOUND,
    live: bool = True,
    lock: str | None = "locked",
    session_known: bool = True,
) -> tuple[DeviceConditions, tuple[Transition, ...]]:
    return on_message(prev, facts, Reading(kind, message, live, lock, session_known), now)


def changes(transitions: tuple[Transition, ...]) -> list[tuple[Change, Condition]]:
    return [(t.change, t.condition) for t in transitions]


# ---------------------------------------------------------------------- vocabulary


def test_conditions_and_severities_are_the_models_kinds() -> None:
    # long_session is raised by the work-session supervisor, not by these rules.
    device_kinds = {k.value for k in AlarmKind} - {AlarmKind.LONG_SESSION.value}
    assert {c.value for c in Condition} == device_kinds
    assert {s.value for s in Severity} == {s.value for s in AlarmSeverity}
    assert set(SEVERITY) == set(Condition)


@pytest.mark.parametrize(
    ("condition", "severity"),
    [
        (Condition.OFFLINE_POWERED, Severity.WARNING),
        (Condition.CHIP_REMOVED, Severity.CRITICAL),
        (Condition.CURRENT_WHILE_LOCKED, Severity.CRITICAL),
        (Condition.CURRENT_WITHOUT_SESSION, Severity.CRITICAL),
        (Condition.OVER_CURRENT, Severity.WARNING),
        (Condition.TAMPER, Severity.WARNING),
        (Condition.GAS, Severity.CRITICAL),
        (Condition.TEMPERATURE, Severity.CRITICAL),
    ],
)
def test_severity_per_condition(condition: Condition, severity: Severity) -> None:
    assert SEVERITY[condition] is severity


def test_nothing_to_say_returns_the_same_object() -> None:
    after, transitions = step(EMPTY, "hb", hb(), T0)
    assert after is EMPTY and transitions == ()
    after, transitions = step(EMPTY, "tel", tel(sess="S-1"), T0, lock="unlocked")
    assert after is EMPTY and transitions == ()


# ---------------------------------------------------------------------- current while locked


def test_current_while_locked_is_one_alarm_over_a_whole_arc() -> None:
    state, out = step(EMPTY, "tel", tel(dur_ms=0), T0)
    assert changes(out) == [(Change.RAISED, Condition.CURRENT_WHILE_LOCKED)]
    assert out[0].severity is Severity.CRITICAL
    assert out[0].detail["i_max_da"] == 1800 and out[0].detail["source"] == "tel"
    for k in range(1, 6):
        state, out = step(state, "tel", tel(), T0 + k * 10_000)
        assert changes(out) == [(Change.REPEATED, Condition.CURRENT_WHILE_LOCKED)]
    # The arc keeps burning: however long since the last window, no clear.
    still, out = on_tick(state, BOUND, T0 + 50_000 + 10 * HOLD)
    assert out == () and still is state
    # The arc ends (the final window still shows the current): the hold starts.
    state, out = step(state, "tel", tel(arc=False), T0 + 60_000)
    assert changes(out) == [(Change.REPEATED, Condition.CURRENT_WHILE_LOCKED)]
    _, out = on_tick(state, BOUND, T0 + 60_000 + HOLD - 1)
    assert out == ()
    state, out = on_tick(state, BOUND, T0 + 60_000 + HOLD)
    assert changes(out) == [(Change.CLEARED, Condition.CURRENT_WHILE_LOCKED)]
    assert out[0].detail == {"reason": "arc_stopped"}
    assert state is EMPTY


def test_a_pause_between_beads_does_not_raise_a_second_alarm() -> None:
    state, _ = step(EMPTY, "tel", tel(arc=False), T0)
    state, out = step(state, "tel", tel(dur_ms=0), T0 + HOLD - 1_000)
    assert changes(out) == [(Change.REPEATED, Condition.CURRENT_WHILE_LOCKED)]


def test_the_chips_own_arc_while_locked_event_raises_it() -> None:
    state, out = step(EMPTY, "evt", evt("arc_while_locked", i_max_da=1480, sess=None), T0)
    assert changes(out) == [(Change.RAISED, Condition.CURRENT_WHILE_LOCKED)]
    assert out[0].detail["i_max_da"] == 1480 and out[0].detail["event"] == "arc_while_locked"
    # ... and the tel of the same arc repeats it.
    state, out = step(state, "tel", tel(dur_ms=0), T0 + 100)
    assert changes(out) == [(Change.REPEATED, Condition.CURRENT_WHILE_LOCKED)]


def test_current_below_the_threshold_is_no_welding() -> None:
    threshold = BOUND.arc_threshold_da
    _, out = step(EMPTY, "tel", tel(threshold - 1), T0)
    assert out == ()
    _, out = step(EMPTY, "tel", tel(threshold), T0)
    assert changes(out) == [(Change.RAISED, Condition.CURRENT_WHILE_LOCKED)]
    custom = MachineFacts(rated_current_a=400, arc_threshold_da=300)
    _, out = step(EMPTY, "tel", tel(299), T0, facts=custom)
    assert out == ()


def test_a_replayed_tel_is_judged_by_its_own_session_field() -> None:
    # The platform now believes the chip unlocked, but the buffered window says
    # it was locked then: an arc while locked during the outage.
    state, out = step(EMPTY, "tel", tel(sess=None, buf=True), T0, live=False, lock="unlocked")
    assert changes(out) == [(Change.RAISED, Condition.CURRENT_WHILE_LOCKED)]
    assert out[0].detail["history"] is True
    # History is not the present: nothing burns now, so the hold runs at once.
    state, out = on_tick(state, BOUND, T0 + HOLD)
    assert changes(out) == [(Change.CLEARED, Condition.CURRENT_WHILE_LOCKED)]


def test_unknown_lock_state_and_no_session_counts_as_locked() -> None:
    _, out = step(EMPTY, "tel", tel(), T0, lock=None)
    assert changes(out) == [(Change.RAISED, Condition.CURRENT_WHILE_LOCKED)]


def test_an_unlock_settles_current_while_locked() -> None:
    state, _ = step(EMPTY, "tel", tel(), T0)
    state, out = step(
        state, "evt", evt("unlocked", sess="S-1", cmd_id="c"), T0 + 1, lock="unlocked"
    )
    assert out == ()
    state, out = on_tick(state, BOUND, T0 + HOLD)
    assert changes(out) == [(Change.CLEARED, Condition.CURRENT_WHILE_LOCKED)]


# ---------------------------------------------------------------------- without a session


def test_current_while_unlocked_without_a_session() -> None:
    state, out = step(EMPTY, "tel", tel(sess=None), T0, lock="unlocked")
    assert changes(out) == [(Change.RAISED, Condition.CURRENT_WITHOUT_SESSION)]
    assert out[0].severity is Severity.CRITICAL
    state, out = step(state, "tel", tel(sess=None), T0 + 10_000, lock="unlocked")
    assert changes(out) == [(Change.REPEATED, Condition.CURRENT_WITHOUT_SESSION)]
    # A lock ends it (current after the lock would be the other condition).
    state, out = step(state, "evt", evt("locked", reason="local"), T0 + 11_000)
    assert out == ()
    state, out = on_tick(state, BOUND, T0 + 10_000 + HOLD)
    assert changes(out) == [(Change.CLEARED, Condition.CURRENT_WITHOUT_SESSION)]


def test_a_session_the_platform_does_not_know_is_no_session() -> None:
    _, out = step(EMPTY, "tel", tel(sess="FORGED"), T0, lock="unlocked", session_known=False)
    assert changes(out) == [(Change.RAISED, Condition.CURRENT_WITHOUT_SESSION)]
    _, out = step(EMPTY, "tel", tel(sess="S-1"), T0, lock="unlocked", session_known=True)
    assert out == ()


def test_the_conditions_switch_when_the_lock_state_changes_mid_arc() -> None:
    state, _ = step(EMPTY, "tel", tel(sess=None), T0, lock="unlocked")
    state, out = step(state, "tel", tel(sess=None), T0 + 10_000, lock="locked")
    assert changes(out) == [(Change.RAISED, Condition.CURRENT_WHILE_LOCKED)]
    # The window without "without session" settled that one.
    state, out = on_tick(state, BOUND, T0 + HOLD)
    assert changes(out) == [(Change.CLEARED, Condition.CURRENT_WITHOUT_SESSION)]
    assert set(state.open) == {Condition.CURRENT_WHILE_LOCKED}


# ---------------------------------------------------------------------- over current


def test_over_current_is_the_peak_above_rating_times_the_tolerance() -> None:
    # 400 A × 110 % = 440.0 A = 4400 dA: at the limit is fine, above is not.
    _, out = step(EMPTY, "tel", tel(4400, sess="S-1"), T0, lock="unlocked")
    assert out == ()
    state, out = step(EMPTY, "tel", tel(4401, sess="S-1"), T0, lock="unlocked")
    assert changes(out) == [(Change.RAISED, Condition.OVER_CURRENT)]
    assert out[0].severity is Severity.WARNING
    assert out[0].detail["rated_a"] == 400 and out[0].detail["limit_pm"] == 1100
    # Back within the rating in the next window of the same arc: the hold starts.
    state, out = step(state, "tel", tel(3000, sess="S-1"), T0 + 10_000, lock="unlocked")
    assert out == ()
    state, out = on_tick(state, BOUND, T0 + HOLD)
    assert changes(out) == [(Change.CLEARED, Condition.OVER_CURRENT)]


def test_over_current_tolerance_is_a_policy() -> None:
    strict = AlarmPolicy(over_current_limit_pm=1000)
    reading = Reading("tel", tel(4001, sess="S-1"), True, "unlocked")
    _, out = on_message(EMPTY, BOUND, reading, T0, strict)
    assert changes(out) == [(Change.RAISED, Condition.OVER_CURRENT)]


def test_over_current_needs_a_rating() -> None:
    _, out = step(EMPTY, "tel", tel(30_000, sess="S-1"), T0, facts=UNBOUND, lock="unlocked")
    assert out == ()


def test_over_current_while_locked_raises_both() -> None:
    _, out = step(EMPTY, "tel", tel(5000), T0)
    assert sorted(changes(out)) == [
        (Change.RAISED, Condition.CURRENT_WHILE_LOCKED),
        (Change.RAISED, Condition.OVER_CURRENT),
    ]


def test_the_chips_overcurrent_event_raises_it() -> None:
    _, out = step(EMPTY, "evt", evt("overcurrent", i_max_da=4300, sess="S-1"), T0)
    assert changes(out) == [(Change.RAISED, Condition.OVER_CURRENT)]


# ---------------------------------------------------------------------- tamper


@pytest.mark.parametrize(
    ("what", "condition"),
    [("enclosure_open", Condition.TAMPER), ("chip_removed", Condition.CHIP_REMOVED)],
)
def test_tamper_latches_until_the_chip_is_refitted(what: str, condition: Condition) -> None:
    state, out = step(EMPTY, "evt", evt("tamper", what=what), T0)
    assert changes(out) == [(Change.RAISED, condition)]
    assert out[0].detail["what"] == what
    state, out = step(state, "evt", evt("tamper", what=what), T0 + 1_000)
    assert changes(out) == [(Change.REPEATED, condition)]
    # No end edge exists: time, heartbeats and reboots do not clear it.
    for prev_state, message, kind in ((state, hb(), "hb"), (state, hello(), "hello")):
        after, out = step(prev_state, kind, message, T0 + 2_000)
        assert out == () and condition in after.open
    _, out = on_tick(state, BOUND, T0 + 30 * 86_400_000)
    assert out == ()
    _, out = on_tick(state, UNBOUND, T0 + 30 * 86_400_000)
    assert out == ()
    refitted = MachineFacts(rated_current_a=400, bound_since_ms=T0 + 3_600_000)
    state, out = on_tick(state, refitted, T0 + 3_600_001)
    assert changes(out) == [(Change.CLEARED, condition)]
    assert out[0].detail == {"reason": "refitted"}
    assert state is EMPTY


def test_a_replayed_tamper_event_is_raised_too() -> None:
    _, out = step(EMPTY, "evt", evt("tamper", what="enclosure_open", buf=True), T0, live=False)
    assert changes(out) == [(Change.RAISED, Condition.TAMPER)]


# ---------------------------------------------------------------------- gas, temperature


@pytest.mark.parametrize(
    ("etype", "fields", "condition"),
    [
        ("gas_alarm", {"lel_pm": 120}, Condition.GAS),
        ("gas_alarm", {"ppm": 800}, Condition.GAS),
        ("temp_alarm", {"temp_c10": 850}, Condition.TEMPERATURE),
    ],
)
def test_sensor_alarms_clear_when_the_repeats_stop(
    etype: str, fields: dict[str, int], condition: Condition
) -> None:
    state, out = step(EMPTY, "evt", evt(etype, **fields), T0)
    assert changes(out) == [(Change.RAISED, condition)]
    assert out[0].severity is Severity.CRITICAL
    assert all(out[0].detail[k] == v for k, v in fields.items())
    # The chip repeats every 60 s: one alarm.
    for k in range(1, 5):
        _, out = on_tick(state, BOUND, T0 + k * 60_000 - 1)
        assert out == ()
        state, out = step(state, "evt", evt(etype, **fields), T0 + k * 60_000)
        assert changes(out) == [(Change.REPEATED, condition)]
    last = T0 + 4 * 60_000
    _, out = on_tick(state, BOUND, last + SILENCE - 1)
    assert out == ()
    state, out = on_tick(state, BOUND, last + SILENCE)
    assert changes(out) == [(Change.CLEARED, condition)]
    assert out[0].detail == {"reason": "no_repeat"}


# ---------------------------------------------------------------------- offline


def test_offline_while_powered_raises_and_any_message_clears() -> None:
    state, out = on_offline(EMPTY, BOUND, T0, supply_mv=229_000)
    assert changes(out) == [(Change.RAISED, Condition.OFFLINE_POWERED)]
    assert out[0].severity is Severity.WARNING
    assert out[0].detail == {"source": "offline", "supply_mv": 229_000}
    # Time alone does not clear it.
    _, out = on_tick(state, BOUND, T0 + 86_400_000)
    assert out == ()
    # A replay from the buffer also travels over a live connection.
    after, out = step(state, "tel", tel(sess="S-1", buf=True), T0 + 5, live=False)
    assert changes(out) == [(Change.CLEARED, Condition.OFFLINE_POWERED)]
    assert out[0].detail == {"reason": "back_online"}
    assert after is EMPTY


def test_offline_without_any_supply_reading_counts_as_powered() -> None:
    _, out = on_offline(EMPTY, BOUND, T0, supply_mv=None)
    assert changes(out) == [(Change.RAISED, Condition.OFFLINE_POWERED)]


def test_offline_after_a_reported_power_loss_is_no_alarm() -> None:
    state, out = step(EMPTY, "evt", evt("power_loss"), T0)
    assert out == () and state.power_lost
    _, out = on_offline(state, BOUND, T0 + 1, supply_mv=229_000)
    assert out == ()


@pytest.mark.parametrize(
    ("kind", "message"),
    [("evt", evt("power_restored")), ("hello", hello(boot=True))],
)
def test_power_comes_back_with_power_restored_or_a_boot(kind: str, message: dict[str, Any]) -> None:
    state, _ = step(EMPTY, "evt", evt("power_loss"), T0)
    state, _ = step(state, kind, message, T0 + 1)
    assert not state.power_lost and state is EMPTY
    _, out = on_offline(state, BOUND, T0 + 2, supply_mv=229_000)
    assert changes(out) == [(Change.RAISED, Condition.OFFLINE_POWERED)]


def test_a_reconnection_hello_or_a_replayed_power_loss_do_not_change_power() -> None:
    state, _ = step(EMPTY, "evt", evt("power_loss"), T0)
    state, _ = step(state, "hello", hello(boot=False), T0 + 1)
    assert state.power_lost
    state, _ = step(EMPTY, "evt", evt("power_loss", buf=True), T0, live=False)
    assert not state.power_lost


def test_a_dead_supply_reading_means_unpowered() -> None:
    assert not machine_powered(EMPTY, 0)
    assert not machine_powered(EMPTY, DEFAULT_POLICY.supply_present_min_mv - 1)
    assert machine_powered(EMPTY, DEFAULT_POLICY.supply_present_min_mv)
    # A chip measuring its own 12 V supply says nothing about the machine: powered.
    assert machine_powered(EMPTY, 12_050)
    _, out = on_offline(EMPTY, BOUND, T0, supply_mv=0)
    assert out == ()


def test_a_chip_fitted_to_no_machine_raises_no_offline_alarm() -> None:
    _, out = on_offline(EMPTY, UNBOUND, T0, supply_mv=229_000)
    assert out == ()


def test_going_offline_ends_the_arc() -> None:
    state, _ = step(EMPTY, "tel", tel(), T0)
    state, out = on_offline(state, BOUND, T0 + 1_000, supply_mv=229_000)
    assert changes(out) == [(Change.RAISED, Condition.OFFLINE_POWERED)]
    _, out = on_tick(state, BOUND, T0 + HOLD)
    assert changes(out) == [(Change.CLEARED, Condition.CURRENT_WHILE_LOCKED)]


@pytest.mark.parametrize(
    ("kind", "message"), [("evt", evt("power_loss")), ("hello", hello(boot=True))]
)
def test_power_loss_and_boot_end_the_arc(kind: str, message: dict[str, Any]) -> None:
    state, _ = step(EMPTY, "tel", tel(), T0)
    state, _ = step(state, kind, message, T0 + 1)
    _, out = on_tick(state, BOUND, T0 + HOLD)
    assert changes(out) == [(Change.CLEARED, Condition.CURRENT_WHILE_LOCKED)]


# ---------------------------------------------------------------------- properties

# Messages a chip may send, honest or not, as (kind, message, live, lock state).
_messages = st.sampled_from(
    [
        ("tel", tel(), True, "locked"),
        ("tel", tel(arc=False), True, "locked"),
        ("tel", tel(sess=None), True, "unlocked"),
        ("tel", tel(5000, sess="S-1"), True, "unlocked"),
        ("tel", tel(1800, sess="S-1"), True, "unlocked"),
        ("tel", tel(1800, sess="S-1", arc=False), True, "unlocked"),
        ("tel", tel(50, sess=None), True, "locked"),
        ("tel", tel(buf=True), False, "unlocked"),
        ("hb", hb(), True, "locked"),
        ("hb", hb(vin=0), True, "locked"),
        ("hello", hello(True), True, "locked"),
        ("hello", hello(False), True, "locked"),
        ("evt", evt("arc_while_locked", i_max_da=1500), True, "locked"),
        ("evt", evt("overcurrent", i_max_da=4500), True, "unlocked"),
        ("evt", evt("tamper", what="enclosure_open"), True, "locked"),
        ("evt", evt("tamper", what="chip_removed"), True, "locked"),
        ("evt", evt("gas_alarm", lel_pm=100), True, "locked"),
        ("evt", evt("temp_alarm", temp_c10=900), True, "locked"),
        ("evt", evt("power_loss"), True, "locked"),
        ("evt", evt("power_restored"), True, "locked"),
        ("evt", evt("locked"), True, "locked"),
        ("evt", evt("unlocked", sess="S-1"), True, "unlocked"),
        ("evt", evt("gas_alarm", ppm=10, buf=True), False, "locked"),
    ]
)
_steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=400_000),  # ms since the previous step
        st.one_of(
            _messages,
            st.just(("offline",)),
            st.just(("tick",)),
            st.just(("refit",)),
        ),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_steps)
def test_one_condition_is_one_open_alarm_whatever_the_sequence(steps: list[Any]) -> None:
    state, now = EMPTY, T0
    facts = BOUND
    model: dict[Condition, int] = {}  # what the transitions say is open → raised at
    for gap, action in steps:
        now += gap
        if action[0] == "offline":
            after, out = on_offline(state, facts, now, supply_mv=229_000)
        elif action[0] == "tick":
            after, out = on_tick(state, facts, now)
        elif action[0] == "refit":
            facts = MachineFacts(rated_current_a=400, bound_since_ms=now)
            after, out = state, ()
        else:
            kind, message, live, lock = action
            after, out = on_message(state, facts, Reading(kind, message, live, lock), now)
        seen: set[tuple[Change, Condition]] = set()
        for t in out:
            assert (t.change, t.condition) not in seen, "a step reports a change once"
            seen.add((t.change, t.condition))
            assert t.at_ms == now
            if t.change is Change.RAISED:
                assert t.condition not in model, "raised while already open"
                model[t.condition] = now
            elif t.change is Change.REPEATED:
                assert t.condition in model, "repeat of a condition that is not open"
            else:
                assert t.condition in model, "clear of a condition that is not open"
                if t.condition in CURRENT_CONDITIONS:
                    assert not state.open[t.condition].active, "cleared while the arc burns"
                del model[t.condition]
        assert set(after.open) == set(model)
        assert all(after.open[c].raised_ms == r for c, r in model.items())
        if not out and after is not state:
            # Silent changes are bookkeeping only: power, or an arc that stopped.
            assert set(after.open) == set(state.open)
        if after.idle:
            assert after is EMPTY or after is state
        state = after


@settings(max_examples=200, deadline=None)
@given(_messages, st.integers(min_value=2, max_value=20))
def test_a_message_repeated_never_raises_twice(message: Any, times: int) -> None:
    kind, body, live, lock = message
    state, raised = EMPTY, 0
    for k in range(times):
        state, out = on_message(state, BOUND, Reading(kind, body, live, lock), T0 + k)
        raised += sum(1 for t in out if t.change is Change.RAISED)
    _, first = on_message(EMPTY, BOUND, Reading(kind, body, live, lock), T0)
    assert raised == sum(1 for t in first if t.change is Change.RAISED)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=0, max_value=30_000),
    st.integers(min_value=1, max_value=2000),
    st.integers(min_value=1000, max_value=1500),
)
def test_over_current_matches_the_arithmetic(peak: int, rated: int, limit_pm: int) -> None:
    facts = MachineFacts(rated_current_a=rated)
    policy = AlarmPolicy(over_current_limit_pm=limit_pm)
    reading = Reading("tel", tel(peak, sess="S-1"), True, "unlocked")
    _, out = on_message(EMPTY, facts, reading, T0, policy)
    # Below the arc threshold there is no welding, so no current alarm of any kind.
    welding = peak >= facts.arc_threshold_da
    expected = welding and Fraction(peak, 10) > Fraction(rated * limit_pm, 1000)
    assert (Condition.OVER_CURRENT in {t.condition for t in out}) is expected
