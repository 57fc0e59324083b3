"""Each chip's live state, kept in memory by the ingest worker and flushed to
``device_state`` in batches (a latest-value table updated on every message is
the classic way to drown a database).

Pure: no I/O and no clock reads; times come in as Unix milliseconds.

Duplicate and order rules (docs/protocol.md, "seq"):
- ``seq`` above the last one seen: new (gaps are allowed, the chip may have lost
  messages or will replay them from its buffer).
- ``seq`` seen before (the last one or one in the 64-wide window below it): a
  duplicate, dropped.
- a lower ``seq`` with ``buf`` true: a late replay from the chip's buffer, kept as
  history (the database's unique key catches a replay older than the window).
- a lower ``seq`` without ``buf``: a regression, dropped and counted, unless it is
  a hello with ``boot`` true, which restarts the sequence.
- after a restart of the worker the last seq comes from the database and may be
  ahead of what was committed, so until the chip sends something newer, lower
  seqs are passed on for the database to dedupe instead of being dropped.

Offline detection uses one deadline per chip in a heap, so finding the chips that
went quiet costs O(expired · log n) instead of a sweep over every chip. The
deadline follows docs/protocol.md § 6.3: a chip promises a heartbeat every
``interval_s`` ± 10 %, so the platform waits ``interval_s`` plus that jitter (at
least 3 s) plus 1 s for the network: 34 s for the default 30 s heartbeat.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

WINDOW = 64
_WINDOW_MASK = (1 << WINDOW) - 1
DEFAULT_INTERVAL_S = 60
# deadline = last message + factor x interval + grace(interval); see offline_grace_ms.
DEFAULT_OFFLINE_FACTOR = 1.0
# The chip's promised heartbeat jitter (± 10 %), never less than 3 s, plus 1 s of
# transit: a heartbeat that comes as late as the protocol allows is never mistaken
# for a chip gone quiet, and one that does not come is noticed within a few seconds.
JITTER_FRACTION = 0.10
MIN_JITTER_MS = 3000
TRANSIT_MS = 1000


def protocol_grace_ms(interval_ms: int) -> int:
    """The margin past the heartbeat period before a silent chip is offline."""
    return max(MIN_JITTER_MS, int(interval_ms * JITTER_FRACTION)) + TRANSIT_MS


@dataclass(slots=True)
class DeviceLive:
    last_seq: int = 0
    # Bit i set: seq (last_seq - i) has been seen.
    window: int = 0
    # False after a restore from the database (see module docstring).
    trusted: bool = True
    boot_count: int = 0
    online: bool = False
    in_heap: bool = False
    last_seen_ms: int = 0
    deadline_ms: int = 0
    interval_s: int | None = None
    lock_state: str | None = None
    rssi: int | None = None
    vin_mv: int | None = None
    lat_e6: int | None = None
    lon_e6: int | None = None
    gps_ms: int | None = None
    arc_on: bool = False
    session_id: str | None = None
    firmware: str | None = None


# Not frozen: a frozen dataclass costs 2 µs per construction (object.__setattr__
# per field), a measurable share of the per-message budget. Treat it as read-only.
@dataclass(slots=True)
class StateChange:
    device_id: str
    kind: str
    # True when the message updated the live fields (not a late buffered replay).
    live: bool
    came_online: bool
    lock_changed: bool
    arc_changed: bool


class LiveStates:
    def __init__(
        self,
        *,
        offline_factor: float = DEFAULT_OFFLINE_FACTOR,
        offline_grace_ms: int | None = None,
        arc_threshold_da: Mapping[str, int] | None = None,
    ) -> None:
        """``offline_grace_ms`` None: the protocol's margin (``protocol_grace_ms``);
        a number: that fixed margin (tests shrink the deadline with it)."""
        self.states: dict[str, DeviceLive] = {}
        self.offline_factor = offline_factor
        self.offline_grace_ms = offline_grace_ms
        # interval_s → how long a chip may stay silent; computed once per period
        # (there are a handful), not once per message.
        self._offline_after: dict[int | None, int] = {}
        # Per-device welding threshold (deciamperes): an arc below it is not
        # welding (machine idling, sensor noise). Empty: the chip's arc flag decides.
        self.arc_threshold_da: Mapping[str, int] = arc_threshold_da or {}
        self._heap: list[tuple[int, str]] = []
        self._dirty: set[str] = set()
        self.duplicates = 0
        self.seq_regressions = 0
        self.late_buffered = 0
        self.boots = 0

    def __len__(self) -> int:
        return len(self.states)

    # ------------------------------------------------------------------ messages

    def apply(
        self,
        device_id: str,
        kind: str,
        message: Mapping[str, Any],
        received_ms: int,
        *,
        history: bool = False,
    ) -> StateChange | None:
        """Accounts one decoded up message. None: drop it (duplicate or
        regression, counted); otherwise the message is to be stored. ``history``:
        store it but do not let it change the live fields (a live message that
        arrives very late, see protocol.classify_ts)."""
        st = self.states.get(device_id)
        if st is None:
            st = self.states[device_id] = DeviceLive()
        seq: int = message["seq"]
        buffered = message.get("buf") is True
        newest = False
        if kind == "hello" and message.get("boot") is True and not buffered:
            if not (seq == st.last_seq and st.window & 1 and st.boot_count):
                st.boot_count += 1
                self.boots += 1
            st.last_seq, st.window, st.trusted, newest = seq, 1, True, True
        elif seq > st.last_seq:
            shift = seq - st.last_seq
            st.window = ((st.window << shift) | 1) & _WINDOW_MASK if shift < WINDOW else 1
            st.last_seq, st.trusted, newest = seq, True, True
        else:
            back = st.last_seq - seq
            if back < WINDOW and st.window >> back & 1:
                self.duplicates += 1
                return None
            if not buffered and st.trusted:
                self.seq_regressions += 1
                return None
            if back < WINDOW:
                st.window |= 1 << back
            self.late_buffered += 1

        came_online = not st.online
        st.online = True
        st.last_seen_ms = max(st.last_seen_ms, received_ms)
        lock_changed = arc_changed = False
        # Only the newest live message describes the present; buffered replays and
        # older seqs are history.
        live = newest and not buffered and not history
        if live:
            lock_before, arc_before = st.lock_state, st.arc_on
            self._apply_fields(device_id, st, kind, message)
            lock_changed = st.lock_state != lock_before
            arc_changed = st.arc_on != arc_before
        after = self._offline_after.get(st.interval_s)
        if after is None:
            after = self._offline_after[st.interval_s] = self.offline_after_ms(st.interval_s)
        st.deadline_ms = st.last_seen_ms + after
        if not st.in_heap:
            heapq.heappush(self._heap, (st.deadline_ms, device_id))
            st.in_heap = True
        self._dirty.add(device_id)
        return StateChange(device_id, kind, live, came_online, lock_changed, arc_changed)

    def _apply_fields(
        self, device_id: str, st: DeviceLive, kind: str, m: Mapping[str, Any]
    ) -> None:
        if kind == "hb":
            st.lock_state = m.get("lock", st.lock_state)
            st.rssi = m.get("rssi", st.rssi)
            st.vin_mv = m.get("vin", st.vin_mv)
            if "sess" in m:
                st.session_id = m["sess"]
            if m.get("interval_s"):
                st.interval_s = m["interval_s"]
            gps = m.get("gps")
            if isinstance(gps, dict):
                st.lat_e6, st.lon_e6 = gps.get("lat"), gps.get("lon")
                st.gps_ms = gps.get("fix_ts", m.get("ts"))
        elif kind == "tel":
            arc = m.get("arc") is True
            threshold = self.arc_threshold_da.get(device_id)
            if arc and threshold is not None:
                current = max(m.get("i_avg_da") or 0, m.get("i_max_da") or 0)
                arc = current >= threshold
            st.arc_on = arc
            if "sess" in m:
                st.session_id = m["sess"]
        elif kind == "evt":
            etype = m.get("type")
            if etype == "unlocked":
                st.lock_state = "unlocked"
            elif etype == "locked":
                st.lock_state = "locked"
                st.arc_on = False
            elif etype == "power_loss":
                st.arc_on = False
        elif kind == "hello":
            st.firmware = m.get("fw", st.firmware)
            if m.get("boot") is True:
                # The chip starts locked after power-on or reset (protocol § 6.5),
                # whatever it said before; its locked/boot event comes as a replay.
                st.lock_state, st.session_id, st.arc_on = "locked", None, False

    def offline_after_ms(self, interval_s: int | None) -> int:
        """How long a chip with this heartbeat period may stay silent."""
        interval_ms = (interval_s or DEFAULT_INTERVAL_S) * 1000
        grace = self.offline_grace_ms
        if grace is None:
            grace = protocol_grace_ms(interval_ms)
        return int(interval_ms * self.offline_factor) + grace

    def will(self, device_id: str) -> bool:
        """The broker published the chip's Last Will (an evt without seq): it lost
        its connection, so it is offline now, without waiting for its deadline.
        True when that changed its state."""
        st = self.states.get(device_id)
        if st is None or not st.online:
            return False
        st.online = False
        st.arc_on = False
        self._dirty.add(device_id)
        return True

    # ------------------------------------------------------------------ offline

    def due_offline(self, now_ms: int) -> list[str]:
        """Chips whose deadline has passed, marked offline. Heap entries are lazy:
        a chip heard from since its entry was pushed is re-pushed with its current
        deadline, so each online chip has exactly one entry."""
        heap, states, gone = self._heap, self.states, []
        while heap and heap[0][0] <= now_ms:
            _, device_id = heapq.heappop(heap)
            st = states.get(device_id)
            if st is None:
                continue
            if st.deadline_ms > now_ms:
                heapq.heappush(heap, (st.deadline_ms, device_id))
                continue
            st.in_heap = False
            if st.online:
                st.online = False
                st.arc_on = False
                self._dirty.add(device_id)
                gone.append(device_id)
        return gone

    def next_deadline_ms(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    # ------------------------------------------------------------------ flushing

    def dirty(self) -> list[tuple[str, DeviceLive]]:
        """States changed since the last call (the caller writes them)."""
        out = [(d, self.states[d]) for d in self._dirty]
        self._dirty.clear()
        return out

    def mark_dirty(self, device_ids: Iterable[str]) -> None:
        """Puts states back when their flush failed, so the next one retries."""
        self._dirty.update(d for d in device_ids if d in self.states)

    def restore(self, device_id: str, st: DeviceLive) -> None:
        """Loads a state from the database at start-up (see module docstring)."""
        st.trusted = False
        # Nothing counts as seen: the database decides about seqs up to last_seq.
        st.window = 0
        st.in_heap = False
        self.states[device_id] = st
        if st.online:
            heapq.heappush(self._heap, (st.deadline_ms, device_id))
            st.in_heap = True
