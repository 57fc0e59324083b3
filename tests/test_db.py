"""The database helpers of weldguard/db.py (both backends where they apply)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from weldguard.auth.repository import TokenRepository
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
