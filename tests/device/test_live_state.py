"""Live state rules: dedupe, seq regressions, buffered replays, boots, offline
deadlines. Pure: the clock is an argument."""

from __future__ import annotations

from typing import Any

from weldguard.device.live_state import DeviceLive, LiveStates

T0 = 1_790_000_000_000


def hb(seq: int, **extra: Any) -> dict[str, Any]:
    return {"v": 1, "seq": seq, "ts": T0, "interval_s": 30, "lock": "locked", "rssi": -70} | extra


def test_new_duplicate_regression_and_buffered_replay() -> None:
    live = LiveStates()
    assert live.apply("d1", "hb", hb(1), T0) is not None
    assert live.apply("d1", "hb", hb(1), T0) is None  # duplicate
    assert live.apply("d1", "hb", hb(5, lock="unlocked"), T0) is not None
    assert live.apply("d1", "hb", hb(3), T0) is None  # regression
    change = live.apply("d1", "hb", hb(4, buf=True, lock="locked"), T0)
    assert change is not None and not change.live  # history only
    assert live.apply("d1", "hb", hb(4, buf=True), T0) is None  # replayed twice
    assert live.states["d1"].lock_state == "unlocked"
    assert (live.duplicates, live.seq_regressions, live.late_buffered) == (2, 1, 1)


def test_buffered_replay_older_than_the_window_goes_to_the_database() -> None:
    live = LiveStates()
    live.apply("d1", "hb", hb(1000), T0)
    assert live.apply("d1", "hb", hb(10, buf=True), T0) is not None
    assert live.apply("d1", "hb", hb(10), T0) is None  # live and old: regression


def test_boot_hello_restarts_the_sequence() -> None:
    live = LiveStates()
    live.apply("d1", "hb", hb(500), T0)
    hello = {"v": 1, "seq": 1, "ts": T0, "fw": "1.2.0", "boot": True, "buf_count": 0}
    assert live.apply("d1", "hello", hello, T0) is not None
    assert live.apply("d1", "hb", hb(2), T0) is not None
    st = live.states["d1"]
    assert (st.last_seq, st.boot_count, st.firmware) == (2, 1, "1.2.0")
    assert live.seq_regressions == 0


def test_a_boot_hello_means_locked() -> None:
    """§ 6.5: the chip starts locked; its locked/boot event arrives as a replay."""
    live = LiveStates()
    live.apply("d1", "evt", {"v": 1, "seq": 7, "ts": T0, "type": "unlocked", "sess": "S"}, T0)
    live.apply("d1", "hb", hb(8) | {"lock": "unlocked", "sess": "S"}, T0)
    hello = {"v": 1, "seq": 9, "ts": T0, "fw": "1.2.0", "boot": True, "buf_count": 1}
    change = live.apply("d1", "hello", hello, T0 + 1000)
    st = live.states["d1"]
    assert (st.lock_state, st.session_id) == ("locked", None)
    assert change is not None and change.lock_changed
    # A reconnection without a restart says nothing about the lock.
    live.apply("d1", "hb", hb(10) | {"lock": "unlocked", "sess": "S"}, T0 + 2000)
    live.apply("d1", "hello", hello | {"seq": 11, "boot": False}, T0 + 3000)
    assert st.lock_state == "unlocked"


def test_gps_arc_and_lock_events() -> None:
    live = LiveStates(arc_threshold_da={"d1": 200})
    gps = {"lat": 31_200_000, "lon": 121_400_000, "acc_m": 5, "fix_ts": T0 - 1000}
    live.apply("d1", "hb", hb(1, gps=gps), T0)
    live.apply("d1", "hb", hb(2, gps=None), T0)  # no fix: keep the last position
    st = live.states["d1"]
    assert (st.lat_e6, st.lon_e6, st.gps_ms) == (31_200_000, 121_400_000, T0 - 1000)
    tel = {"v": 1, "seq": 3, "ts": T0, "arc": True, "i_avg_da": 150, "i_max_da": 180}
    live.apply("d1", "tel", tel, T0)
    assert st.arc_on is False  # below the machine's welding threshold
    change = live.apply("d1", "tel", tel | {"seq": 4, "i_avg_da": 1500}, T0)
    assert st.arc_on is True and change is not None and change.arc_changed
    change = live.apply("d1", "evt", {"v": 1, "seq": 5, "ts": T0, "type": "unlocked"}, T0)
    assert st.lock_state == "unlocked" and change is not None and change.lock_changed


def test_offline_deadlines_without_a_sweep() -> None:
    live = LiveStates(offline_factor=2.5, offline_grace_ms=0)
    live.apply("a", "hb", hb(1, interval_s=10), T0)  # deadline T0 + 25 s
    live.apply("b", "hb", hb(1, interval_s=30), T0)  # deadline T0 + 75 s
    assert live.due_offline(T0 + 24_999) == []
    live.apply("a", "hb", hb(2, interval_s=10), T0 + 20_000)  # pushes a to T0 + 45 s
    assert live.due_offline(T0 + 30_000) == []
    assert len(live._heap) == 2  # lazily re-pushed, one entry per device
    assert live.due_offline(T0 + 45_000) == ["a"]
    assert live.due_offline(T0 + 75_000) == ["b"]
    assert not live.states["a"].online
    assert live.due_offline(T0 + 999_000) == []
    change = live.apply("a", "hb", hb(3, interval_s=10), T0 + 100_000)
    assert change is not None and change.came_online
    assert live.due_offline(T0 + 125_000) == ["a"]


def test_dirty_states_are_returned_once() -> None:
    live = LiveStates()
    live.apply("a", "hb", hb(1), T0)
    live.apply("a", "hb", hb(2), T0)
    live.apply("b", "hb", hb(1), T0)
    assert sorted(d for d, _ in live.dirty()) == ["a", "b"]
    assert live.dirty() == []
    live.mark_dirty(["a", "unknown"])
    assert [d for d, _ in live.dirty()] == ["a"]


def test_restored_state_lets_the_database_decide_about_old_seqs() -> None:
    """After a restart, last_seq may be ahead of what was committed: the broker's
    redeliveries are passed on (the unique key drops real duplicates)."""
    live = LiveStates()
    live.restore("d1", DeviceLive(last_seq=10, online=True, deadline_ms=T0 + 1000))
    assert live.apply("d1", "hb", hb(9), T0) is not None
    assert live.apply("d1", "hb", hb(10), T0) is not None
    assert live.apply("d1", "hb", hb(11), T0) is not None
    assert live.apply("d1", "hb", hb(8), T0) is None  # trusted again: regression
    assert live.will("d1") is True
    assert live.states["d1"].online is False


def test_offline_deadline_follows_the_heartbeat_promise() -> None:
    """docs/protocol.md § 6.3: heartbeats every interval_s ± 10 %. Offline after
    interval + max(3 s, 10 %) + 1 s of transit: 34 s for the default 30 s."""
    live = LiveStates()
    assert live.offline_after_ms(30) == 34_000
    assert live.offline_after_ms(60) == 67_000
    assert live.offline_after_ms(10) == 14_000
    live.apply("d1", "hb", hb(1, interval_s=30), T0)
    # A heartbeat as late as the chip may send it (+10 %) keeps it online.
    assert live.due_offline(T0 + 33_000) == []
    live.apply("d1", "hb", hb(2, interval_s=30), T0 + 33_000)
    assert live.due_offline(T0 + 33_000 + 33_999) == []
    assert live.due_offline(T0 + 33_000 + 34_000) == ["d1"]
