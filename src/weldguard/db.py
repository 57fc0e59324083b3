"""Database plumbing: declarative base, engine and session factories, and the
transaction boundary. Services only flush; the boundary (request dependency,
CLI command, job) commits on success and rolls back on error."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import (
    DateTime,
    Engine,
    Insert,
    MetaData,
    Select,
    Table,
    bindparam,
    create_engine,
    event,
    select,
    true,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out. SQLite keeps no zone, so naive values read
    back are UTC by construction; naive values written are refused to catch bugs."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime written to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web server read while an import writes; NORMAL is durable
    # enough under WAL and several times faster than FULL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            import pathlib

            pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # psycopg prepares a statement server-side after five runs, and PostgreSQL may
    # then keep a generic plan for "IN (500 parameters)" that is 15x slower than
    # the custom one: a threshold never reached keeps every plan custom, except for
    # the statements marked PREPARED below (None would refuse those too).
    connect_args = {"prepare_threshold": 2**31 - 1, **kwargs.pop("connect_args", {})}
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    event.listen(engine, "do_execute", _prepare_marked)
    _ping_when_idle(engine)
    _time_statements(engine)
    return engine


_STATEMENTS_S = "weldguard_statements_s"
_SENT = "weldguard_sent"


def _time_statements(engine: Engine) -> None:
    """Adds up, per checkout of a connection, the wall time from sending each
    statement to its result (``statement_seconds``): what a request's
    Server-Timing splits off from its own work."""

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        record.info[_STATEMENTS_S] = 0.0

    def before(conn: Any, cursor: Any, *_: Any) -> None:
        conn.info[_SENT] = time.perf_counter()

    def after(conn: Any, cursor: Any, *_: Any) -> None:
        sent = conn.info.pop(_SENT, None)
        if sent is not None:
            elapsed = time.perf_counter() - sent
            conn.info[_STATEMENTS_S] = conn.info.get(_STATEMENTS_S, 0.0) + elapsed

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)


def statement_seconds(session: Session) -> float:
    """The seconds this session's connection has spent on statements since it was
    checked out (0 when it holds none, or on SQLite, which has no round trips)."""
    if not session.in_transaction():
        return 0.0
    return float(session.connection().info.get(_STATEMENTS_S, 0.0))


# A pooled connection back in use within this many seconds is not pinged first.
PING_AFTER_IDLE_S = 10.0
_LAST_CHECKIN = "weldguard_last_checkin"


def _ping_when_idle(engine: Engine) -> None:
    """The pool's pre-ping, only for a connection that sat idle: ``pool_pre_ping``
    pings on every checkout, one more round trip in every transaction. A
    connection the server dropped while it was busy a moment ago is still caught:
    its error marks the pool invalid (SQLAlchemy's optimistic disconnect
    handling), and every older connection is replaced."""

    def checkin(dbapi_connection: Any, record: Any) -> None:
        record.info[_LAST_CHECKIN] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        last = record.info.get(_LAST_CHECKIN)
        if last is None or time.monotonic() - last < PING_AFTER_IDLE_S:
            return  # fresh from connect, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            # The pool reconnects and checks the other idle connections the same way.
            raise DisconnectionError(str(exc)) from exc
        finally:
            if not getattr(dbapi_connection, "closed", False):
                with contextlib.suppress(Exception):
                    dbapi_connection.rollback()

    event.listen(engine, "checkin", checkin)
    event.listen(engine, "checkout", checkout)


# An execution option: statements of a hot path that are prepared server-side all
# the same (their plan is the same every time, and PostgreSQL spends longer
# planning the scan's joined read than executing it).
PREPARED = "weldguard_prepared"


def _prepare_marked(
    cursor: Any, statement: str, parameters: Any, context: Any
) -> Literal[True] | None:
    if context is not None and context.execution_options.get(PREPARED):
        cursor.execute(statement, parameters, prepare=True)
        return True
    return None


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextlib.contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The boundary for CLI commands and jobs: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextlib.contextmanager
def scratch_postgres_database(base_url: str, prefix: str) -> Iterator[str]:
    """A fresh database on the server of base_url, dropped afterwards, so that
    tests and benchmarks never touch (or collide in) the configured database."""
    import os
    import uuid

    from sqlalchemy import make_url, text

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def insert_unless_taken(session: Session, instance: Base) -> bool:
    """Inserts ``instance`` with ``INSERT … ON CONFLICT DO NOTHING RETURNING`` its
    columns: False when a unique index already holds its key (another request
    got there first), and the transaction is still usable, without a savepoint's two
    extra round trips. On success the instance is persistent in ``session``, every
    column set (generated keys filled in, nothing to reload).

    PostgreSQL and SQLite; other databases fall back to a savepoint."""
    table = cast(Table, sa_inspect(type(instance)).local_table)
    # Unset columns are left out, so that their defaults apply as on a flush.
    values = {
        column.key: value
        for column in table.columns
        if (value := getattr(instance, column.key)) is not None
    }
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        try:
            with session.begin_nested():
                session.add(instance)
                session.flush()
        except IntegrityError:
            return False
        return True
    statement = _insert_unless_taken(table, dialect, frozenset(values))
    # RETURNING says whether the row went in (rowcount is not reliable here), and
    # brings back what the defaults and the sequence filled in.
    row = session.execute(statement, values).first()
    if row is None:
        return False
    for column, value in zip(table.columns, row, strict=True):
        setattr(instance, column.key, value)
    make_transient_to_detached(instance)
    session.add(instance)
    return True


@functools.lru_cache(maxsize=64)
def _insert_unless_taken(table: Table, dialect: str, columns: frozenset[str]) -> Insert:
    """Built once per table and set of columns: the values go in as parameters, so
    a hot path (every scan writes three rows this way) pays neither for building
    the statement nor for its cache key."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return (
        insert(table)
        .values({key: bindparam(key, type_=table.c[key].type) for key in sorted(columns)})
        .on_conflict_do_nothing()
        .returning(*table.columns)
        .execution_options(**{PREPARED: True})
    )


@dataclass(frozen=True)
class Chained:
    """One row of :func:`insert_chain_unless_taken`: ``instance``, with the columns
    in ``from_earlier`` taken from rows before it in the chain once they are in
    (column -> (index of the earlier row, its column)), e.g. a generated key."""

    instance: Base
    from_earlier: Mapping[str, tuple[int, str]] = field(default_factory=dict)


def insert_chain_unless_taken(session: Session, rows: Sequence[Chained]) -> int:
    """:func:`insert_unless_taken` for rows that depend on each other: each row is
    inserted only if every row before it went in, and how many did (a prefix of
    ``rows``) is returned. The rows that went in are persistent, every column set.

    On PostgreSQL this is one statement (data-modifying CTEs, each INSERT
    selecting from the ones before it) instead of a round trip per row: the scan
    writes its record, its unlock and its session this way. Elsewhere the rows go
    one by one, with the same result."""
    if not rows:
        return 0
    if session.get_bind().dialect.name != "postgresql":
        for done, row in enumerate(rows):
            for name, (earlier, source) in row.from_earlier.items():
                setattr(row.instance, name, getattr(rows[earlier].instance, source))
            if not insert_unless_taken(session, row.instance):
                return done
        return len(rows)
    shape: list[tuple[Table, frozenset[str], tuple[tuple[str, int, str], ...]]] = []
    params: dict[str, Any] = {}
    for index, row in enumerate(rows):
        table = cast(Table, sa_inspect(type(row.instance)).local_table)
        values = {
            column.key: value
            for column in table.columns
            if column.key not in row.from_earlier
            and (value := _value_or_default(row.instance, column)) is not None
        }
        params.update({f"r{index}_{key}": value for key, value in values.items()})
        links = tuple(
            sorted((name, earlier, source) for name, (earlier, source) in row.from_earlier.items())
        )
        shape.append((table, frozenset(values), links))
    found = session.execute(_insert_chain(tuple(shape)), params).first()
    if found is None:
        return 0
    done = 0
    offset = 0
    for index, (row, (table, provided, _links)) in enumerate(zip(rows, shape, strict=True)):
        columns = _returned_columns(table, provided)
        returned = found[offset : offset + len(columns)]
        offset += len(columns)
        if returned[0] is None:
            break  # this row was taken (and so nothing after it went in)
        for key in provided:
            if getattr(row.instance, key) is None:  # a default evaluated here
                setattr(row.instance, key, params[f"r{index}_{key}"])
        for column, value in zip(columns, returned, strict=True):
            setattr(row.instance, column.key, value)
        make_transient_to_detached(row.instance)
        session.add(row.instance)
        done += 1
    return done


def _returned_columns(table: Table, provided: frozenset[str]) -> list[Any]:
    """What the chain's statement sends back of a row: its primary key (first:
    NULL when the row was taken) and what the database filled in. Not the values
    it was given: every column described costs the driver and the ORM time."""
    keys = list(table.primary_key.columns)
    return keys + [c for c in table.columns if c.key not in provided and not c.primary_key]


def _value_or_default(instance: Base, column: Any) -> Any:
    """The instance's value, else the column's Python-side default, evaluated here:
    an INSERT … SELECT cannot take a callable default (``default=list``)."""
    value = getattr(instance, column.key)
    default = column.default
    if value is not None or default is None:
        return value
    if default.is_scalar:
        return default.arg
    if default.is_callable:
        return default.arg(None)
    return None


@functools.lru_cache(maxsize=16)
def _insert_chain(
    shape: tuple[tuple[Table, frozenset[str], tuple[tuple[str, int, str], ...]], ...],
) -> Select[Any]:
    """Built once per chain of tables and sets of columns (see _insert_unless_taken).
    Row i's values are parameters ``r{i}_{column}``; after the first row each
    INSERT selects them, cast to the column's type, FROM the CTEs before it, so it
    inserts nothing unless each of those returned its row."""
    ctes: list[Any] = []
    for index, (table, columns, links) in enumerate(shape):
        if index == 0:
            insert = postgresql_insert(table).values(
                {key: bindparam(f"r0_{key}", type_=table.c[key].type) for key in sorted(columns)}
            )
        else:
            names = sorted(columns)
            chosen: list[Any] = [
                sql_cast(bindparam(f"r{index}_{key}", type_=table.c[key].type), table.c[key].type)
                for key in names
            ]
            chosen += [ctes[earlier].c[source] for _column, earlier, source in links]
            source_rows = select(*chosen).select_from(ctes[0])
            for earlier in ctes[1:]:
                source_rows = source_rows.join(earlier, true())
            insert = postgresql_insert(table).from_select(
                [*names, *(column for column, _earlier, _source in links)], source_rows
            )
        ctes.append(insert.on_conflict_do_nothing().returning(*table.columns).cte(f"chain_{index}"))
    labelled = [
        cte.c[column.key].label(f"c{index}_{column.key}")
        for index, (cte, (table, provided, _links)) in enumerate(zip(ctes, shape, strict=True))
        for column in _returned_columns(table, provided)
    ]
    # One row when the first row went in, with NULLs for every row after a taken one.
    statement = select(*labelled).select_from(ctes[0])
    for cte in ctes[1:]:
        statement = statement.outerjoin(cte, true())
    return statement.execution_options(**{PREPARED: True})
