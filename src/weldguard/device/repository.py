"""Queries the device side needs. Broker access is platform-wide (a chip is not in
anyone's jurisdiction when it logs in), so these reads take no Scope; they are
only used by the broker's authentication and by the operator's file sync."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from weldguard.machine.models import Chip


class DeviceRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def chip_with_secret(self, device_id: str) -> Chip | None:
        """The chip with this exact device id, if it has been issued a secret."""
        return self.session.scalars(
            select(Chip).where(Chip.device_id == device_id, Chip.secret_encrypted.is_not(None))
        ).one_or_none()

    def chips_with_secrets(self, batch_size: int = 2000) -> Iterator[Chip]:
        """Every chip that has a secret, by device id; streamed in batches so that a
        province's worth of chips does not sit in memory as ORM objects at once."""
        statement = (
            select(Chip)
            .where(Chip.secret_encrypted.is_not(None))
            .order_by(Chip.device_id)
            .execution_options(yield_per=batch_size)
        )
        yield from self.session.scalars(statement)
