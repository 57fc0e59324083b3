"""Test fixtures. Every test that touches the database runs on SQLite and, when
WELDGUARD_TEST_DATABASE_URL is set, on PostgreSQL too; both schemas are built by
the Alembic migrations, never by create_all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tests.factories import Personas, World, build_world
from weldguard.app import create_app
from weldguard.config import Settings
from weldguard.db import Base, make_engine, make_session_factory, scratch_postgres_database
from weldguard.migrate import upgrade
from weldguard.welder.identity import IdentityVault

TEST_SECRET = "test-secret-key-not-for-production"
PG_URL = os.environ.get("WELDGUARD_TEST_DATABASE_URL")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("db") / "test.sqlite3"
        url = f"sqlite:///{path}"
    else:
        assert PG_URL
        url = _private_database(request)
    upgrade(url)
    return url


def _private_database(request: pytest.FixtureRequest) -> str:
    """A fresh database per test run, so that parallel runs (and a developer's
    demo data in the configured database) never meet."""
    assert PG_URL
    scratch = scratch_postgres_database(PG_URL, "weldguard_test")
    url = scratch.__enter__()
    request.addfinalizer(lambda: scratch.__exit__(None, None, None))
    return url


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def _wipe(engine: Engine) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key=TEST_SECRET,
        argon2_time_cost=1,
        argon2_memory_kib=64,
        login_max_failures=5,
        # Many apps are built in one test process: none of them may freeze the rest.
        gc_freeze=False,
    )


@pytest.fixture
def session_factory(engine: Engine) -> Iterator[sessionmaker[Session]]:
    _wipe(engine)
    yield make_session_factory(engine)


@pytest.fixture
def db(session_factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for arranging and inspecting data; tests commit what they arrange."""
    session = session_factory()
    yield session
    session.rollback()
    session.close()


@pytest.fixture
def vault() -> IdentityVault:
    return IdentityVault(TEST_SECRET)


@pytest.fixture
def world(db: Session, settings: Settings, vault: IdentityVault) -> World:
    """Reference data plus a small register across both demo regions and one
    persona per role and level (see tests/factories.py)."""
    world = build_world(db, settings, vault)
    db.commit()
    return world


@pytest.fixture
def personas(world: World) -> Personas:
    return world.personas


@pytest.fixture
def client(settings: Settings, session_factory: sessionmaker[Session]) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def login_headers(
    client: TestClient, username: str, password: str = "password123"
) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def as_user(client: TestClient) -> object:
    """as_user("reg_changning") -> headers for that persona's bearer token."""
    cache: dict[str, dict[str, str]] = {}

    def headers(username: str) -> dict[str, str]:
        if username not in cache:
            cache[username] = login_headers(client, username)
        return cache[username]

    return headers
