"""Life in the demo: now and then one of the demo welders scans a fleet machine that
is online and free, through the real scan path (decision, scan record, work session,
signed unlock over the command bus), and ends the work a few minutes later. So the
demo's scan records, sessions and timelines fill the way a real day would, and the
only welding without a session is the misbehaving chips'.

Runs inside ``weldguard serve --fleet`` only."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from weldguard.auth.models import User
from weldguard.config import Settings
from weldguard.db import transaction, utcnow
from weldguard.device.models import DeviceState
from weldguard.domain.authorization import PhonePosition
from weldguard.domain.geo import GeoPoint
from weldguard.machine.models import Chip, ChipBinding, Machine
from weldguard.seed.demo_fleet import ensure_demo_welders
from weldguard.seed.demo_permits import keep_fire_watch
from weldguard.unlock.command_bus import CommandBus, CommandOrder
from weldguard.unlock.labels import signer_for
from weldguard.unlock.models import SessionStatus, WorkSession
from weldguard.unlock.service import ScanService, complete_lock, complete_unlock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Candidate:
    code: str
    enterprise_id: int
    lat_e6: int | None
    lon_e6: int | None


class DemoActivityRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def free_online_machines(self, device_ids: Sequence[str]) -> list[_Candidate]:
        """Fleet machines whose chip is online and that nobody is working on."""
        busy = select(WorkSession.machine_id).where(
            WorkSession.status.in_([SessionStatus.STARTING.value, SessionStatus.ACTIVE.value])
        )
        rows = self.session.execute(
            select(Machine.code, Machine.enterprise_id, DeviceState.lat_e6, DeviceState.lon_e6)
            .join(ChipBinding, ChipBinding.machine_id == Machine.id)
            .join(Chip, Chip.id == ChipBinding.chip_id)
            .join(DeviceState, DeviceState.device_id == Chip.device_id)
            .where(
                ChipBinding.removed_at.is_(None),
                Chip.device_id.in_(device_ids),
                DeviceState.online.is_(True),
                Machine.id.not_in(busy),
            )
        )
        return [_Candidate(*row) for row in rows]

    def open_sessions_of(self, user_ids: Sequence[int]) -> list[tuple[WorkSession, User]]:
        rows = self.session.execute(
            select(WorkSession, User)
            .join(User, User.welder_id == WorkSession.welder_id)
            .where(
                User.id.in_(user_ids),
                WorkSession.status == SessionStatus.ACTIVE.value,
            )
        )
        return [(s, u) for s, u in rows]


def _minutes_for(session_id: str, low: int, high: int) -> int:
    """A stable, varied length for each demo session."""
    digest = hashlib.sha256(session_id.encode()).digest()
    return low + digest[0] % (high - low + 1)


class DemoActivity:
    def __init__(
        self,
        settings: Settings,
        session_factory: sessionmaker[Session],
        device_ids: Sequence[str],
        bus: Callable[[], CommandBus | None],
        *,
        interval_s: float = 20.0,
        max_sessions: int = 6,
        minutes: tuple[int, int] = (3, 8),
        seed: int | None = None,
    ) -> None:
        self.settings = settings
        self.factory = session_factory
        self.device_ids = list(device_ids)
        self.bus = bus
        self.interval_s = interval_s
        self.max_sessions = max_sessions
        self.minutes = minutes
        self.rng = random.Random(seed)
        self.welders: dict[int, int] = {}  # enterprise id → user id
        self.started = 0
        self.blocked = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self, first_delay_s: float = 15.0) -> None:
        await asyncio.sleep(first_delay_s)  # let the chips come online first
        await asyncio.to_thread(self._load_welders)
        log.info("demo activity: %d welder account(s)", len(self.welders))
        while True:
            try:
                await self.tick(utcnow())
            except asyncio.CancelledError:
                raise
            except Exception:  # the demo must not stop over one bad round
                log.exception("demo activity: round failed")
            await asyncio.sleep(self.interval_s)

    def _load_welders(self) -> None:
        with transaction(self.factory) as session:
            enterprise_ids = sorted(
                {
                    c.enterprise_id
                    for c in DemoActivityRepository(session).free_online_machines(self.device_ids)
                }
            )
            accounts = ensure_demo_welders(session, self.settings, enterprise_ids, utcnow().date())
            self.welders = {ent: user.id for ent, user in accounts.items()}

    async def tick(self, now: datetime) -> None:
        # The demo permits' fire watches check in, so their work stays in progress.
        await asyncio.to_thread(self._keep_watch, now)
        for order in await asyncio.to_thread(self._end_due, now):
            self._spawn(complete_lock(self.bus(), self.factory, self.settings, order))
        started = await asyncio.to_thread(self._start_one, now)
        if started is not None:
            session_id, order = started
            self._spawn(complete_unlock(self.bus(), self.factory, self.settings, session_id, order))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _keep_watch(self, now: datetime) -> None:
        with transaction(self.factory) as session:
            keep_fire_watch(session, self.settings, now)

    def _end_due(self, now: datetime) -> list[CommandOrder]:
        orders = []
        with transaction(self.factory) as session:
            service = ScanService(session, self.settings)
            low, high = self.minutes
            for work, user in DemoActivityRepository(session).open_sessions_of(
                list(self.welders.values())
            ):
                length = timedelta(minutes=_minutes_for(work.id, low, high))
                if work.started_at + length <= now:
                    ended = service.end_session(user, work.id, now)
                    if ended.lock is not None:
                        orders.append(ended.lock)
        return orders

    def _start_one(self, now: datetime) -> tuple[str, CommandOrder] | None:
        with transaction(self.factory) as session:
            repo = DemoActivityRepository(session)
            working = repo.open_sessions_of(list(self.welders.values()))
            if len(working) >= self.max_sessions:
                return None
            # Each demo welder works on one machine at a time (a second scan would
            # only be refused as BUSY_ELSEWHERE).
            busy_users = {user.id for _, user in working}
            idle = {ent for ent, uid in self.welders.items() if uid not in busy_users}
            free = repo.free_online_machines(self.device_ids)
            candidates = [c for c in free if c.enterprise_id in idle]
            if not candidates:
                return None
            machine = self.rng.choice(candidates)
            user = session.get(User, self.welders[machine.enterprise_id])
            if user is None:
                return None
            position = None
            if machine.lat_e6 is not None and machine.lon_e6 is not None:
                # Standing next to the machine, as the welder's phone would report.
                position = PhonePosition(
                    GeoPoint(
                        machine.lat_e6 / 1e6 + self.rng.uniform(-1e-4, 1e-4),
                        machine.lon_e6 / 1e6 + self.rng.uniform(-1e-4, 1e-4),
                    ),
                    accuracy_m=15.0,
                )
            bus = self.bus()
            result = ScanService(
                session, self.settings, claim_for_bus=bus is not None and bus.connected
            ).scan(
                user,
                machine.code,
                signer_for(self.settings).sign(machine.code),
                position,
                uuid.uuid4().hex,
                now,
            )
            if result.session is None or result.unlock is None:
                self.blocked += 1
                return None
            self.started += 1
            return result.session.id, result.unlock
