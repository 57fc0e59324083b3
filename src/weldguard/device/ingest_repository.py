"""The ingest worker's SQL: batched message writes and live-state upserts.

Blocking calls on one dedicated DBAPI connection; the worker runs them in its own
single thread, one at a time. The connection is taken raw because the hot path
wants PostgreSQL's COPY (psycopg) and SQLite's executemany without ORM overhead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

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
_PG_STATE_SQL = (
    f"INSERT INTO device_state ({_STATE_COLUMNS}) VALUES "  # noqa: S608
    "(%s, %s, to_timestamp(%s / 1000.0), %s, %s, %s, %s, %s, %s, %s, "
    "to_timestamp(%s / 1000.0), %s, %s, %s, %s, to_timestamp(%s / 1000.0)) "
    f"ON CONFLICT (device_id) DO UPDATE SET {_STATE_UPDATE}"
)
_SQLITE_STATE_SQL = (
    f"INSERT INTO device_state ({_STATE_COLUMNS}) VALUES "  # noqa: S608
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    f"ON CONFLICT (device_id) DO UPDATE SET {_STATE_UPDATE}"
)
_PG_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS ingest_stage (device_id text, kind text, seq bigint, "
    "ts_ms bigint, recv_ms bigint, buffered boolean, payload text) ON COMMIT DELETE ROWS"
)
_PG_COPY = "COPY ingest_stage (device_id, kind, seq, ts_ms, recv_ms, buffered, payload) FROM STDIN"
_PG_MERGE = (
    "INSERT INTO device_message (device_id, kind, seq, device_ts, received_at, buffered, payload) "
    "SELECT device_id, kind, seq, to_timestamp(ts_ms / 1000.0), to_timestamp(recv_ms / 1000.0), "
    "buffered, payload::json FROM ingest_stage "
    "ON CONFLICT ON CONSTRAINT uq_device_message_dedupe DO NOTHING"
)
_SQLITE_INSERT = (
    "INSERT OR IGNORE INTO device_message "
    "(device_id, kind, seq, device_ts, received_at, buffered, payload) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


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
            if self.postgres:
                with self._raw.driver_connection.cursor() as cur:
                    cur.execute(_PG_STAGE)
                self._raw.commit()
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
        """Stores a batch in one transaction; returns how many rows were new (the
        rest were already stored: redeliveries after a restart)."""
        try:
            if self.postgres:
                return self._pg_write(rows)
            return self._sqlite_write(rows)
        except BaseException:
            self._reset()
            raise

    def _pg_write(self, rows: list[MessageRow]) -> int:
        conn = self._connection().driver_connection
        with conn.cursor() as cur:
            with cur.copy(_PG_COPY) as copy:
                write = copy.write_row
                for row in rows:
                    write(row)
            cur.execute(_PG_MERGE)
            stored = cur.rowcount
        conn.commit()
        return int(stored)

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
        try:
            raw = self._connection()
            if self.postgres:
                with raw.driver_connection.cursor() as cur:
                    cur.executemany(_PG_STATE_SQL, rows)
                raw.driver_connection.commit()
            else:
                cur = raw.cursor()
                try:
                    cur.executemany(_SQLITE_STATE_SQL, rows)
                finally:
                    cur.close()
                raw.commit()
        except BaseException:
            self._reset()
            raise

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
