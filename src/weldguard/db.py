"""Database plumbing: declarative base, engine and session factories, and the
transaction boundary. Services only flush; the boundary (request dependency,
CLI command, job) commits on success and rolls back on error."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import DateTime, Engine, Insert, MetaData, Table, bindparam, create_engine, event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
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
    engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args, **kwargs)
    event.listen(engine, "do_execute", _prepare_marked)
    return engine


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
