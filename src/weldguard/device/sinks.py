"""What the ingest worker feeds besides ``device_message`` and ``device_state``:
command acknowledgements, device alarms, and whatever later areas derive from the
message stream (work sessions).

A sink sees each accepted message once, in arrival order, on the worker's event
loop, and does its database work on the worker's database thread in batches, the
same way live state is flushed. The split exists because the two run on different
threads: ``drain`` hands the pending work over on the loop (so nothing observed
meanwhile is lost), ``write`` runs it on the database thread in its own
transaction, and ``requeue`` gives it back if the write failed, for the next flush.

A sink must never raise out of ``observe`` or ``went_offline`` on purpose; the
worker still guards every call, logs and counts, so a bug in a sink cannot stop
ingest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import Engine

from weldguard.device.live_state import DeviceLive, StateChange
from weldguard.device.protocol import UpKind


class IngestSink(Protocol):
    name: str

    def start(self, engine: Engine, now_ms: int) -> None:
        """Database thread, once before the first message: load what the sink needs
        (machine facts, open alarms, commands in flight)."""

    def observe(
        self,
        device_id: str,
        kind: UpKind,
        message: Mapping[str, Any],
        change: StateChange,
        state: DeviceLive,
        now_ms: int,
    ) -> None:
        """Event loop, for every accepted message (not for duplicates). ``state`` is
        the device's live state after the message; ``change.live`` is False for a
        late replay from the chip's buffer (history, not the present)."""

    def went_offline(self, device_id: str, state: DeviceLive, now_ms: int) -> None:
        """Event loop: the device's deadline passed, or its Last Will arrived."""

    def drain(self, now_ms: int) -> Any | None:
        """Event loop: take the pending work (None when there is none)."""

    def write(self, engine: Engine, work: Any, now_ms: int) -> None:
        """Database thread: apply ``work`` in one transaction of the sink's own."""

    def requeue(self, work: Any) -> None:
        """Event loop: ``write`` failed; keep ``work`` for the next flush."""
