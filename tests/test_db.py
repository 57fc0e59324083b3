"""The database helpers of weldguard/db.py (both backends where they apply)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from tests.factories import World
from weldguard import db as db_module
from weldguard.auth.models import User
from weldguard.auth.repository import TokenRepository
from weldguard.db import Chained, insert_chain_unless_taken, make_engine
from weldguard.permit.repository import PermitRepository
from weldguard.unlock.models import ScanRecord
from weldguard.unlock.repository import ScanRepository


def test_only_the_marked_statements_are_prepared(db: Session) -> None:
    """The scan's reads (place, token, permits) are prepared server-side; any other
    statement keeps a plan made for its own parameters (a generic plan for a long IN
    list is slow)."""
    if db.get_bind().dialect.name != "postgresql":
        pytest.skip("server-side prepared statements are PostgreSQL's")
    now = datetime.now(UTC)
    for _ in range(7):
        ScanRepository(db).scan_place("WGNOSUCH01", now)
        TokenRepository(db).live_with_user("no-such-token", now)
        PermitRepository(db).scan_candidates(-1, -1)
        db.execute(select(ScanRecord.id).where(ScanRecord.id.in_([1, 2, 3]))).all()
    prepared = db.execute(text("SELECT statement FROM pg_prepared_statements")).scalars().all()
    assert len(prepared) == 3, prepared
    assert any("FROM machine" in s for s in prepared)
    assert any("FROM access_token" in s for s in prepared)
    assert any("FROM permit" in s for s in prepared)


def test_a_pooled_connection_is_pinged_only_after_sitting_idle(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ping round trip in a busy pool's transactions; an idle connection the
    server has closed meanwhile is replaced before anyone uses it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server connection to lose")
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping

    def counting_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting_ping)
    try:
        for _ in range(3):
            with engine.connect() as conn:
                first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert pings == []

        # Idle for longer than the threshold, and closed by the server meanwhile.
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.0)
        with make_engine(database_url).connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
            admin.commit()
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert len(pings) == 1
        assert pid != first_pid
    finally:
        engine.dispose()


def _record(user_id: int, key: str, code: str = "WGCHAIN001") -> ScanRecord:
    return ScanRecord(
        idempotency_key=key,
        scanned_at=datetime(2026, 12, 7, 8, 0, tzinfo=UTC),
        outcome="blocked",
        machine_code=code,
        user_id=user_id,
        reason_codes=["CERT_EXPIRED"],
        reasons=[{"code": "CERT_EXPIRED", "message": "证书已过期"}],
    )


def test_a_chain_of_inserts_stops_at_the_first_taken_row(db: Session, world: World) -> None:
    """Each row goes in only if every row before it did (one statement on
    PostgreSQL, one by one elsewhere); a row may take an earlier row's new key."""
    user_id = db.scalars(select(User.id).order_by(User.id)).first()
    assert user_id is not None

    first, second = _record(user_id, "key-0001"), _record(user_id, "key-0002")
    third = _record(user_id, "key-0003")
    written = insert_chain_unless_taken(
        db, [Chained(first), Chained(second), Chained(third, {"machine_code": (0, "id")})]
    )
    assert written == 3
    assert first.id is not None and second.id is not None and third.id is not None
    assert third.machine_code == str(first.id)  # cast by the database into the column
    db.commit()
    assert db.get(ScanRecord, third.id).machine_code == str(first.id)  # type: ignore[union-attr]

    # The first row taken: nothing is written.
    again = _record(user_id, "key-0001")
    after = _record(user_id, "key-0004")
    assert insert_chain_unless_taken(db, [Chained(again), Chained(after)]) == 0
    # The second taken: the first goes in, the third does not, though it is free.
    head, taken, tail = (
        _record(user_id, "key-0005"),
        _record(user_id, "key-0002"),
        _record(user_id, "key-0006"),
    )
    assert insert_chain_unless_taken(db, [Chained(head), Chained(taken), Chained(tail)]) == 1
    assert head.id is not None and taken.id is None and tail.id is None
    db.commit()
    keys = db.scalars(select(ScanRecord.idempotency_key).order_by(ScanRecord.id)).all()
    assert keys == ["key-0001", "key-0002", "key-0003", "key-0005"]
