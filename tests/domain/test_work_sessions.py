"""The work-session rules (domain/work_sessions.py): accrual from telemetry windows,
positions, the chip's lock edges and the supervisor's decisions."""

from __future__ import annotations

from typing import Any

import pytest

from weldguard.device.ingest_repository import arc_threshold_da
from weldguard.device.models import CommandStatus
from weldguard.domain.work_sessions import (
    DEFAULT_SESSION_POLICY,
    MS_PER_HOUR,
    MS_PER_MINUTE,
    NO_ACCRUAL,
    Accrual,
    EdgeEffect,
    EndReason,
    OpenSession,
    RebootAction,
    RebootFacts,
    RebootVerdict,
    SessionPolicy,
    UnlockSent,
    Verdict,
    accrue,
    after_reboot,
    cover,
    edge_effect,
    hb_position,
    is_welding,
    lock_edge,
    supervise,
    tel_window,
)
from weldguard.unlock.models import SessionEndReason, SessionStatus

T0 = 1_795_000_000_000
THRESHOLD = arc_threshold_da(400)  # 200 dA: 5 % of a 400 A machine


def tel(
    start: int = T0,
    dur: int = 10_000,
    *,
    i_max: int = 1800,
    i_avg: int | None = None,
    e_j: int = 45_000,
    arc: bool = True,
    sess: str | None = "S-1",
    **extra: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "v": 1,
        "seq": 1,
        "ts": start + dur,
        "arc": arc,
        "sess": sess,
        "start_ts": start,
        "dur_ms": dur,
        "i_avg_da": i_avg if i_avg is not None else min(i_max, 1650),
        "i_max_da": i_max,
        "u_avg_dv": 266,
        "e_j": e_j,
    }
    message.update(extra)
    return message


def window(**kwargs: Any) -> Any:
    w = tel_window(tel(**kwargs))
    assert w is not None
    return w


# ---------------------------------------------------------------------- vocabulary


def test_statuses_and_end_reasons_are_the_models() -> None:
    from weldguard.domain import work_sessions as ws

    assert {ws.STARTING, ws.ACTIVE, ws.ENDED, ws.FAILED} == {s.value for s in SessionStatus}
    assert {r.value for r in EndReason} <= {r.value for r in SessionEndReason}


def test_the_threshold_is_the_ingest_rule() -> None:
    # max(5.0 A, 5 % of the rating), rounded up, in deciamperes.
    assert arc_threshold_da(None) == 50
    assert arc_threshold_da(100) == 50
    assert arc_threshold_da(400) == 200
    assert arc_threshold_da(315) == 158


# ---------------------------------------------------------------------- windows


def test_the_protocol_examples_parse() -> None:
    # docs/protocol.md § 6.4: 12.5 s at about 165 A and 26.6 V, ended.
    w = tel_window(
        {"v": 1, "seq": 1031, "ts": 1735689702500, "arc": False,
         "sess": "5b0e4a52-8c1e-4d7a-9a43-0f2d6c1b7e91", "start_ts": 1735689690000,
         "dur_ms": 12500, "i_avg_da": 1650, "i_max_da": 1820, "u_avg_dv": 266, "e_j": 54862}
    )  # fmt: skip
    assert w is not None
    assert (w.start_ms, w.end_ms, w.dur_ms) == (1735689690000, 1735689702500, 12500)
    assert (w.i_avg_da, w.i_max_da, w.u_avg_dv, w.e_j) == (1650, 1820, 266, 54862)
    assert w.arc is False and w.sess == "5b0e4a52-8c1e-4d7a-9a43-0f2d6c1b7e91"


@pytest.mark.parametrize(
    "change",
    [
        {"start_ts": None},
        {"dur_ms": "10"},
        {"dur_ms": -1},
        {"i_max_da": 1.5},
        {"e_j": True},
        {"e_j": -3},
    ],
)
def test_a_window_without_its_figures_is_ignored(change: dict[str, Any]) -> None:
    assert tel_window(tel(**change)) is None


def test_a_window_without_sess_has_none() -> None:
    assert window(sess=None).sess is None


@pytest.mark.parametrize(
    ("i_max", "i_avg", "welding"),
    [
        (200, 150, True),  # at the threshold: welding
        (199, 150, False),  # below: idling, noise
        (0, 0, False),
        (3000, 2900, True),
        (150, 250, True),  # a chip breaking i_max ≥ i_avg: the larger counts
    ],
)
def test_welding_is_the_peak_at_or_above_the_threshold(
    i_max: int, i_avg: int, welding: bool
) -> None:
    assert is_welding(window(i_max=i_max, i_avg=i_avg), THRESHOLD) is welding


# ---------------------------------------------------------------------- accrual


def test_a_window_accrues_time_energy_peak_and_last_arc() -> None:
    covered, a = accrue((), window(dur=12_500, i_max=1820, e_j=54_862), THRESHOLD)
    assert covered == ((T0, T0 + 12_500),)
    assert a == Accrual(12_500, 54_862.0, 1820, T0 + 12_500)
    assert a.energy_wh == pytest.approx(54_862 / 3600)
    assert a.peak_current_a == 182.0


def test_the_last_window_of_an_arc_counts_although_arc_is_false() -> None:
    _, a = accrue((), window(arc=False), THRESHOLD)
    assert a.arc_ms == 10_000


def test_below_the_threshold_nothing_accrues() -> None:
    covered, a = accrue((), window(i_max=199, i_avg=100), THRESHOLD)
    assert covered == () and a is NO_ACCRUAL and a.empty


def test_the_empty_arc_start_window_marks_the_arc_but_adds_no_time() -> None:
    covered, a = accrue((), window(dur=0, e_j=0, i_max=900), THRESHOLD)
    assert covered == ()
    assert (a.arc_ms, a.energy_j, a.peak_da, a.last_arc_ms) == (0, 0.0, 900, T0)
    assert not a.empty


def test_contiguous_windows_of_an_arc_sum_and_merge() -> None:
    covered: tuple[tuple[int, int], ...] = ()
    total = Accrual()
    for k, i_max in enumerate((1800, 2260, 1900)):
        covered, a = accrue(covered, window(start=T0 + k * 10_000, i_max=i_max), THRESHOLD)
        total = total.plus(a)
    assert covered == ((T0, T0 + 30_000),)
    assert total == Accrual(30_000, 135_000.0, 2260, T0 + 30_000)


def test_a_window_delivered_twice_counts_once() -> None:
    covered, first = accrue((), window(), THRESHOLD)
    covered, again = accrue(covered, window(), THRESHOLD)
    assert first.arc_ms == 10_000
    assert again.arc_ms == 0 and again.energy_j == 0.0
    # Peak and last arc are maxima: a repeat changes nothing.
    assert first.plus(again) == first


def test_a_late_replay_of_an_earlier_arc_still_accrues() -> None:
    # Live windows came; then the chip replays what it buffered an hour earlier.
    covered, live = accrue((), window(start=T0 + MS_PER_HOUR), THRESHOLD)
    covered, replay = accrue(covered, window(start=T0, e_j=20_000), THRESHOLD)
    assert replay.arc_ms == 10_000 and replay.energy_j == 20_000.0
    assert covered == ((T0, T0 + 10_000), (T0 + MS_PER_HOUR, T0 + MS_PER_HOUR + 10_000))
    assert live.plus(replay).last_arc_ms == T0 + MS_PER_HOUR + 10_000


def test_a_partly_counted_window_adds_its_share_of_the_energy() -> None:
    covered, _ = accrue((), window(start=T0, dur=10_000), THRESHOLD)
    covered, a = accrue(covered, window(start=T0 + 5_000, dur=10_000, e_j=40_000), THRESHOLD)
    assert a.arc_ms == 5_000 and a.energy_j == pytest.approx(20_000)
    assert covered == ((T0, T0 + 15_000),)


def test_cover_merges_across_gaps_it_fills() -> None:
    covered = ((0, 10), (20, 30), (40, 50))
    assert cover(covered, 10, 20) == (((0, 30), (40, 50)), 10)
    assert cover(covered, 5, 45) == (((0, 50),), 20)
    assert cover(covered, 31, 39) == (((0, 10), (20, 30), (31, 39), (40, 50)), 8)
    assert cover(covered, 60, 70) == (((0, 10), (20, 30), (40, 50), (60, 70)), 10)
    assert cover(covered, 50, 55) == (((0, 10), (20, 30), (40, 55)), 5)
    assert cover(covered, 25, 25) == (covered, 0)


def test_coverage_is_bounded_oldest_first() -> None:
    covered: tuple[tuple[int, int], ...] = ()
    for k in range(10):
        covered, _ = cover(covered, k * 100, k * 100 + 10, max_intervals=4)
    assert covered == ((600, 610), (700, 710), (800, 810), (900, 910))


def test_accrual_sums() -> None:
    a = Accrual(1000, 10.0, 500, T0)
    b = Accrual(2000, 5.5, 400, None)
    assert a.plus(b) == Accrual(3000, 15.5, 500, T0)
    assert b.plus(a) == Accrual(3000, 15.5, 500, T0)
    assert NO_ACCRUAL.peak_current_a is None


# ---------------------------------------------------------------------- positions


def test_the_heartbeat_fix_in_degrees() -> None:
    hb = {"v": 1, "seq": 2, "ts": T0, "gps": {"lat": 31220400, "lon": 121424500,
          "acc_m": 5, "fix_ts": T0 - 2000}}  # fmt: skip
    p = hb_position(hb)
    assert p is not None
    assert p.lat == pytest.approx(31.2204) and p.lon == pytest.approx(121.4245)
    assert p.fix_ms == T0 - 2000


def test_no_fix_no_position() -> None:
    assert hb_position({"gps": None}) is None
    assert hb_position({"gps": {"lat": "31", "lon": 121}}) is None
    p = hb_position({"ts": T0, "gps": {"lat": 1, "lon": 2}})
    assert p is not None and p.fix_ms == T0


# ---------------------------------------------------------------------- the chip's edges


def evt(etype: str, **extra: Any) -> dict[str, Any]:
    return {"v": 1, "seq": 9, "ts": T0, "type": etype, **extra}


def test_edges_are_unlocked_and_locked_only() -> None:
    assert lock_edge(evt("tamper", what="chip_removed"), T0, live=True) is None
    assert lock_edge(evt("power_loss"), T0, live=True) is None
    edge = lock_edge(evt("unlocked", sess="S-1", cmd_id="c"), T0 + 5, live=True)
    assert edge is not None and not edge.locked and edge.sess == "S-1"


def test_a_live_edge_takes_the_receive_time_a_replay_the_chips() -> None:
    live = lock_edge(evt("locked", sess="S-1"), T0 + 900, live=True)
    replay = lock_edge(evt("locked", sess="S-1"), T0 + 900, live=False)
    future = lock_edge({**evt("locked", sess="S-1"), "ts": T0 + 5000}, T0 + 900, live=False)
    assert live is not None and live.at_ms == T0 + 900
    assert replay is not None and replay.at_ms == T0
    # A chip clock ahead of ours never puts an end in the future.
    assert future is not None and future.at_ms == T0 + 900


@pytest.mark.parametrize(
    ("message", "live", "status", "effect"),
    [
        (evt("unlocked", sess="S-1"), True, "starting", EdgeEffect.ACTIVATE),
        (evt("unlocked", sess="S-1"), False, "starting", EdgeEffect.ACTIVATE),
        (evt("unlocked", sess="S-1"), True, "active", EdgeEffect.NONE),
        (evt("unlocked", sess="S-2"), True, "starting", EdgeEffect.NONE),
        (evt("locked", sess="S-1", reason="until"), True, "active", EdgeEffect.END),
        (evt("locked", sess="S-1", cmd_id="c", reason="x"), False, "active", EdgeEffect.END),
        (evt("locked", sess="S-1"), True, "starting", EdgeEffect.END),
        (evt("locked", sess="S-2"), True, "active", EdgeEffect.NONE),
        # sess is only a SHOULD: a live locked without it ends the device's session,
        (evt("locked", reason="local"), True, "active", EdgeEffect.END),
        # a replay without it could be about any earlier session.
        (evt("locked", reason="local"), False, "active", EdgeEffect.NONE),
        # § 6.5: after a reboot the platform re-sends the unlock; not an end,
        (evt("locked", sess="S-1", reason="boot"), True, "active", EdgeEffect.REBOOT),
        (evt("locked", sess="S-1", reason="boot"), False, "active", EdgeEffect.REBOOT),
        (evt("locked", reason="boot"), True, "active", EdgeEffect.REBOOT),
        (evt("locked", reason="boot"), False, "active", EdgeEffect.NONE),
        (evt("locked", sess="S-2", reason="boot"), True, "active", EdgeEffect.NONE),
        # and a starting session's unlock is still on its way.
        (evt("locked", sess="S-1", reason="boot"), True, "starting", EdgeEffect.NONE),
        (evt("locked", sess="S-1"), True, "ended", EdgeEffect.NONE),
        (evt("unlocked", sess="S-1"), True, "failed", EdgeEffect.NONE),
    ],
)
def test_edge_effects(message: dict[str, Any], live: bool, status: str, effect: str) -> None:
    edge = lock_edge(message, T0, live=live)
    assert edge is not None
    assert edge_effect(edge, "S-1", status) is effect


# ---------------------------------------------------------------------- supervision

POLICY = SessionPolicy(idle_ms=30 * MS_PER_MINUTE, long_ms=24 * MS_PER_HOUR)


def active(**kwargs: Any) -> OpenSession:
    facts: dict[str, Any] = {
        "status": "active",
        "started_ms": T0,
        "unlocked_ms": T0 + 2000,
        "valid_until_ms": T0 + 48 * MS_PER_HOUR,
    }
    facts.update(kwargs)
    return OpenSession(**facts)


def test_defaults() -> None:
    p = DEFAULT_SESSION_POLICY
    assert (p.idle_ms, p.long_ms, p.unlock_timeout_ms) == (
        30 * MS_PER_MINUTE,
        24 * MS_PER_HOUR,
        30_000,
    )


def test_a_fresh_session_needs_nothing() -> None:
    assert supervise(active(), T0 + 60_000, POLICY).nothing


def test_the_time_limit_is_half_open() -> None:
    s = active(valid_until_ms=T0 + MS_PER_HOUR, last_arc_ms=T0 + MS_PER_HOUR - 1)
    assert supervise(s, T0 + MS_PER_HOUR - 1, POLICY).nothing
    assert supervise(s, T0 + MS_PER_HOUR, POLICY) == Verdict(end=EndReason.TIME_LIMIT)


def test_idle_counts_from_the_unlock_without_arcs() -> None:
    idle_at = T0 + 2000 + 30 * MS_PER_MINUTE
    assert supervise(active(), idle_at - 1, POLICY).nothing
    assert supervise(active(), idle_at, POLICY) == Verdict(end=EndReason.IDLE)


def test_idle_counts_from_the_last_arc() -> None:
    s = active(last_arc_ms=T0 + 10 * MS_PER_MINUTE)
    assert supervise(s, T0 + 39 * MS_PER_MINUTE, POLICY).nothing
    assert supervise(s, T0 + 40 * MS_PER_MINUTE, POLICY).end is EndReason.IDLE


def test_an_arc_replayed_from_before_the_unlock_does_not_shorten_the_idle_time() -> None:
    s = active(unlocked_ms=T0 + MS_PER_HOUR, last_arc_ms=T0)
    assert supervise(s, T0 + MS_PER_HOUR + 29 * MS_PER_MINUTE, POLICY).nothing


def test_without_an_unlock_time_the_start_counts() -> None:
    s = active(unlocked_ms=None)
    assert supervise(s, T0 + 30 * MS_PER_MINUTE, POLICY).end is EndReason.IDLE


def test_the_time_limit_wins_over_idle() -> None:
    s = active(valid_until_ms=T0 + MS_PER_HOUR)
    assert supervise(s, T0 + 2 * MS_PER_HOUR, POLICY).end is EndReason.TIME_LIMIT


def test_the_idle_time_is_a_setting() -> None:
    short = SessionPolicy(idle_ms=5 * MS_PER_MINUTE)
    assert supervise(active(), T0 + 2000 + 5 * MS_PER_MINUTE, short).end is EndReason.IDLE


def test_more_than_24_hours_on_warns_once() -> None:
    welding = T0 + 24 * MS_PER_HOUR  # arcs keep the session from going idle
    s = active(last_arc_ms=welding)
    assert supervise(s, T0 + 2000 + 24 * MS_PER_HOUR, POLICY).nothing  # not more than
    assert supervise(s, T0 + 2001 + 24 * MS_PER_HOUR, POLICY) == Verdict(warn_long=True)
    warned = active(last_arc_ms=welding, long_running_warned=True)
    assert supervise(warned, T0 + 2001 + 24 * MS_PER_HOUR, POLICY).nothing


def test_a_session_ending_now_is_not_also_warned_about() -> None:
    s = active(valid_until_ms=T0 + 25 * MS_PER_HOUR, last_arc_ms=T0 + 25 * MS_PER_HOUR)
    assert supervise(s, T0 + 25 * MS_PER_HOUR, POLICY) == Verdict(end=EndReason.TIME_LIMIT)


def test_a_start_that_never_got_an_answer_fails_after_the_unlock_lifetime() -> None:
    s = OpenSession(status="starting", started_ms=T0, valid_until_ms=T0 + MS_PER_HOUR)
    assert supervise(s, T0 + 29_999, POLICY).nothing
    assert supervise(s, T0 + 30_000, POLICY) == Verdict(fail=True)
    assert supervise(s, T0 + 30_000, POLICY, unlock_acked=True) == Verdict(activate=True)


def test_closed_sessions_need_nothing() -> None:
    for status in ("ended", "failed"):
        s = OpenSession(status=status, started_ms=T0, valid_until_ms=T0 + 1)
        assert supervise(s, T0 + 100 * MS_PER_HOUR, POLICY).nothing


# ---------------------------------------------------------------------- after a restart

BOOT = T0 + MS_PER_HOUR  # the chip restarted; the session runs T0 … T0 + 8 h


def rebooted(
    *,
    status: str = "active",
    valid_until_ms: int = T0 + 8 * MS_PER_HOUR,
    usable: bool = True,
    unlock: UnlockSent | None = UnlockSent("acked", T0 + 30_000, T0 + 100),
    resends: int = 0,
) -> RebootFacts:
    return RebootFacts(status, T0, valid_until_ms, usable, unlock, resends)


def test_the_restart_rule_knows_the_command_statuses() -> None:
    from weldguard.domain import work_sessions as ws

    assert {CommandStatus.QUEUED.value, CommandStatus.SENT.value} == ws._OPEN_COMMAND
    assert CommandStatus.ACKED.value == ws._ACKED


def test_a_restart_under_a_valid_session_re_sends_the_unlock() -> None:
    assert after_reboot(rebooted(), BOOT, BOOT + 500) == RebootVerdict(RebootAction.RESEND)
    # No unlock on record (a session activated by the chip's own event): likewise.
    assert after_reboot(rebooted(unlock=None), BOOT, BOOT + 500).action is RebootAction.RESEND


@pytest.mark.parametrize(
    ("unlock", "action", "replace"),
    [
        # Queued after the restart, not published yet, or published since: on its way.
        (UnlockSent("queued", BOOT + 30_000, None), RebootAction.UNDERWAY, False),
        (UnlockSent("sent", BOOT + 30_000, BOOT + 200), RebootAction.UNDERWAY, False),
        # Stepped back to queued for the hello's time command: still after the boot.
        (UnlockSent("queued", BOOT + 30_000, BOOT + 200), RebootAction.UNDERWAY, False),
        # Acknowledged after the restart: the chip is unlocked again.
        (UnlockSent("acked", BOOT + 30_000, BOOT + 200), RebootAction.UNLOCKED, False),
        # Published before the restart: executed or not, a retry cannot be trusted.
        (UnlockSent("sent", BOOT + 20_000, BOOT - 10_000), RebootAction.RESEND, True),
        (UnlockSent("acked", BOOT + 20_000, BOOT - 10_000), RebootAction.RESEND, False),
        # Expired, failed: a new one.
        (UnlockSent("sent", BOOT, BOOT - 30_000), RebootAction.RESEND, False),
        (UnlockSent("failed", BOOT + 30_000, BOOT + 200), RebootAction.RESEND, False),
    ],
)
def test_one_unlock_at_a_time_reaches_the_restarted_chip(
    unlock: UnlockSent, action: RebootAction, replace: bool
) -> None:
    verdict = after_reboot(rebooted(unlock=unlock), BOOT, BOOT + 500)
    assert (verdict.action, verdict.replace_open) == (action, replace)


def test_a_session_no_longer_valid_ends_and_nothing_is_sent() -> None:
    until = T0 + 2 * MS_PER_HOUR
    past = after_reboot(rebooted(valid_until_ms=until), until - 5, until + 10)
    assert past == RebootVerdict(
        RebootAction.END, EndReason.TIME_LIMIT, until, why="past valid_until"
    )
    close = after_reboot(rebooted(valid_until_ms=until), until - 60_000, until - 59_999)
    assert (close.action, close.end, close.end_ms) == (
        RebootAction.END,
        EndReason.LOCK_EVENT,
        until - 60_000,
    )
    gone = after_reboot(rebooted(usable=False), BOOT, BOOT + 500)
    assert (gone.action, gone.end, gone.end_ms) == (RebootAction.END, EndReason.LOCK_EVENT, BOOT)


def test_a_chip_restarting_again_and_again_ends_its_session() -> None:
    policy = SessionPolicy(max_resends=3)
    assert after_reboot(rebooted(resends=2), BOOT, BOOT + 1, policy).action is RebootAction.RESEND
    verdict = after_reboot(rebooted(resends=3), BOOT, BOOT + 1, policy)
    assert (verdict.action, verdict.end) == (RebootAction.END, EndReason.LOCK_EVENT)
    # One already on its way is not a further re-send.
    underway = rebooted(resends=3, unlock=UnlockSent("queued", BOOT + 30_000, None))
    assert after_reboot(underway, BOOT, BOOT + 1, policy).action is RebootAction.UNDERWAY


def test_a_session_that_is_not_active_is_left_alone() -> None:
    for status in ("starting", "ended", "failed"):
        assert after_reboot(rebooted(status=status), BOOT, BOOT).action is RebootAction.NOTHING
