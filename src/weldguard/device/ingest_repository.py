"""The ingest worker's SQL: batched message writes and live-state upserts.

Two paths for messages:
- PostgreSQL: ``PgMessageWriter``, asyncpg on the worker's event loop. Its binary
  COPY is encoded in Cython (about a microsecond a row) and leaves no database
  thread holding the GIL against the loop that parses messages. COPY goes straight
  into ``device_message``, which saves PostgreSQL a staging copy and an
  ``INSERT … SELECT`` per row; only when the unique key refuses a batch
  (redeliveries after a restart, a replay older than the in-memory window) does it
  go through a staging table and ``INSERT … ON CONFLICT DO NOTHING``. Live state
  is flushed the same way, one COPY and one upsert per flush.
- SQLite (the embedded default): ``IngestRepository.write_messages``, executemany
  on the worker's database thread.

Everything else (SQLite's state upserts, start-up loads, the machines' welding
thresholds) is blocking SQLAlchemy/DBAPI work on one dedicated connection, run on
the worker's single database thread.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # no stubs; used through Any
from sqlalchemy import Engine, and_, select

from weldguard.device.live_state import DeviceLive
from weldguard.device.models import DeviceState

# (device_id, kind, seq, device_ts_ms, received_ms, buffered, payload JSON text)
MessageRow = tuple[str, str, int, int, int, bool, str]

_STATE_COLUMNS = (
    "device_id, online, last_seen_at, lock_state, last_seq, boot_count, rssi, vin_mv, "
    "lat_e6, lon_e6, gps_at, arc_on, session_id, firmware, heartbeat_interval_s, "
    "offline_deadline"
)
_STATE_UPDATE = ", ".join(
    f"{c} = excluded.{c}" for c in _STATE_COLUMNS.split(", ") if c != "device_id"
)
# Column names are constants of this module; every value is a bound parameter.
_SQLITE_STATE_SQL = (
    f"INSERT INTO device_state ({_STATE_COLUMNS}) VALUES "  # noqa: S608
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    f"ON CONFLICT (device_id) DO UPDATE SET {_STATE_UPDATE}"
)
_SQLITE_INSERT = (
    "INSERT OR IGNORE INTO device_message "
    "(device_id, kind, seq, device_ts, received_at, buffered, payload) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


# Welding current below this is idling or noise, whatever the chip's arc flag says:
# max(5.0 A, 5 % of the machine's rated current), in deciamperes.
MIN_ARC_THRESHOLD_DA = 50
ARC_THRESHOLD_FRACTION_PERCENT = 5


def arc_threshold_da(rated_current_a: int | None) -> int:
    rated_da = (rated_current_a or 0) * 10
    # Rounded up: a threshold is a floor, never below the stated fraction.
    return max(MIN_ARC_THRESHOLD_DA, -(-rated_da * ARC_THRESHOLD_FRACTION_PERCENT // 100))


def _sqlite_time(ms: int | None) -> str | None:
    """SQLAlchemy's SQLite DateTime storage format, naive UTC (see UTCDateTime)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _ms(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp() * 1000)


class IngestRepository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._raw: Any = None

    def _connection(self) -> Any:
        if self._raw is None:
            self._raw = self.engine.raw_connection()
        return self._raw

    def close(self) -> None:
        if self._raw is not None:
            try:
                self._raw.close()
            finally:
                self._raw = None

    def _reset(self) -> None:
        """After an error the connection may be broken or mid-transaction: drop it
        (the pool discards broken ones) and start afresh next time."""
        raw, self._raw = self._raw, None
        if raw is not None:
            try:
                raw.rollback()
                raw.close()
            except Exception:  # noqa: S110 - best effort on a connection we are abandoning
                pass

    def write_messages(self, rows: list[MessageRow]) -> int:
        """SQLite: stores a batch in one transaction; returns how many rows were
        new (the rest were already stored: redeliveries after a restart).
        PostgreSQL goes through ``PgMessageWriter``."""
        try:
            return self._sqlite_write(rows)
        except BaseException:
            self._reset()
            raise

    def _sqlite_write(self, rows: list[MessageRow]) -> int:
        raw = self._connection()
        t = _sqlite_time
        cur = raw.cursor()
        try:
            cur.executemany(
                _SQLITE_INSERT, [(d, k, s, t(ts), t(rc), b, p) for d, k, s, ts, rc, b, p in rows]
            )
            stored = cur.rowcount
        finally:
            cur.close()
        raw.commit()
        return int(stored)

    def state_rows(self, states: list[tuple[str, DeviceLive]]) -> list[tuple[Any, ...]]:
        """Snapshot of the states as rows; taken on the event loop's thread so the
        writer thread never reads a state while a message is changing it."""
        time = None if self.postgres else _sqlite_time
        return [_state_row(d, s, time) for d, s in states]

    def upsert_states(self, rows: list[tuple[Any, ...]]) -> None:
        """SQLite; PostgreSQL goes through ``PgMessageWriter.upsert_states``."""
        try:
            raw = self._connection()
            cur = raw.cursor()
            try:
                cur.executemany(_SQLITE_STATE_SQL, rows)
            finally:
                cur.close()
            raw.commit()
        except BaseException:
            self._reset()
            raise

    def load_arc_thresholds(self) -> dict[str, int]:
        """device_id → welding threshold of the machine its chip is bound to now."""
        from weldguard.machine.models import Chip, ChipBinding, Machine

        query = (
            select(Chip.device_id, Machine.rated_current_a)
            .join(
                ChipBinding, and_(ChipBinding.chip_id == Chip.id, ChipBinding.removed_at.is_(None))
            )
            .join(Machine, Machine.id == ChipBinding.machine_id)
        )
        with self.engine.connect() as conn:
            return {d: arc_threshold_da(rated) for d, rated in conn.execute(query)}

    def load_states(self) -> list[tuple[str, DeviceLive]]:
        """Every stored live state, for a worker that starts up."""
        table = DeviceState.__table__
        out = []
        with self.engine.connect() as conn:
            for r in conn.execute(select(table)).mappings():
                out.append(
                    (
                        r["device_id"],
                        DeviceLive(
                            last_seq=r["last_seq"],
                            boot_count=r["boot_count"],
                            online=r["online"],
                            last_seen_ms=_ms(r["last_seen_at"]) or 0,
                            deadline_ms=_ms(r["offline_deadline"]) or 0,
                            interval_s=r["heartbeat_interval_s"],
                            lock_state=r["lock_state"],
                            rssi=r["rssi"],
                            vin_mv=r["vin_mv"],
                            lat_e6=r["lat_e6"],
                            lon_e6=r["lon_e6"],
                            gps_ms=_ms(r["gps_at"]),
                            arc_on=r["arc_on"],
                            session_id=r["session_id"],
                            firmware=r["firmware"],
                        ),
                    )
                )
        return out


def _state_row(device_id: str, s: DeviceLive, time: Any) -> tuple[Any, ...]:
    def t(ms: int | None) -> Any:
        return time(ms) if time is not None else ms

    return (
        device_id,
        s.online,
        t(s.last_seen_ms or None),
        s.lock_state,
        s.last_seq,
        s.boot_count,
        s.rssi,
        s.vin_mv,
        s.lat_e6,
        s.lon_e6,
        t(s.gps_ms),
        s.arc_on,
        s.session_id,
        s.firmware,
        s.interval_s,
        t(s.deadline_ms or None),
    )


# ---------------------------------------------------------------------- asyncpg

_MESSAGE_COLUMNS = ("device_id", "kind", "seq", "device_ts", "received_at", "buffered", "payload")
_ASYNC_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS ingest_stage_a (device_id text, kind text, seq bigint, "
    "device_ts timestamptz, received_at timestamptz, buffered boolean, payload json) "
    "ON COMMIT DELETE ROWS"
)
_ASYNC_MERGE = (
    "INSERT INTO device_message (device_id, kind, seq, device_ts, received_at, buffered, payload) "
    "SELECT device_id, kind, seq, device_ts, received_at, buffered, payload FROM ingest_stage_a "
    "ON CONFLICT ON CONSTRAINT uq_device_message_dedupe DO NOTHING"
)
_STATE_COLUMN_LIST = tuple(_STATE_COLUMNS.split(", "))
_ASYNC_STATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS state_stage_a (LIKE device_state) ON COMMIT DELETE ROWS"
)
# Column names are constants of this module.
_ASYNC_STATE_MERGE = (
    f"INSERT INTO device_state ({_STATE_COLUMNS}) "  # noqa: S608
    f"SELECT {_STATE_COLUMNS} FROM state_stage_a "
    f"ON CONFLICT (device_id) DO UPDATE SET {_STATE_UPDATE}"
)
# PostgreSQL's binary timestamps count microseconds from 2000-01-01 UTC.
_PG_EPOCH_MS = 946_684_800_000
# After the unique key refused a batch, the next ones are likely redeliveries too
# (a restart replays a burst): merge through the staging table for a while.
_MERGE_FOR_S = 10.0


def _ts_encode(ms: int) -> tuple[int]:
    return ((ms - _PG_EPOCH_MS) * 1000,)


def _ts_decode(value: tuple[int]) -> int:
    return value[0] // 1000 + _PG_EPOCH_MS


def asyncpg_dsn(engine: Engine) -> str:
    """The asyncpg form of the engine's URL (postgresql+psycopg://… → postgresql://…)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgMessageWriter:
    """Message batches and live-state flushes into PostgreSQL over asyncpg, on the
    event loop: one connection for messages, one for states, so a state flush
    never waits for a batch commit or the other way round. Timestamps travel as
    Unix milliseconds (a tuple codec), so no datetime objects are built per row."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: Any = None
        self._state_conn: Any = None
        self._merge_until = 0.0
        self.merged_batches = 0

    async def _connect(self) -> Any:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.set_type_codec(
                "timestamptz",
                schema="pg_catalog",
                encoder=_ts_encode,
                decoder=_ts_decode,
                format="tuple",
            )
            await conn.execute(_ASYNC_STAGE)
            await conn.execute(_ASYNC_STATE_STAGE)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def write(self, rows: Sequence[MessageRow]) -> int:
        """One transaction; returns how many rows were new."""
        try:
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect()
            conn = self._conn
            if time.monotonic() >= self._merge_until:
                try:
                    async with conn.transaction():
                        await conn.copy_records_to_table(
                            "device_message", records=rows, columns=_MESSAGE_COLUMNS
                        )
                    return len(rows)
                except asyncpg.UniqueViolationError:
                    self._merge_until = time.monotonic() + _MERGE_FOR_S
            self.merged_batches += 1
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "ingest_stage_a", records=rows, columns=_MESSAGE_COLUMNS
                )
                status = await conn.execute(_ASYNC_MERGE)
            return int(status.rsplit(" ", 1)[-1])
        except BaseException:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.terminate()
            raise

    async def upsert_states(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows from ``IngestRepository.state_rows`` (times as Unix ms): one COPY
        and one INSERT … ON CONFLICT DO UPDATE, instead of a statement per device."""
        try:
            if self._state_conn is None or self._state_conn.is_closed():
                self._state_conn = await self._connect()
            conn = self._state_conn
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "state_stage_a", records=rows, columns=_STATE_COLUMN_LIST
                )
                await conn.execute(_ASYNC_STATE_MERGE)
        except BaseException:
            conn, self._state_conn = self._state_conn, None
            if conn is not None:
                conn.terminate()
            raise

    async def close(self) -> None:
        for name in ("_conn", "_state_conn"):
            conn = getattr(self, name)
            setattr(self, name, None)
            if conn is not None:
                try:
                    await conn.close(timeout=2)
                except Exception:
                    conn.terminate()
