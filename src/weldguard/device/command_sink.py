"""The ingest sink of the command side: ``ack`` messages settle commands and a
``hello`` makes the device's open commands due at once (after a ``time``
command, § 6.2 and § 13).

``observe`` only appends to a list on the event loop; ``write`` applies the list
in arrival order in one transaction on the worker's database thread, so an ack
costs no database round trip of its own. An ack for an id no command of that
device has is logged and counted (``unknown_acks``), never stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from weldguard.device.commands import AckOutcome, CommandService, from_ms
from weldguard.device.dispatcher import wake_local_dispatchers
from weldguard.device.live_state import DeviceLive, StateChange
from weldguard.device.protocol import UpKind
from weldguard.device.registry import DeviceSecrets

log = logging.getLogger(__name__)

_LOG_LIMIT = 64


@dataclass(frozen=True, slots=True)
class _Seen:
    device_id: str
    kind: str  # "ack" or "hello"
    ack: Mapping[str, Any] | None
    received_ms: int


class CommandSink:
    name = "commands"

    def __init__(
        self,
        device_secrets: DeviceSecrets,
        *,
        sync_clock_on_hello: bool = True,
        on_written: Callable[[], None] | None = None,
    ) -> None:
        """``on_written`` is called on the database thread after each committed
        batch (default: wake the dispatchers running in this process), so a
        re-publish after a hello, or the next queued command after an ack, goes
        out at once instead of at the dispatcher's next poll."""
        self.secrets = device_secrets
        self.sync_clock_on_hello = sync_clock_on_hello
        self.on_written = on_written if on_written is not None else wake_local_dispatchers
        self._pending: list[_Seen] = []
        self.acks = 0
        self.unknown_acks = 0
        self.duplicate_acks = 0
        self.hellos = 0

    def start(self, engine: Engine, now_ms: int) -> None:
        """Nothing to preload: every ack is looked up by its id when written."""

    def observe(
        self,
        device_id: str,
        kind: UpKind,
        message: Mapping[str, Any],
        change: StateChange,
        state: DeviceLive,
        now_ms: int,
    ) -> None:
        if kind == "ack":
            self._pending.append(_Seen(device_id, "ack", message, now_ms))
        elif kind == "hello" and change.live:
            # A hello replayed late from the buffer says nothing about now.
            self._pending.append(_Seen(device_id, "hello", None, now_ms))

    def went_offline(self, device_id: str, state: DeviceLive, now_ms: int) -> None:
        """Commands keep their back-off while a device is away; its hello on
        return re-publishes them."""

    def drain(self, now_ms: int) -> list[_Seen] | None:
        if not self._pending:
            return None
        work, self._pending = self._pending, []
        return work

    def requeue(self, work: Any) -> None:
        self._pending[:0] = work

    def write(self, engine: Engine, work: Any, now_ms: int) -> None:
        seen: list[_Seen] = work
        counts = {outcome: 0 for outcome in AckOutcome}
        with Session(engine, expire_on_commit=False, autoflush=False) as session:
            service = CommandService(session, self.secrets)
            acks = [
                (item.device_id, item.ack, from_ms(item.received_ms))
                for item in seen
                if item.ack is not None
            ]
            hello_devices = [item.device_id for item in seen if item.ack is None]
            for (device_id, ack, _), outcome in zip(acks, service.record_acks(acks), strict=True):
                counts[outcome] += 1
                if outcome is AckOutcome.UNKNOWN:
                    log.warning(
                        "commands: ack from %s for unknown command id %.*r",
                        device_id,
                        _LOG_LIMIT,
                        str(ack.get("id")),
                    )
            # The time commands are signed now, not when the hellos arrived: their
            # ``now`` sets the chips' clocks, so they should be as fresh as they can.
            service.devices_said_hello(
                hello_devices, from_ms(now_ms), sync_clock=self.sync_clock_on_hello
            )
            session.commit()
        hellos = len(hello_devices)
        # Counted once committed: a failed batch comes back through requeue.
        self.acks += counts[AckOutcome.RECORDED]
        self.duplicate_acks += counts[AckOutcome.DUPLICATE]
        self.unknown_acks += counts[AckOutcome.UNKNOWN]
        self.hellos += hellos
        try:
            self.on_written()
        except Exception:
            log.exception("commands: on_written callback failed")

    def stats(self) -> dict[str, int]:
        return {
            "acks": self.acks,
            "duplicate_acks": self.duplicate_acks,
            "unknown_acks": self.unknown_acks,
            "hellos": self.hellos,
        }
